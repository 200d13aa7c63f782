"""The executor side of a grant, on the control plane: its single consumption and its outcome.

`consume` succeeds once per grant, on any replica (an atomic `SET NX`), and only once its
`cp.consume` record is in the ledger: if the record cannot be appended, the mark is taken back and
the caller gets 503 `evidence_unavailable`. A second consumption is a 409 with
`grant_already_consumed`. An expired grant cannot be consumed (`grant_expired`).

The outcome is a compact JWS signed by the identity the grant was issued to (its `aud`), with
`typ: outcome+jwt` and claims `iss`, `grant` (the grant's `jti`), `status` (`succeeded` or
`failed`), `result_sha256` (hex SHA-256 of the RFC 8785 form of the result) and `iat`. It is
accepted once, after the consumption.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from controlplane.clock import Clock, rfc3339
from controlplane.errors import Conflict, InvalidInput, NotAuthenticated, NotFound
from controlplane.grants.registry import GrantRegistry
from controlplane.identities.models import IdentityStatus, KeyStatus
from controlplane.identities.store import IdentityStore
from controlplane.jose import (
    ED25519_ALGORITHMS,
    SignatureInvalidError,
    b64url_json,
    compact_jws,
    typ_is,
    verify_ed25519,
)
from controlplane.ledger.evidence import Evidence, EvidenceLog, EvidenceUnavailable
from controlplane.tokens.store import Principal

OUTCOME_TYPE = "outcome+jwt"
OUTCOME_STATUSES = frozenset({"succeeded", "failed"})
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Outcome:
    grant: str
    status: str
    result_sha256: str | None
    reported_by: str

    def as_json(self) -> dict[str, Any]:
        return {
            "grant": self.grant,
            "status": self.status,
            "result_sha256": self.result_sha256,
            "reported_by": self.reported_by,
        }


class ConsumptionService:
    def __init__(
        self,
        grants: GrantRegistry,
        identities: IdentityStore,
        evidence: EvidenceLog,
        clock: Clock,
        *,
        skew_seconds: int,
    ) -> None:
        self._grants = grants
        self._identities = identities
        self._evidence = evidence
        self._clock = clock
        self._skew = skew_seconds

    async def consume(self, jti: str, caller: Principal) -> dict[str, Any]:
        """Consume the grant, once. Raises `NotFound` (`grant_unknown`) or `Conflict`
        (`grant_expired`, `grant_already_consumed`)."""
        grant = await self._grants.find(jti)
        if grant is not None and grant["exp"] < self._clock.now().timestamp() - self._skew:
            raise Conflict(f"grant {jti} has expired", code="grant_expired")
        consumed = {"jti": jti, "consumed_at": rfc3339(self._clock.now()), "by": caller.token_id}
        stored = await self._grants.consume(jti, consumed)
        record = self._evidence.record(
            "cp.consume",
            grant=jti,
            decision_id=grant.get("decision_id") if grant else None,
            by={"token_id": caller.token_id, "role": caller.role.value},
        )
        evidence = await self._recorded(jti, "consumed", stored, record)
        return {**consumed, "evidence": evidence.as_json()}

    async def report_outcome(self, jti: str, body: bytes) -> tuple[Outcome, Evidence]:
        """Accept the signed outcome of the grant, once.

        Raises `InvalidInput` (not a valid outcome), `NotAuthenticated` (not signed by the grant's
        audience), `NotFound` or `Conflict`."""
        token = compact_jws(body)
        header_segment, payload_segment, _ = token.split(".")
        header, claims = b64url_json(header_segment), b64url_json(payload_segment)
        if header is None or claims is None or not typ_is(header, OUTCOME_TYPE):
            raise InvalidInput(
                f"an outcome is a JWS with typ {OUTCOME_TYPE}", code="invalid_outcome"
            )
        if header.get("alg") not in ED25519_ALGORITHMS:
            raise InvalidInput("an outcome is signed with EdDSA (Ed25519)", code="invalid_outcome")
        outcome = _outcome(jti, claims)
        grant = await self._grants.find(jti)
        if grant is None:
            raise NotFound(f"no grant {jti!r} (unknown, or past retention)", code="grant_unknown")
        if outcome.reported_by != grant.get("aud"):
            raise NotAuthenticated(
                f"the outcome must be signed by {grant.get('aud')}, to whom the grant was issued",
                code="outcome_signer_invalid",
            )
        await self._check_signature(token, header, outcome.reported_by)
        marker = {**outcome.as_json(), "reported_at": rfc3339(self._clock.now())}
        stored = await self._grants.report_outcome(jti, marker)
        record = self._evidence.record(
            "cp.outcome",
            decision_id=grant.get("decision_id"),
            outcome=outcome.as_json(),
            jws=token,
        )
        evidence = await self._recorded(jti, "outcome", stored, record)
        return outcome, evidence

    async def _recorded(
        self, jti: str, what: str, stored: bytes, record: dict[str, Any]
    ) -> Evidence:
        """Append the record of a consumption or outcome just marked; if it cannot be appended,
        unmark it (the caller gets 503 and may retry) and raise `EvidenceUnavailable`."""
        try:
            return await self._evidence.append(record)
        except EvidenceUnavailable:
            await self._grants.release(jti, what, stored)
            raise

    async def _check_signature(self, token: str, header: dict[str, Any], signer: str) -> None:
        identity = await self._identities.find(signer)
        kid = header.get("kid")
        key = identity.key(kid) if identity is not None and isinstance(kid, str) else None
        if (
            identity is None
            or identity.status is not IdentityStatus.ACTIVE
            or key is None
            or key.status is not KeyStatus.ACTIVE
        ):
            raise NotAuthenticated(
                f"{signer} is not an active identity with an active key {kid!r}",
                code="outcome_signer_invalid",
            )
        try:
            verify_ed25519(token, str(key.jwk["x"]))
        except SignatureInvalidError as exc:
            raise NotAuthenticated(
                "the outcome's signature does not verify", code="outcome_signature_invalid"
            ) from exc


def _outcome(jti: str, claims: dict[str, Any]) -> Outcome:
    if claims.get("grant") != jti:
        raise InvalidInput("the outcome's grant claim must name this grant", code="invalid_outcome")
    status = claims.get("status")
    if status not in OUTCOME_STATUSES:
        raise InvalidInput("status must be succeeded or failed", code="invalid_outcome")
    digest = claims.get("result_sha256")
    if digest is not None and not (isinstance(digest, str) and _SHA256_HEX.fullmatch(digest)):
        raise InvalidInput("result_sha256 must be 64 lowercase hex digits", code="invalid_outcome")
    issuer = claims.get("iss")
    if not isinstance(issuer, str):
        raise InvalidInput("iss must name the executor identity", code="invalid_outcome")
    return Outcome(jti, str(status), digest, issuer)
