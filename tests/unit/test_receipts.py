"""Receipts (c2sp.org/tlog-proof@v1): a small log signed with our test key, one receipt per entry,
each verified; every tampering rejected; the text format pinned by the spec's example and
transparency-dev/formats' vectors, and decoded strictly."""

from __future__ import annotations

import base64
import hashlib

import pytest
from nacl.signing import SigningKey

from controlplane.errors import InvalidEntity
from controlplane.ledger.merkle import (
    ProofError,
    inclusion_proof,
    leaf_hash,
    root,
    subtree_from_leaves,
)
from controlplane.ledger.notes import (
    Checkpoint,
    NoteError,
    NoteSigner,
    sign_checkpoint,
)
from controlplane.ledger.receipts import Receipt, ReceiptError, verify_receipt

ORIGIN = "controlplane.test/ledger"
SIGNER = NoteSigner(ORIGIN, SigningKey(bytes(range(32))))  # the key of tests/assets/notes/
VERIFIER = SIGNER.verifier()
# Seven entries: an unbalanced tree, so that proofs of different lengths occur.
ENTRIES = [f'{{"kind":"cp.test","n":{n}}}'.encode() for n in range(7)]


def receipts_for(entries: list[bytes], signer: NoteSigner = SIGNER) -> list[Receipt]:
    leaves = [leaf_hash(entry) for entry in entries]
    note = sign_checkpoint(Checkpoint(signer.name, len(leaves), root(leaves)), signer)
    subtree = subtree_from_leaves(leaves)
    return [
        Receipt(index, tuple(inclusion_proof(index, len(leaves), subtree)), note)
        for index in range(len(leaves))
    ]


@pytest.fixture(scope="module")
def receipts() -> list[Receipt]:
    return receipts_for(ENTRIES)


def test_every_entry_verifies(receipts: list[Receipt]) -> None:
    lengths = set()
    for entry, receipt in zip(ENTRIES, receipts, strict=True):
        checkpoint = verify_receipt(receipt, entry, VERIFIER, ORIGIN)
        assert (checkpoint.origin, checkpoint.size) == (ORIGIN, len(ENTRIES))
        lengths.add(len(receipt.proof))
    assert lengths == {2, 3}


def test_single_entry_log_has_an_empty_proof() -> None:
    (receipt,) = receipts_for([b"only"])
    assert receipt.proof == ()
    assert receipt.encode().startswith("c2sp.org/tlog-proof@v1\nindex 0\n\ncontrolplane.test/")
    assert verify_receipt(Receipt.decode(receipt.encode()), b"only", VERIFIER, ORIGIN).size == 1


def test_changed_entry_is_rejected(receipts: list[Receipt]) -> None:
    for index, receipt in enumerate(receipts):
        with pytest.raises(ProofError, match="leads to root"):
            verify_receipt(receipt, ENTRIES[index] + b" ", VERIFIER, ORIGIN)
        other = ENTRIES[(index + 1) % len(ENTRIES)]
        with pytest.raises(ProofError):
            verify_receipt(receipt, other, VERIFIER, ORIGIN)


def test_changed_index_is_rejected(receipts: list[Receipt]) -> None:
    for index, receipt in enumerate(receipts):
        for wrong in range(len(ENTRIES) + 2):
            if wrong == index:
                continue
            moved = Receipt(wrong, receipt.proof, receipt.checkpoint_note)
            with pytest.raises(ProofError):
                verify_receipt(moved, ENTRIES[index], VERIFIER, ORIGIN)


def test_changed_dropped_or_added_proof_hash_is_rejected(receipts: list[Receipt]) -> None:
    for index, receipt in enumerate(receipts):
        proof = receipt.proof
        for position in range(len(proof)):
            flipped = bytes([proof[position][0] ^ 1]) + proof[position][1:]
            before, after = proof[:position], proof[position + 1 :]
            variants = [
                (*before, flipped, *after),  # changed
                (*before, *after),  # dropped
                (*before, proof[position], proof[position], *after),  # repeated
            ]
            for variant in variants:
                changed = Receipt(index, variant, receipt.checkpoint_note)
                with pytest.raises(ProofError):
                    verify_receipt(changed, ENTRIES[index], VERIFIER, ORIGIN)
        reordered = Receipt(index, proof[::-1], receipt.checkpoint_note)
        with pytest.raises(ProofError):
            verify_receipt(reordered, ENTRIES[index], VERIFIER, ORIGIN)


def test_changed_checkpoint_is_rejected(receipts: list[Receipt]) -> None:
    receipt = receipts[3]
    note = receipt.checkpoint_note
    text, signature = note.split("\n\n")
    origin, size, root_b64 = text.split("\n")
    forged_root = base64.b64encode(hashlib.sha256(b"forged").digest()).decode()
    for forged_text in (
        f"{origin}\n{int(size) + 1}\n{root_b64}\n",
        f"{origin}\n{size}\n{forged_root}\n",
        f"{origin}\n{size}\n{root_b64}\nextension\n",
    ):
        forged = Receipt(receipt.index, receipt.proof, forged_text + "\n" + signature)
        with pytest.raises(NoteError, match="does not verify"):
            verify_receipt(forged, ENTRIES[3], VERIFIER, ORIGIN)


def test_every_single_byte_change_of_the_text_is_rejected(receipts: list[Receipt]) -> None:
    encoded = receipts[5].encode().encode("utf-8")
    assert verify_receipt(Receipt.decode(encoded.decode()), ENTRIES[5], VERIFIER, ORIGIN)
    for position in range(len(encoded)):
        for changed in {encoded[position] ^ 0x01, encoded[position] ^ 0x80}:
            tampered = encoded[:position] + bytes([changed]) + encoded[position + 1 :]
            with pytest.raises((ReceiptError, NoteError, ProofError, UnicodeDecodeError)):
                verify_receipt(Receipt.decode(tampered.decode()), ENTRIES[5], VERIFIER, ORIGIN)


def test_wrong_key_or_origin_is_rejected(receipts: list[Receipt]) -> None:
    receipt = receipts[0]
    impostor = NoteSigner(ORIGIN, SigningKey(bytes(32)))
    with pytest.raises(NoteError, match="no signature from a trusted key"):
        verify_receipt(receipt, ENTRIES[0], impostor.verifier(), ORIGIN)
    other = NoteSigner("controlplane.test/other", SigningKey(bytes(range(32))))
    with pytest.raises(NoteError, match="no signature from a trusted key"):
        verify_receipt(receipt, ENTRIES[0], other.verifier(), "controlplane.test/other")
    # The other log's key signing a checkpoint that names our origin (sign_checkpoint refuses).
    text = receipt.checkpoint_note.split("\n\n")[0] + "\n"
    misnamed = Receipt(receipt.index, receipt.proof, other.sign(text))
    with pytest.raises(NoteError, match=r"from origin 'controlplane\.test/ledger'") as caught:
        verify_receipt(misnamed, ENTRIES[0], other.verifier(), "controlplane.test/other")
    assert caught.value.code == "checkpoint_invalid"
    with pytest.raises(NoteError, match="not the expected origin"):
        verify_receipt(receipt, ENTRIES[0], VERIFIER, "controlplane.test/other")
    # A whole log of another origin, signed with its own key, proves nothing for ours.
    foreign = receipts_for(ENTRIES, other)[0]
    with pytest.raises(NoteError):
        verify_receipt(foreign, ENTRIES[0], VERIFIER, ORIGIN)


def test_witness_cosignature_is_ignored_and_extra_is_not_authenticated(
    receipts: list[Receipt],
) -> None:
    receipt = receipts[2]
    witness = NoteSigner("witness.example/w1", SigningKey(bytes(32)))
    text = receipt.checkpoint_note.split("\n\n")[0] + "\n"
    cosigned = receipt.checkpoint_note + witness.signature_line(text)
    with_extra = Receipt(receipt.index, receipt.proof, cosigned, extra=b"\x00context")
    assert Receipt.decode(with_extra.encode()) == with_extra
    assert verify_receipt(with_extra, ENTRIES[2], VERIFIER, ORIGIN).size == len(ENTRIES)
    # tlog-proof: "Applications MUST NOT implicitly trust the extra data": any extra verifies.
    other_extra = Receipt(receipt.index, receipt.proof, cosigned, extra=b"anything")
    assert verify_receipt(other_extra, ENTRIES[2], VERIFIER, ORIGIN).size == len(ENTRIES)


def test_round_trip_is_byte_exact(receipts: list[Receipt]) -> None:
    for receipt in receipts:
        for variant in (
            receipt,
            Receipt(receipt.index, receipt.proof, receipt.checkpoint_note, b"x"),
        ):
            text = variant.encode()
            assert Receipt.decode(text) == variant
            assert Receipt.decode(text).encode() == text


def test_receipt_text_layout(receipts: list[Receipt]) -> None:
    receipt = receipts[6]
    hashes = "".join(base64.b64encode(value).decode() + "\n" for value in receipt.proof)
    assert receipt.encode() == (
        f"c2sp.org/tlog-proof@v1\nindex 6\n{hashes}\n{receipt.checkpoint_note}"
    )


# --- transparency-dev/formats proof/tlog_proof_test.go ------------------------------------------

H1 = hashlib.sha256(b"hash1").digest()
H2 = hashlib.sha256(b"hash2").digest()
H1_B64 = base64.b64encode(H1).decode()
H2_B64 = base64.b64encode(H2).decode()


@pytest.mark.parametrize(
    ("receipt", "text"),
    [
        (
            Receipt(5, (H1, H2), "test checkpoint\n"),
            f"c2sp.org/tlog-proof@v1\nindex 5\n{H1_B64}\n{H2_B64}\n\ntest checkpoint\n",
        ),
        (
            Receipt(10, (H1,), "checkpoint data\n", b"extra information"),
            "c2sp.org/tlog-proof@v1\nextra ZXh0cmEgaW5mb3JtYXRpb24=\nindex 10\n"
            f"{H1_B64}\n\ncheckpoint data\n",
        ),
        (Receipt(0, (), "checkpoint\n"), "c2sp.org/tlog-proof@v1\nindex 0\n\ncheckpoint\n"),
    ],
)
def test_formats_marshal_vectors(receipt: Receipt, text: str) -> None:
    assert receipt.encode() == text
    assert Receipt.decode(text) == receipt


def test_spec_example_decodes_and_re_encodes() -> None:
    example = (
        "c2sp.org/tlog-proof@v1\n"
        "extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ\n"
        "index 73894\n"
        "gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=\n"
        "B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=\n"
        "EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=\n"
        "RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=\n"
        "AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=\n"
        "\n"
        "example.com/fancylog\n"
        "109482\n"
        "sFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=\n"
        "\n"
        "\u2014 example.com/fancylog hI2DJw[...]1roloI=\n"
        "\u2014 witness1.example mJirIklj[...]qY9v2B/5bg==\n"
    )
    receipt = Receipt.decode(example)
    assert receipt.index == 73894
    assert len(receipt.proof) == 5
    assert receipt.extra is not None
    assert receipt.extra.startswith(b"age-v1.2.1-darwin-arm64.tar.gz")
    assert receipt.checkpoint_note.startswith("example.com/fancylog\n109482\n")
    assert receipt.encode() == example


HASH64 = base64.b64encode(bytes(64)).decode()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        # transparency-dev/formats' error cases:
        ("wrong-header\nindex 0\n\ncheckpoint\n", "does not start with"),
        ("c2sp.org/tlog-proof@v1\nextra !!notbase64!!\nindex 0\n\ncheckpoint\n", "extra"),
        ("c2sp.org/tlog-proof@v1\n\n\ncheckpoint\n", "no index line"),
        ("c2sp.org/tlog-proof@v1\nindex notanumber\n\ncheckpoint\n", "not 'index"),
        ("c2sp.org/tlog-proof@v1\nindex -5\n\ncheckpoint\n", "not 'index"),
        ("c2sp.org/tlog-proof@v1\nindex 0\n!!notbase64!!\n\ncheckpoint\n", "line 3"),
        (f"c2sp.org/tlog-proof@v1\nindex 0\n{HASH64}\n\ncheckpoint\n", "32 bytes"),
        # Our own:
        ("c2sp.org/tlog-proof@v1\nindex 05\n\ncheckpoint\n", "not 'index"),
        ("c2sp.org/tlog-proof@v1\nindex +5\n\ncheckpoint\n", "not 'index"),
        ("c2sp.org/tlog-proof@v1\nindex  5\n\ncheckpoint\n", "not 'index"),
        ("c2sp.org/tlog-proof@v1\nindex 5 \n\ncheckpoint\n", "not 'index"),
        ("c2sp.org/tlog-proof@v1\nindex \u0665\n\ncheckpoint\n", "not 'index"),
        ("c2sp.org/tlog-proof@v1\nIndex 5\n\ncheckpoint\n", "not 'index"),
        (f"c2sp.org/tlog-proof@v1\nindex {2**64}\n\ncheckpoint\n", "outside"),
        ("c2sp.org/tlog-proof@v2\nindex 0\n\ncheckpoint\n", "does not start with"),
        ("\ufeffc2sp.org/tlog-proof@v1\nindex 0\n\ncheckpoint\n", "does not start with"),
        ("c2sp.org/tlog-proof@v1\r\nindex 0\n\ncheckpoint\n", "does not start with"),
        ("c2sp.org/tlog-proof@v1\nextra \nindex 0\n\ncheckpoint\n", "extra"),
        ("c2sp.org/tlog-proof@v1\nextra eA\nindex 0\n\ncheckpoint\n", "extra"),  # no padding
        ("c2sp.org/tlog-proof@v1\nextra eB==\nindex 0\n\ncheckpoint\n", "extra"),  # low bits
        ("c2sp.org/tlog-proof@v1\nindex 0\nextra eA==\n\ncheckpoint\n", "line 3"),
        (f"c2sp.org/tlog-proof@v1\nindex 0\n{H1_B64}\nunknown line\n\ncheckpoint\n", "line 4"),
        (f"c2sp.org/tlog-proof@v1\nindex 0\n{H1_B64[:-2]}h=\n\ncheckpoint\n", "line 3"),
        (f"c2sp.org/tlog-proof@v1\nindex 0\n{H1_B64[:-1]}\n\ncheckpoint\n", "line 3"),
        (f"c2sp.org/tlog-proof@v1\nindex 0\n{H1_B64}\r\n\ncheckpoint\n", "line 3"),
        (f"c2sp.org/tlog-proof@v1\nindex 0\n{H1_B64}\n", "no empty line"),
        ("c2sp.org/tlog-proof@v1\nindex 0\n\n", "checkpoint note"),
        ("c2sp.org/tlog-proof@v1\nindex 0\n\ncheckpoint", "checkpoint note"),
        ("c2sp.org/tlog-proof@v1\nindex 0\n" + f"{H1_B64}\n" * 65 + "\ncheckpoint\n", "65"),
    ],
)
def test_decode_rejects(text: str, reason: str) -> None:
    with pytest.raises(ReceiptError, match=reason) as caught:
        Receipt.decode(text)
    assert caught.value.code == "receipt_invalid"


@pytest.mark.parametrize(
    ("index", "proof", "note", "extra"),
    [
        (-1, (), "c\n", None),
        (True, (), "c\n", None),
        (2**64, (), "c\n", None),
        (0, (H1[:31],), "c\n", None),
        (0, (H1 + b"\x00",), "c\n", None),
        (0, (H1,) * 65, "c\n", None),
        (0, (), "", None),
        (0, (), "c", None),
        (0, (), "c\n", b""),
    ],
)
def test_constructor_rejects(
    index: int, proof: tuple[bytes, ...], note: str, extra: bytes | None
) -> None:
    with pytest.raises(ReceiptError):
        Receipt(index, proof, note, extra)


def test_index_outside_the_checkpointed_tree(receipts: list[Receipt]) -> None:
    beyond = Receipt(len(ENTRIES), receipts[0].proof, receipts[0].checkpoint_note)
    with pytest.raises(ProofError, match="not in a tree of size 7"):
        verify_receipt(beyond, ENTRIES[0], VERIFIER, ORIGIN)


def test_errors_are_invalid_entities() -> None:
    assert issubclass(ReceiptError, InvalidEntity)
    assert issubclass(ProofError, InvalidEntity)
    assert issubclass(NoteError, InvalidEntity)
