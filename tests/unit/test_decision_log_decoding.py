"""Decoding OPA's decision-log uploads: gzip bounds, multi-member gzip, events into ledger entries
(`opa.decision` with the input committed, or `cp.quarantine`)."""

from __future__ import annotations

import gzip
import hashlib
import json

import pytest

from controlplane.errors import InvalidInput, TooLarge, UnsupportedMediaType
from controlplane.ledger.decision_logs import decode_upload, gunzip_bounded
from controlplane.ledger.log import Entry
from controlplane.ledger.records import open_record

EVENT = {"decision_id": "d1", "labels": {"id": "x"}, "timestamp": "2026-11-26T00:00:00Z"}


def test_gunzip_stops_at_the_limit() -> None:
    bomb = gzip.compress(b"\0" * 10_000_000)
    with pytest.raises(TooLarge):
        gunzip_bounded(bomb, 1_000_000)


def test_gunzip_exactly_at_the_limit_is_fine() -> None:
    assert gunzip_bounded(gzip.compress(b"a" * 1000), 1000) == b"a" * 1000


def test_multi_member_gzip_is_inflated_whole() -> None:
    # RFC 1952 §2.2: a gzip file is a series of members.
    assert gunzip_bounded(gzip.compress(b"[1,") + gzip.compress(b"2]"), 100) == b"[1,2]"


def test_multi_member_gzip_counts_every_member_against_the_limit() -> None:
    with pytest.raises(TooLarge):
        gunzip_bounded(gzip.compress(b"a" * 600) + gzip.compress(b"b" * 600), 1000)


@pytest.mark.parametrize(
    "data", [b"garbage", gzip.compress(b"[]")[:-3], gzip.compress(b"[]") + b"x"]
)
def test_broken_gzip_is_invalid(data: bytes) -> None:
    with pytest.raises(InvalidInput) as caught:
        gunzip_bounded(data, 1000)
    assert caught.value.code == "invalid_gzip"


def decode(events: object) -> list[Entry]:
    return decode_upload(
        json.dumps(events).encode(),
        None,
        max_decompressed=100_000,
        max_events=10,
        received_at="2026-11-26T00:00:01Z",
    )


def test_an_event_becomes_an_opa_decision_record_with_its_input_committed() -> None:
    event = {**EVENT, "input": {"user": "alice"}, "result": {"allow": True}}
    (entry,) = decode([event])
    assert (entry.kind, entry.decision_id, entry.seen) == ("opa.decision", "d1", "opa:d1")
    record = json.loads(entry.entry)
    assert record["event"] == {k: v for k, v in event.items() if k != "input"}
    assert set(record["input"]) == {"commitment"}
    assert b"alice" not in entry.entry
    assert entry.payload is not None
    opened = open_record(entry.entry, json.loads(entry.payload))
    assert opened["input"] == {"user": "alice"}


def test_too_many_events_is_too_large() -> None:
    body = json.dumps([{**EVENT, "decision_id": f"d{i}"} for i in range(11)]).encode()
    with pytest.raises(TooLarge):
        decode_upload(body, None, max_decompressed=100_000, max_events=10, received_at="t")


def test_unknown_encoding_is_unsupported() -> None:
    with pytest.raises(UnsupportedMediaType):
        decode_upload(b"[]", "deflate", max_decompressed=100, max_events=10, received_at="t")


def test_an_upload_that_is_not_an_array_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        decode({"not": "an array"})
    assert caught.value.code == "invalid_events"


@pytest.mark.parametrize(
    "event",
    [
        "string",
        {**EVENT, "decision_id": ""},
        {**EVENT, "decision_id": "x" * 257},
        {k: v for k, v in EVENT.items() if k != "labels"},
        {k: v for k, v in EVENT.items() if k != "timestamp"},
        {**EVENT, "input": {"n": 123456789012345678901234567890}},
    ],
)
def test_an_event_that_cannot_be_a_record_is_quarantined(event: object) -> None:
    good, bad = decode([EVENT, event])
    assert good.kind == "opa.decision"
    assert bad.kind == "cp.quarantine" and bad.decision_id is None
    raw = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
    digest = hashlib.sha256(raw).hexdigest()
    assert bad.seen == "quarantine:" + digest
    assert json.loads(bad.entry)["event_sha256"] == digest
