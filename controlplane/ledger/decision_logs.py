"""Ingest of OPA's decision logs (`POST /v1/logs`): decode, bound, deduplicate, append.

OPA uploads gzip-compressed JSON arrays of `EventV1` objects and re-sends a whole chunk whenever it
did not get a 2xx, including when we stored it but the answer was lost (OPA docs
`management-decision-logs.md`; `v1/plugins/logs/plugin.go`). So the append is idempotent on
`decision_id`: one Lua script, atomic in Redis, reserves each id for a dedupe window and appends
only the events whose id was new. The route answers 2xx only after that script returned for every
batch of the upload, and Redis runs with `appendfsync always` in the dev stack, so an acknowledged
event is on disk.

Everything is bounded: the compressed body (API middleware), the decompressed size (a gzip bomb is
refused as soon as it inflates past the limit, without being read to the end), the number of events
per upload, and the stream itself, which refuses new events (HTTP 503, so OPA keeps them) rather
than dropping old ones.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from redis.asyncio import Redis

from controlplane import jsontext
from controlplane.errors import InvalidInput, TooLarge, Unavailable, UnsupportedMediaType
from controlplane.ledger.evidence import STREAM_KEY
from controlplane.observability.metrics import Metrics
from controlplane.redis_client import redis_errors

SEEN_PREFIX = "{cp:evidence}:seen:"  # same hash tag as the stream: one Cluster slot
MAX_DECISION_ID_LENGTH = 256
APPEND_BATCH = 50
_GZIP_WBITS = 16 + zlib.MAX_WBITS

# ARGV: dedupe TTL, max stream length, seen-key prefix, then (decision_id, event) pairs.
# Returns the number appended, or -1 if appending all of them would pass the stream's cap.
_APPEND_NEW = """
local n = (#ARGV - 3) / 2
if redis.call('XLEN', KEYS[1]) + n > tonumber(ARGV[2]) then return -1 end
local appended = 0
for i = 0, n - 1 do
  local id = ARGV[4 + 2 * i]
  if redis.call('SET', ARGV[3] .. id, '1', 'NX', 'EX', ARGV[1]) then
    redis.call('XADD', KEYS[1], '*', 'kind', 'opa.decision', 'decision_id', id,
               'record', ARGV[5 + 2 * i])
    appended = appended + 1
  end
end
return appended
"""


@dataclass(frozen=True, slots=True)
class LogEvent:
    decision_id: str
    text: bytes  # the event as compact JSON


@dataclass(frozen=True, slots=True)
class IngestResult:
    received: int
    appended: int

    @property
    def duplicates(self) -> int:
        return self.received - self.appended


def decode_upload(
    body: bytes, content_encoding: str | None, *, max_decompressed: int, max_events: int
) -> list[LogEvent]:
    """The events of one upload. Raises `InvalidInput`, `TooLarge` or `UnsupportedMediaType`.

    The whole upload is checked before anything is stored: one bad event refuses the upload.
    """
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
    return [_event(position, event) for position, event in enumerate(events)]


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


def _event(position: int, event: object) -> LogEvent:
    if not isinstance(event, dict):
        raise InvalidInput(f"event {position} is not a JSON object", code="invalid_events")
    decision_id = event.get("decision_id")
    if not isinstance(decision_id, str) or not 0 < len(decision_id) <= MAX_DECISION_ID_LENGTH:
        raise InvalidInput(f"event {position} has no valid decision_id", code="invalid_events")
    # OPA always sends labels and timestamp (EventV1); an event without them is not from OPA.
    if not isinstance(event.get("labels"), dict) or not isinstance(event.get("timestamp"), str):
        raise InvalidInput(f"event {position} lacks labels or timestamp", code="invalid_events")
    return LogEvent(decision_id, jsontext.dumps(event))


class DecisionLogStore:
    """OPA's decision-log events in the evidence stream, deduplicated on `decision_id`.

    Events are stored as OPA sent them (re-encoded compactly), not wrapped in a versioned record:
    turning them into `opa.decision` ledger records is issue #5's migration.
    """

    def __init__(
        self, redis: Redis, metrics: Metrics, *, dedupe_seconds: int, max_entries: int
    ) -> None:
        self._redis = redis
        self._metrics = metrics
        self._dedupe_seconds = dedupe_seconds
        self._max_entries = max_entries
        self._append_new = redis.register_script(_APPEND_NEW)

    async def append(self, events: list[LogEvent]) -> IngestResult:
        """Store the events not stored before; returns once Redis has appended them.

        Raises `RedisUnavailable` when Redis cannot append (OPA will re-send) and `Unavailable`
        with code `decision_log_stream_full` when the stream is at its cap.
        """
        appended = 0
        # A script runs alone in Redis: 500 events in one call measured ~20 ms during which no
        # authorization could read or write. Batches keep each pause short; if a later batch
        # fails, the answer is an error, OPA re-sends the chunk, and the earlier batches' events
        # are deduplicated.
        for start in range(0, len(events), APPEND_BATCH):
            args: list[str | bytes | int] = [self._dedupe_seconds, self._max_entries, SEEN_PREFIX]
            for event in events[start : start + APPEND_BATCH]:
                args += (event.decision_id, event.text)
            with redis_errors("appending decision-log events"):
                batch = int(await self._append_new(keys=[STREAM_KEY], args=args))
            if batch < 0:
                raise Unavailable(
                    f"the decision-log stream holds its maximum of {self._max_entries} entries",
                    code="decision_log_stream_full",
                )
            appended += batch
        self._metrics.log_events_received.inc(len(events))
        self._metrics.log_events_deduplicated.inc(len(events) - appended)
        return IngestResult(len(events), appended)
