"""Every way OPA can fail, provoked with a real OPA, ends in a deny with its own reason.

Each failure gets its own OPA (and API) so that the others keep working; the decision timeout of
the test APIs is 0.5 s, and each deny must arrive within that plus a small margin.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.support.processes import POLICY_DIR
from tests.support.stack import Stack, StackFactory

pytestmark = pytest.mark.integration

TIMEOUT = 0.5
MARGIN = 0.4  # process scheduling on a busy 2-core machine, not OPA time


def write_policy(directory: Path, rego: str) -> Path:
    """A policy folder with `rego` as the decision, and the default system policies (without
    `system.authz`, the control plane refuses to publish it)."""
    directory.mkdir(parents=True)
    (directory / "policy.rego").write_text(rego)
    shutil.copytree(POLICY_DIR / "system", directory / "system")
    return directory


def timed_decision(stack: Stack) -> tuple[dict[str, object], float]:
    with stack.client() as client:
        started = time.monotonic()
        response = stack.decide(client)
        elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    return response.json(), elapsed


def assert_denied(body: dict[str, object], reason: str) -> None:
    assert body["result"] == {"allow": False, "reasons": [reason]}
    assert body["reason"] == reason


@pytest.fixture(scope="module")
def fault_stack(factory: StackFactory) -> Stack:
    """A stack whose OPA the tests kill and pause; each test brings it back."""
    return factory.stack()


def test_killed_opa_is_unreachable_then_recovers(fault_stack: Stack) -> None:
    fault_stack.opa.kill()
    try:
        body, elapsed = timed_decision(fault_stack)
        assert_denied(body, "opa_unreachable")
        assert elapsed < TIMEOUT + MARGIN
    finally:
        fault_stack.opa.start()
    body, _ = timed_decision(fault_stack)
    assert body["result"] == {"allow": True, "reasons": []}


def test_paused_opa_times_out_then_recovers(fault_stack: Stack) -> None:
    fault_stack.opa.pause()
    try:
        body, elapsed = timed_decision(fault_stack)
        assert_denied(body, "opa_timeout")
        assert TIMEOUT <= elapsed < TIMEOUT + MARGIN
    finally:
        fault_stack.opa.resume()
    body, _ = timed_decision(fault_stack)
    assert body["result"] == {"allow": True, "reasons": []}


def test_opa_error_keeps_opas_code(factory: StackFactory, tmp_path: Path) -> None:
    # Two complete rules with different values for the same input: eval_conflict_error, HTTP 500.
    policy = write_policy(
        tmp_path / "conflict",
        """package governance.execution

decision := {"allow": true, "reasons": []} if input.request.action
decision := {"allow": false, "reasons": ["x"]} if input.request.action
""",
    )
    stack = factory.stack(policy_dir=policy)
    body, elapsed = timed_decision(stack)
    assert_denied(body, "opa_error")
    assert elapsed < TIMEOUT + MARGIN
    with stack.client(role=None) as client:
        metrics = client.get("/metrics").text
    assert (
        'controlplane_opa_errors_total{opa_code="eval_conflict_error",reason="opa_error"} 1.0'
        in metrics
    )


def test_undefined_decision_is_denied(factory: StackFactory, tmp_path: Path) -> None:
    policy = write_policy(
        tmp_path / "undefined",
        """package governance.execution

decision := {"allow": true, "reasons": []} if input.never_set
""",
    )
    body, _ = timed_decision(factory.stack(policy_dir=policy))
    assert_denied(body, "opa_undefined")
    assert "decision_id" in body  # OPA did decide, and logged it


@pytest.mark.parametrize(
    "value",
    [
        '"allow"',
        "true",
        '{"allow": "true", "reasons": []}',
        '{"allow": true}',
        '{"allow": true, "reasons": [1]}',
        '{"allow": true, "reasons": [], "obligations": []}',
    ],
)
def test_result_of_the_wrong_type_is_denied(
    factory: StackFactory, tmp_path: Path, value: str
) -> None:
    policy = write_policy(
        tmp_path / "wrong", f"package governance.execution\n\ndecision := {value}\n"
    )
    body, _ = timed_decision(factory.stack(policy_dir=policy))
    assert_denied(body, "opa_malformed_result")


def test_opa_without_policy_is_not_ready(factory: StackFactory) -> None:
    stack = factory.stack(policy_dir=None)
    body, _ = timed_decision(stack)
    assert_denied(body, "opa_not_ready")


def test_a_large_answer_is_read_whole(factory: StackFactory, tmp_path: Path) -> None:
    """An answer of many TCP segments (here ~200 KB of obligations) is read to its end, not cut
    at the first buffered chunk."""
    policy = write_policy(
        tmp_path / "large",
        """package governance.execution

padding := concat("", [s | some i in numbers.range(1, 20000); s := sprintf("%010d", [i])])

decision := {"allow": true, "reasons": [], "obligations": {"padding": padding}}
""",
    )
    body, _ = timed_decision(factory.stack(policy_dir=policy))
    assert body["result"]["allow"] is True
    assert len(body["result"]["obligations"]["padding"]) == 200_000
