"""Prometheus metrics, on a registry owned by the app (no process-global registry).

Label values are bounded: reasons come from `reasons.DenyReason`, routes are route templates, and
OPA's error codes are squeezed through `bounded_label` so that a strange upstream cannot blow up the
number of series.

With several worker processes (`CONTROLPLANE_WORKERS`), `api/server.py` sets prometheus_client's
own switch, `PROMETHEUS_MULTIPROC_DIR`, before the workers start; each worker then keeps its values
in that directory and `/metrics`, whichever worker answers, sums all of them.
"""

from __future__ import annotations

import os
import re

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Decisions take well under a millisecond when all is well and up to the OPA timeout when not.
_DECISION_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
_LABEL = re.compile(r"[a-z][a-z0-9_]{0,47}")
CONTENT_TYPE = CONTENT_TYPE_LATEST
CounterChild = Counter


def bounded_label(value: str | None) -> str:
    """A label value safe to put on a series: snake_case up to 48 characters, else `other`."""
    if value is None:
        return "none"
    return value if _LABEL.fullmatch(value) else "other"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.decisions = Counter(
            "controlplane_decisions_total",
            "Decisions answered, by outcome (allow, deny) and deny reason.",
            ["outcome", "reason"],
            registry=self.registry,
        )
        self.decision_seconds = Histogram(
            "controlplane_decision_duration_seconds",
            "Time from receiving a decision request to answering it, OPA round trip included.",
            buckets=_DECISION_BUCKETS,
            registry=self.registry,
        )
        self.opa_errors = Counter(
            "controlplane_opa_errors_total",
            "OPA calls that gave no usable answer, by deny reason and OPA's own error code.",
            ["reason", "opa_code"],
            registry=self.registry,
        )
        self.log_events_received = Counter(
            "controlplane_decision_log_events_received_total",
            "OPA decision-log events received in accepted uploads (duplicates included).",
            registry=self.registry,
        )
        self.log_events_deduplicated = Counter(
            "controlplane_decision_log_events_deduplicated_total",
            "OPA decision-log events dropped as re-sent duplicates of a stored decision_id.",
            registry=self.registry,
        )
        self.log_events_quarantined = Counter(
            "controlplane_decision_log_events_quarantined_total",
            "OPA decision-log events that cannot be records, kept as cp.quarantine records.",
            registry=self.registry,
        )
        self.ledger_missing_decisions = Gauge(
            "controlplane_ledger_missing_decisions",
            "OPA decisions the control plane saw whose opa.decision entry is overdue (last "
            "reconciliation).",
            multiprocess_mode="mostrecent",
            registry=self.registry,
        )
        self.authorizations = Counter(
            "controlplane_authorizations_total",
            "Answers of /v1/authorize, by decision (allow, deny) and first reason.",
            ["decision", "reason"],
            registry=self.registry,
        )
        self.http_requests = Counter(
            "controlplane_http_requests_total",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        # Label values are bounded (see the module docstring), so these caches are too.
        self._decision_children: dict[tuple[str, str], CounterChild] = {}
        self._authorization_children: dict[tuple[str, str], CounterChild] = {}
        self._http_children: dict[tuple[str, str, int], CounterChild] = {}

    def decision(self, outcome: str, reason: str) -> CounterChild:
        """The decision counter for these labels (children are cached: labels() is not free)."""
        key = (outcome, reason)
        child = self._decision_children.get(key)
        if child is None:
            child = self._decision_children[key] = self.decisions.labels(outcome, reason)
        return child

    def authorization(self, decision: str, reason: str) -> CounterChild:
        key = (decision, reason)
        child = self._authorization_children.get(key)
        if child is None:
            child = self._authorization_children[key] = self.authorizations.labels(decision, reason)
        return child

    def http_request(self, method: str, route: str, status: int) -> CounterChild:
        key = (method, route, status)
        child = self._http_children.get(key)
        if child is None:
            child = self._http_children[key] = self.http_requests.labels(method, route, str(status))
        return child

    def render(self) -> bytes:
        shared = os.environ.get(MULTIPROCESS_ENV)
        if shared is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=shared)  # type: ignore[no-untyped-call]
        return generate_latest(merged)
