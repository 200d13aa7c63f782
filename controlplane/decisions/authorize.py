"""The authorize flow (`POST /v1/authorize`): a signed execution request in, a deny with reasons or
a signed grant out.

The steps run in the fixed order of DESIGN.md §2.1, and the first that fails names the reason:
the request is verified (`requests.verify`, ten checks), OPA decides on input built only from
verified data (the registry's identity, the request's claims, their context), the answer must be
an allow of the expected shape (`decisions.service`), the `cp.authorization` record carrying the
grant's claims is appended to the ledger (`evidence_unavailable` if not), the grant is registered,
and only then is it signed, naming its record's ledger index. There is no other way to a grant.

Every answer, allow or deny, is recorded, and carries its record's index and a signed checkpoint
covering it; a deny whose record cannot be appended is still a deny (with `evidence: null`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from controlplane import jsontext
from controlplane.decisions.service import EXECUTION_DECISION_PATH, Decision, DecisionService
from controlplane.errors import ControlPlaneError, RedisUnavailable
from controlplane.grants.issue import GrantIssuer
from controlplane.grants.registry import GrantRegistry
from controlplane.ledger.evidence import EvidenceLog, EvidenceUnavailable
from controlplane.observability.metrics import Metrics
from controlplane.reasons import DenyReason
from controlplane.requests.verify import RequestDeniedError, RequestVerifier, VerifiedRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AuthorizeAnswer:
    decision: str  # "allow" | "deny"
    reasons: list[str]
    decision_id: str | None
    grant: str | None = None
    # The record's ledger index and a checkpoint covering it; None if it could not be appended.
    evidence: dict[str, Any] | None = field(default=None)

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "decision": self.decision,
            "reasons": self.reasons,
            "decision_id": self.decision_id,
            "evidence": self.evidence,
        }
        if self.grant is not None:
            body["grant"] = self.grant
        return body


class AuthorizeService:
    def __init__(
        self,
        *,
        verifier: RequestVerifier,
        decisions: DecisionService,
        issuer: GrantIssuer,
        grants: GrantRegistry,
        evidence: EvidenceLog,
        metrics: Metrics,
    ) -> None:
        self._verifier = verifier
        self._decisions = decisions
        self._issuer = issuer
        self._grants = grants
        self._evidence = evidence
        self._metrics = metrics

    async def authorize(self, token: str) -> AuthorizeAnswer:
        """Decide on a compact JWS execution request. Never raises for what the request or a
        component did: every failure is a deny with its reason."""
        try:
            request = await self._verifier.verify(token)
        except RequestDeniedError as denied:
            log.info(
                "authorization denied: %s", denied.detail, extra={"reason": denied.reason.value}
            )
            return await self._deny([denied.reason.value], None, None)

        decision = await self._decisions.decide(
            EXECUTION_DECISION_PATH,
            jsontext.dumps({"input": opa_input(request)}),
            with_provenance=True,
            with_metrics=False,
        )
        decision_id = _str_or_none(decision.body.get("decision_id"))
        if not decision.allowed:
            return await self._deny(_deny_reasons(decision), decision_id, request)

        try:
            signing_key = await self._issuer.signing_key()
        except RedisUnavailable as exc:
            log.warning("no grant signing key: %s", exc.detail)
            return await self._deny([DenyReason.REDIS_UNAVAILABLE.value], decision_id, request)
        claims = self._issuer.claims(
            request,
            decision_id=decision_id,
            policy=deciding_bundle(decision.body.get("provenance")),
            obligations=dict(decision.body["result"].get("obligations") or {}),
        )
        record = self._evidence.record(
            "cp.authorization",
            decision="allow",
            reasons=[],
            decision_id=decision_id,
            identity=request.identity.id,
            request=request.claims,
            grant=claims,
        )
        try:
            evidence = await self._evidence.append(record, awaits=True)
        except EvidenceUnavailable as exc:
            log.warning("evidence not stored, allow turned into deny: %s", exc.detail)
            return self._answer("deny", [DenyReason.EVIDENCE_UNAVAILABLE.value], decision_id)
        # The record carries every claim but this one, which names the record itself.
        claims["ledger"] = {"origin": self._evidence.origin, "index": evidence.index}
        try:
            await self._grants.register(claims)
        except RedisUnavailable as exc:
            # The allow record is in the ledger, but no grant with its jti will ever exist.
            log.warning("grant not registered, allow turned into deny: %s", exc.detail)
            return await self._deny([DenyReason.REDIS_UNAVAILABLE.value], decision_id, request)
        grant = self._issuer.sign(claims, signing_key)
        return self._answer("allow", [], decision_id, grant, evidence.as_json())

    async def _deny(
        self, reasons: list[str], decision_id: str | None, request: VerifiedRequest | None
    ) -> AuthorizeAnswer:
        record = self._evidence.record(
            "cp.authorization",
            decision="deny",
            reasons=reasons,
            decision_id=decision_id,
            identity=request.identity.id if request else None,
            request=request.claims if request else None,
        )
        try:
            evidence = await self._evidence.append(record, awaits=True)
        except ControlPlaneError as exc:
            # The answer is a deny either way; the record's loss is logged for the operator.
            log.warning("deny record not stored: %s", exc.detail, extra={"reasons": reasons})
            return self._answer("deny", reasons, decision_id)
        return self._answer("deny", reasons, decision_id, None, evidence.as_json())

    def _answer(
        self,
        decision: str,
        reasons: list[str],
        decision_id: str | None,
        grant: str | None = None,
        evidence: dict[str, Any] | None = None,
    ) -> AuthorizeAnswer:
        self._metrics.authorization(decision, reasons[0] if reasons else "").inc()
        return AuthorizeAnswer(decision, reasons, decision_id, grant, evidence)


def opa_input(request: VerifiedRequest) -> dict[str, Any]:
    """The OPA input of DESIGN.md §5, built only from verified data."""
    identity = request.identity
    return {
        "identity": {
            "id": identity.id,
            "kind": identity.kind.value,
            "status": identity.status.value,
            "attributes": identity.attributes,
        },
        "request": request.claims,
        "context": request.context,
    }


def deciding_bundle(provenance: Any) -> dict[str, str] | None:
    """The bundle and revision that decided, from OPA's provenance (`governance` if several)."""
    bundles = provenance.get("bundles") if isinstance(provenance, dict) else None
    if not isinstance(bundles, dict) or not bundles:
        return None
    name = "governance" if "governance" in bundles else sorted(bundles)[0]
    revision = bundles[name].get("revision") if isinstance(bundles[name], dict) else None
    return {"bundle": name, "revision": str(revision or "")}


def _deny_reasons(decision: Decision) -> list[str]:
    reason = decision.reason or DenyReason.POLICY_DENIED
    if reason is not DenyReason.POLICY_DENIED:
        return [reason.value]
    # The policy said no: its own reasons follow ours, so that callers see why.
    return [reason.value, *decision.body["result"]["reasons"]]


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
