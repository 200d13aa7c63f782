"""Small JOSE helpers shared by requests, grants and outcomes: compact JWS shape, parts, and the
Ed25519 signature check.

This module tells "not a JWS at all" (an HTTP 400) from "a JWS whose header or payload is not what
we accept" (a deny), and reads a header before the signature can be checked, which is needed to
find the key (RFC 7515 §5.2).

Ed25519 signs and verifies with libsodium (PyNaCl): OpenSSL 4.0, under `cryptography` and
joserfc, verified ~8,000 signatures/s here against libsodium's ~16,000, and joserfc's JWS layer
added as much again (docs/adr/0003-identities-requests-grants.md). What remains of JWS around the
signature is RFC 7515 §5.1/§5.2: base64url segments, the signature over the ASCII of
`header.payload`; joserfc still generates keys, computes thumbprints and encrypts keys (JWE).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from typing import Any

from joserfc.jwk import OKPKey
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from controlplane import jsontext
from controlplane.errors import InvalidInput

# RFC 7515 §7.1: three base64url segments separated by dots (no padding, no whitespace). The
# signature may be empty, as in an unsecured JWS (`alg: none`, RFC 7518 §3.6): that parses, and is
# then refused as `algorithm_not_allowed` rather than as "not a JWS".
_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# RFC 9864 registers "Ed25519" as the fully specified name of what "EdDSA" means with Ed25519.
ED25519_ALGORITHMS = frozenset({"EdDSA", "Ed25519"})


def compact_jws(body: bytes) -> str:
    """The body as a compact JWS string. Raises `InvalidInput` (400) if it is not one at all."""
    try:
        text = body.decode("ascii").strip()
    except UnicodeDecodeError as exc:
        raise InvalidInput("the body is not a compact JWS", code="not_a_jws") from exc
    if not _COMPACT.fullmatch(text):
        raise InvalidInput(
            "the body is not a compact JWS (three base64url parts joined by dots)",
            code="not_a_jws",
        )
    return text


def b64url_json(segment: str) -> dict[str, Any] | None:
    """A base64url segment decoded as a JSON object, or None when it is not one."""
    try:
        value = jsontext.loads(_b64url(segment))
    except (binascii.Error, ValueError, InvalidInput):
        return None
    return value if isinstance(value, dict) else None


def typ_is(header: dict[str, Any], expected: str) -> bool:
    """RFC 7515 §4.1.9: `typ` compares case-insensitively and may omit the `application/`."""
    typ = header.get("typ")
    if not isinstance(typ, str):
        return False
    typ = typ.lower()
    return typ in (expected, f"application/{expected}")


class SignatureInvalidError(Exception):
    """The Ed25519 signature of a compact JWS does not verify with the given key."""


def verify_ed25519(token: str, public_x: str) -> bytes:
    """The payload of compact JWS `token` if its signature verifies with the Ed25519 public key
    `public_x` (the JWK `x`, base64url). The caller has checked that `alg` is one of
    `ED25519_ALGORITHMS`. Raises `SignatureInvalidError` otherwise."""
    header, payload, signature = token.split(".")
    try:
        _verify_key(public_x).verify(f"{header}.{payload}".encode("ascii"), _b64url(signature))
        return _b64url(payload)
    except (BadSignatureError, ValueError, TypeError, binascii.Error) as exc:
        raise SignatureInvalidError(str(exc)) from exc


@functools.lru_cache(maxsize=4096)
def _verify_key(public_x: str) -> VerifyKey:
    return VerifyKey(_b64url(public_x))


def _b64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def ed25519_signer(key: OKPKey) -> SigningKey:
    """libsodium's signing key for a private Ed25519 JWK (`d` is the 32-byte seed, RFC 8037)."""
    return SigningKey(_b64url(str(key.as_dict(private=True)["d"])))


def sign_compact(header: dict[str, Any], payload: bytes, key: OKPKey | SigningKey) -> str:
    """A compact JWS (RFC 7515 §7.1) of `payload`, Ed25519-signed with `key`; `header["alg"]`
    must be one of `ED25519_ALGORITHMS`. The header is encoded as joserfc encodes it."""
    if header.get("alg") not in ED25519_ALGORITHMS:
        raise ValueError(f"alg must be one of {sorted(ED25519_ALGORITHMS)}")
    signer = key if isinstance(key, SigningKey) else ed25519_signer(key)
    signing_input = (
        _b64url_encode(json.dumps(header, ensure_ascii=True, separators=(",", ":")).encode())
        + "."
        + _b64url_encode(payload)
    )
    signature = signer.sign(signing_input.encode("ascii")).signature
    return f"{signing_input}.{_b64url_encode(signature)}"


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
