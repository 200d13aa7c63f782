"""C2SP signed notes with Ed25519 keys, and the transparency-log checkpoints written as notes.

This module owns the text formats the evidence ledger signs and verifies: the signed note of
c2sp.org/signed-note@v1 (a UTF-8 text, a blank line, one or more `— <key name> <base64>` lines)
with its Ed25519 signature type 0x01, key IDs and verifier keys ("vkeys"), and the checkpoint of
c2sp.org/tlog-checkpoint (origin, tree size, root hash, optional extension lines), which is the
log's signed tree head. It knows nothing of how the tree is built (`merkle.py`) or stored.

Opening a note follows the spec's rules and fails closed: anything malformed, a signature from a
known key that does not verify, or no verified signature from a known key rejects the whole note
with `NoteError`; signatures from unknown keys are ignored. Ed25519 goes through libsodium
(PyNaCl), as the grant code does (`controlplane/jose.py`): it verified about twice as many
signatures per second as `cryptography` on OpenSSL 4.0 here (docs/adr/0003), and an auditor of
the ledger verifies many checkpoints.
Answers are pinned by the spec's example, golang.org/x/mod's sumdb/note vectors (the reference
implementation) and transparency-dev/formats' checkpoint vectors (`tests/unit/test_notes.py`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from controlplane.errors import InvalidEntity

# c2sp.org/signed-note@v1, "Signatures" and "Ed25519 signatures".
ED25519_SIGNATURE_TYPE = b"\x01"
_ED25519_PUBLIC_KEY_SIZE = 32
_ED25519_SIGNATURE_SIZE = 64
_KEY_ID_SIZE = 4
_SIGNATURE_PREFIX = "\u2014 "  # em dash, space
# The spec: verifiers "MUST accept at least up to 16 signatures" and SHOULD cap them. 100 is the
# cap of golang.org/x/mod/sumdb/note, so any note Go's tooling opens, this opens too.
MAX_SIGNATURES = 100

# c2sp.org/tlog-checkpoint: "ASCII decimal ... with no leading zeroes (unless ... `0`)". Sizes and
# indices are uint64 in every implementation of the tlog specs.
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
MAX_TREE_SIZE = 2**64 - 1
ROOT_HASH_SIZE = 32  # SHA-256, the hash of RFC 6962 trees
# "MUST NOT contain any ASCII control characters (those below U+0020) other than newline."
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")


class NoteError(InvalidEntity):
    """A signed note or a checkpoint that is malformed, unsigned by a trusted key, or signed
    wrongly; `detail` says which rule it breaks. Code `note_invalid` for the note itself,
    `checkpoint_invalid` for a checkpoint body or origin that is not acceptable."""

    default_code = "note_invalid"
    title = "Invalid signed note"


def _checkpoint_error(detail: str) -> NoteError:
    return NoteError(detail, code="checkpoint_invalid")


def decode_base64_strict(text: str) -> bytes | None:
    """The bytes of `text` if it is standard padded base64 (RFC 4648 §4, as the C2SP specs use)
    in its one canonical form, else None.

    Canonical means that re-encoding gives `text` back: the unused low bits of the last character
    must be zero. Without that, two spellings of one signature or hash would both be accepted,
    and a changed character could leave a note valid.
    """
    try:
        decoded = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):  # ValueError: a non-ASCII character
        return None
    if base64.b64encode(decoded).decode("ascii") != text:
        return None
    return decoded


def _check_key_name(name: str) -> None:
    # "Key names MUST be non-empty and MUST NOT contain any Unicode spaces or plus (U+002B)".
    # str.isspace is Unicode White_Space plus U+001C..U+001F, which are control characters anyway.
    if not name:
        raise NoteError("a key name must not be empty")
    if "+" in name or any(char.isspace() for char in name):
        raise NoteError(f"key name {name!r} contains a space or a '+'")
    if _CONTROL.search(name):
        raise NoteError(f"key name {name!r} contains a control character")


def _key_id(name: str, public_key: bytes) -> bytes:
    # key ID = SHA-256(key name || 0x0A || 0x01 || 32-byte Ed25519 public key)[:4]
    material = name.encode("utf-8") + b"\n" + ED25519_SIGNATURE_TYPE + public_key
    return hashlib.sha256(material).digest()[:_KEY_ID_SIZE]


def _vkey(name: str, key_id: bytes, public_key: bytes) -> str:
    encoded = base64.b64encode(ED25519_SIGNATURE_TYPE + public_key).decode("ascii")
    return f"{name}+{key_id.hex()}+{encoded}"


def _check_text(text: str) -> bytes:
    """The UTF-8 of a note text that may be signed: non-empty, ending in a newline, with no
    control character but newline. Raises `NoteError` otherwise."""
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: not a Unicode scalar value
        raise NoteError("the note text is not valid Unicode (a lone surrogate)") from None
    if not text.endswith("\n"):
        raise NoteError("the note text must be non-empty and end with a newline")
    if match := _CONTROL.search(text):
        raise NoteError(
            f"the note text contains control character U+{ord(match.group()):04X} "
            "(only newline is allowed)"
        )
    return encoded


class NoteVerifier:
    """A trusted Ed25519 note key: its name, key ID and public key."""

    def __init__(self, name: str, public_key: VerifyKey) -> None:
        _check_key_name(name)
        self.name = name
        self.public_key = public_key
        self.key_id = _key_id(name, bytes(public_key))

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """The verifier of `<name>+<hex key id>+<base64(0x01 || public key)>`. Raises `NoteError`
        unless the name is valid, the key ID is 8 lowercase hex digits that match the key, and
        the key is a canonical base64 Ed25519 key of type 0x01."""
        name, sep, rest = vkey.partition("+")
        hex_id, sep2, encoded = rest.partition("+")
        if not (sep and sep2):
            raise NoteError(f"vkey {vkey!r} is not <name>+<key id>+<key>")
        _check_key_name(name)
        if not re.fullmatch(r"[0-9a-f]{8}", hex_id):
            raise NoteError(f"vkey {vkey!r}: the key ID must be 8 lowercase hex digits")
        key = decode_base64_strict(encoded)
        if key is None:
            raise NoteError(f"vkey {vkey!r}: the key is not canonical base64")
        if key[:1] != ED25519_SIGNATURE_TYPE or len(key) != 1 + _ED25519_PUBLIC_KEY_SIZE:
            raise NoteError(f"vkey {vkey!r}: not an Ed25519 key (signature type 0x01 and 32 bytes)")
        verifier = cls(name, VerifyKey(key[1:]))
        if verifier.key_id.hex() != hex_id:
            raise NoteError(
                f"vkey {vkey!r}: key ID {hex_id} does not match the name and key "
                f"(expected {verifier.key_id.hex()})"
            )
        return verifier

    def vkey(self) -> str:
        """`<name>+<hex key id>+<base64(0x01 || public key)>`, what `from_vkey` reads."""
        return _vkey(self.name, self.key_id, bytes(self.public_key))

    def verify(self, text: bytes, signature: bytes) -> bool:
        """Whether `signature` (without its key ID) is this key's Ed25519 signature of `text`."""
        if len(signature) != _ED25519_SIGNATURE_SIZE:
            return False
        try:
            self.public_key.verify(text, signature)
        except BadSignatureError:
            return False
        return True

    def __repr__(self) -> str:
        return f"NoteVerifier({self.vkey()!r})"


class NoteSigner:
    """An Ed25519 note key that signs: `sign(text)` gives the whole signed note.

    The key is a PyNaCl `SigningKey` (libsodium, as elsewhere in the control plane). Ed25519 is
    deterministic (RFC 8032), so one key and one text always give the same note.
    """

    def __init__(self, name: str, private_key: SigningKey) -> None:
        _check_key_name(name)
        self.name = name
        self._private_key = private_key
        self._public_key = bytes(private_key.verify_key)
        self.key_id = _key_id(name, self._public_key)

    def vkey(self) -> str:
        """The verifier key of this signer, `<name>+<hex key id>+<base64(0x01 || public key)>`."""
        return _vkey(self.name, self.key_id, self._public_key)

    def verifier(self) -> NoteVerifier:
        """The `NoteVerifier` of this signer's public key."""
        return NoteVerifier(self.name, self._private_key.verify_key)

    def signature_line(self, text: str) -> str:
        """`— <name> base64(key ID || signature)` + newline, over `text`. Raises `NoteError` if
        `text` cannot be a note text."""
        signature = self._private_key.sign(_check_text(text)).signature
        encoded = base64.b64encode(self.key_id + signature).decode("ascii")
        return f"{_SIGNATURE_PREFIX}{self.name} {encoded}\n"

    def sign(self, text: str) -> str:
        """The signed note: `text`, a blank line, this key's signature line. Raises `NoteError`
        unless `text` is non-empty, ends with a newline and has no other control character."""
        return f"{text}\n{self.signature_line(text)}"

    def __repr__(self) -> str:
        return f"NoteSigner({self.vkey()!r})"


def open_note(note: str | bytes, verifiers: Sequence[NoteVerifier]) -> str:
    """The text of `note` (final newline included) once a signature from one of `verifiers` is
    checked, per c2sp.org/signed-note@v1.

    Raises `NoteError` when the note is not valid UTF-8, holds a control character other than
    newline, has no blank line before its signature block, has a signature line not of the form
    `— <name> <base64 of 4+n bytes>` + newline, has more than `MAX_SIGNATURES` of them, carries a
    signature from a known key (same name and key ID) that does not verify, or carries none from
    a known key at all. Signatures from unknown keys are ignored, as the spec requires. Every
    known-key signature is verified, repeated ones included (Go's sumdb/note skips repeats).
    """
    text, lines = _split_note(note)
    known: dict[tuple[str, bytes], list[NoteVerifier]] = {}
    for verifier in verifiers:
        same = known.setdefault((verifier.name, verifier.key_id), [])
        if all(bytes(other.public_key) != bytes(verifier.public_key) for other in same):
            same.append(verifier)

    text_bytes = text.encode("utf-8")
    verified = False
    for number, line in enumerate(lines, start=1):
        name, key_id, signature = _parse_signature_line(number, line)
        candidates = known.get((name, key_id), [])
        if not candidates:
            continue  # "Verifiers MUST ignore signatures from unknown keys"
        if len(candidates) > 1:
            raise NoteError(f"ambiguous key {name}+{key_id.hex()}: two trusted keys share it")
        # "If the key name and ID match a known key, verifiers MUST verify the signature. If a
        # signature from a known key fails to verify, clients SHOULD reject the whole note."
        if not candidates[0].verify(text_bytes, signature):
            raise NoteError(f"the signature of key {name}+{key_id.hex()} does not verify")
        verified = True
    if not verified:
        # "If no signature from a known key verifies successfully, clients MUST reject the note."
        raise NoteError("the note has no signature from a trusted key")
    return text


def _split_note(note: str | bytes) -> tuple[str, list[str]]:
    """(text, signature lines without their newlines) of a note whose encoding and framing are
    valid. Raises `NoteError` otherwise."""
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as error:
            raise NoteError(f"the note is not valid UTF-8 (byte {error.start})") from None
    try:
        note.encode("utf-8")
    except UnicodeEncodeError:
        raise NoteError("the note is not valid Unicode (a lone surrogate)") from None
    if match := _CONTROL.search(note):
        raise NoteError(
            f"the note contains control character U+{ord(match.group()):04X} at {match.start()} "
            "(only newline is allowed)"
        )
    # "the text is separated from the signatures by the last empty line in the note"
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("the note has no blank line between its text and its signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block:
        raise NoteError("the note has no signature lines")
    if not block.endswith("\n"):
        raise NoteError("the last signature line does not end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"the note has {len(lines)} signature lines, more than {MAX_SIGNATURES}")
    return text, lines


def _parse_signature_line(number: int, line: str) -> tuple[str, bytes, bytes]:
    """(key name, key ID, signature) of `— <name> base64(key ID || signature)`. Raises
    `NoteError` if the line is not of that form, whether or not the key is known."""
    if not line.startswith(_SIGNATURE_PREFIX):
        raise NoteError(f"signature line {number} does not start with an em dash and a space")
    name, space, encoded = line[len(_SIGNATURE_PREFIX) :].partition(" ")
    if not space:
        raise NoteError(f"signature line {number} has no space between key name and signature")
    try:
        _check_key_name(name)
    except NoteError as error:
        raise NoteError(f"signature line {number}: {error.detail}") from None
    signature = decode_base64_strict(encoded)
    if signature is None:
        raise NoteError(f"signature line {number}: the signature is not canonical base64")
    if len(signature) <= _KEY_ID_SIZE:
        raise NoteError(f"signature line {number}: the signature is shorter than 5 bytes")
    return name, signature[:_KEY_ID_SIZE], signature[_KEY_ID_SIZE:]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A log's tree head as c2sp.org/tlog-checkpoint writes it: `origin`, `size` leaves, the
    RFC 6962 `root` hash, and opaque `extensions` (NOT RECOMMENDED by the spec; kept so that
    a checkpoint parses and re-serialises to the same text).

    Raises `NoteError` (code `checkpoint_invalid`) unless the origin and every extension is a
    non-empty line without control characters, the size is in [0, 2^64) and the root 32 bytes.
    The origin may hold spaces here, as the spec forbids clients to assume otherwise (Go's sumdb
    uses "go.sum database tree"); `sign_checkpoint` and `open_checkpoint` require more.
    """

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for what, line in [("origin", self.origin)] + [
            (f"extension line {n}", extension) for n, extension in enumerate(self.extensions, 1)
        ]:
            if not line or "\n" in line or _CONTROL.search(line):
                raise _checkpoint_error(
                    f"the checkpoint {what} must be one non-empty line without control characters"
                )
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise _checkpoint_error(f"the tree size must be an integer, not {self.size!r}")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise _checkpoint_error(f"the tree size {self.size} is outside [0, 2^64)")
        if len(self.root) != ROOT_HASH_SIZE:
            raise _checkpoint_error(
                f"the root hash is {len(self.root)} bytes, not {ROOT_HASH_SIZE}"
            )

    def body(self) -> str:
        """The note text: origin, size, base64 root, then extension lines, each ending in a
        newline."""
        root = base64.b64encode(self.root).decode("ascii")
        lines = [self.origin, str(self.size), root, *self.extensions]
        return "".join(f"{line}\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """The checkpoint whose note text is `text` (as `open_note` returns it). Raises
        `NoteError` (code `checkpoint_invalid`) unless `text` is at least three non-empty lines,
        each ending in a newline: an origin, a decimal size without leading zeros below 2^64, a
        canonical base64 root of 32 bytes, then any extension lines."""
        if not text.endswith("\n"):
            raise _checkpoint_error("the checkpoint text does not end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise _checkpoint_error(
                f"a checkpoint has at least 3 lines (origin, size, root), not {len(lines)}"
            )
        if any(not line for line in lines):
            raise _checkpoint_error("a checkpoint has no empty lines")
        origin, size_text, root_text, *extensions = lines
        if not _DECIMAL.fullmatch(size_text):
            raise _checkpoint_error(
                f"the tree size {size_text!r} is not a decimal number without leading zeros"
            )
        root = decode_base64_strict(root_text)
        if root is None:
            raise _checkpoint_error(f"the root hash {root_text!r} is not canonical base64")
        return cls(origin, int(size_text), root, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signer: NoteSigner) -> str:
    """The checkpoint as a note signed by the log key `signer`. Raises `NoteError` (code
    `checkpoint_invalid`) unless the signer's key name is the origin: the spec says it SHOULD be,
    and we make it so for our own logs, so that a key can only speak for its own log."""
    if signer.name != checkpoint.origin:
        raise _checkpoint_error(
            f"the log key name {signer.name!r} is not the checkpoint origin {checkpoint.origin!r}"
        )
    return signer.sign(checkpoint.body())


def open_checkpoint(note: str | bytes, verifier: NoteVerifier, origin: str) -> Checkpoint:
    """The checkpoint of `origin` that `note` carries, signed by the log key `verifier`.

    Raises `NoteError` if the note does not open with `verifier` (see `open_note`; other
    signatures, such as witness cosignatures, are ignored), and with code `checkpoint_invalid`
    if the verifier's key name is not `origin`, the text is not a checkpoint, or its origin is
    not `origin`.
    """
    if verifier.name != origin:
        raise _checkpoint_error(
            f"the log key name {verifier.name!r} is not the expected origin {origin!r}"
        )
    checkpoint = Checkpoint.parse(open_note(note, [verifier]))
    if checkpoint.origin != origin:
        raise _checkpoint_error(
            f"the checkpoint is from origin {checkpoint.origin!r}, not {origin!r}"
        )
    return checkpoint
