"""Bearer tokens kept hashed in Redis, checked in constant time, cached briefly in process.

A token is a high-entropy secret (`cp_` + 32 random bytes, base64url). Redis stores only its
SHA-256 digest under an id made of the digest's first 16 hex digits; authentication looks the id
up and compares the full digest with `hmac.compare_digest`. Because tokens are random, a fast hash
is the right tool here (a password hash would only slow every request down).

A positive check is cached in process for `cache_seconds`, so a revoked token keeps working on
other replicas for at most that long; a failed check is never cached, so a new token works at once.
The bootstrap admin token comes from the settings and is held only as a digest, never in Redis:
it is the credential that creates all the others.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from redis.asyncio import Redis

from controlplane.clock import Clock, rfc3339
from controlplane.errors import InvalidInput, NotAuthenticated, NotFound
from controlplane.redis_client import redis_errors
from controlplane.tokens.roles import Role

TOKEN_PREFIX = "cp_"  # noqa: S105 (a prefix, so that secret scanners can spot our tokens)
MAX_NAME_LENGTH = 128
MAX_PAGE_SIZE = 500
MAX_TOKEN_LENGTH = 512
_KEY = "cp:token:"
_INDEX = "cp:tokens"  # sorted set, all scores 0, members "<created µs, 16 digits>.<id>"
BOOTSTRAP_ADMIN_ID = "bootstrap-admin"

# Record and index entry are written together or not at all, and only for a new token.
_INSERT_IF_ABSENT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return 1
"""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's id, role and name."""

    token_id: str
    role: Role
    name: str


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: str
    role: Role
    name: str
    created_at: str
    revoked_at: str | None

    def as_json(self) -> dict[str, str | None]:
        return {
            "id": self.id,
            "role": self.role.value,
            "name": self.name,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


@dataclass(frozen=True, slots=True)
class TokenPage:
    items: list[TokenRecord]
    next_cursor: str | None


def digest_of(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_id_of(digest: str) -> str:
    return digest[:16]


class TokenStore:
    def __init__(
        self,
        redis: Redis,
        clock: Clock,
        *,
        cache_seconds: float,
        cache_entries: int,
        bootstrap_admin_token: str | None,
    ) -> None:
        self._redis = redis
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._cache_entries = cache_entries
        self._cache: OrderedDict[str, tuple[str, Principal, float]] = OrderedDict()
        self._bootstrap_digest = digest_of(bootstrap_admin_token) if bootstrap_admin_token else None
        self._insert = redis.register_script(_INSERT_IF_ABSENT)

    async def authenticate(self, token: str) -> Principal:
        """The principal a bearer token stands for.

        Raises `NotAuthenticated` for an unknown or revoked token and `RedisUnavailable` when the
        token cannot be checked; never returns a principal it could not verify.
        """
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise NotAuthenticated("bearer token missing or malformed")
        digest = digest_of(token)
        if self._bootstrap_digest is not None and hmac.compare_digest(
            digest, self._bootstrap_digest
        ):
            return Principal(BOOTSTRAP_ADMIN_ID, Role.ADMIN, "bootstrap admin")
        token_id = token_id_of(digest)
        cached = self._cache.get(token_id)
        if cached is not None:
            cached_digest, principal, expires = cached
            if self._clock.monotonic() < expires and hmac.compare_digest(digest, cached_digest):
                return principal
            del self._cache[token_id]
        with redis_errors("checking a token"):
            fields = _text(await self._redis.hgetall(_KEY + token_id))
        if not fields or "revoked_at" in fields:
            raise NotAuthenticated("unknown or revoked token")
        if not hmac.compare_digest(digest, fields["digest"]):
            raise NotAuthenticated("unknown or revoked token")
        principal = Principal(token_id, Role(fields["role"]), fields["name"])
        self._remember(token_id, digest, principal)
        return principal

    async def create(self, role: Role, name: str) -> tuple[str, TokenRecord]:
        """Mint a new random token; the secret is returned once and never stored."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        return token, await self.ensure(token, role, name)

    async def ensure(self, token: str, role: Role, name: str) -> TokenRecord:
        """Register a given token (for example the one `controlplane up` writes for OPA).

        Idempotent: registering the same token again returns the existing record.
        """
        _check_name(name)
        if len(token) < 32 or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidInput("a token must be 32 to 512 characters long", code="invalid_token")
        digest = digest_of(token)
        token_id = token_id_of(digest)
        created = self._clock.now()
        record = TokenRecord(token_id, role, name, rfc3339(created), None)
        member = f"{int(created.timestamp() * 1_000_000):016d}.{token_id}"
        with redis_errors("storing a token"):
            created_now = await self._insert(
                keys=[_KEY + token_id, _INDEX],
                args=[
                    member,
                    *("digest", digest, "role", role.value, "name", name),
                    *("created_at", record.created_at, "index_member", member),
                ],
            )
            if not created_now:
                return _record(token_id, _text(await self._redis.hgetall(_KEY + token_id)))
        return record

    async def list(self, *, cursor: str | None, limit: int) -> TokenPage:
        """Tokens in creation order, `limit` at a time; `next_cursor` continues the listing."""
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE_SIZE}", code="invalid_limit")
        start = b"-" if cursor is None else b"(" + cursor.encode()
        with redis_errors("listing tokens"):
            members = await self._redis.zrangebylex(_INDEX, start, b"+", start=0, num=limit + 1)
            async with self._redis.pipeline(transaction=False) as pipe:
                for member in members[:limit]:
                    pipe.hgetall(_KEY + _id_of(member))
                rows = await pipe.execute()
        items = [
            _record(_id_of(member), _text(row))
            for member, row in zip(members[:limit], rows, strict=True)
            if row
        ]
        last = members[limit - 1] if len(members) > limit else None
        next_cursor = last.decode() if isinstance(last, bytes) else last
        return TokenPage(items, next_cursor)

    async def revoke(self, token_id: str) -> TokenRecord:
        """Revoke a token from the next check on (other replicas: within the cache time)."""
        with redis_errors("revoking a token"):
            fields = _text(await self._redis.hgetall(_KEY + token_id))
            if not fields:
                raise NotFound(f"no token with id {token_id!r}", code="token_not_found")
            if "revoked_at" not in fields:
                revoked_at = rfc3339(self._clock.now())
                # HSETNX keeps the first revocation time when two admins revoke at once.
                await self._redis.hsetnx(_KEY + token_id, "revoked_at", revoked_at)
                fields = _text(await self._redis.hgetall(_KEY + token_id))
        self._cache.pop(token_id, None)
        return _record(token_id, fields)

    def _remember(self, token_id: str, digest: str, principal: Principal) -> None:
        if self._cache_seconds <= 0:
            return
        if len(self._cache) >= self._cache_entries:
            self._cache.popitem(last=False)
        self._cache[token_id] = (digest, principal, self._clock.monotonic() + self._cache_seconds)


def _check_name(name: str) -> None:
    if not name or len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise InvalidInput(
            f"a token name must be 1 to {MAX_NAME_LENGTH} printable characters",
            code="invalid_token_name",
        )


def _text(fields: Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in fields.items()
    }


def _id_of(member: bytes | str) -> str:
    text = member.decode() if isinstance(member, bytes) else member
    return text.split(".", 1)[1]


def _record(token_id: str, fields: dict[str, str]) -> TokenRecord:
    return TokenRecord(
        id=token_id,
        role=Role(fields["role"]),
        name=fields["name"],
        created_at=fields["created_at"],
        revoked_at=fields.get("revoked_at"),
    )
