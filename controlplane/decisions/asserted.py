"""Decisions on input a service asserts (`POST /v1/data/{path}`), each recorded as `cp.decision`.

The caller is a service speaking OPA's Data API: it asserts the input, OPA decides, and the
answer is returned only once its `cp.decision` record (which service asserted what, OPA's
`decision_id`, the result) is in the ledger. If the record cannot be appended the answer is the
path's deny value with reason `evidence_unavailable`: an answer nobody can audit is not given.
An input the ledger can never commit (integers beyond RFC 8785's range) is refused with a 400
before OPA is asked, as a request error, rather than decided and then denied.
The record awaits OPA's own `opa.decision` entry for the same `decision_id`, which the
reconciler checks (`ledger/reconcile.py`).
"""

from __future__ import annotations

import logging
from typing import Any

from controlplane import jsontext
from controlplane.canonical import canonical_json
from controlplane.decisions.service import Decision, DecisionService
from controlplane.errors import InvalidInput
from controlplane.ledger.evidence import EvidenceLog, EvidenceUnavailable
from controlplane.reasons import DenyReason
from controlplane.tokens.store import Principal

log = logging.getLogger(__name__)


class AssertedDecisions:
    def __init__(self, decisions: DecisionService, evidence: EvidenceLog) -> None:
        self._decisions = decisions
        self._evidence = evidence

    async def decide(
        self,
        caller: Principal,
        path: str,
        body: bytes,
        *,
        with_provenance: bool,
        with_metrics: bool,
    ) -> Decision:
        """Decide `path` (checked) on `body` (checked) for `caller`, and record it. Raises
        `InvalidInput` (code `input_not_canonical`), before asking OPA, for an input the ledger
        cannot commit: RFC 8785 refuses integers beyond ±(2^53 - 1)."""
        asserted: Any = jsontext.loads(body)
        try:
            canonical_json(asserted.get("input"))
        except InvalidInput as exc:
            raise InvalidInput(
                f"the input cannot be recorded in the ledger: {exc.detail}",
                code="input_not_canonical",
            ) from exc
        decision = await self._decisions.decide(
            path, body, with_provenance=with_provenance, with_metrics=with_metrics
        )
        decision_id = decision.body.get("decision_id")
        decision_id = decision_id if isinstance(decision_id, str) else None
        record = self._evidence.record(
            "cp.decision",
            decision_id=decision_id,
            service={"token_id": caller.token_id, "role": caller.role.value, "name": caller.name},
            path=path,
            input=asserted.get("input"),
            allowed=decision.allowed,
            reason=decision.reason.value if decision.reason else None,
            result=decision.body.get("result"),
        )
        try:
            await self._evidence.append(record, awaits=decision_id is not None)
        except EvidenceUnavailable as exc:
            log.warning("decision not recorded, answered with a deny: %s", exc.detail)
            return self._decisions.denied(path, DenyReason.EVIDENCE_UNAVAILABLE, decision_id)
        return decision
