"""What operators see: health, readiness, metrics, problem documents for unknown routes."""

from __future__ import annotations

import httpx
import pytest

from tests.support.stack import Stack, StackFactory

pytestmark = pytest.mark.integration


def test_healthz_and_readyz(stack: Stack) -> None:
    assert httpx.get(f"{stack.api.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{stack.api.url}/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert body["checks"]["redis"] == {"ok": True, "detail": "ok"}
    assert body["checks"]["opa"] == {"ok": True, "detail": "ok"}
    assert body["checks"]["signing_keys"]["ok"] is True


def test_metrics_count_decisions_by_outcome_and_reason(stack: Stack) -> None:
    with stack.client() as client:
        stack.decide(client)
        stack.decide(client, {"identity": {"status": "suspended"}})
    text = httpx.get(f"{stack.api.url}/metrics").text
    assert 'controlplane_decisions_total{outcome="allow",reason=""}' in text
    assert 'controlplane_decisions_total{outcome="deny",reason="policy_denied"}' in text
    assert "controlplane_decision_duration_seconds_bucket" in text
    assert (
        'controlplane_http_requests_total{method="POST",route="/v1/data/{path:path}",status="200"}'
        in text
    )


def test_unknown_route_is_a_problem(stack: Stack) -> None:
    response = httpx.get(f"{stack.api.url}/v1/nothing")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["reason"] == "route_not_found"


def test_openapi_describes_the_decision_endpoint(stack: Stack) -> None:
    spec = httpx.get(f"{stack.api.url}/openapi.json").json()
    assert "/v1/data/{path}" in spec["paths"]
    assert "/v1/logs" in spec["paths"]


def test_workers_share_one_metrics_view(factory: StackFactory) -> None:
    """With two SO_REUSEPORT workers, every scrape counts the decisions of both."""
    stack = factory.stack(WORKERS="2")
    for _ in range(20):
        with stack.client() as client:  # a new connection each time, so both workers serve
            assert stack.decide(client).json()["result"]["allow"] is True
    for _ in range(6):
        text = httpx.get(f"{stack.api.url}/metrics").text
        (line,) = [
            ln
            for ln in text.splitlines()
            if ln.startswith('controlplane_decisions_total{outcome="allow",reason=""}')
        ]
        assert float(line.rsplit(" ", 1)[1]) == 20.0
