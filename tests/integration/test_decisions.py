"""POST /v1/data/{path}: decisions through real OPA, OPA compatibility, and refused requests."""

from __future__ import annotations

import httpx
import pytest
from opa_client import OpaClient

from controlplane.tokens.roles import Role
from tests.support.stack import DECISION_PATH, DEMO_INPUT, Stack

pytestmark = pytest.mark.integration


def test_demo_echo_is_allowed_with_opa_decision_id(stack: Stack) -> None:
    with stack.client() as client:
        response = stack.decide(client)
    assert response.status_code == 200
    body = response.json()
    assert body["result"] == {"allow": True, "reasons": []}
    assert isinstance(body["decision_id"], str) and len(body["decision_id"]) == 36
    assert "reason" not in body


def test_policy_deny_is_passed_through_with_its_reasons(stack: Stack) -> None:
    denied = {
        **DEMO_INPUT,
        "request": {"action": "payments.transfer", "resource": "acct", "args": {}},
    }
    with stack.client() as client:
        body = stack.decide(client, denied).json()
    assert body["result"] == {"allow": False, "reasons": ["action_not_allowed"]}
    assert "decision_id" in body


def test_provenance_names_the_bundle_revision_when_asked(stack: Stack) -> None:
    with stack.client() as client:
        plain = client.post(DECISION_PATH, json={"input": DEMO_INPUT}).json()
        with_provenance = client.post(
            DECISION_PATH, params={"provenance": "true"}, json={"input": DEMO_INPUT}
        ).json()
    assert "provenance" not in plain
    assert (
        with_provenance["provenance"]["bundles"]["governance"]["revision"]
        == stack.active_revision()
    )


def test_admin_may_decide_too(stack: Stack) -> None:
    with stack.client(Role.ADMIN) as client:
        assert stack.decide(client).json()["result"]["allow"] is True


def test_opa_python_client_works_against_the_control_plane(stack: Stack) -> None:
    """An unmodified OPA client, pointed at us instead of OPA, gets OPA's answers."""
    client = OpaClient(
        host="127.0.0.1", port=stack.api.port, token=stack.token(Role.SERVICE), retries=0
    )
    try:
        answer = client.query_rule(
            input_data=DEMO_INPUT, package_path="governance.execution", rule_name="decision"
        )
        assert answer["result"] == {"allow": True, "reasons": []}
        assert "decision_id" in answer
        with_metrics = client.query_rule(
            input_data=DEMO_INPUT,
            package_path="governance/execution",
            rule_name="decision",
            query_params={"metrics": True},
        )
        assert "timer_rego_query_eval_ns" in with_metrics["metrics"]
    finally:
        client.close_connection()


def test_other_paths_under_the_root_must_be_boolean(stack: Stack) -> None:
    with stack.client() as client:
        allowed = client.post(
            "/v1/data/governance/execution/action_allowed", json={"input": DEMO_INPUT}
        ).json()
        not_boolean = client.post(
            "/v1/data/governance/execution/default_agent_actions", json={"input": DEMO_INPUT}
        ).json()
    assert allowed["result"] is True
    assert not_boolean == {
        "result": False,
        "reason": "opa_malformed_result",
        "decision_id": not_boolean["decision_id"],
    }


def test_undefined_path_under_the_root_is_denied(stack: Stack) -> None:
    with stack.client() as client:
        body = client.post("/v1/data/governance/nothing_here", json={"input": {}}).json()
    assert body["result"] is False
    assert body["reason"] == "opa_undefined"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/data/system/authz/allow",
        "/v1/data/system",
        "/v1/data",
        "/v1/data/",
        "/v1/data/other/thing",
        "/v1/data/governanceX/decision",
        "/v1/data/governance/../system",
        "/v1/data/governance/exec%20ution",
    ],
)
def test_paths_outside_the_decision_roots_are_refused(stack: Stack, path: str) -> None:
    with stack.client() as client:
        response = client.post(path, json={"input": DEMO_INPUT})
    assert response.status_code in (400, 404), response.text
    assert response.headers["content-type"] == "application/problem+json"
    if response.status_code == 400:
        assert response.json()["reason"] == "path_not_allowed"


@pytest.mark.parametrize("option", ["explain=full", "explain=notes", "instrument=true"])
def test_explain_and_instrument_are_refused(stack: Stack, option: str) -> None:
    with stack.client() as client:
        response = client.post(f"{DECISION_PATH}?{option}", json={"input": DEMO_INPUT})
    assert response.status_code == 400
    assert response.json()["reason"] == "option_not_allowed"


@pytest.mark.parametrize(
    ("content", "content_type", "status", "reason"),
    [
        (b'{"input": ', "application/json", 400, "invalid_json"),
        (b"[1, 2]", "application/json", 400, "invalid_input"),
        (b'"input"', "application/json", 400, "invalid_input"),
        (b'{"input": NaN}', "application/json", 400, "invalid_json"),
        (b"input=1", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b"input: {}", "application/yaml", 415, "unsupported_media_type"),
    ],
)
def test_bad_bodies_are_problems(
    stack: Stack, content: bytes, content_type: str, status: int, reason: str
) -> None:
    with stack.client() as client:
        response = client.post(
            DECISION_PATH, content=content, headers={"Content-Type": content_type}
        )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["reason"] == reason
    assert problem["status"] == status
    assert problem["type"].endswith(reason)


def test_oversized_body_is_refused_before_reaching_opa(stack: Stack) -> None:
    huge = {"input": {**DEMO_INPUT, "padding": "x" * (2 * 1024 * 1024)}}
    with stack.client() as client:
        response = client.post(DECISION_PATH, json=huge)
        streamed = client.post(
            DECISION_PATH,
            content=iter([b'{"input": "', b"x" * (2 * 1024 * 1024), b'"}']),
            headers={"Content-Type": "application/json"},
        )
    for answer in (response, streamed):
        assert answer.status_code == 413
        assert answer.json()["reason"] == "too_large"


def test_empty_body_is_evaluated_without_input_as_opa_does(stack: Stack) -> None:
    with stack.client() as client:
        body = client.post(
            DECISION_PATH, content=b"", headers={"Content-Type": "application/json"}
        ).json()
    assert body["result"] == {"allow": False, "reasons": ["identity_not_active"]}
    assert body["warning"]["code"] == "api_usage_warning"


def test_big_integers_in_input_are_refused_since_the_ledger_cannot_record_them(
    stack: Stack,
) -> None:
    """Every /v1/data answer is a ledger entry whose input is committed over its RFC 8785 form,
    which has no integers beyond ±(2^53 - 1): such an input is a request error, said before OPA
    is asked (docs/adr/0005), not an answer nobody could audit."""
    raw = (
        b'{"input": {"identity": {"kind": "agent", "status": "active"}, '
        b'"request": {"action": "demo.echo", "args": {"n": 123456789012345678901234567890}}}}'
    )
    with stack.client() as client:
        response = client.post(
            DECISION_PATH, content=raw, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 400
    assert response.json()["reason"] == "input_not_canonical"
    assert "ledger" in response.json()["detail"]


def test_get_is_not_a_decision(stack: Stack) -> None:
    with stack.client() as client:
        response = client.get(DECISION_PATH)
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"


def test_request_id_is_echoed_and_generated(stack: Stack) -> None:
    with httpx.Client(base_url=stack.api.url) as client:
        given = client.get("/healthz", headers={"X-Request-ID": "trace-123"})
        made = client.get("/healthz")
    assert given.headers["x-request-id"] == "trace-123"
    assert len(made.headers["x-request-id"]) == 32
