"""Ingest of OPA's decision logs (`POST /v1/logs`) into the ledger: decode, bound, deduplicate.

OPA uploads gzip-compressed JSON arrays of `EventV1` objects and re-sends a whole chunk whenever it
did not get a 2xx, including when we stored it but the answer was lost (OPA docs
`management-decision-logs.md`; `v1/plugins/logs/plugin.go`). Each event becomes an `opa.decision`
ledger record whose dedupe key is its `decision_id`: the ledger's append Function skips an event
whose key was taken within the dedupe window, and takes the key in the same atomic step that
appends the entry, so no failed append ever leaves a key behind that would turn OPA's retry into a
silent 2xx. The route answers 2xx only once a signed checkpoint covers every event of the upload,
the new ones and the ones found already in (`Ledger.append`).

An event that can never become a record (not an object, no usable `decision_id`, a number outside
RFC 8785's range) must not block OPA's upload queue, since OPA re-sends a refused chunk forever:
it is answered 2xx and kept as a `cp.quarantine` record carrying the event's digest and the error,
itself deduplicated on that digest. Only transient failures answer non-2xx.

Everything is bounded: the compressed body (API middleware), the decompressed size (a gzip bomb is
refused as soon as it inflates past the limit, without being read to the end), the number of events
per upload, and the ledger's stream, which refuses OPA's events (HTTP 503, so OPA keeps them) once
it holds its maximum, rather than dropping anything.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import zlib
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from controlplane import jsontext
from controlplane.errors import InvalidInput, TooLarge, Unavailable, UnsupportedMediaType
from controlplane.ledger.evidence import RECORD_VERSION, EvidenceLog, ledger_entry
from controlplane.ledger.log import ENTRIES_KEY, MAX_BATCH_ENTRIES, Entry
from controlplane.observability.metrics import Metrics
from controlplane.redis_client import redis_errors

MAX_DECISION_ID_LENGTH = 256
OPA_DECISION = "opa.decision"
QUARANTINE = "cp.quarantine"
_GZIP_WBITS = 16 + zlib.MAX_WBITS


@dataclass(frozen=True, slots=True)
class IngestResult:
    received: int
    appended: int
    quarantined: int

    @property
    def duplicates(self) -> int:
        return self.received - self.appended - self.quarantined


def decode_upload(
    body: bytes,
    content_encoding: str | None,
    *,
    max_decompressed: int,
    max_events: int,
    received_at: str,
) -> list[Entry]:
    """The ledger entries of one upload, in order: an `opa.decision` record per event, or a
    `cp.quarantine` record for an event that cannot be one. Raises `InvalidInput`, `TooLarge` or
    `UnsupportedMediaType` when the upload as a whole is not a decision-log chunk."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "gzip":
        text = gunzip_bounded(body, max_decompressed)
    elif encoding == "identity":
        if len(body) > max_decompressed:
            raise TooLarge(f"decision-log upload is over {max_decompressed} bytes")
        text = body
    else:
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported; use gzip")
    events = jsontext.loads(text)
    if not isinstance(events, list):
        raise InvalidInput("a decision-log upload is a JSON array of events", code="invalid_events")
    if len(events) > max_events:
        raise TooLarge(f"decision-log upload has more than {max_events} events")
    return [entry_of_event(event, received_at) for event in events]


def gunzip_bounded(data: bytes, limit: int) -> bytes:
    """Inflate gzip `data` (one or more members, RFC 1952 §2.2), refusing to pass `limit` bytes."""
    out = bytearray()
    remaining = data
    try:
        while remaining:
            inflater = zlib.decompressobj(wbits=_GZIP_WBITS)
            pending = remaining
            while pending and not inflater.eof:
                # Ask for at most one byte more than allowed: enough to know the limit is passed.
                out += inflater.decompress(pending, limit + 1 - len(out))
                if len(out) > limit:
                    raise TooLarge(f"decision-log upload inflates to more than {limit} bytes")
                pending = inflater.unconsumed_tail
            if not inflater.eof:
                raise InvalidInput("gzip body is truncated", code="invalid_gzip")
            remaining = inflater.unused_data
    except zlib.error as exc:
        raise InvalidInput(f"body is not valid gzip: {exc}", code="invalid_gzip") from exc
    return bytes(out)


def entry_of_event(event: Any, received_at: str) -> Entry:
    """The ledger entry of one decision-log event: `opa.decision`, or `cp.quarantine`."""
    problem = _problem(event)
    if problem is None:
        record = {
            "v": RECORD_VERSION,
            "kind": OPA_DECISION,
            "time": received_at,
            "decision_id": event["decision_id"],
            "event": {k: v for k, v in event.items() if k != "input"},
            "input": event.get("input"),  # committed, not logged (records.py)
        }
        try:
            return ledger_entry(record)
        except InvalidInput as exc:
            problem = exc.detail
    return _quarantine(event, problem, received_at)


def _problem(event: Any) -> str | None:
    """Why `event` cannot be an `opa.decision` record, or None."""
    if not isinstance(event, dict):
        return "the event is not a JSON object"
    decision_id = event.get("decision_id")
    if not isinstance(decision_id, str) or not 0 < len(decision_id) <= MAX_DECISION_ID_LENGTH:
        return f"the event has no decision_id of 1 to {MAX_DECISION_ID_LENGTH} characters"
    # OPA always sends labels and timestamp (EventV1); an event without them is not from OPA.
    if not isinstance(event.get("labels"), dict) or not isinstance(event.get("timestamp"), str):
        return "the event lacks labels or timestamp"
    return None


def _quarantine(event: Any, problem: str, received_at: str) -> Entry:
    # The standard library's encoder takes what RFC 8785 refuses (huge integers, infinities),
    # so every event that parsed has a digest.
    raw = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "replace")
    digest = hashlib.sha256(raw).hexdigest()
    decision_id = event.get("decision_id") if isinstance(event, dict) else None
    record = {
        "v": RECORD_VERSION,
        "kind": QUARANTINE,
        "time": received_at,
        "source": "opa.decision_log",
        "event_sha256": digest,
        "event_decision_id": decision_id if isinstance(decision_id, str) else None,
        "error": problem,
    }
    entry = ledger_entry(record)
    return entry._replace(seen="quarantine:" + digest)


class DecisionLogStore:
    """OPA's decision-log events into the ledger, each decision once."""

    def __init__(
        self, redis: Redis, evidence: EvidenceLog, metrics: Metrics, *, max_entries: int
    ) -> None:
        self._redis = redis
        self._evidence = evidence
        self._metrics = metrics
        self._max_entries = max_entries

    async def append(self, entries: list[Entry]) -> IngestResult:
        """Append the entries not in the ledger yet; returns once a signed checkpoint covers
        them all.

        Raises `RedisUnavailable` (or another `Unavailable`) when they cannot all be appended:
        OPA re-sends the chunk and what did get in is deduplicated. Raises `Unavailable` with
        code `decision_log_stream_full` when the ledger's stream holds its maximum.
        """
        with redis_errors("measuring the ledger stream"):
            length = int(await self._redis.xlen(ENTRIES_KEY))
        if length + len(entries) > self._max_entries:
            raise Unavailable(
                f"the ledger stream holds {length} entries, at most {self._max_entries}: the "
                "archiver must catch up and trim it",
                code="decision_log_stream_full",
            )
        # Batches go in together: the ledger's group commit packs them, one checkpoint each.
        results = await asyncio.gather(
            *[
                self._evidence.append_entries(entries[start : start + MAX_BATCH_ENTRIES])
                for start in range(0, len(entries), MAX_BATCH_ENTRIES)
            ]
        )
        appended = quarantined = 0
        for start, result in zip(range(0, len(entries), MAX_BATCH_ENTRIES), results, strict=True):
            for entry, new in zip(entries[start:], result.appended, strict=False):
                if new and entry.kind == OPA_DECISION:
                    appended += 1
                elif entry.kind == QUARANTINE:
                    quarantined += 1
        self._metrics.log_events_received.inc(len(entries))
        self._metrics.log_events_deduplicated.inc(len(entries) - appended - quarantined)
        self._metrics.log_events_quarantined.inc(quarantined)
        return IngestResult(len(entries), appended, quarantined)
