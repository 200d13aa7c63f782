"""What the control plane remembers about the grants it issued: their claims, their single
consumption, their outcome and their children (the lineage links of issue #3).

The evidence of each is a ledger record, appended by the caller (`decisions.authorize`,
`grants.consumption`): a grant is registered only after its `cp.authorization` record is in the
ledger, and a consumption or outcome is marked first (so that only one caller can win it), then
recorded, and unmarked again (`release`) if its record cannot be appended.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from controlplane import jsontext
from controlplane.errors import Conflict, NotFound
from controlplane.redis_client import redis_errors

# cp:grant:<jti> holds the claims; cp:grant:<jti>:consumed, :outcome and :children its lineage.
_GRANT = "cp:grant:"

# KEYS: grant, parent's children set or "". ARGV: claims, ttl, jti.
_REGISTER = """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
if KEYS[2] ~= '' then
  redis.call('SADD', KEYS[2], ARGV[3])
  redis.call('EXPIRE', KEYS[2], ARGV[2])
end
return 1
"""

# KEYS: grant, marker (consumed or outcome), prerequisite marker or "". ARGV: marker value, ttl.
# Returns "unknown" | "missing_prerequisite" | "already" | "ok".
_MARK_ONCE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'unknown' end
if KEYS[3] ~= '' and redis.call('EXISTS', KEYS[3]) == 0 then return 'missing_prerequisite' end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'EX', ARGV[2]) then return 'ok' end
return 'already'
"""

# KEYS: marker. ARGV: the value this caller set. Deletes it only if it is still that value.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class GrantRegistry:
    def __init__(self, redis: Redis, *, retention_seconds: int) -> None:
        self._redis = redis
        self._retention = retention_seconds
        self._mark_once = redis.register_script(_MARK_ONCE)
        self._register = redis.register_script(_REGISTER)
        self._release = redis.register_script(_RELEASE)

    async def register(self, claims: dict[str, Any]) -> None:
        """Remember an issued grant (and link it to its parent)."""
        jti = claims["jti"]
        parent = claims.get("parent")
        args: list[str | bytes | int] = [jsontext.dumps(claims), self._retention, jti]
        keys = [_GRANT + jti, f"{_GRANT}{parent}:children" if isinstance(parent, str) else ""]
        with redis_errors("registering a grant"):
            await self._register(keys=keys, args=args)

    async def find(self, jti: str) -> dict[str, Any] | None:
        with redis_errors("reading a grant"):
            raw = await self._redis.get(_GRANT + jti)
        return None if raw is None else dict(jsontext.loads(raw))

    async def consume(self, jti: str, marker: dict[str, Any]) -> bytes:
        """Mark the grant consumed, once. Raises `NotFound` or `Conflict`. Returns the stored
        marker, for `release`."""
        return await self._mark(jti, "consumed", None, marker)

    async def report_outcome(self, jti: str, marker: dict[str, Any]) -> bytes:
        """Mark the grant's outcome, once, after its consumption. Raises `NotFound`/`Conflict`.
        Returns the stored marker, for `release`."""
        return await self._mark(jti, "outcome", "consumed", marker)

    async def release(self, jti: str, what: str, stored: bytes) -> None:
        """Undo a consumption or outcome whose evidence could not be appended, unless another
        caller's marker replaced it meanwhile."""
        with redis_errors(f"releasing a grant's {what}"):
            await self._release(keys=[f"{_GRANT}{jti}:{what}"], args=[stored])

    async def lineage(self, jti: str) -> dict[str, Any]:
        """The grant, its consumption, its outcome and its children, for auditors and tools."""
        with redis_errors("reading a grant's lineage"):
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.get(_GRANT + jti)
                pipe.get(f"{_GRANT}{jti}:consumed")
                pipe.get(f"{_GRANT}{jti}:outcome")
                pipe.smembers(f"{_GRANT}{jti}:children")
                grant, consumed, outcome, children = await pipe.execute()
        if grant is None:
            raise NotFound(
                f"no grant {jti!r} (unknown, or older than the retention)", code="grant_unknown"
            )
        return {
            "grant": jsontext.loads(grant),
            "consumed": None if consumed is None else jsontext.loads(consumed),
            "outcome": None if outcome is None else jsontext.loads(outcome),
            "children": sorted(c.decode() if isinstance(c, bytes) else c for c in children),
        }

    async def _mark(
        self,
        jti: str,
        what: str,
        prerequisite: str | None,
        marker: dict[str, Any],
    ) -> bytes:
        stored = jsontext.dumps(marker)
        args: list[str | bytes | int] = [stored, self._retention]
        keys = [
            _GRANT + jti,
            f"{_GRANT}{jti}:{what}",
            f"{_GRANT}{jti}:{prerequisite}" if prerequisite else "",
        ]
        with redis_errors(f"recording a grant's {what}"):
            result = await self._mark_once(keys=keys, args=args)
        status = result.decode() if isinstance(result, bytes) else str(result)
        if status == "unknown":
            raise NotFound(
                f"no grant {jti!r} (unknown, or older than the retention)", code="grant_unknown"
            )
        if status == "missing_prerequisite":
            raise Conflict(
                f"grant {jti} must be consumed before its outcome", code="grant_not_consumed"
            )
        if status == "already":
            code = "grant_already_consumed" if what == "consumed" else "outcome_already_reported"
            raise Conflict(f"grant {jti} is already {what}", code=code)
        return stored
