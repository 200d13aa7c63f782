"""Decoding OPA's decision-log uploads: gzip bounds, multi-member gzip, event validation."""

from __future__ import annotations

import gzip
import json

import pytest

from controlplane.errors import InvalidInput, TooLarge, UnsupportedMediaType
from controlplane.ledger.decision_logs import decode_upload, gunzip_bounded

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


def test_decode_keeps_every_field_of_the_event() -> None:
    event = {**EVENT, "input": {"n": 123456789012345678901234567890}, "result": {"allow": True}}
    (decoded,) = decode_upload(
        gzip.compress(json.dumps([event]).encode()), "gzip", max_decompressed=10_000, max_events=10
    )
    assert decoded.decision_id == "d1"
    assert json.loads(decoded.text) == event


def test_too_many_events_is_too_large() -> None:
    body = json.dumps([{**EVENT, "decision_id": f"d{i}"} for i in range(11)]).encode()
    with pytest.raises(TooLarge):
        decode_upload(body, None, max_decompressed=100_000, max_events=10)


def test_unknown_encoding_is_unsupported() -> None:
    with pytest.raises(UnsupportedMediaType):
        decode_upload(b"[]", "deflate", max_decompressed=100, max_events=10)


@pytest.mark.parametrize(
    "events",
    [
        {"not": "an array"},
        [EVENT, "string"],
        [{**EVENT, "decision_id": ""}],
        [{**EVENT, "decision_id": "x" * 257}],
        [{k: v for k, v in EVENT.items() if k != "labels"}],
        [{k: v for k, v in EVENT.items() if k != "timestamp"}],
    ],
)
def test_invalid_events_refuse_the_upload(events: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        decode_upload(json.dumps(events).encode(), None, max_decompressed=100_000, max_events=10)
    assert caught.value.code == "invalid_events"
