"""The OPA-compatible decision service behind `POST /v1/data/{path}` (DESIGN.md §4).

A service asserts an input, exactly as it would to OPA; this module checks that the path is one we
serve, asks OPA once, and checks that OPA's answer is usable. The order of the checks is fixed and
the first failure names the deny reason:

1. OPA answered at all (`opa_unreachable`, `opa_timeout`), with HTTP 200 (`opa_error`);
2. the answer came from a loaded bundle, i.e. `provenance.bundles` names one (`opa_not_ready`):
   an OPA with no policy answers every query with "undefined", which must not look like a verdict;
3. the deciding revision (`provenance.bundles.governance.revision`) is acceptable
   (`policy_revoked`, `policy_not_active`, `policy_stale`; `policies.revisions.PolicyState`);
4. `result` is present (`opa_undefined`) and of the type expected at that path
   (`opa_malformed_result`).

On any failure the caller still gets OPA's response shape, with the path's deny value as `result`
and a top-level `reason`, so that no OPA client can mistake a failure for an allow.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from controlplane import jsontext
from controlplane.decisions.opa_client import OpaDecisionClient, OpaFailure
from controlplane.errors import InvalidInput
from controlplane.observability.metrics import Metrics, bounded_label
from controlplane.reasons import DenyReason

EXECUTION_DECISION_PATH = "governance/execution/decision"
# Rego rule and package names; quoting other characters into a path is refused rather than guessed.
_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
MAX_PATH_SEGMENTS = 32
# OPA query options that would leak policy internals or change the response shape.
REFUSED_OPTIONS = frozenset({"explain", "instrument"})

log = logging.getLogger(__name__)


class RevisionCheck(Protocol):
    def check(self, revision: str | None) -> DenyReason | None: ...


class ResultShape(Enum):
    """What a usable `result` looks like at a path."""

    DECISION = "decision"  # {"allow": bool, "reasons": [str], "obligations"?: {...}}
    BOOLEAN = "boolean"

    def conforms(self, value: Any) -> bool:
        if self is ResultShape.BOOLEAN:
            return type(value) is bool
        if not isinstance(value, dict) or type(value.get("allow")) is not bool:
            return False
        reasons = value.get("reasons")
        if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
            return False
        return isinstance(value.get("obligations", {}), dict)

    def allows(self, value: Any) -> bool:
        return value is True if self is ResultShape.BOOLEAN else value["allow"] is True

    def deny_value(self, reason: DenyReason) -> Any:
        if self is ResultShape.BOOLEAN:
            return False
        return {"allow": False, "reasons": [reason.value]}


def shape_for(path: str) -> ResultShape:
    return ResultShape.DECISION if path == EXECUTION_DECISION_PATH else ResultShape.BOOLEAN


@dataclass(frozen=True, slots=True)
class Decision:
    """What to answer: OPA's response shape, plus whether it allowed and, if not, why."""

    body: dict[str, Any]
    allowed: bool
    reason: DenyReason | None


class DecisionService:
    def __init__(
        self,
        opa: OpaDecisionClient,
        metrics: Metrics,
        roots: tuple[str, ...],
        revisions: RevisionCheck,
        bundle: str,
    ) -> None:
        self._opa = opa
        self._revisions = revisions
        self._bundle = bundle
        self._metrics = metrics
        self._roots = tuple(tuple(root.split("/")) for root in roots)

    def check_path(self, path: str) -> str:
        """The path as OPA will see it. Raises `InvalidInput` unless it lies under a root."""
        segments = tuple(path.strip("/").split("/"))
        if len(segments) > MAX_PATH_SEGMENTS or not all(_SEGMENT.fullmatch(s) for s in segments):
            raise InvalidInput(
                f"{path!r} is not a decision path: use rule names separated by '/'",
                code="path_not_allowed",
            )
        if not any(segments[: len(root)] == root for root in self._roots):
            roots = ", ".join("/".join(root) for root in self._roots)
            raise InvalidInput(
                f"only paths under the decision roots ({roots}) are served", code="path_not_allowed"
            )
        return "/".join(segments)

    @staticmethod
    def check_body(body: bytes) -> bytes:
        """The body to send to OPA. Raises `InvalidInput` unless it is a JSON object.

        An empty body is sent as `{}`: OPA then evaluates without input and says so in a warning,
        which is what OPA itself does for an empty body.
        """
        if not body.strip():
            return b"{}"
        if not isinstance(jsontext.loads(body), dict):
            raise InvalidInput('the body must be a JSON object such as {"input": {...}}')
        return body

    async def decide(
        self, path: str, body: bytes, *, with_provenance: bool, with_metrics: bool
    ) -> Decision:
        """Ask OPA about `path` (already checked) with `body` (already checked), once."""
        started = time.perf_counter()
        shape = shape_for(path)
        outcome = await self._opa.decide(path, body, metrics=with_metrics)
        if isinstance(outcome, OpaFailure):
            self._metrics.opa_errors.labels(
                outcome.reason.value, bounded_label(outcome.opa_code)
            ).inc()
            log.warning(
                "decision denied: %s",
                outcome.detail,
                extra={"path": path, "reason": outcome.reason.value, "opa_code": outcome.opa_code},
            )
            decision = _deny(shape, outcome.reason, None)
        else:
            decision = self._judge(path, shape, outcome.body, with_provenance, with_metrics)
        self._metrics.decision_seconds.observe(time.perf_counter() - started)
        self._metrics.decision(
            "allow" if decision.allowed else "deny",
            decision.reason.value if decision.reason else "",
        ).inc()
        return decision

    @staticmethod
    def denied(path: str, reason: DenyReason, decision_id: str | None) -> Decision:
        """The path's deny value for `reason` (a step after OPA's answer failed)."""
        return _deny(shape_for(path), reason, decision_id)

    def _judge(
        self,
        path: str,
        shape: ResultShape,
        answer: dict[str, Any],
        with_provenance: bool,
        with_metrics: bool,
    ) -> Decision:
        decision_id = answer.get("decision_id")
        provenance = answer.get("provenance")
        bundles = provenance.get("bundles") if isinstance(provenance, dict) else None
        revision_denied = None
        if isinstance(bundles, dict) and bundles:
            deciding = bundles.get(self._bundle)
            revision = deciding.get("revision") if isinstance(deciding, dict) else None
            revision_denied = self._revisions.check(revision if isinstance(revision, str) else None)
        if not isinstance(bundles, dict) or not bundles:
            reason = DenyReason.OPA_NOT_READY
        elif revision_denied is not None:
            reason = revision_denied
        elif "result" not in answer:
            reason = DenyReason.OPA_UNDEFINED
        elif not shape.conforms(answer["result"]):
            reason = DenyReason.OPA_MALFORMED_RESULT
        else:
            result = answer["result"]
            body: dict[str, Any] = {"result": result}
            for key, wanted in (
                ("decision_id", True),
                ("provenance", with_provenance),
                ("metrics", with_metrics),
                ("warning", True),
            ):
                if wanted and key in answer:
                    body[key] = answer[key]
            allowed = shape.allows(result)
            return Decision(body, allowed, None if allowed else DenyReason.POLICY_DENIED)
        self._metrics.opa_errors.labels(reason.value, "none").inc()
        log.warning(
            "decision denied: %s", reason.value, extra={"path": path, "reason": reason.value}
        )
        return _deny(shape, reason, decision_id if isinstance(decision_id, str) else None)


def _deny(shape: ResultShape, reason: DenyReason, decision_id: str | None) -> Decision:
    body: dict[str, Any] = {"result": shape.deny_value(reason), "reason": reason.value}
    if decision_id is not None:
        body["decision_id"] = decision_id
    return Decision(body, False, reason)
