"""Which deciding revisions are acceptable, OPA's long-poll header, and the fleet summary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controlplane.clock import rfc3339
from controlplane.errors import InvalidEntity
from controlplane.policies.fleet import summarise
from controlplane.policies.revisions import Activation, PolicySnapshot, PolicyState
from controlplane.policies.serving import requested_wait
from controlplane.reasons import DenyReason

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


class _Clock:
    def now(self) -> datetime:
        return NOW

    def monotonic(self) -> float:
        return 0.0


def state(active: str | None, activated_secs_ago: float, revoked: set[str]) -> PolicyState:
    policy = PolicyState(store=None, clock=_Clock(), grace_seconds=5)  # type: ignore[arg-type]
    activation = (
        Activation(active, rfc3339(NOW - timedelta(seconds=activated_secs_ago)), "admin", "x")
        if active
        else None
    )
    policy.snapshot = PolicySnapshot(activation, frozenset(revoked), 1)
    return policy


@pytest.mark.parametrize(
    ("active", "ago", "revoked", "deciding", "reason"),
    [
        ("b", 60, set(), "b", None),
        ("b", 1, set(), "a", None),  # within the grace period: the fleet is converging
        ("b", 60, set(), "a", DenyReason.POLICY_STALE),
        ("b", 60, set(), None, DenyReason.POLICY_STALE),
        ("b", 1, set(), None, DenyReason.POLICY_STALE),  # no grace for a revision-less bundle
        ("b", 1, {"a"}, "a", DenyReason.POLICY_REVOKED),
        (None, 0, {"a"}, "a", DenyReason.POLICY_REVOKED),
        (None, 0, set(), "a", DenyReason.POLICY_NOT_ACTIVE),
    ],
)
def test_revision_check(
    active: str | None, ago: float, revoked: set[str], deciding: str | None, reason: DenyReason
) -> None:
    assert state(active, ago, revoked).check(deciding) is reason


def test_unknown_state_denies() -> None:
    policy = PolicyState(store=None, clock=_Clock(), grace_seconds=5)  # type: ignore[arg-type]
    assert policy.check("a") is DenyReason.REDIS_UNAVAILABLE
    assert not policy.acceptable("a")


def test_readiness_accepts_a_previous_revision_but_not_a_revoked_one() -> None:
    assert state(
        "b",
        60,
        set(),
    ).acceptable("a")
    assert not state("b", 60, {"a"}).acceptable("a")
    assert not state(None, 0, set()).acceptable("a")
    assert not state("b", 60, set()).acceptable(None)


@pytest.mark.parametrize(
    ("prefer", "wait"),
    [
        (None, None),
        ("modes=snapshot,delta", None),
        ("modes=snapshot,delta;wait=30", 30),
        ("wait=5", 5),
        ("modes=snapshot;wait=abc", None),
    ],
)
def test_long_poll_wait(prefer: str | None, wait: int | None) -> None:
    assert requested_wait(prefer) == wait


def test_fleet_summary_keeps_what_an_sre_needs() -> None:
    status = {
        "labels": {"id": "opa-1", "version": "1.22.3", "instance": "a"},
        "bundles": {
            "governance": {
                "name": "governance",
                "active_revision": "r1",
                "code": "bundle_error",
                "message": "verification failed",
                "errors": ["digest mismatch"],
                "http_code": 200,
            }
        },
        "plugins": {"bundle": {"state": "OK"}, "decision_logs": {"state": "ERROR"}},
        "decision_logs": {"code": "decision_log_error", "message": "upload failed"},
        "metrics": {
            "prometheus": {
                "counter_decision_logs_dropped_buffer_size_limit_bytes_exceeded": {
                    "metric": [{"counter": {"value": 7}}]
                },
                "go_gc_duration_seconds": {"metric": []},
            }
        },
    }
    summary = summarise(status, "2026-11-26T12:00:00Z")
    assert summary["id"] == "opa-1"
    assert summary["bundles"]["governance"]["code"] == "bundle_error"
    assert summary["bundles"]["governance"]["errors"] == ["digest mismatch"]
    assert summary["plugins"] == {"bundle": "OK", "decision_logs": "ERROR"}
    assert summary["decision_logs"]["code"] == "decision_log_error"
    assert summary["decision_logs_dropped"] == {
        "counter_decision_logs_dropped_buffer_size_limit_bytes_exceeded": 7
    }


@pytest.mark.parametrize("labels", [None, {}, {"id": ""}, {"id": 3}, {"id": "x" * 300}])
def test_fleet_report_needs_an_id(labels: object) -> None:
    with pytest.raises(InvalidEntity):
        summarise({"labels": labels}, "2026-11-26T12:00:00Z")
