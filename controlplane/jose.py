"""Small JOSE helpers shared by requests, grants and outcomes: compact JWS shape, parts, and the
Ed25519 signature check.

This module tells "not a JWS at all" (an HTTP 400) from "a JWS whose header or payload is not what
we accept" (a deny), and reads a header before the signature can be checked, which is needed to
find the key (RFC 7515 §5.2).

Ed25519 signatures are verified with libsodium (PyNaCl): OpenSSL 4.0, under `cryptography` and
joserfc, verified ~8,000 signatures/s here against libsodium's ~16,000 (docs/adr/0003). The JWS
step around it is RFC 7515 §5.2: the signature is over the ASCII of `header.payload`. Signing
stays with joserfc.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
import warnings
from typing import Any

from joserfc import jws
from joserfc.errors import SecurityWarning
from joserfc.jwk import OKPKey
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

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
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = json.loads(raw, parse_constant=_refuse)
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
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


def sign_compact(header: dict[str, Any], payload: bytes, key: OKPKey) -> str:
    """A compact JWS of `payload` signed with the Ed25519 `key` under `header["alg"]`."""
    with warnings.catch_warnings():
        # joserfc warns that RFC 9864 deprecates "EdDSA"; DESIGN.md §5 fixes it for grants.
        warnings.simplefilter("ignore", SecurityWarning)
        return jws.serialize_compact(header, payload, key, algorithms=[header["alg"]])


def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
