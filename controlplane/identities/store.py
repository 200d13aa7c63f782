"""The identity registry in Redis.

Each identity is one JSON document (`cp:identity:<id>`), changed only by optimistic transactions
(`WATCH`/`MULTI`), so that two admins changing one identity at once cannot lose either change.
Nothing is cached in process: a suspension, revocation or key revocation takes effect from the
next request on, on every replica, at the cost of one `GET` per authorization.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import WatchError

from controlplane import jsontext
from controlplane.clock import Clock, rfc3339
from controlplane.errors import Conflict, InvalidEntity, InvalidInput, NotFound
from controlplane.identities.models import (
    MAX_KEYS,
    Identity,
    IdentityKey,
    IdentityKind,
    IdentityStatus,
    KeyStatus,
    check_attributes,
    check_identity_id,
    check_public_jwk,
    check_reason,
)
from controlplane.redis_client import redis_errors

_KEY = "cp:identity:"
_INDEX = "cp:identities"  # sorted set, all scores 0, members are ids (lexicographic order)
MAX_PAGE_SIZE = 500
_MAX_ATTEMPTS = 16


@dataclass(frozen=True, slots=True)
class IdentityPage:
    items: list[Identity]
    next_cursor: str | None


class IdentityStore:
    def __init__(self, redis: Redis, clock: Clock) -> None:
        self._redis = redis
        self._clock = clock

    async def create(
        self, identity_id: str, kind: IdentityKind, attributes: Any, keys: list[Any]
    ) -> Identity:
        """Register a new identity. Raises `InvalidInput` (bad id, attributes or keys) or
        `Conflict` (the id exists)."""
        check_identity_id(identity_id, kind)
        now = rfc3339(self._clock.now())
        checked = [check_public_jwk(jwk) for jwk in keys]
        _check_key_set([kid for kid, _ in checked])
        identity = Identity(
            id=identity_id,
            kind=kind,
            status=IdentityStatus.ACTIVE,
            attributes=check_attributes(attributes),
            keys=tuple(IdentityKey(kid, jwk, KeyStatus.ACTIVE, now) for kid, jwk in checked),
            created_at=now,
            updated_at=now,
        )
        with redis_errors("creating an identity"):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(_KEY + identity_id, jsontext.dumps(identity.as_json()), nx=True)
                pipe.zadd(_INDEX, {identity_id: 0})
                created, _ = await pipe.execute()
        if not created:
            raise Conflict(f"identity {identity_id} already exists", code="identity_exists")
        return identity

    async def find(self, identity_id: str) -> Identity | None:
        """The identity, or None. Raises `RedisUnavailable` when Redis does not answer."""
        with redis_errors("reading an identity"):
            raw = await self._redis.get(_KEY + identity_id)
        return self.parse(raw)

    @staticmethod
    def key(identity_id: str) -> str:
        """The Redis key of an identity, for callers that read it inside their own script."""
        return _KEY + identity_id

    @staticmethod
    def parse(raw: bytes | str | None) -> Identity | None:
        """An identity as stored under `key(...)`, or None for a missing one."""
        return None if raw is None else Identity.from_json(jsontext.loads(raw))

    async def get(self, identity_id: str) -> Identity:
        identity = await self.find(identity_id)
        if identity is None:
            raise NotFound(f"no identity {identity_id!r}", code="identity_not_found")
        return identity

    async def list(
        self, *, cursor: str | None, limit: int, kind: IdentityKind | None = None
    ) -> IdentityPage:
        """Identities in id order, `limit` at a time, optionally of one kind."""
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE_SIZE}", code="invalid_limit")
        low = f"({cursor}" if cursor else (f"[{kind.value}:" if kind else "-")
        high = f"[{kind.value}:\xff" if kind else "+"
        with redis_errors("listing identities"):
            ids = await self._redis.zrangebylex(_INDEX, low, high, start=0, num=limit + 1)
            values = await self._redis.mget([_KEY + _text(i) for i in ids[:limit]]) if ids else []
        items = [Identity.from_json(jsontext.loads(v)) for v in values if v is not None]
        if kind is not None:
            items = [item for item in items if item.kind is kind]
        next_cursor = _text(ids[limit - 1]) if len(ids) > limit else None
        return IdentityPage(items, next_cursor)

    async def set_attributes(self, identity_id: str, attributes: Any) -> Identity:
        checked = check_attributes(attributes)
        return await self._update(identity_id, lambda i: i.with_changes(attributes=checked))

    async def suspend(self, identity_id: str, reason: Any = None) -> Identity:
        return await self._set_status(identity_id, IdentityStatus.SUSPENDED, reason)

    async def reactivate(self, identity_id: str, reason: Any = None) -> Identity:
        return await self._set_status(identity_id, IdentityStatus.ACTIVE, reason)

    async def revoke(self, identity_id: str, reason: Any = None) -> Identity:
        return await self._set_status(identity_id, IdentityStatus.REVOKED, reason)

    async def add_key(self, identity_id: str, jwk: Any) -> Identity:
        kid, public = check_public_jwk(jwk)

        def add(identity: Identity) -> Identity:
            _check_key_set([*(key.kid for key in identity.keys), kid])
            key = IdentityKey(kid, public, KeyStatus.ACTIVE, rfc3339(self._clock.now()))
            return identity.with_changes(keys=(*identity.keys, key))

        return await self._update(identity_id, add)

    async def revoke_key(self, identity_id: str, kid: str) -> Identity:
        def revoke(identity: Identity) -> Identity:
            key = identity.key(kid)
            if key is None:
                raise NotFound(f"{identity_id} has no key {kid!r}", code="key_not_found")
            if key.status is KeyStatus.REVOKED:
                return identity
            revoked = IdentityKey(
                key.kid, key.jwk, KeyStatus.REVOKED, key.added_at, rfc3339(self._clock.now())
            )
            keys = tuple(revoked if k.kid == kid else k for k in identity.keys)
            return identity.with_changes(keys=keys)

        return await self._update(identity_id, revoke)

    async def _set_status(self, identity_id: str, status: IdentityStatus, reason: Any) -> Identity:
        note = check_reason(reason)

        def change(identity: Identity) -> Identity:
            if identity.status is IdentityStatus.REVOKED and status is not IdentityStatus.REVOKED:
                raise Conflict(
                    f"{identity_id} is revoked; revocation is final", code="identity_revoked"
                )
            if identity.status is status:
                return identity
            return identity.with_changes(status=status, status_reason=note)

        return await self._update(identity_id, change)

    async def _update(self, identity_id: str, change: Callable[[Identity], Identity]) -> Identity:
        """Apply `change` atomically; retried when another writer got there first."""
        key = _KEY + identity_id
        with redis_errors("updating an identity"):
            async with self._redis.pipeline(transaction=True) as pipe:
                for _ in range(_MAX_ATTEMPTS):
                    try:
                        await pipe.watch(key)
                        raw = await pipe.get(key)
                        if raw is None:
                            raise NotFound(
                                f"no identity {identity_id!r}", code="identity_not_found"
                            )
                        current = Identity.from_json(jsontext.loads(raw))
                        changed = change(current)
                        if changed == current:
                            await pipe.unwatch()  # type: ignore[no-untyped-call]
                            return current
                        changed = changed.with_changes(updated_at=rfc3339(self._clock.now()))
                        pipe.multi()  # type: ignore[no-untyped-call]
                        pipe.set(key, jsontext.dumps(changed.as_json()))
                        await pipe.execute()
                    except WatchError:
                        continue
                    else:
                        return changed
        raise Conflict(f"{identity_id} is changing too often; try again", code="update_contended")


def _check_key_set(kids: list[str]) -> None:
    if len(kids) != len(set(kids)):
        raise InvalidEntity("each key of an identity needs its own kid", code="duplicate_kid")
    if len(kids) > MAX_KEYS:
        raise InvalidEntity(f"an identity holds at most {MAX_KEYS} keys", code="too_many_keys")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
