"""The foundation's evidence stream (`{cp:evidence}:records`) moves into the ledger at start:
its `cp.*` records as they were (personal fields committed), its OPA events as `opa.decision`
records, in order, and the old stream is emptied."""

from __future__ import annotations

import json

import pytest

from controlplane.canonical import canonical_json
from controlplane.ledger.migrate import OLD_STREAM
from tests.support.stack import StackFactory, ledger_records

pytestmark = pytest.mark.integration


def test_the_old_stream_is_moved_into_the_ledger(factory: StackFactory) -> None:
    redis = factory.redis()  # started, empty
    old_record = {
        "v": 1,
        "kind": "cp.authorization",
        "time": "2026-11-01T00:00:00Z",
        "decision": "deny",
        "reasons": ["identity_unknown"],
        "decision_id": None,
        "identity": None,
        "request": {"iss": "agent:old", "args": {"secret": "s"}},
    }
    event = {"decision_id": "old-opa-1", "labels": {"id": "x"}, "timestamp": "t", "input": {}}
    with redis.client() as client:
        client.xadd(OLD_STREAM, {"kind": "cp.authorization", "record": canonical_json(old_record)})
        client.xadd(
            OLD_STREAM,
            {"kind": "opa.decision", "decision_id": "old-opa-1", "record": json.dumps(event)},
        )
    factory.stack(redis=redis)  # the API migrates at start
    with redis.client() as client:
        assert client.xlen(OLD_STREAM) == 0
    records = [r for _, r in ledger_records(redis)]
    migrated = [r for r in records if r["kind"] in ("cp.authorization", "opa.decision")]
    assert [r["kind"] for r in migrated[:2]] == ["cp.authorization", "opa.decision"]
    assert migrated[0]["reasons"] == ["identity_unknown"]
    assert set(migrated[0]["request"]) == {"commitment"}
    assert migrated[1]["decision_id"] == "old-opa-1"
