"""Small JOSE helpers shared by requests, grants and outcomes: compact JWS shape and parts.

Verification itself is joserfc's; this module only tells "not a JWS at all" (an HTTP 400) from
"a JWS whose header or payload is not what we accept" (a deny), and reads a header before the
signature can be checked, which is needed to find the key (RFC 7515 §5.2).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import warnings
from collections.abc import Mapping
from typing import Any

from joserfc import jws
from joserfc.errors import SecurityWarning
from joserfc.jwk import OKPKey

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


def ed25519_public_key(jwk: Mapping[str, Any]) -> OKPKey:
    """An Ed25519 verification key from a JWK. Its `alg` member is dropped: "EdDSA" and
    "Ed25519" name the same algorithm for this key (RFC 9864), and the header's `alg` has already
    been checked against both."""
    return OKPKey.import_key({k: v for k, v in jwk.items() if k != "alg"})


def verify_compact(token: str, key: OKPKey, alg: str) -> bytes:
    """The payload of `token` if its signature verifies with `key` under `alg` (one of
    `ED25519_ALGORITHMS`). Raises joserfc's errors otherwise."""
    with warnings.catch_warnings():
        # joserfc warns that RFC 9864 deprecates "EdDSA"; DESIGN.md §5 accepts both names.
        warnings.simplefilter("ignore", SecurityWarning)
        payload = jws.deserialize_compact(token, key, algorithms=[alg]).payload
    return payload


def sign_compact(header: dict[str, Any], payload: bytes, key: OKPKey) -> str:
    """A compact JWS of `payload` signed with the Ed25519 `key` under `header["alg"]`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        return jws.serialize_compact(header, payload, key, algorithms=[header["alg"]])


def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
