"""Completeness of OPA's decision logs: which decisions the control plane saw but OPA never logged.

OPA drops decision-log events silently when its buffer overflows or an upload keeps failing
(`reference/opa-protocols.md` §3; OPA docs `management-decision-logs.md`), and no peer reports the
loss. Every `cp.decision` and `cp.authorization` record that names an OPA `decision_id` joins the
ledger's awaiting set when it is appended, and leaves it when that decision's `opa.decision` entry
is appended (both inside the append Function, `log.py`). A decision still awaiting after the
window (`CONTROLPLANE_LEDGER_RECONCILE_WINDOW_SECONDS`) is missing. The report carries OPA's own
drop counters from its status reports (`policies.fleet`), which say how much OPA knows it lost.

Decisions awaiting for longer than the retention are forgotten (counted in the report), so that an
OPA with decision logs turned off cannot grow the set without bound.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from controlplane.clock import Clock, rfc3339
from controlplane.errors import ControlPlaneError
from controlplane.ledger.service import LedgerService
from controlplane.observability.metrics import Metrics
from controlplane.policies.fleet import FleetStore

MAX_LISTED = 1000

log = logging.getLogger(__name__)


class Reconciler:
    def __init__(
        self,
        ledger: LedgerService,
        fleet: FleetStore,
        clock: Clock,
        metrics: Metrics,
        *,
        window_seconds: int,
        retention_seconds: int,
    ) -> None:
        self._ledger = ledger
        self._fleet = fleet
        self._clock = clock
        self._metrics = metrics
        self._window = window_seconds
        self._retention = retention_seconds

    async def report(self, *, limit: int = 100) -> dict[str, Any]:
        """The decisions overdue by more than the window (the `limit` oldest listed), and OPA's
        drop counters per instance. Updates the `controlplane_ledger_missing_decisions` gauge."""
        ledger = await self._ledger.ledger()
        now = self._clock.now().timestamp()
        forgotten = await ledger.forget_awaiting(now - self._retention)
        missing, oldest = await ledger.awaiting(now - self._window, min(limit, MAX_LISTED))
        pending, _ = await ledger.awaiting(now, 0)
        self._metrics.ledger_missing_decisions.set(missing)
        instances = await self._fleet.instances(None, "")
        return {
            "checked_at": rfc3339(self._clock.now()),
            "window_seconds": self._window,
            "missing": missing,
            "missing_decisions": [
                {"decision_id": decision_id, "seen_at": rfc3339(datetime.fromtimestamp(at, UTC))}
                for decision_id, at in oldest
            ],
            "awaiting_within_window": pending - missing,
            "forgotten": forgotten,
            "opa_dropped": {
                str(instance["id"]): instance.get("decision_logs_dropped", {})
                for instance in instances
            },
        }

    async def run(self, stop: asyncio.Event) -> None:
        """Reconcile every half window until `stop` is set, so that the gauge stays current
        for alerting (`controlplane_ledger_missing_decisions > 0`)."""
        while not stop.is_set():
            try:
                report = await self.report(limit=0)
            except ControlPlaneError as error:  # Redis down, ledger not started: next round
                log.warning("reconciliation skipped: %s", error.detail)
            else:
                if report["missing"]:
                    log.warning(
                        "%d OPA decisions are missing from the decision logs", report["missing"]
                    )
            try:
                await asyncio.wait_for(stop.wait(), timeout=self._window / 2)
            except TimeoutError:
                continue
