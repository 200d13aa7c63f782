"""Receipts: offline proofs that an entry is in the evidence ledger, as c2sp.org/tlog-proof@v1.

A receipt is the entry's index, its RFC 9162 inclusion proof and the signed checkpoint the proof
leads to, written as the tlog-proof text format:

    c2sp.org/tlog-proof@v1
    extra <base64>            (optional, opaque, NOT authenticated)
    index <n>
    <base64 hash>             (zero or more, leaf's sibling first)
    <empty line>
    <checkpoint note, verbatim>

Whoever holds a receipt, the entry and the log's verifier key can check it without asking the
log (`verify_receipt`). This module owns the format and that check; the tree arithmetic is
`merkle.py`'s, the notes and checkpoints are `notes.py`'s. Decoding is strict: one text per
receipt, so a receipt that decodes re-encodes to the same bytes.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from controlplane.errors import InvalidEntity
from controlplane.ledger.merkle import HASH_SIZE, leaf_hash, verify_inclusion
from controlplane.ledger.notes import (
    MAX_TREE_SIZE,
    Checkpoint,
    NoteVerifier,
    decode_base64_strict,
    open_checkpoint,
)

HEADER = "c2sp.org/tlog-proof@v1"
_EXTRA_PREFIX = "extra "
_INDEX = re.compile(r"index (0|[1-9][0-9]*)")  # "ASCII decimal with no leading zeroes"
# An inclusion proof in a tree of fewer than 2^64 leaves has at most 64 hashes.
MAX_PROOF_HASHES = 64


class ReceiptError(InvalidEntity):
    """A receipt whose text or fields are not a c2sp.org/tlog-proof@v1 proof; `detail` says
    where. (A receipt that is well formed but does not verify raises `NoteError` or
    `ProofError`, see `verify_receipt`.)"""

    default_code = "receipt_invalid"
    title = "Invalid receipt"


@dataclass(frozen=True, slots=True)
class Receipt:
    """Entry `index`, its inclusion `proof` (32-byte hashes, leaf's sibling first), the signed
    `checkpoint_note` the proof leads to, and optional unauthenticated `extra` bytes.

    Raises `ReceiptError` unless 0 <= index < 2^64, the proof has at most 64 hashes of 32 bytes,
    `extra` is absent or non-empty (so that one receipt has one text), and the checkpoint note
    is non-empty and ends with a newline. The note itself is checked by `verify_receipt`.
    """

    index: int
    proof: tuple[bytes, ...]
    checkpoint_note: str
    extra: bytes | None = None

    def __post_init__(self) -> None:
        if isinstance(self.index, bool) or not isinstance(self.index, int):
            raise ReceiptError(f"the receipt index must be an integer, not {self.index!r}")
        if not 0 <= self.index <= MAX_TREE_SIZE:
            raise ReceiptError(f"the receipt index {self.index} is outside [0, 2^64)")
        if len(self.proof) > MAX_PROOF_HASHES:
            raise ReceiptError(
                f"the proof has {len(self.proof)} hashes, more than {MAX_PROOF_HASHES}"
            )
        for position, value in enumerate(self.proof):
            if len(value) != HASH_SIZE:
                raise ReceiptError(f"proof hash {position} is {len(value)} bytes, not {HASH_SIZE}")
        if self.extra is not None and not self.extra:
            raise ReceiptError("extra data, when present, must not be empty")
        if not self.checkpoint_note.endswith("\n"):
            raise ReceiptError("the checkpoint note must be non-empty and end with a newline")

    def encode(self) -> str:
        """The receipt in the c2sp.org/tlog-proof@v1 text format (a `.tlog-proof` file)."""
        lines = [HEADER]
        if self.extra is not None:
            lines.append(_EXTRA_PREFIX + base64.b64encode(self.extra).decode("ascii"))
        lines.append(f"index {self.index}")
        lines.extend(base64.b64encode(value).decode("ascii") for value in self.proof)
        return "\n".join(lines) + "\n\n" + self.checkpoint_note

    @classmethod
    def decode(cls, text: str) -> Receipt:
        """The receipt `encode` wrote. Raises `ReceiptError` unless `text` is exactly: the
        header line; optionally `extra <canonical base64>`; `index <decimal, no leading zeros>`;
        zero or more canonical base64 32-byte hashes, one per line; an empty line; the
        checkpoint note. Any other line, where one of these is expected, is an error."""
        head, separator, checkpoint_note = text.partition("\n\n")
        if not separator:
            raise ReceiptError("the receipt has no empty line before its checkpoint")
        lines = head.split("\n")
        if lines[0] != HEADER:
            raise ReceiptError(f"the receipt does not start with the line {HEADER!r}")
        position = 1
        extra = None
        if position < len(lines) and lines[position].startswith(_EXTRA_PREFIX):
            extra = decode_base64_strict(lines[position][len(_EXTRA_PREFIX) :])
            if not extra:
                raise ReceiptError("the extra line is not non-empty canonical base64")
            position += 1
        if position == len(lines):
            raise ReceiptError("the receipt has no index line")
        index_match = _INDEX.fullmatch(lines[position])
        if not index_match:
            raise ReceiptError(
                f"line {position + 1} is not 'index <decimal without leading zeros>': "
                f"{lines[position][:80]!r}"
            )
        position += 1
        proof = []
        for number, line in enumerate(lines[position:], start=position + 1):
            value = decode_base64_strict(line)
            if value is None or len(value) != HASH_SIZE:
                raise ReceiptError(
                    f"line {number} is not a canonical base64 hash of {HASH_SIZE} bytes: "
                    f"{line[:80]!r}"
                )
            proof.append(value)
        return cls(int(index_match.group(1)), tuple(proof), checkpoint_note, extra)


def verify_receipt(
    receipt: Receipt, entry: bytes, verifier: NoteVerifier, origin: str
) -> Checkpoint:
    """The checkpoint of `origin` in which `receipt` proves `entry` is included.

    Follows c2sp.org/tlog-proof: open the checkpoint with the log key (`open_checkpoint`: the
    signature, the origin, the key name equal to the origin), then check the RFC 9162 inclusion
    proof of the leaf hash SHA-256(0x00 || entry) at `receipt.index` against its root. Witness
    cosignatures are not checked here. `extra` plays no part: it is not authenticated.

    Raises `NoteError` if the checkpoint does not open, and `ProofError` if the index is not in
    the checkpointed tree or the proof does not lead to its root.
    """
    checkpoint = open_checkpoint(receipt.checkpoint_note, verifier, origin)
    verify_inclusion(
        leaf_hash(entry), receipt.index, checkpoint.size, receipt.proof, checkpoint.root
    )
    return checkpoint
