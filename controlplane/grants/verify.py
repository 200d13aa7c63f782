"""Offline grant verification, for executors: is this grant valid for what I am about to run?

Usable inside any executor: it needs the control plane's JWKS (fetched once and cached, or pinned
in a file) and nothing else, no network call per grant. Its dependencies are PyNaCl (libsodium's
Ed25519), orjson and rfc8785. `verify` checks, in order, and raises `GrantRejectedError` naming
the first failure:

- `grant_malformed`: not a compact JWS, header or claims not JSON objects, claims missing;
- `grant_type_invalid`: `typ` is not `grant+jwt` (RFC 8725 §3.11: no other JWT passes for a grant);
- `algorithm_not_allowed`: `alg` is not `EdDSA`/`Ed25519`;
- `key_unknown`: no key of that `kid` in the JWKS; `signature_invalid`;
- `issuer_invalid` (when an issuer is expected), `audience_invalid` (the grant is for someone else);
- `grant_not_yet_valid`, `grant_expired` (`nbf`/`exp`, with `leeway` seconds);
- `action_mismatch`, `resource_mismatch`, `args_mismatch`: what is about to run is not what was
  authorized (the arguments are compared by the SHA-256 of their RFC 8785 form);
- `obligation_not_understood`: the grant carries an obligation the executor did not declare it
  fulfils; an executor that does not understand an obligation must not run (DESIGN.md §5).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from controlplane.canonical import sha256_hex
from controlplane.errors import InvalidInput, PermissionDenied
from controlplane.jose import (
    ED25519_ALGORITHMS,
    SignatureInvalidError,
    b64url_json,
    compact_jws,
    typ_is,
    verify_ed25519,
)

GRANT_TYPE = "grant+jwt"
DEFAULT_LEEWAY_SECONDS = 5


class GrantRejectedError(PermissionDenied):
    """The grant does not allow what is about to run; `code` says why."""

    default_code = "grant_invalid"
    title = "Grant rejected"


@dataclass(frozen=True, slots=True)
class VerifiedGrant:
    header: dict[str, Any]
    claims: dict[str, Any]

    @property
    def jti(self) -> str:
        return str(self.claims["jti"])

    @property
    def detail(self) -> dict[str, Any]:
        """The grant's one `authorization_details` entry of type `execution`."""
        return dict(self.claims["authorization_details"][0])

    @property
    def obligations(self) -> dict[str, Any]:
        return dict(self.claims.get("obligations") or {})


@dataclass(frozen=True, slots=True)
class PublishedKeys:
    """The Ed25519 keys of a JWKS document (RFC 7517 §5), by `kid`: `x` is the public key."""

    by_kid: dict[str, str]

    @classmethod
    def from_jwks(cls, jwks: Mapping[str, Any]) -> PublishedKeys:
        keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
        if not isinstance(keys, list):
            raise InvalidInput("not a JWKS: no `keys` list", code="invalid_jwks")
        return cls(
            {
                key["kid"]: key["x"]
                for key in keys
                if isinstance(key, dict)
                and key.get("kty") == "OKP"
                and key.get("crv") == "Ed25519"
                and isinstance(key.get("kid"), str)
                and isinstance(key.get("x"), str)
            }
        )


def published_keys(jwks: PublishedKeys | Mapping[str, Any]) -> PublishedKeys:
    return jwks if isinstance(jwks, PublishedKeys) else PublishedKeys.from_jwks(jwks)


def verify(
    token: str,
    jwks: PublishedKeys | Mapping[str, Any],
    *,
    audience: str,
    action: str | None = None,
    resource: str | None = None,
    args: Mapping[str, Any] | None = None,
    understood_obligations: Iterable[str] = (),
    issuer: str | None = None,
    leeway: int = DEFAULT_LEEWAY_SECONDS,
    now: float | None = None,
) -> VerifiedGrant:
    """The verified grant. Raises `GrantRejectedError` when it does not allow exactly this."""
    header, claims = _signed_parts(token, published_keys(jwks))
    if issuer is not None and claims.get("iss") != issuer:
        raise _reject("issuer_invalid", f"issued by {claims.get('iss')!r}, not {issuer!r}")
    if claims.get("aud") != audience:
        raise _reject("audience_invalid", f"issued to {claims.get('aud')!r}, not {audience!r}")
    moment = time.time() if now is None else now
    if _number(claims, "nbf") > moment + leeway:
        raise _reject("grant_not_yet_valid", "nbf is in the future")
    if _number(claims, "exp") < moment - leeway:
        raise _reject("grant_expired", "exp has passed")
    grant = VerifiedGrant(header, claims)
    detail = _execution_detail(claims)
    if action is not None and detail.get("action") != action:
        raise _reject("action_mismatch", f"the grant is for {detail.get('action')!r}")
    if resource is not None and detail.get("resource") != resource:
        raise _reject("resource_mismatch", f"the grant is for resource {detail.get('resource')!r}")
    if args is not None:
        try:
            digest = sha256_hex(dict(args))
        except InvalidInput as exc:
            raise _reject("args_mismatch", exc.detail) from exc
        if digest != detail.get("args_sha256"):
            raise _reject("args_mismatch", "the arguments differ from those authorized")
    unknown = sorted(set(grant.obligations) - set(understood_obligations))
    if unknown:
        raise _reject("obligation_not_understood", f"obligations not understood: {unknown}")
    return grant


def _signed_parts(token: str, keys: PublishedKeys) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        compact = compact_jws(token.encode() if isinstance(token, str) else token)
    except (InvalidInput, UnicodeEncodeError) as exc:
        raise _reject("grant_malformed", "not a compact JWS") from exc
    header = b64url_json(compact.split(".", 1)[0])
    if header is None:
        raise _reject("grant_malformed", "the header is not a JSON object")
    if not typ_is(header, GRANT_TYPE):
        raise _reject("grant_type_invalid", f"typ must be {GRANT_TYPE}")
    alg = header.get("alg")
    if alg not in ED25519_ALGORITHMS:
        raise _reject("algorithm_not_allowed", f"alg {alg!r} is refused")
    kid = header.get("kid")
    public_x = keys.by_kid.get(kid) if isinstance(kid, str) else None
    if public_x is None:
        raise _reject("key_unknown", f"no Ed25519 key {kid!r} in the JWKS")
    try:
        payload = verify_ed25519(compact, public_x)
    except SignatureInvalidError as exc:
        raise _reject("signature_invalid", "the signature does not verify") from exc
    try:
        claims = orjson.loads(payload)
    except ValueError as exc:
        raise _reject("grant_malformed", "the claims are not JSON") from exc
    if not isinstance(claims, dict):
        raise _reject("grant_malformed", "the claims are not a JSON object")
    return header, claims


def _execution_detail(claims: dict[str, Any]) -> dict[str, Any]:
    details = claims.get("authorization_details")
    if (
        not isinstance(details, list)
        or len(details) != 1
        or not isinstance(details[0], dict)
        or details[0].get("type") != "execution"
    ):
        raise _reject("grant_malformed", "authorization_details must hold one execution entry")
    if not isinstance(claims.get("jti"), str) or not isinstance(
        claims.get("obligations", {}), dict
    ):
        raise _reject("grant_malformed", "jti and obligations are missing or of the wrong type")
    return details[0]


def _number(claims: dict[str, Any], name: str) -> float:
    value = claims.get(name)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _reject("grant_malformed", f"{name} must be a NumericDate")
    return float(value)


def _reject(code: str, detail: str) -> GrantRejectedError:
    return GrantRejectedError(detail, code=code)
