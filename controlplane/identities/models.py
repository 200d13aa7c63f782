"""What an identity is, and the validation of everything a caller may say about one.

Ids are `<kind>:<name>` with name `[A-Za-z0-9._-]{1,128}` (DESIGN.md §4). Keys are Ed25519 public
JWKs (RFC 8037 §2: `kty` `OKP`, `crv` `Ed25519`, `x` the 32-byte public key in base64url) with a
`kid` unique within the identity; a JWK carrying private material (`d`) is refused, never stored.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from controlplane.canonical import canonical_json
from controlplane.errors import InvalidEntity

NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")
KID = re.compile(r"[A-Za-z0-9._-]{1,128}")
MAX_ATTRIBUTES_BYTES = 16 * 1024
MAX_KEYS = 16
MAX_REASON_LENGTH = 512
# RFC 9864 registers "Ed25519" as the fully specified name of what "EdDSA" means with an OKP key.
SIGNING_ALGORITHMS = frozenset({"EdDSA", "Ed25519"})


class IdentityKind(StrEnum):
    AGENT = "agent"
    SERVICE = "service"
    EXECUTOR = "executor"
    HUMAN = "human"


class IdentityStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    REVOKED = "revoked"


class KeyStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class IdentityKey:
    kid: str
    jwk: dict[str, str | list[str]]
    status: KeyStatus
    added_at: str
    revoked_at: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "kid": self.kid,
            "jwk": self.jwk,
            "status": self.status.value,
            "added_at": self.added_at,
            "revoked_at": self.revoked_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IdentityKey:
        return cls(
            kid=data["kid"],
            jwk=data["jwk"],
            status=KeyStatus(data["status"]),
            added_at=data["added_at"],
            revoked_at=data.get("revoked_at"),
        )


@dataclass(frozen=True, slots=True)
class Identity:
    id: str
    kind: IdentityKind
    status: IdentityStatus
    attributes: dict[str, Any]
    created_at: str
    updated_at: str
    keys: tuple[IdentityKey, ...] = field(default_factory=tuple)
    status_reason: str | None = None

    def key(self, kid: str) -> IdentityKey | None:
        return next((key for key in self.keys if key.kid == kid), None)

    def with_changes(self, **changes: Any) -> Identity:
        return replace(self, **changes)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind.value,
            "status": self.status.value,
            "status_reason": self.status_reason,
            "attributes": self.attributes,
            "keys": [key.as_json() for key in self.keys],
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Identity:
        return cls(
            id=data["id"],
            kind=IdentityKind(data["kind"]),
            status=IdentityStatus(data["status"]),
            status_reason=data.get("status_reason"),
            attributes=data["attributes"],
            keys=tuple(IdentityKey.from_json(k) for k in data["keys"]),
            created_at=data["created_at"],
            updated_at=data["updated_at"],
        )


def check_identity_id(identity_id: str, kind: IdentityKind | None = None) -> IdentityKind:
    """The kind named by a valid id. Raises `InvalidEntity` (422) for anything else."""
    prefix, sep, name = identity_id.partition(":")
    try:
        named = IdentityKind(prefix)
    except ValueError:
        named = None
    if not sep or named is None or not NAME.fullmatch(name):
        raise InvalidEntity(
            f"identity id {identity_id!r} must be <kind>:<name> with kind one of "
            f"{', '.join(k.value for k in IdentityKind)} and name [A-Za-z0-9._-]{{1,128}}",
            code="invalid_identity_id",
        )
    if kind is not None and named is not kind:
        raise InvalidEntity(
            f"identity id {identity_id!r} does not match its kind {kind.value!r}",
            code="invalid_identity_id",
        )
    return named


def check_attributes(attributes: Any) -> dict[str, Any]:
    """Attributes are a JSON object of at most 16 KiB in canonical form (what OPA will see)."""
    if not isinstance(attributes, dict):
        raise InvalidEntity("attributes must be a JSON object", code="invalid_attributes")
    if len(canonical_json(attributes)) > MAX_ATTRIBUTES_BYTES:
        raise InvalidEntity(
            f"attributes are over {MAX_ATTRIBUTES_BYTES} bytes", code="invalid_attributes"
        )
    return attributes


def check_public_jwk(jwk: Any) -> tuple[str, dict[str, str | list[str]]]:
    """(kid, the JWK reduced to its public members) of an Ed25519 public JWK with a `kid`.

    Raises `InvalidEntity` for anything else."""
    if not isinstance(jwk, dict):
        raise InvalidEntity("a key must be a JWK object", code="invalid_jwk")
    if "d" in jwk:
        raise InvalidEntity(
            "this JWK holds a private key (`d`): send only the public key", code="invalid_jwk"
        )
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise InvalidEntity(
            "a key must be an Ed25519 JWK: kty OKP, crv Ed25519", code="invalid_jwk"
        )
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not KID.fullmatch(kid):
        raise InvalidEntity("a key needs a kid matching [A-Za-z0-9._-]{1,128}", code="invalid_jwk")
    alg = jwk.get("alg")
    if alg is not None and alg not in SIGNING_ALGORITHMS:
        raise InvalidEntity(
            f"a key's alg must be EdDSA or Ed25519, not {alg!r}", code="invalid_jwk"
        )
    if jwk.get("use", "sig") != "sig":
        raise InvalidEntity("a key's use must be sig", code="invalid_jwk")
    x = jwk.get("x")
    if not isinstance(x, str) or len(_b64url_decode(x)) != 32:
        raise InvalidEntity("x must be the 32-byte public key in base64url", code="invalid_jwk")
    public: dict[str, str | list[str]] = {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid}
    if alg is not None:
        public["alg"] = alg
    return kid, public


def check_reason(reason: Any) -> str | None:
    if reason is None:
        return None
    if not isinstance(reason, str) or len(reason) > MAX_REASON_LENGTH:
        raise InvalidEntity(
            f"reason must be a string of at most {MAX_REASON_LENGTH} characters",
            code="invalid_reason",
        )
    return reason


def _b64url_decode(text: str) -> bytes:
    # RFC 7515 §2: base64url without padding; padding and other alphabets are refused.
    if "=" in text or not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        return b""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return b""
