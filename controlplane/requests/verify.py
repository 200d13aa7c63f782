"""Verification of a signed execution request, in the fixed order of issue #3.

A request is a compact JWS (RFC 7515) signed by one of the identity's active Ed25519 keys, with
`typ: exec-request+jwt` (explicit typing, RFC 8725 §3.11) and the claims of DESIGN.md §5. The
checks run in this order, and the first that fails is the deny reason:

 1. `request_malformed`: header or payload not a JSON object, a claim missing or of the wrong type,
    an unknown `crit` extension (RFC 7515 §4.1.11), `args` not representable in RFC 8785;
 2. `request_type_invalid`: `typ` is not `exec-request+jwt`;
 3. `algorithm_not_allowed`: `alg` is not `EdDSA`/`Ed25519` (so `none`, HS256 with the public key
    as the secret, RS256 and ES256 never reach a verifier);
 4. `identity_unknown`, `identity_suspended`, `identity_revoked`: the registry's view of `iss`;
 5. `key_unknown`, `key_revoked`: the `kid` among the identity's keys;
 6. `signature_invalid`;
 7. `audience_invalid`: `aud` is not the discovery document's audience;
 8. `request_not_yet_valid`, `request_expired`, `request_lifetime_too_long`: `iat` and `exp`
    against the clock, with the configured skew;
 9. `request_replayed`: the `jti` was seen before (reserved with `SET NX` until the request
    expires, so a replay is refused on every replica; the reservation travels with step 4's
    lookup, see `_find_and_reserve`);
10. `parent_invalid`: `context.parent` does not name a grant of this identity, or one issued to it.

A Redis failure at any step is `redis_unavailable`. Nothing here raises for a bad request: every
outcome is a `VerifiedRequest` or a `RequestDenied`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from controlplane.canonical import canonical_json
from controlplane.clock import Clock
from controlplane.errors import InvalidInput, RedisUnavailable
from controlplane.grants.registry import GrantRegistry
from controlplane.identities.models import (
    NAME,
    Identity,
    IdentityStatus,
    KeyStatus,
    check_identity_id,
)
from controlplane.identities.store import IdentityStore
from controlplane.jose import (
    ED25519_ALGORITHMS,
    SignatureInvalidError,
    b64url_json,
    typ_is,
    verify_ed25519,
)
from controlplane.reasons import DenyReason
from controlplane.redis_client import redis_errors

REQUEST_TYPE = "exec-request+jwt"
_ACTION = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_JTI = re.compile(r"[A-Za-z0-9_.:-]{8,128}")
MAX_RESOURCE_LENGTH = 512
_REPLAY = "cp:request-jti:"
# KEYS: identity, jti reservation. ARGV: reservation TTL. Returns {identity JSON or false, fresh}.
_FIND_AND_RESERVE = """
local identity = redis.call('GET', KEYS[1])
if not identity then return {false, 0} end
local fresh = redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1])
return {identity, fresh and 1 or 0}
"""


@dataclass(frozen=True, slots=True)
class VerifiedRequest:
    identity: Identity
    kid: str
    claims: dict[str, Any]
    canonical: bytes  # RFC 8785 form of the claims, whose SHA-256 is a grant's `req`

    @property
    def context(self) -> dict[str, Any]:
        context = self.claims.get("context")
        return context if isinstance(context, dict) else {}


class RequestDeniedError(Exception):
    """The request failed a check: `reason` is the deny reason, `detail` is for the logs."""

    def __init__(self, reason: DenyReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class RequestVerifier:
    def __init__(
        self,
        identities: IdentityStore,
        grants: GrantRegistry,
        redis: Redis,
        clock: Clock,
        *,
        audience: str,
        max_lifetime_seconds: int,
        skew_seconds: int,
    ) -> None:
        self._identities = identities
        self._grants = grants
        self._redis = redis
        self._clock = clock
        self._audience = audience
        self._max_lifetime = max_lifetime_seconds
        self._skew = skew_seconds
        self._lookup = redis.register_script(_FIND_AND_RESERVE)

    async def verify(self, token: str) -> VerifiedRequest:
        """Check `token` (known to be a compact JWS) completely. Raises `RequestDeniedError`."""
        try:
            return await self._verify(token)
        except RedisUnavailable as exc:
            raise RequestDeniedError(DenyReason.REDIS_UNAVAILABLE, exc.detail) from exc

    async def _verify(self, token: str) -> VerifiedRequest:
        header, claims, canonical = _parse(token)
        identity, fresh_jti = await self._find_and_reserve(claims)
        if identity is None:
            raise _deny(DenyReason.IDENTITY_UNKNOWN, f"no identity {claims['iss']!r}")
        if identity.status is IdentityStatus.SUSPENDED:
            raise _deny(DenyReason.IDENTITY_SUSPENDED, f"{identity.id} is suspended")
        if identity.status is IdentityStatus.REVOKED:
            raise _deny(DenyReason.IDENTITY_REVOKED, f"{identity.id} is revoked")
        kid = header.get("kid")
        key = identity.key(kid) if isinstance(kid, str) else None
        if key is None or not isinstance(kid, str):
            raise _deny(DenyReason.KEY_UNKNOWN, f"{identity.id} has no key {kid!r}")
        if key.status is KeyStatus.REVOKED:
            raise _deny(DenyReason.KEY_REVOKED, f"key {kid!r} of {identity.id} is revoked")
        try:
            verify_ed25519(token, str(key.jwk["x"]))
        except SignatureInvalidError as exc:
            raise _deny(DenyReason.SIGNATURE_INVALID, f"signature does not verify: {exc}") from exc
        self._check_audience_and_time(claims)
        if not fresh_jti:
            raise _deny(DenyReason.REQUEST_REPLAYED, f"jti {claims['jti']!r} was already used")
        parent = claims.get("context", {}).get("parent")
        if parent is not None:
            await self._check_parent(identity.id, parent)
        return VerifiedRequest(identity, kid, claims, canonical)

    def _check_audience_and_time(self, claims: dict[str, Any]) -> None:
        if claims["aud"] != self._audience:
            raise _deny(DenyReason.AUDIENCE_INVALID, f"aud must be {self._audience!r}")
        now = self._clock.now().timestamp()
        if claims["iat"] > now + self._skew:
            raise _deny(DenyReason.REQUEST_NOT_YET_VALID, "iat is in the future")
        if claims["exp"] < now - self._skew:
            raise _deny(DenyReason.REQUEST_EXPIRED, "exp has passed")
        if claims["exp"] - claims["iat"] > self._max_lifetime:
            raise _deny(
                DenyReason.REQUEST_LIFETIME_TOO_LONG,
                f"a request may live at most {self._max_lifetime} s",
            )

    async def _find_and_reserve(self, claims: dict[str, Any]) -> tuple[Identity | None, bool]:
        """The registry's identity, and whether the `jti` was fresh: one round trip to Redis.

        The reservation is made here, before the signature is checked, to save a round trip on
        every request (each costs ~0.1 ms of CPU in redis-py); its result is reported only at its
        place in the order of checks. It is made only for a registered identity, and expires
        with the request, so unsigned traffic cannot fill Redis with reservations for made-up
        identities.
        """
        ttl = claims["exp"] - self._clock.now().timestamp() + self._skew
        bounded = min(max(1, int(ttl) + 1), self._max_lifetime + 2 * self._skew + 1)
        with redis_errors("reading the identity and reserving the request id"):
            raw, fresh = await self._lookup(
                keys=[
                    self._identities.key(claims["iss"]),
                    f"{_REPLAY}{claims['iss']}:{claims['jti']}",
                ],
                args=[bounded],
            )
        return self._identities.parse(raw), bool(fresh)

    async def _check_parent(self, identity_id: str, parent: str) -> None:
        grant = await self._grants.find(parent)
        if grant is None:
            raise _deny(DenyReason.PARENT_INVALID, f"no grant {parent!r}")
        # A child may come from the parent's requester, or from the identity the parent was
        # issued to (an executor that goes on to ask for the next step of the workflow).
        if identity_id not in (grant.get("sub"), grant.get("aud")):
            raise _deny(
                DenyReason.PARENT_INVALID, f"grant {parent!r} is not related to {identity_id}"
            )


def _parse(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    """Steps 1-3: the header, the claims and their canonical form, well formed, typed and
    signed with an allowed alg."""
    header_segment, payload_segment, _ = token.split(".")
    header, claims = b64url_json(header_segment), b64url_json(payload_segment)
    if header is None or claims is None:
        raise _deny(DenyReason.REQUEST_MALFORMED, "header or payload is not a JSON object")
    if "crit" in header:
        raise _deny(DenyReason.REQUEST_MALFORMED, "no `crit` extension is understood here")
    canonical = _check_claims(claims)
    if not typ_is(header, REQUEST_TYPE):
        raise _deny(DenyReason.REQUEST_TYPE_INVALID, f"typ must be {REQUEST_TYPE}")
    if header.get("alg") not in ED25519_ALGORITHMS:
        raise _deny(DenyReason.ALGORITHM_NOT_ALLOWED, f"alg {header.get('alg')!r} is refused")
    return header, claims, canonical


def _deny(reason: DenyReason, detail: str) -> RequestDeniedError:
    return RequestDeniedError(reason, detail)


def _check_claims(claims: dict[str, Any]) -> bytes:
    """The canonical form of the claim set of DESIGN.md §5, each claim of the right type;
    `request_malformed` otherwise."""
    problems: list[str] = []

    def need(name: str, ok: bool, what: str) -> None:
        if not ok:
            problems.append(f"{name} must be {what}")

    need(
        "iss", isinstance(claims.get("iss"), str) and _is_identity(claims["iss"]), "an identity id"
    )
    need("aud", isinstance(claims.get("aud"), str), "a string")
    for name in ("iat", "exp"):
        value = claims.get(name)
        need(name, type(value) in (int, float) and float(value or 0) > 0, "a NumericDate")
    need(
        "jti",
        isinstance(claims.get("jti"), str) and bool(_JTI.fullmatch(claims["jti"])),
        "a nonce of 8-128 characters",
    )
    need(
        "action",
        isinstance(claims.get("action"), str) and bool(_ACTION.fullmatch(claims["action"])),
        "an action name",
    )
    resource = claims.get("resource")
    need(
        "resource",
        isinstance(resource, str) and 0 < len(resource) <= MAX_RESOURCE_LENGTH,
        "a string",
    )
    need("args", isinstance(claims.get("args"), dict), "a JSON object")
    executor = claims.get("executor")
    need(
        "executor",
        executor is None or (isinstance(executor, str) and _is_identity(executor)),
        "an identity id",
    )
    context = claims.get("context", {})
    need("context", isinstance(context, dict), "a JSON object")
    if isinstance(context, dict):
        parent = context.get("parent")
        need(
            "context.parent",
            parent is None or (isinstance(parent, str) and bool(NAME.fullmatch(parent))),
            "a grant id",
        )
        workflow = context.get("workflow")
        need("context.workflow", workflow is None or isinstance(workflow, str), "a string")
    if problems:
        raise _deny(DenyReason.REQUEST_MALFORMED, "; ".join(problems))
    try:
        return canonical_json(claims)
    except InvalidInput as exc:
        raise _deny(DenyReason.REQUEST_MALFORMED, exc.detail) from exc


def _is_identity(value: str) -> bool:
    try:
        check_identity_id(value)
    except InvalidInput:
        return False
    return True
