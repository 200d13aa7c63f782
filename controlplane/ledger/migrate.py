"""Moves the foundation's evidence stream (`{cp:evidence}:records`, before the ledger) into the
ledger, once, at start.

That stream held versioned `cp.*` records as RFC 8785 JSON and OPA's decision-log events as sent.
Each becomes a ledger entry in stream order (an OPA event becomes an `opa.decision` record, deduped
on its `decision_id` as at ingest; personal fields are committed), and each batch is deleted from
the old stream once a checkpoint covers it, so an interrupted migration resumes where it stopped.
A crash between an append and its delete re-appends that batch's `cp.*` records on the next start:
visible as repeated records, never as a loss.
"""

from __future__ import annotations

import logging
from typing import Any

from redis.asyncio import Redis

from controlplane import jsontext
from controlplane.clock import Clock, rfc3339
from controlplane.ledger.decision_logs import OPA_DECISION, entry_of_event
from controlplane.ledger.evidence import ledger_entry
from controlplane.ledger.log import MAX_BATCH_ENTRIES, Entry, Ledger
from controlplane.redis_client import redis_errors

OLD_STREAM = "{cp:evidence}:records"

log = logging.getLogger(__name__)


async def migrate_evidence_stream(redis: Redis, ledger: Ledger, clock: Clock) -> int:
    """Move every record of the old stream into `ledger`; returns how many were moved."""
    moved = 0
    while True:
        with redis_errors("reading the old evidence stream"):
            rows: Any = await redis.xrange(OLD_STREAM, "-", "+", count=MAX_BATCH_ENTRIES)
        if not rows:
            break
        at = rfc3339(clock.now())
        await ledger.append([_entry(fields, at) for _, fields in rows])
        with redis_errors("deleting migrated evidence"):
            await redis.xdel(OLD_STREAM, *[stream_id for stream_id, _ in rows])
        moved += len(rows)
    if moved:
        log.info("moved %d records of %s into the ledger", moved, OLD_STREAM)
    return moved


def _entry(fields: dict[bytes, bytes], at: str) -> Entry:
    value = jsontext.loads(fields[b"record"])
    if fields.get(b"kind") == OPA_DECISION.encode():
        return entry_of_event(value, at)
    return ledger_entry(value)
