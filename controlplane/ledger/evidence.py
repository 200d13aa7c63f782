"""Evidence records into the ledger: what every writer of the control plane calls.

A record is versioned (`{"v": 1, "kind": ..., "time": ..., ...}`, DESIGN.md §5). `append` commits
its personal-data fields (`records.py`), appends the entry to the Merkle log (`log.py`) and
returns, once a signed checkpoint covers it, the entry's index and that checkpoint: the caller can
then act on it (a grant is signed only after its `cp.authorization` record is in, and names its
index). A record that cannot be appended raises `EvidenceUnavailable`, whatever the cause, so
that every caller fails closed the same way: `/v1/authorize` and `/v1/data` deny with
`evidence_unavailable`, an admin change is not made.

Admin changes go through `change`: the record is appended first, then the change is made; if the
change is then refused (a conflict, a lost race), a `cp.admin.aborted` record names the record it
aborts, so that the ledger never shows a change that was not made without saying so.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from controlplane.clock import Clock, rfc3339
from controlplane.errors import ControlPlaneError, Unavailable
from controlplane.ledger.log import OPA_SEEN, AppendResult, Entry
from controlplane.ledger.records import commit_record
from controlplane.ledger.service import LedgerService

log = logging.getLogger(__name__)

RECORD_VERSION = 1
ABORTED = "cp.admin.aborted"


class EvidenceUnavailable(Unavailable):
    """A record the answer depends on could not be appended to the ledger."""

    default_code = "evidence_unavailable"
    title = "Evidence unavailable"


@dataclass(frozen=True, slots=True)
class Evidence:
    """Where a record is: its ledger index, and a signed checkpoint note that covers it."""

    index: int
    checkpoint: str

    def as_json(self) -> dict[str, Any]:
        return {"index": self.index, "checkpoint": self.checkpoint}


def ledger_entry(record: dict[str, Any], *, awaits: bool = False) -> Entry:
    """The ledger entry of `record`, personal-data fields committed. An OPA decision is deduped
    on its `decision_id`; a record that `awaits` its OPA decision joins the reconciler's set.
    Raises `InvalidInput` when the record has no RFC 8785 form."""
    committed = commit_record(record)
    decision_id = record.get("decision_id")
    decision_id = decision_id if isinstance(decision_id, str) and decision_id else None
    is_opa = record["kind"] == "opa.decision" and decision_id is not None
    return Entry(
        record["kind"],
        decision_id,
        committed.entry,
        committed.payload,
        OPA_SEEN + decision_id if is_opa and decision_id else None,
        awaits and decision_id is not None,
    )


class EvidenceLog:
    def __init__(self, ledger: LedgerService, clock: Clock) -> None:
        self._ledger = ledger
        self._clock = clock

    @property
    def origin(self) -> str:
        return self._ledger.origin

    def record(self, kind: str, **fields: Any) -> dict[str, Any]:
        """A versioned record of `kind`, stamped with the current time."""
        return {"v": RECORD_VERSION, "kind": kind, "time": rfc3339(self._clock.now()), **fields}

    async def append(self, record: dict[str, Any], *, awaits: bool = False) -> Evidence:
        """Append `record`; returns its index and a covering checkpoint. Raises
        `EvidenceUnavailable` when it is not in the ledger (then it may or may not be)."""
        try:
            result = await self.append_entries([ledger_entry(record, awaits=awaits)])
        except ControlPlaneError as exc:
            raise EvidenceUnavailable(
                f"the {record['kind']} record could not be appended to the ledger: {exc.detail}"
            ) from exc
        return Evidence(result.first_index, result.checkpoint)

    async def append_entries(self, entries: list[Entry]) -> AppendResult:
        """Append prepared entries (the decision-log ingest). Raises what `Ledger.append` does."""
        return await (await self._ledger.ledger()).append(entries)

    @asynccontextmanager
    async def change(self, kind: str, **fields: Any) -> AsyncIterator[Evidence]:
        """Record an admin change, then let the caller make it. If the `async with` body raises
        a `ControlPlaneError`, a `cp.admin.aborted` record names this one before it propagates.
        Raises `EvidenceUnavailable` (and the body does not run) when the record is not in."""
        evidence = await self.append(self.record(kind, **fields))
        try:
            yield evidence
        except ControlPlaneError as error:
            aborted = self.record(ABORTED, aborts=evidence.index, code=error.code)
            try:
                await self.append(aborted)
            except EvidenceUnavailable as lost:
                log.warning(
                    "the abort of ledger entry %d is not recorded: %s", evidence.index, lost
                )
            raise
