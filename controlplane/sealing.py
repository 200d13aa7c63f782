"""Private keys sealed at rest: a JWE (RFC 7516) of the key's JWK, from the operator's passphrase.

PBES2-HS512+A256KW with A256GCM (RFC 7518 §4.8, the form RFC 7517 §11 suggests for private JWKs),
with 210,000 PBKDF2 iterations (OWASP's figure for PBKDF2-HMAC-SHA512). The grant key ring and the
bundle signing key both keep their keys this way, so that neither Redis, its append-only file nor a
key file ever holds a usable private key.
"""

from __future__ import annotations

import json
from typing import Any

from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

_KEY_ENCRYPTION = {"alg": "PBES2-HS512+A256KW", "enc": "A256GCM", "cty": "jwk+json", "p2c": 210_000}
_JWE_ALGORITHMS = ["PBES2-HS512+A256KW", "A256GCM"]


class UnsealError(Exception):
    """The sealed key cannot be opened with this passphrase, or is not a sealed JWK."""


def seal(private_jwk: dict[str, Any], passphrase: bytes) -> str:
    """The compact JWE of a private JWK."""
    plaintext = json.dumps(private_jwk).encode()
    return jwe.encrypt_compact(
        _KEY_ENCRYPTION, plaintext, OctKey.import_key(passphrase), algorithms=_JWE_ALGORITHMS
    )


def unseal(sealed: str, passphrase: bytes) -> dict[str, Any]:
    """The private JWK inside a compact JWE written by `seal`. Raises `UnsealError`."""
    try:
        plain = jwe.decrypt_compact(
            sealed.strip(), OctKey.import_key(passphrase), algorithms=_JWE_ALGORITHMS
        ).plaintext
        jwk = json.loads(plain or b"")
    except (JoseError, ValueError) as exc:
        raise UnsealError(str(exc)) from exc
    if not isinstance(jwk, dict):
        raise UnsealError("not a JWK")
    return jwk
