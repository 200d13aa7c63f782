"""What the control plane remembers about the grants it issued: their claims, their single
consumption, their outcome and their children (the lineage links of issue #3).

Each change is written together with its evidence record by one Redis script, which appends the
record first: a script stops at its first failing command, so the registry and the evidence
stream cannot disagree. A grant is registered exactly when its `cp.authorization` record is
appended, a consumption exactly when its `cp.consume` record is, an outcome exactly when its
`cp.outcome` record is.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from controlplane import jsontext
from controlplane.errors import Conflict, NotFound
from controlplane.ledger.evidence import STREAM_KEY, stream_entry
from controlplane.redis_client import redis_errors

# cp:grant:<jti> holds the claims; cp:grant:<jti>:consumed, :outcome and :children its lineage.
_GRANT = "cp:grant:"

# The evidence first: if the XADD fails, the script stops there and nothing else is written.
# KEYS: stream, grant, parent's children set or "". ARGV: claims, ttl, jti, then the entry.
_REGISTER = """
redis.call('XADD', KEYS[1], '*', unpack(ARGV, 4))
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
if KEYS[3] ~= '' then
  redis.call('SADD', KEYS[3], ARGV[3])
  redis.call('EXPIRE', KEYS[3], ARGV[2])
end
return 1
"""

# KEYS: grant, marker (consumed or outcome), prerequisite marker or "" , stream.
# ARGV: marker value, ttl seconds, then the evidence entry as field/value pairs.
# Returns "unknown" | "missing_prerequisite" | "already" | "ok".
_MARK_ONCE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'unknown' end
if KEYS[3] ~= '' and redis.call('EXISTS', KEYS[3]) == 0 then return 'missing_prerequisite' end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'already' end
redis.call('XADD', KEYS[4], '*', unpack(ARGV, 3))
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
return 'ok'
"""


class GrantRegistry:
    def __init__(self, redis: Redis, *, retention_seconds: int) -> None:
        self._redis = redis
        self._retention = retention_seconds
        self._mark_once = redis.register_script(_MARK_ONCE)
        self._register = redis.register_script(_REGISTER)

    async def register(self, claims: dict[str, Any], record: dict[str, Any]) -> None:
        """Remember an issued grant and append its `cp.authorization` record, atomically."""
        jti = claims["jti"]
        parent = claims.get("parent")
        args: list[str | bytes | int] = [jsontext.dumps(claims), self._retention, jti]
        for field, value in stream_entry(record).items():
            args += (field, value)
        keys = [
            STREAM_KEY,
            _GRANT + jti,
            f"{_GRANT}{parent}:children" if isinstance(parent, str) else "",
        ]
        with redis_errors("registering a grant"):
            await self._register(keys=keys, args=args)

    async def find(self, jti: str) -> dict[str, Any] | None:
        with redis_errors("reading a grant"):
            raw = await self._redis.get(_GRANT + jti)
        return None if raw is None else dict(jsontext.loads(raw))

    async def consume(self, jti: str, marker: dict[str, Any], record: dict[str, Any]) -> None:
        """Mark the grant consumed, once. Raises `NotFound` or `Conflict`."""
        await self._mark(jti, "consumed", None, marker, record)

    async def report_outcome(
        self, jti: str, marker: dict[str, Any], record: dict[str, Any]
    ) -> None:
        """Record the grant's outcome, once, after its consumption. Raises `NotFound`/`Conflict`."""
        await self._mark(jti, "outcome", "consumed", marker, record)

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
        record: dict[str, Any],
    ) -> None:
        entry = stream_entry(record)
        args: list[str | bytes | int] = [jsontext.dumps(marker), self._retention]
        for field, value in entry.items():
            args += (field, value)
        keys = [
            _GRANT + jti,
            f"{_GRANT}{jti}:{what}",
            f"{_GRANT}{jti}:{prerequisite}" if prerequisite else "",
            STREAM_KEY,
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
