"""Bundle signing keys, the `.signatures.json` OPA verifies, and the same verification in Python.

The key is ECDSA P-256 and the JWS algorithm ES256: OPA verifies ES/RS/PS/HS but not EdDSA for
bundles (`docs/reference/opa-protocols.md` §2). The signed payload lists every bundle file except
`.signatures.json` with its OPA digest (`bundle.opa_file_hash`) and carries the scope; it has no
`iat`, so that the same bundle and key sign to the same bytes. `verify_bundle` performs the checks
of OPA's `v1/bundle/verify.go` and `bundle.go` `Read`, in that order and with OPA's messages; the
server uses it to double-check its own output and the tests use it beside the real `opa`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc import jws
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import ECKey

from controlplane.errors import InvalidEntity, InvalidInput
from controlplane.jose import b64url_json
from controlplane.policies.bundle import SIGNATURES, opa_file_hash, opa_hash_input

ALGORITHM = "ES256"
HASH_ALGORITHM = "SHA-256"
KEYID_PREFIX = "cp-bundle-"
_COORDINATE_BYTES = 32  # P-256: r and s are 32 bytes each in a JWS (RFC 7518 §3.4)
_ERROR_CODE = "bundle_signature_invalid"
# The hash names OPA accepts in a payload (`hash.go` NewSignatureHasher) and hashlib's names.
_HASHLIB_NAMES = {
    "MD5": "md5",
    "SHA-1": "sha1",
    "SHA-224": "sha224",
    "SHA-256": "sha256",
    "SHA-384": "sha384",
    "SHA-512": "sha512",
    "SHA-512-224": "sha512_224",
    "SHA-512-256": "sha512_256",
}

PublicKey = ec.EllipticCurvePublicKey
PrivateKey = ec.EllipticCurvePrivateKey


def generate_key() -> PrivateKey:
    """A fresh P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(key: PrivateKey | PublicKey) -> str:
    """The PEM `PUBLIC KEY` (PKIX SubjectPublicKeyInfo) to put in OPA's `keys.<id>.key`."""
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def keyid_of(public_key: PublicKey) -> str:
    """`cp-bundle-` and the first 16 hex digits of the SHA-256 of the DER SubjectPublicKeyInfo:
    stable for a key, different across keys, so a rotated key gets a new OPA `keys` entry."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return KEYID_PREFIX + hashlib.sha256(der).hexdigest()[:16]


def load_private_pem(data: bytes) -> PrivateKey:
    """A P-256 private key from unencrypted PEM (PKCS#8 or SEC 1). Raises `InvalidInput` for
    anything else: other curves, RSA, Ed25519, encrypted or malformed PEM."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise InvalidInput(
            "not an unencrypted PEM private key", code="invalid_signing_key"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise InvalidInput("the bundle signing key must be ECDSA P-256", code="invalid_signing_key")
    return key


class BundleSigner:
    """Signs bundles with one P-256 key under a key id and a scope (OPA's `keys.<keyid>` and
    `bundles.<name>.signing.scope`)."""

    def __init__(self, private_key: PrivateKey, keyid: str, scope: str) -> None:
        if not isinstance(private_key, ec.EllipticCurvePrivateKey) or not isinstance(
            private_key.curve, ec.SECP256R1
        ):
            raise InvalidInput(
                "the bundle signing key must be ECDSA P-256", code="invalid_signing_key"
            )
        if not keyid:
            raise InvalidInput("a bundle signing key needs a key id", code="invalid_signing_key")
        self._key = private_key
        self.keyid = keyid
        self.scope = scope

    @property
    def public_pem(self) -> str:
        return public_pem(self._key)

    def signatures_json(self, files: Mapping[str, bytes]) -> bytes:
        """The `.signatures.json` for these files: `{"signatures": ["<compact JWS>"]}`."""
        header = {"alg": ALGORITHM, "kid": self.keyid, "typ": "JWT"}
        payload = {
            "files": [
                # Field order as OPA's FileInfo struct writes it.
                {
                    "name": name,
                    "hash": opa_file_hash(name, files[name]),
                    "algorithm": HASH_ALGORITHM,
                }
                for name in sorted(files)
                if name != SIGNATURES
            ],
            "scope": self.scope,
        }
        signing_input = _b64url(_compact(header)) + "." + _b64url(_compact(payload))
        # joserfc signs ECDSA with a random nonce and has no switch for RFC 6979; `cryptography`
        # does, and deterministic nonces are what make two builds byte-identical.
        der = self._key.sign(
            signing_input.encode("ascii"),
            ec.ECDSA(hashes.SHA256(), deterministic_signing=True),
        )
        r, s = decode_dss_signature(der)
        raw = r.to_bytes(_COORDINATE_BYTES, "big") + s.to_bytes(_COORDINATE_BYTES, "big")
        token = signing_input + "." + _b64url(raw)
        return _compact({"signatures": [token]})


def verify_bundle(
    files: Mapping[str, bytes],
    signatures_json: bytes | None,
    *,
    public_pem: str,
    keyid: str,
    scope: str,
) -> None:
    """Check a bundle's signature as OPA does, configured with this key id, key and scope.

    Exactly one JWT; a `kid` (or the deprecated payload `keyid`), when present, naming `keyid`; a
    valid ES256 signature by the key; `scope` equal; every file (a `.signatures.json` entry in
    `files` is ignored) listed with a matching digest, and every listed file present. Raises
    `InvalidEntity` (code `bundle_signature_invalid`) with OPA's message for the first failure,
    and `InvalidInput` when `public_pem` is not a P-256 public key.
    """
    key = _verification_key(public_pem)
    if signatures_json is None:
        raise _invalid("bundle missing .signatures.json file")
    tokens = _tokens(signatures_json)
    if not tokens:
        raise _invalid(".signatures.json: missing JWT (expected exactly one)")
    if len(tokens) > 1:
        raise _invalid(".signatures.json: multiple JWTs not supported (expected exactly one)")
    token = tokens[0]
    parts = token.split(".")
    header = b64url_json(parts[0]) if len(parts) == 3 else None
    claims = b64url_json(parts[1]) if len(parts) == 3 else None
    if header is None or claims is None:
        raise _invalid("failed to parse JWT: not a compact JWS with JSON header and payload")
    # verify.go: the configured key id wins; a kid naming another key would find no key in an OPA
    # configured without `signing.keyid`, so we refuse it either way.
    named = header.get("kid") or claims.get("keyid")
    if named and named != keyid:
        raise _invalid(f"verification key corresponding to ID {named} not found")
    # joserfc checks the header's alg against ES256 and the r || s signature against the key.
    try:
        jws.deserialize_compact(token, key, algorithms=[ALGORITHM])
    except BadSignatureError as exc:
        raise _invalid("failed to verify JWT signature: invalid ECDSA signature") from exc
    except (JoseError, ValueError) as exc:
        raise _invalid(f"failed to verify JWT signature: {exc}") from exc
    if claims.get("scope", "") != scope:
        raise _invalid("scope mismatch")
    _verify_files(files, _listed(claims))


def _verification_key(pem: str) -> ECKey:
    try:
        loaded = serialization.load_pem_public_key(pem.encode("ascii"))
    except (ValueError, UnsupportedAlgorithm, UnicodeEncodeError) as exc:
        raise InvalidInput("not a PEM public key", code="invalid_verification_key") from exc
    if not isinstance(loaded, ec.EllipticCurvePublicKey) or not isinstance(
        loaded.curve, ec.SECP256R1
    ):
        raise InvalidInput(
            "the bundle verification key must be ECDSA P-256", code="invalid_verification_key"
        )
    return ECKey.import_key(pem)


def _tokens(signatures_json: bytes) -> list[str]:
    try:
        value = json.loads(signatures_json)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _invalid(f"bundle load failed on signatures decode: {exc}") from exc
    signatures = value.get("signatures") if isinstance(value, dict) else None
    if signatures is None:
        return []
    if not isinstance(signatures, list) or not all(isinstance(t, str) for t in signatures):
        raise _invalid("bundle load failed on signatures decode: signatures must be strings")
    return signatures


def _listed(claims: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    entries = claims.get("files", [])
    if not isinstance(entries, list):
        raise _invalid("JWT payload: files must be a list")
    listed: dict[str, dict[str, str]] = {}
    for entry in entries:
        fields = ("name", "hash", "algorithm")
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(f, ""), str) for f in fields
        ):
            raise _invalid("JWT payload: each file needs string name, hash and algorithm")
        listed[entry.get("name", "")] = {f: entry.get(f, "") for f in fields}
    return listed


def _verify_files(files: Mapping[str, bytes], listed: dict[str, dict[str, str]]) -> None:
    for name in sorted(files):
        if name == SIGNATURES:
            continue
        entry = listed.pop(name, None)
        if entry is None:
            raise _invalid(f"file {name} not included in bundle signature")
        algorithm = entry["algorithm"]
        if not algorithm:
            raise _invalid(f"no hashing algorithm provided for file {name}")
        if algorithm not in _HASHLIB_NAMES:
            raise _invalid(f"unsupported hashing algorithm: {algorithm}")
        got = hashlib.new(_HASHLIB_NAMES[algorithm], opa_hash_input(name, files[name])).digest()
        try:
            want = bytes.fromhex(entry["hash"])
        except ValueError as exc:
            raise _invalid(f"{name}: hash is not hex: {exc}") from exc
        if want != got:
            raise _invalid(f"{name}: digest mismatch (want: {want.hex()}, got: {got.hex()})")
    if listed:
        missing = " ".join(sorted(listed))
        raise _invalid(
            f"file(s) [{missing}] specified in bundle signatures but not found in the target bundle"
        )


def _invalid(message: str) -> InvalidEntity:
    return InvalidEntity(message, code=_ERROR_CODE)


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("ascii")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


__all__ = [
    "ALGORITHM",
    "BundleSigner",
    "generate_key",
    "keyid_of",
    "load_private_pem",
    "public_pem",
    "verify_bundle",
]
