"""Redis stopped: readiness fails, protected routes answer 503 redis_unavailable, nothing crashes,
and the API recovers by itself when Redis is back (with its data: appendfsync always)."""

from __future__ import annotations

import gzip
import json
import time

import httpx
import pytest

from controlplane.tokens.roles import Role
from tests.support.processes import wait_until
from tests.support.stack import Stack, StackFactory

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def outage_stack(factory: StackFactory) -> Stack:
    return factory.stack(redis=factory.redis())


def test_redis_down_then_back(outage_stack: Stack) -> None:
    stack = outage_stack
    service = stack.token(Role.SERVICE)
    opa = stack.token(Role.OPA)
    with stack.client() as client:
        assert stack.decide(client).json()["result"]["allow"] is True

    stack.redis.kill()
    try:
        api = httpx.Client(base_url=stack.api.url, timeout=10)
        ready = api.get("/readyz")
        assert ready.status_code == 503
        assert ready.headers["content-type"] == "application/problem+json"
        assert ready.json()["checks"]["redis"]["ok"] is False
        assert ready.json()["checks"]["opa"]["ok"] is True
        assert api.get("/healthz").status_code == 200

        # Once the token cache (0.2 s in tests) has expired, the token cannot be checked.
        time.sleep(0.3)
        for method, path, token, body in (
            ("POST", "/v1/data/governance/execution/decision", service, {"input": {}}),
            ("POST", "/v1/logs", opa, []),
            ("GET", "/v1/tokens", service, None),
        ):
            response = api.request(
                method, path, json=body, headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 503, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["reason"] == "redis_unavailable"
            assert response.headers["retry-after"] == "1"

        # The bootstrap admin is checked without Redis, but creating a token needs it.
        admin = {"Authorization": f"Bearer {stack.admin_token}"}
        created = api.post("/v1/tokens", json={"role": "sre", "name": "x"}, headers=admin)
        assert created.status_code == 503
        assert created.json()["reason"] == "redis_unavailable"
        # Nothing crashed: the process is still serving.
        assert stack.api.popen is not None and stack.api.popen.poll() is None
    finally:
        stack.redis.start()

    wait_until(
        lambda: httpx.get(f"{stack.api.url}/readyz").status_code == 200, timeout=10, what="ready"
    )
    with httpx.Client(
        base_url=stack.api.url, headers={"Authorization": f"Bearer {service}"}
    ) as client:
        assert stack.decide(client).json()["result"]["allow"] is True
    upload = gzip.compress(json.dumps([]).encode())
    response = httpx.post(
        f"{stack.api.url}/v1/logs",
        content=upload,
        headers={"Authorization": f"Bearer {opa}", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200
