"""The append-only evidence stream: every record the control plane keeps, in one Redis stream.

Records are versioned (`{"v": 1, "kind": ..., "time": ..., ...}`, DESIGN.md §5) and stored as
their RFC 8785 canonical JSON, the form the ledger (issue #5) will hash into its Merkle log. OPA's
decision-log events share the stream (`decision_logs.py`, kind `opa.decision`); the control plane
appends its own kinds here (`cp.authorization`, `cp.consume`, `cp.outcome`, ...).

An append returns only once Redis has the record, so callers can put "appended" before "signed"
(a grant is signed only after its `cp.authorization` record is stored).
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from controlplane.canonical import canonical_json
from controlplane.clock import Clock, rfc3339
from controlplane.redis_client import redis_errors

# One hash tag for every key of the evidence, so that scripts can touch them together (Cluster).
STREAM_KEY = "{cp:evidence}:records"
RECORD_VERSION = 1


class EvidenceLog:
    def __init__(self, redis: Redis, clock: Clock) -> None:
        self._redis = redis
        self._clock = clock

    def record(self, kind: str, **fields: Any) -> dict[str, Any]:
        """A versioned record of `kind`, stamped with the current time."""
        return {"v": RECORD_VERSION, "kind": kind, "time": rfc3339(self._clock.now()), **fields}

    async def append(self, record: dict[str, Any]) -> str:
        """Store `record`; returns its stream id. Raises `InvalidInput` if it is not canonical
        JSON and `RedisUnavailable` when Redis does not take it."""
        with redis_errors(f"appending a {record['kind']} record"):
            stream_id = await self._redis.xadd(STREAM_KEY, stream_entry(record))  # type: ignore[arg-type]
        return stream_id.decode() if isinstance(stream_id, bytes) else str(stream_id)


def stream_entry(record: dict[str, Any]) -> dict[str, bytes | str]:
    """The stream fields of a record: its kind, its canonical JSON, and its decision_id if any
    (so that every record of one decision can be found)."""
    entry: dict[str, bytes | str] = {"kind": record["kind"], "record": canonical_json(record)}
    if isinstance(record.get("decision_id"), str):
        entry["decision_id"] = record["decision_id"]
    return entry
