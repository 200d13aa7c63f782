"""OPA's decision logs reach the ledger exactly once, even when uploads fail, under a signed
checkpoint; uploads that are not decision-log chunks: 4xx; events that cannot be records: kept as
`cp.quarantine` records and answered 2xx, so that OPA's queue moves on."""

from __future__ import annotations

import gzip
import hashlib
import json
import time

import httpx
import pytest

from controlplane.ledger.log import ENTRIES_KEY
from controlplane.tokens.roles import Role
from tests.support.processes import wait_until
from tests.support.stack import Stack, StackFactory, ledger_records, stream_counts

pytestmark = pytest.mark.integration


def make_decisions(stack: Stack, count: int) -> list[str]:
    with stack.client() as client:
        ids = [stack.decide(client).json()["decision_id"] for _ in range(count)]
    assert len(set(ids)) == count
    return ids


def wait_exactly_once(stack: Stack, ids: list[str], timeout: float = 15) -> None:
    wait_until(
        lambda: len(stream_counts(stack.redis, ids)) == len(ids),
        timeout=timeout,
        what="decision logs",
    )
    counts = stream_counts(stack.redis, ids)
    assert all(counts[i] == 1 for i in ids), counts


def upload(stack: Stack, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{stack.api.url}/v1/logs",
        content=body,
        headers={
            "Authorization": f"Bearer {stack.token(Role.OPA)}",
            "Content-Type": "application/json",
            **headers,
        },
        timeout=10,
    )


def event(decision_id: str) -> dict[str, object]:
    return {
        "decision_id": decision_id,
        "labels": {"id": "test", "version": "1.22.3"},
        "timestamp": "2026-11-26T00:00:00Z",
        "path": "governance/execution/decision",
        "result": True,
    }


def metric(stack: Stack, line_start: str) -> float:
    text = httpx.get(f"{stack.api.url}/metrics", timeout=5).text
    values = [float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if ln.startswith(line_start)]
    return sum(values)


def test_every_decision_reaches_the_ledger_once(stack: Stack) -> None:
    ids = make_decisions(stack, 25)
    with stack.client() as client:
        # Denied, undefined and malformed answers are decisions OPA logged too.
        for path, input_ in (
            ("/v1/data/governance/execution/decision", {"identity": {"status": "suspended"}}),
            ("/v1/data/governance/not_a_rule", {}),
            ("/v1/data/governance/execution/default_agent_actions", {}),
        ):
            ids.append(client.post(path, json={"input": input_}).json()["decision_id"])
    wait_exactly_once(stack, ids)


def test_uploads_answered_503_are_retried_and_not_duplicated(factory: StackFactory) -> None:
    """Redis blocks writes (CLIENT PAUSE WRITE) longer than the API waits: /v1/logs answers 503,
    OPA keeps the chunk and re-sends it, and every decision is stored exactly once."""
    stack = factory.stack(redis=factory.redis())
    ids = make_decisions(stack, 10)
    with stack.redis.client() as client:
        client.execute_command("CLIENT", "PAUSE", "4000", "WRITE")
    wait_until(
        lambda: (
            metric(
                stack,
                'controlplane_http_requests_total{method="POST",route="/v1/logs",status="503"}',
            )
            >= 1
        ),
        timeout=10,
        what="an upload answered 503",
    )
    wait_exactly_once(stack, ids, timeout=30)


def test_replayed_chunk_is_deduplicated(stack: Stack) -> None:
    body = gzip.compress(
        json.dumps([event("replay-1"), event("replay-2"), event("replay-1")]).encode()
    )
    first = upload(stack, body, **{"Content-Encoding": "gzip"})
    again = upload(stack, body, **{"Content-Encoding": "gzip"})
    assert first.status_code == 200 and first.json() == {
        "received": 3,
        "appended": 2,
        "duplicates": 1,
        "quarantined": 0,
    }
    assert again.status_code == 200 and again.json() == {
        "received": 3,
        "appended": 0,
        "duplicates": 3,
        "quarantined": 0,
    }
    assert stream_counts(stack.redis, ["replay-1", "replay-2"]) == {"replay-1": 1, "replay-2": 1}


def test_gzip_bomb_is_refused_without_being_inflated(stack: Stack) -> None:
    bomb = gzip.compress(b"[" + b" " * (200 * 1024 * 1024) + b"]", compresslevel=9)
    assert len(bomb) < 1024 * 1024
    started = time.monotonic()
    response = upload(stack, bomb, **{"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert response.json()["reason"] == "too_large"
    # Inflating all 200 MiB would take seconds; stopping at the 64 MiB limit takes a fraction.
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    ("body", "encoding", "status", "reason"),
    [
        (b"not gzip at all", "gzip", 400, "invalid_gzip"),
        (gzip.compress(b"not json"), "gzip", 400, "invalid_json"),
        (gzip.compress(b'{"decision_id": "x"}'), "gzip", 400, "invalid_events"),
        (gzip.compress(b"[]")[:-4], "gzip", 400, "invalid_gzip"),
        (b"[]", "br", 415, "unsupported_media_type"),
    ],
)
def test_malformed_uploads_are_refused_and_store_nothing(
    stack: Stack, body: bytes, encoding: str, status: int, reason: str
) -> None:
    with stack.redis.client() as client:
        before = client.xlen(ENTRIES_KEY)
    response = upload(stack, body, **{"Content-Encoding": encoding})
    assert response.status_code == status, response.text
    assert response.json()["reason"] == reason
    with stack.redis.client() as client:
        assert client.xlen(ENTRIES_KEY) == before


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ({"decision_id": "huge", "labels": {}, "timestamp": "t", "input": {"n": 2**64}}, "canon"),
        ({"labels": {}, "timestamp": "t"}, "decision_id"),
        ({"decision_id": 7, "labels": {}, "timestamp": "t"}, "decision_id"),
        ({"decision_id": "no-labels"}, "labels"),
        (1, "not a JSON object"),
    ],
)
def test_an_event_that_cannot_be_a_record_is_quarantined_and_answered_2xx(
    stack: Stack, bad: object, error: str
) -> None:
    """OPA re-sends a refused chunk forever: the good events go in, the bad one becomes a
    `cp.quarantine` record with its digest and the error, once, even when OPA re-sends."""
    good = event(f"beside-{error}-{json.dumps(bad)[:20]}")
    body = gzip.compress(json.dumps([good, bad]).encode())
    for _ in range(2):
        response = upload(stack, body, **{"Content-Encoding": "gzip"})
        assert response.status_code == 200, response.text
        assert response.json()["quarantined"] == 1
    assert stream_counts(stack.redis, [good["decision_id"]]) == {good["decision_id"]: 1}
    digest = hashlib.sha256(_event_bytes(bad)).hexdigest()
    quarantined = [r for _, r in ledger_records(stack.redis, "cp.quarantine")]
    mine = [r for r in quarantined if r["event_sha256"] == digest]
    assert len(mine) == 1, quarantined
    assert ("canonical" if error == "canon" else error) in mine[0]["error"]


def _event_bytes(event: object) -> bytes:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


def test_uncompressed_upload_is_accepted(stack: Stack) -> None:
    response = upload(stack, json.dumps([event("plain-1")]).encode())
    assert response.json() == {"received": 1, "appended": 1, "duplicates": 0, "quarantined": 0}


def test_log_metrics_count_received_and_deduplicated(stack: Stack) -> None:
    received = metric(stack, "controlplane_decision_log_events_received_total")
    deduplicated = metric(stack, "controlplane_decision_log_events_deduplicated_total")
    body = json.dumps([event("metric-1"), event("metric-1")]).encode()
    upload(stack, body)
    assert metric(stack, "controlplane_decision_log_events_received_total") == received + 2
    assert metric(stack, "controlplane_decision_log_events_deduplicated_total") == deduplicated + 1
