"""Bundle signatures: the real `opa build --verification-key` accepts ours and rejects every
tampering, and `verify_bundle` gives the same verdict each time."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from controlplane.errors import InvalidEntity, InvalidInput
from controlplane.policies import signing
from controlplane.policies.bundle import BuiltBundle, build, collect, read
from controlplane.policies.signing import (
    BundleSigner,
    generate_key,
    keyid_of,
    load_private_pem,
    public_pem,
    verify_bundle,
)
from tests.support.bundles import OPA, POLICY_DIR, ROOTS, SCOPE, needs_opa, targz

REGO = "governance/golden/golden.rego"
DATA = "governance/golden/data.json"

Files = dict[str, bytes]


def bundle_files() -> Files:
    """The repo's policies and data plus a module and a data file whose content the tests know."""
    return {
        **collect(POLICY_DIR),
        REGO: b"package governance.golden\n\ndoubled := data.governance.golden.limit * 2\n",
        DATA: '{"limit": 1, "note": "<é>"}'.encode(),
    }


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return generate_key()


@pytest.fixture(scope="module")
def keyid(key: ec.EllipticCurvePrivateKey) -> str:
    return keyid_of(key.public_key())


@pytest.fixture(scope="module")
def built(key: ec.EllipticCurvePrivateKey, keyid: str) -> BuiltBundle:
    return build(
        bundle_files(), roots=ROOTS, metadata={"n": 1}, signer=BundleSigner(key, keyid, SCOPE)
    )


def opa_verify(
    tmp_path: Path, data: bytes, pem: str, keyid: str, scope: str = SCOPE
) -> subprocess.CompletedProcess[str]:
    """`opa build` verifies an input bundle's signature when given a verification key."""
    (tmp_path / "in.tar.gz").write_bytes(data)
    (tmp_path / "pub.pem").write_text(pem)
    return subprocess.run(
        [
            str(OPA), "build", "-b", "in.tar.gz", "--verification-key", "pub.pem",
            "--verification-key-id", keyid, "--scope", scope, "--signing-alg", "ES256",
            "-o", "out.tar.gz",
        ],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60,
    )  # fmt: skip


def ours(files: Files, pem: str, keyid: str, scope: str = SCOPE) -> None:
    verify_bundle(files, files.get(".signatures.json"), public_pem=pem, keyid=keyid, scope=scope)


# --- Accepted ----------------------------------------------------------------------------------


@needs_opa
def test_opa_accepts_our_signed_bundle(
    tmp_path: Path, built: BuiltBundle, key: ec.EllipticCurvePrivateKey, keyid: str
) -> None:
    done = opa_verify(tmp_path, built.data, public_pem(key), keyid)
    assert done.returncode == 0, done.stdout
    ours(built.files, public_pem(key), keyid)
    uploaded = read(built.data, max_bytes=1 << 22, max_file_bytes=1 << 20)
    verify_bundle(
        uploaded.files, uploaded.signatures, public_pem=public_pem(key), keyid=keyid, scope=SCOPE
    )


@needs_opa
def test_we_accept_a_bundle_opa_signed(tmp_path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """The other direction: a bundle `opa build --signing-key` signed passes `verify_bundle`."""
    folder = tmp_path / "src"
    for name, content in bundle_files().items():
        if not name.endswith("data.json"):  # opa build merges data into one root data.json
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(content)
    (folder / "data.json").write_bytes(b'{"governance": {"golden": {"limit": 1}}}')
    (folder / ".manifest").write_text('{"roots": ["governance", "system"], "metadata": {"a": 1}}')
    (tmp_path / "priv.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "claims.json").write_text(json.dumps({"scope": SCOPE}))
    done = subprocess.run(
        [
            str(OPA), "build", "-b", ".", "--signing-key", "../priv.pem", "--signing-alg", "ES256",
            "--claims-file", "../claims.json", "-o", "../opa.tar.gz",
        ],
        cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout
    got = read((tmp_path / "opa.tar.gz").read_bytes(), max_bytes=1 << 22, max_file_bytes=1 << 20)
    verify_bundle(got.files, got.signatures, public_pem=public_pem(key), keyid="any", scope=SCOPE)


# --- Rejected, by OPA and by us ----------------------------------------------------------------


def tampered_rego(files: Files) -> Files:
    return {**files, REGO: files[REGO] + b"\nextra := true\n"}


def tampered_data(files: Files) -> Files:
    return {**files, DATA: files[DATA].replace(b'"limit": 1', b'"limit": 2')}


def without_signatures(files: Files) -> Files:
    return {n: c for n, c in files.items() if n != ".signatures.json"}


def with_extra_file(files: Files) -> Files:
    return {**files, "governance/golden/extra.rego": b"package governance.golden.extra\n"}


def without_a_file(files: Files) -> Files:
    return {n: c for n, c in files.items() if n != REGO}


def signed_by_other_key(files: Files) -> Files:
    other = BundleSigner(generate_key(), "other", SCOPE)
    return {**files, ".signatures.json": other.signatures_json(without_signatures(files))}


TAMPERINGS: list[tuple[Callable[[Files], Files], str, str]] = [
    (tampered_rego, f"{REGO}: digest mismatch", f"{REGO}: digest mismatch"),
    (tampered_data, f"{DATA}: digest mismatch", f"{DATA}: digest mismatch"),
    (without_signatures, "bundle missing .signatures.json file", "missing .signatures.json"),
    (with_extra_file, "not included in bundle signature", "not included in bundle signature"),
    (without_a_file, "specified in bundle signatures but not found", "but not found"),
    (
        signed_by_other_key,
        "failed to verify JWT signature: invalid ECDSA signature",
        "verification key corresponding to ID other not found",
    ),
]


@pytest.mark.parametrize("case", TAMPERINGS, ids=[t[0].__name__ for t in TAMPERINGS])
@needs_opa
def test_tampering_is_rejected_by_opa_and_by_us(
    tmp_path: Path,
    built: BuiltBundle,
    key: ec.EllipticCurvePrivateKey,
    keyid: str,
    case: tuple[Callable[[Files], Files], str, str],
) -> None:
    tamper, opa_says, we_say = case
    files = tamper(dict(built.files))
    done = opa_verify(tmp_path, targz(files), public_pem(key), keyid)
    assert done.returncode != 0
    assert opa_says in done.stdout
    with pytest.raises(InvalidEntity, match=we_say) as caught:
        ours(files, public_pem(key), keyid)
    assert caught.value.code == "bundle_signature_invalid"


@needs_opa
def test_a_signature_by_another_key_under_our_keyid_is_rejected(
    tmp_path: Path, built: BuiltBundle, key: ec.EllipticCurvePrivateKey, keyid: str
) -> None:
    impostor = BundleSigner(generate_key(), keyid, SCOPE)
    files = {
        **built.files,
        ".signatures.json": impostor.signatures_json(without_signatures(built.files)),
    }
    done = opa_verify(tmp_path, targz(files), public_pem(key), keyid)
    message = "failed to verify JWT signature: invalid ECDSA signature"
    assert message in done.stdout
    with pytest.raises(InvalidEntity, match=message):
        ours(files, public_pem(key), keyid)


@needs_opa
def test_a_wrong_scope_is_rejected_by_opa_and_by_us(
    tmp_path: Path, built: BuiltBundle, key: ec.EllipticCurvePrivateKey, keyid: str
) -> None:
    done = opa_verify(tmp_path, built.data, public_pem(key), keyid, scope="another/scope")
    assert done.returncode != 0
    assert "scope mismatch" in done.stdout
    with pytest.raises(InvalidEntity, match="scope mismatch"):
        ours(built.files, public_pem(key), keyid, scope="another/scope")


@pytest.mark.parametrize(
    ("signatures", "message"),
    [
        (b'{"signatures": []}', "missing JWT"),
        (b"{}", "missing JWT"),
        (b'{"signatures": ["a.b.c", "d.e.f"]}', "multiple JWTs not supported"),
        (b'{"signatures": ["not-a-jwt"]}', "failed to parse JWT"),
        (b"not json", "signatures decode"),
    ],
)
def test_malformed_signature_files_are_rejected(
    built: BuiltBundle, key: ec.EllipticCurvePrivateKey, signatures: bytes, message: str
) -> None:
    with pytest.raises(InvalidEntity, match=message):
        verify_bundle(built.files, signatures, public_pem=public_pem(key), keyid="k", scope=SCOPE)


# --- The signature itself ----------------------------------------------------------------------


def segments(signatures_json: bytes) -> list[bytes]:
    (token,) = json.loads(signatures_json)["signatures"]
    return [base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)) for s in token.split(".")]


def test_signature_shape(built: BuiltBundle, keyid: str) -> None:
    header, payload, signature = segments(built.files[".signatures.json"])
    assert json.loads(header) == {"alg": "ES256", "kid": keyid, "typ": "JWT"}
    claims = json.loads(payload)
    assert set(claims) == {"files", "scope"}  # no iat: the same input signs the same
    assert claims["scope"] == SCOPE
    names = [f["name"] for f in claims["files"]]
    assert names == sorted(set(built.files) - {".signatures.json"})
    assert ".manifest" in names
    assert {f["algorithm"] for f in claims["files"]} == {"SHA-256"}
    assert len(signature) == 64  # raw r || s, RFC 7518 §3.4


def test_signing_is_deterministic(key: ec.EllipticCurvePrivateKey) -> None:
    files = {"governance/a.rego": b"package governance.a\n", ".manifest": b"{}"}
    first = BundleSigner(key, "k", SCOPE).signatures_json(files)
    assert BundleSigner(key, "k", SCOPE).signatures_json(dict(reversed(files.items()))) == first
    assert BundleSigner(key, "k", "other").signatures_json(files) != first


def test_keys_round_trip_and_name_themselves(key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    loaded = load_private_pem(pem)
    assert public_pem(loaded) == public_pem(key) == public_pem(key.public_key())
    assert public_pem(key).startswith("-----BEGIN PUBLIC KEY-----")
    kid = keyid_of(key.public_key())
    assert kid.startswith("cp-bundle-")
    assert len(kid) == len("cp-bundle-") + 16
    assert keyid_of(generate_key().public_key()) != kid


@pytest.mark.parametrize(
    "other",
    [
        ec.generate_private_key(ec.SECP384R1()),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ed25519.Ed25519PrivateKey.generate(),
    ],
)
def test_only_p256_keys_are_loaded(other: signing.PrivateKey) -> None:
    pem = other.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(InvalidInput, match="P-256"):
        load_private_pem(pem)
    with pytest.raises(InvalidInput):
        verify_bundle(
            {},
            None,
            public_pem=other.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode(),
            keyid="k",
            scope=SCOPE,
        )


@pytest.mark.parametrize("pem", [b"", b"garbage", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END"])
def test_malformed_private_keys_are_refused(pem: bytes) -> None:
    with pytest.raises(InvalidInput) as caught:
        load_private_pem(pem)
    assert caught.value.code == "invalid_signing_key"
