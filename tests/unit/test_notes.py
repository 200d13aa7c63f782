"""Signed notes and checkpoints: the C2SP spec's example, golang.org/x/mod's sumdb/note vectors
(the reference implementation), transparency-dev/formats' checkpoint vectors, our own golden notes
pinned byte for byte, and "change one byte, the note is rejected"."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from nacl.signing import SigningKey

from controlplane.errors import InvalidEntity
from controlplane.ledger.notes import (
    MAX_SIGNATURES,
    Checkpoint,
    NoteError,
    NoteSigner,
    NoteVerifier,
    open_checkpoint,
    open_note,
    sign_checkpoint,
)

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "notes"

# Our fixed test key (never used outside tests) and what it signs: tests/assets/notes/.
TEST_NAME = "controlplane.test/ledger"
TEST_SEED = bytes(range(32))
TEST_VKEY = "controlplane.test/ledger+78b86a1a+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"
GOLDEN_TEXT = (
    "controlplane golden note\n"
    "UTF-8 is signed as bytes: \u00e9 \u2713 \u2014\n"
    "\n"
    "an empty line above is part of the text\n"
)
# RFC 6962's eight test leaves have this root (transparency-dev/merkle testonly/constants.go).
RFC6962_ROOT_8 = bytes.fromhex("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")

# c2sp.org/signed-note@v1, the example of the spec.
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n"
    "\n"
    "\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3m"
    "FXmRKuwHjG1Yu72IneyaQM=\n"
)

# golang.org/x/mod sumdb/note/note_test.go.
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
PETER_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfq"
    "dngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOT"
    "GwnWLox33WWd1RvMc+QQ=\n"
)

# transparency-dev/formats log/note_test.go: a real sum.golang.org checkpoint, and cosignatures
# of it by three more keys.
SUMDB_VKEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
SUMDB_NOTE = (
    "go.sum database tree\n"
    "6476701\n"
    "mb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=\n"
    "\n"
    "\u2014 sum.golang.org Az3grsLX85Gz+s1SiTbgkuqxgItqFq7gsMUEyVnrsa9LM7Us9S+1xbFIGu95949rj4n"
    "PRYfvimWEPWL+o3GeoWwOoAw=\n"
)
SUMDB_COSIGNERS = {
    "monkeys+db4d9f7e+AULaJMvTtDLHPUcUrjdDad9vDlh/PTfC2VV60JUtCfWT": (
        "\u2014 monkeys 202ffh9ve46Mqbhuyb4wnC2Pwdan5EsXQym/tF1ggXJqhjGosU4T5intH4iKMRgDLxrnXuI"
        "jRaU2NbvAnaepM6Y+8ww=\n"
    ),
    "bananas+cf639f13+AaPjhFnPCQnid/Ql32KWhmh+uk72FVRfK+2DLmO3BI3M": (
        "\u2014 bananas z2OfE+2bbsBZ7NLgfuslc0v7NFW2QyexJ7fhePpoL2N/P7N/COd5S+JNHbQEAlYzz2C5sg0"
        "E+x/MggS1mDR6t3/9rQw=\n"
    ),
    "witness+f13a86db+AdYV1Ztajd9BvyjP2HgpwrqYL6TjOwIjGMOq8Bu42xbN": (
        "\u2014 witness 8TqG25yWGFLdT7WPf/WoyeG3LwqtkXP+8S3yykOVm6EMh4hPgCke6eSVPU4BdtXNMPJBXKF"
        "+UpDbGgCdcpR8SVSoqAU=\n"
    ),
}
# transparency-dev/formats log/note_test.go: private keys (Go's PRIVATE+KEY format) and their vkeys.
FORMATS_KEYS = {
    "PRIVATE+KEY+Log+2271c621+AdEIq9FLRQni54Wg68T96VJO+iayOaulswav2DUMKgvQ": (
        "Log+2271c621+AemuH5ooBpEPcr+W8onrjA1NfuzBVHdezakU81Ekarvs"
    ),
    "PRIVATE+KEY+Known+451c786d+AQPRoE2+Z+Ed1HaHBA9F/FfracvcZ2rDU39kCecMEoci": (
        "Known+451c786d+AXAQ0T7lbwuY4ABJ9/MYY9bWV3hmSyOGVt2x42NkmdUH"
    ),
    "PRIVATE+KEY+KnownAgain+4893b26c+ARhZda/l25zjGZswYLDZsLNRzNpmv5wYTN9IoTr1OJ2+": (
        "KnownAgain+4893b26c+AQ+LR7BFF/F/dkpIBjBpSvT0crkteizuUkavAoGeaYMj"
    ),
    "PRIVATE+KEY+Unknown+fdbb2e08+Aav2knTC6orbhXX8pMWuNiWgO+Wwk2DB+h1eU2Q1W1nU": (
        "Unknown+fdbb2e08+AWgRIYZ+8x1Vl+1Q+sR8zciNHiYI1SdlBjNw+RV0rots"
    ),
}


def signer_from_go_skey(skey: str) -> NoteSigner:
    """A signer from Go's `PRIVATE+KEY+<name>+<id>+base64(0x01 || seed)` (test vectors only)."""
    _, _, name, _, encoded = skey.split("+", 4)
    material = base64.b64decode(encoded)
    assert material[0] == 1
    return NoteSigner(name, SigningKey(material[1:]))


@pytest.fixture(scope="module")
def signer() -> NoteSigner:
    return NoteSigner(TEST_NAME, SigningKey(TEST_SEED))


def read_asset(name: str) -> str:
    return (ASSETS / name).read_bytes().decode("utf-8")


def rejected(note: str | bytes, verifiers: list[NoteVerifier], match: str = "") -> NoteError:
    with pytest.raises(NoteError, match=match) as caught:
        open_note(note, verifiers)
    return caught.value


# --- vectors from the spec and the reference implementation -------------------------------------


def test_spec_example_verifies() -> None:
    verifier = NoteVerifier.from_vkey(SPEC_VKEY)
    assert verifier.name == "example.com/foo"
    assert verifier.key_id.hex() == "530d903a"
    assert verifier.vkey() == SPEC_VKEY
    assert open_note(SPEC_NOTE, [verifier]) == "This is an example message.\n"


def test_sumdb_signer_reproduces_go_signature_byte_for_byte() -> None:
    peter = signer_from_go_skey(PETER_SKEY)
    assert peter.key_id.hex() == "c74f20a3"
    assert peter.vkey() == PETER_VKEY
    assert peter.sign(PETER_TEXT) == PETER_TEXT + "\n" + PETER_SIG


@pytest.mark.parametrize(("skey", "vkey"), FORMATS_KEYS.items())
def test_formats_key_pairs_give_their_vkeys(skey: str, vkey: str) -> None:
    assert signer_from_go_skey(skey).vkey() == vkey
    assert NoteVerifier.from_vkey(vkey).vkey() == vkey


def test_sumdb_open_with_one_of_two_signers_known() -> None:
    peter = NoteVerifier.from_vkey(PETER_VKEY)
    enoch = NoteVerifier.from_vkey(ENOCH_VKEY)
    note = PETER_TEXT + "\n" + PETER_SIG + ENOCH_SIG
    assert open_note(note, [peter]) == PETER_TEXT
    assert open_note(note, [enoch]) == PETER_TEXT
    assert open_note(note, [peter, enoch]) == PETER_TEXT
    rejected(note, [], "no signature from a trusted key")


def test_sumdb_repeated_signatures_and_a_bad_unknown_one_are_fine() -> None:
    peter = NoteVerifier.from_vkey(PETER_VKEY)
    enoch_mangled = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]  # unknown key here: ignored
    note = PETER_TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG + enoch_mangled
    assert open_note(note, [peter]) == PETER_TEXT


def test_sumdb_invalid_signature_of_known_key_rejects() -> None:
    peter = NoteVerifier.from_vkey(PETER_VKEY)
    mangled = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    rejected(PETER_TEXT + "\n" + mangled, [peter], r"PeterNeumann\+c74f20a3 does not verify")
    # Go's sumdb/note skips a repeated signature of a key it has verified; the spec says every
    # known-key signature MUST be verified, so a good one does not excuse a bad one.
    rejected(PETER_TEXT + "\n" + PETER_SIG + mangled, [peter], "does not verify")


def test_signature_limit() -> None:
    peter = NoteVerifier.from_vkey(PETER_VKEY)
    assert open_note(PETER_TEXT + "\n" + PETER_SIG * MAX_SIGNATURES, [peter]) == PETER_TEXT
    rejected(PETER_TEXT + "\n" + PETER_SIG * (MAX_SIGNATURES + 1), [peter], "more than 100")
    rejected(PETER_TEXT + "\n" + PETER_SIG * (MAX_SIGNATURES + 1), [], "more than 100")


@pytest.mark.parametrize(
    ("note", "reason"),
    [
        (PETER_TEXT, "no blank line"),
        (PETER_TEXT + "\n", "no signature lines"),
        (PETER_TEXT + "\n" + PETER_SIG[:-1], "does not end with a newline"),
        ("\x01" + PETER_TEXT + "\n" + PETER_SIG, "control character U\\+0001"),
        (b"\xff" + (PETER_TEXT + "\n" + PETER_SIG).encode(), "not valid UTF-8"),
        (PETER_TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Bad Name"), "signature"),
        (PETER_TEXT + "\n" + PETER_SIG + "Unexpected line.\n", "does not start with an em dash"),
        (PETER_TEXT + "\r\n" + PETER_SIG, "control character U\\+000D"),
        (PETER_TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Peter+Neumann"), "'\\+'"),
        (PETER_TEXT + "\n" + PETER_SIG.replace(" x08go", "  x08go"), "not canonical base64"),
        (PETER_TEXT + "\n" + PETER_SIG.replace("\u2014", "-"), "em dash"),
        (PETER_TEXT + "\n\u2014 PeterNeumann\n", "no space"),
        (PETER_TEXT + "\n\u2014 PeterNeumann x08gow==\n", "shorter than 5 bytes"),  # key ID only
        (PETER_TEXT + "\n\u2014 PeterNeumann x08gox==\n", "not canonical base64"),  # low bits set
        (PETER_TEXT + "\n\u2014 PeterNeumann x08gowA=\n", "does not verify"),  # 1-byte signature
        (PETER_TEXT.replace("answer", "answer\ud800") + "\n" + PETER_SIG, "lone surrogate"),
    ],
)
def test_malformed_notes_are_rejected(note: str | bytes, reason: str) -> None:
    rejected(note, [NoteVerifier.from_vkey(PETER_VKEY)], reason)


def test_sumdb_vkey_manglings_are_rejected() -> None:
    """golang.org/x/mod's TestNewVerifier: every proper substring and every one-character change
    of a vkey is refused."""
    raw = PETER_VKEY.encode("ascii")
    candidates = {raw[i:j] for i in range(len(raw) + 1) for j in range(i + 1, len(raw) + 1)} - {raw}
    candidates |= {raw[:i] + bytes([raw[i] + 1]) + raw[i + 1 :] for i in range(len(raw))}
    for candidate in candidates:
        with pytest.raises(NoteError):
            NoteVerifier.from_vkey(candidate.decode("ascii"))
    # Wrong key length and unknown algorithm, each with its key ID adjusted to match.
    for vkey in (
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ):
        with pytest.raises(NoteError, match=r"not an Ed25519 key|not canonical base64"):
            NoteVerifier.from_vkey(vkey)


def test_vkey_key_id_must_match() -> None:
    with pytest.raises(NoteError, match="does not match"):
        NoteVerifier.from_vkey(PETER_VKEY.replace("c74f20a3", "c74f20a4"))
    with pytest.raises(NoteError, match="lowercase hex"):
        NoteVerifier.from_vkey(PETER_VKEY.replace("c74f20a3", "C74F20A3"))


def test_sumdb_checkpoint_and_its_cosignatures() -> None:
    log = NoteVerifier.from_vkey(SUMDB_VKEY)
    text = open_note(SUMDB_NOTE, [log])
    checkpoint = Checkpoint.parse(text)
    assert checkpoint.origin == "go.sum database tree"  # spaces: allowed in origins we read
    assert checkpoint.size == 6476701
    assert checkpoint.body() == text
    witness_line = SUMDB_COSIGNERS["witness+f13a86db+AdYV1Ztajd9BvyjP2HgpwrqYL6TjOwIjGMOq8Bu42xbN"]
    # As in the formats benchmark: another name with a copy of a known key's signature (unknown).
    random1_line = witness_line.replace("\u2014 witness ", "\u2014 random1 ")
    cosigned = SUMDB_NOTE + "".join(SUMDB_COSIGNERS.values()) + random1_line
    verifiers = [NoteVerifier.from_vkey(vkey) for vkey in SUMDB_COSIGNERS]
    for verifier in verifiers:
        assert open_note(cosigned, [verifier]) == text
    assert open_note(cosigned, [log, *verifiers]) == text
    # The log key name is not the origin: our open_checkpoint refuses that for our own logs.
    with pytest.raises(NoteError, match="not the expected origin") as caught:
        open_checkpoint(SUMDB_NOTE, log, "go.sum database tree")
    assert caught.value.code == "checkpoint_invalid"


# --- our own golden notes -----------------------------------------------------------------------


def test_golden_key(signer: NoteSigner) -> None:
    assert signer.vkey() == TEST_VKEY
    assert signer.verifier().vkey() == TEST_VKEY
    assert NoteVerifier.from_vkey(TEST_VKEY).key_id == signer.key_id


def test_golden_note_is_pinned(signer: NoteSigner) -> None:
    golden = read_asset("golden.note")
    assert signer.sign(GOLDEN_TEXT) == golden
    assert open_note(golden, [signer.verifier()]) == GOLDEN_TEXT
    assert open_note(golden.encode("utf-8"), [signer.verifier()]) == GOLDEN_TEXT


def test_golden_note_verifies_with_an_independent_implementation() -> None:
    """The spec's key ID and signature, recomputed with hashlib and `cryptography` (OpenSSL)."""
    golden = read_asset("golden.note")
    encoded = golden.rsplit(" ", 1)[1].rstrip("\n")
    signature = base64.b64decode(encoded)
    public = base64.b64decode(TEST_VKEY.split("+", 2)[2])
    assert public[0] == 1
    key_id = hashlib.sha256(TEST_NAME.encode() + b"\n\x01" + public[1:]).digest()[:4]
    assert signature[:4] == key_id
    Ed25519PublicKey.from_public_bytes(public[1:]).verify(
        signature[4:], GOLDEN_TEXT.encode("utf-8")
    )


@pytest.mark.parametrize("asset", ["golden.note", "golden-checkpoint.note"])
def test_every_single_byte_change_is_rejected(signer: NoteSigner, asset: str) -> None:
    raw = (ASSETS / asset).read_bytes()
    verifier = signer.verifier()
    open_note(raw, [verifier])
    for position in range(len(raw)):
        for changed in {raw[position] ^ 0x01, (raw[position] + 1) % 256, raw[position] ^ 0x80}:
            tampered = raw[:position] + bytes([changed]) + raw[position + 1 :]
            with pytest.raises(NoteError):
                open_note(tampered, [verifier])
    for position in range(len(raw)):  # and every deleted byte
        with pytest.raises(NoteError):
            open_note(raw[:position] + raw[position + 1 :], [verifier])


def test_unknown_key_only_is_rejected(signer: NoteSigner) -> None:
    other = NoteSigner(TEST_NAME, SigningKey(bytes(32)))  # same name, another key (and key ID)
    note = other.sign(GOLDEN_TEXT)
    rejected(note, [signer.verifier()], "no signature from a trusted key")
    stranger = NoteSigner("stranger.example/key", SigningKey(TEST_SEED))  # same key, other name
    rejected(stranger.sign(GOLDEN_TEXT), [signer.verifier()], "no signature from a trusted key")


def test_extra_unknown_signature_is_ignored(signer: NoteSigner) -> None:
    witness = NoteSigner("witness.example/w1", SigningKey(bytes(32)))
    note = signer.sign(GOLDEN_TEXT) + witness.signature_line(GOLDEN_TEXT)
    assert open_note(note, [signer.verifier()]) == GOLDEN_TEXT
    assert open_note(note, [witness.verifier()]) == GOLDEN_TEXT
    before = witness.signature_line(GOLDEN_TEXT) + signer.sign(GOLDEN_TEXT).split("\n\n")[-1]
    assert open_note(GOLDEN_TEXT + "\n" + before, [signer.verifier()]) == GOLDEN_TEXT


def test_bad_signature_of_known_key_rejects_even_beside_good_ones(signer: NoteSigner) -> None:
    witness = NoteSigner("witness.example/w1", SigningKey(bytes(32)))
    # The witness signed another text: its line is well formed but does not verify here.
    wrong = witness.signature_line("another text\n")
    note = signer.sign(GOLDEN_TEXT) + wrong
    assert open_note(note, [signer.verifier()]) == GOLDEN_TEXT  # unknown there: ignored
    error = rejected(note, [signer.verifier(), witness.verifier()], "witness.example/w1")
    assert error.code == "note_invalid"


def test_ambiguous_trusted_keys(signer: NoteSigner) -> None:
    verifier = signer.verifier()
    # The same key twice is one key.
    assert open_note(signer.sign(GOLDEN_TEXT), [verifier, signer.verifier()]) == GOLDEN_TEXT
    # Two different keys sharing a name and a key ID cannot both be trusted.
    impostor = NoteVerifier(TEST_NAME, SigningKey(bytes(32)).verify_key)
    impostor.key_id = verifier.key_id  # a 32-bit key ID collision, simulated
    rejected(signer.sign(GOLDEN_TEXT), [verifier, impostor], "ambiguous key")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "end with a newline"),
        ("abc", "end with a newline"),
        ("tab\there\n", "U\\+0009"),
        ("carriage\r\n", "U\\+000D"),
        ("surrogate \udc80\n", "lone surrogate"),
    ],
)
def test_signer_refuses_texts_that_are_not_note_texts(
    signer: NoteSigner, text: str, reason: str
) -> None:
    with pytest.raises(NoteError, match=reason):
        signer.sign(text)


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\u00a0b", "a\u3000b", "a\tb", "a\x00b"])
def test_key_names(name: str) -> None:
    with pytest.raises(NoteError):
        NoteSigner(name, SigningKey(TEST_SEED))


def test_note_error_is_an_invalid_entity() -> None:
    assert issubclass(NoteError, InvalidEntity)
    assert NoteError("x").code == "note_invalid"


# --- checkpoints --------------------------------------------------------------------------------


def test_golden_checkpoint_is_pinned(signer: NoteSigner) -> None:
    checkpoint = Checkpoint(TEST_NAME, 8, RFC6962_ROOT_8)
    golden = read_asset("golden-checkpoint.note")
    assert checkpoint.body() == (
        "controlplane.test/ledger\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n"
    )
    assert sign_checkpoint(checkpoint, signer) == golden
    assert open_checkpoint(golden, signer.verifier(), TEST_NAME) == checkpoint


def test_spec_checkpoint_body_round_trips() -> None:
    body = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    checkpoint = Checkpoint.parse(body)
    assert (checkpoint.origin, checkpoint.size) == ("example.com/behind-the-sofa", 20852163)
    assert checkpoint.body() == body


def test_extensions_round_trip(signer: NoteSigner) -> None:
    checkpoint = Checkpoint(TEST_NAME, 0, hashlib.sha256(b"").digest(), ("ext one", "ext two"))
    note = sign_checkpoint(checkpoint, signer)
    assert open_checkpoint(note, signer.verifier(), TEST_NAME) == checkpoint


def test_wrong_origin_and_wrong_key_are_rejected(signer: NoteSigner) -> None:
    note = sign_checkpoint(Checkpoint(TEST_NAME, 8, RFC6962_ROOT_8), signer)
    with pytest.raises(NoteError, match="not the expected origin"):
        open_checkpoint(note, signer.verifier(), "controlplane.test/other")
    other = NoteSigner(TEST_NAME, SigningKey(bytes(32)))
    with pytest.raises(NoteError, match="no signature from a trusted key"):
        open_checkpoint(note, other.verifier(), TEST_NAME)
    # A log key signing a checkpoint of another origin: refused when signing and when opening.
    with pytest.raises(NoteError, match="not the checkpoint origin"):
        sign_checkpoint(Checkpoint("controlplane.test/other", 8, RFC6962_ROOT_8), signer)
    foreign = signer.sign(Checkpoint("controlplane.test/other", 8, RFC6962_ROOT_8).body())
    with pytest.raises(NoteError, match=r"from origin 'controlplane\.test/other'") as caught:
        open_checkpoint(foreign, signer.verifier(), TEST_NAME)
    assert caught.value.code == "checkpoint_invalid"


def test_a_signed_note_that_is_not_a_checkpoint(signer: NoteSigner) -> None:
    # transparency-dev/formats: "bad body good sigs".
    note = signer.sign("if this is a valid checkpoint then I'll eat my hat\n")
    with pytest.raises(NoteError, match="at least 3 lines"):
        open_checkpoint(note, signer.verifier(), TEST_NAME)


ROOT_B64 = "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg="


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        # transparency-dev/formats log/checkpoint_test.go, its invalid cases:
        ("Head\n9944\n", "at least 3 lines"),
        (f"\n9944\n{ROOT_B64}\n", "no empty lines"),
        ("Log\n123\nYmFuYW5hcw==", "does not end with a newline"),
        (f"Log\nbananas\n{ROOT_B64}\n", "not a decimal"),
        (f"Log\n-34\n{ROOT_B64}\n", "not a decimal"),
        (f"Log\n3438945738945739845734895735\n{ROOT_B64}\n", "outside"),
        ("Log\n123\nThisIsn'tBase64\n", "not canonical base64"),
        # ... and its valid ones, which we refuse: roots of 7 bytes ("bananas") and trailing
        # empty lines. The spec's root is an RFC 6962 SHA-256 hash and its lines are non-empty.
        ("Log\n123\nYmFuYW5hcw==\n", "7 bytes"),
        (f"Log\n9944\n{ROOT_B64}\n\n\n\n", "no empty lines"),
        # Our own:
        (f"Log\n007\n{ROOT_B64}\n", "leading zeros"),
        (f"Log\n+7\n{ROOT_B64}\n", "not a decimal"),
        (f"Log\n 7\n{ROOT_B64}\n", "not a decimal"),
        (f"Log\n1_000\n{ROOT_B64}\n", "not a decimal"),
        (f"Log\n\u0663\n{ROOT_B64}\n", "not a decimal"),  # ARABIC-INDIC DIGIT THREE
        (f"Log\n{2**64}\n{ROOT_B64}\n", "outside"),
        (f"Log\n7\n{ROOT_B64[:-2]}h=\n", "not canonical base64"),  # unused low bits set
        (f"Log\n7\n{ROOT_B64[:-1]}\n", "not canonical base64"),
        (f"Log\n7\n{ROOT_B64}\next\n\n", "no empty lines"),
    ],
)
def test_checkpoint_parse_rejects(text: str, reason: str) -> None:
    with pytest.raises(NoteError, match=reason) as caught:
        Checkpoint.parse(text)
    assert caught.value.code == "checkpoint_invalid"


def test_checkpoint_size_bounds() -> None:
    assert Checkpoint.parse(f"Log\n0\n{ROOT_B64}\n").size == 0
    assert Checkpoint.parse(f"Log\n{2**64 - 1}\n{ROOT_B64}\n").size == 2**64 - 1


@pytest.mark.parametrize(
    ("origin", "size", "root", "extensions"),
    [
        ("", 1, RFC6962_ROOT_8, ()),
        ("two\nlines", 1, RFC6962_ROOT_8, ()),
        ("Log", -1, RFC6962_ROOT_8, ()),
        ("Log", True, RFC6962_ROOT_8, ()),
        ("Log", 1, RFC6962_ROOT_8[:31], ()),
        ("Log", 1, RFC6962_ROOT_8, ("",)),
        ("Log", 1, RFC6962_ROOT_8, ("a\nb",)),
    ],
)
def test_checkpoint_constructor_rejects(
    origin: str, size: int, root: bytes, extensions: tuple[str, ...]
) -> None:
    with pytest.raises(NoteError):
        Checkpoint(origin, size, root, extensions)
