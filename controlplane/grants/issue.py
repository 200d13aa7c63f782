"""Making grants (DESIGN.md §5): the claims, then, once their evidence is stored, the signature.

A grant is a JWT (`typ: grant+jwt`, `alg: EdDSA`, `kid` from the JWKS) whose claims say exactly
what may run: `authorization_details` (RFC 9396) with the action, resource and the SHA-256 of the
RFC 8785 form of the arguments; `req`, the SHA-256 of the whole request claim set; the OPA
`decision_id`; the deciding bundle revision; the policy's obligations. `aud` is the executor the
request named, or else the requester, so that only that party accepts it.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from controlplane import jsontext
from controlplane.canonical import sha256_hex
from controlplane.clock import Clock
from controlplane.grants.keys import SIGNING_ALGORITHM, KeyRing, SigningKey
from controlplane.jose import sign_compact
from controlplane.requests.verify import VerifiedRequest

GRANT_TYPE = "grant+jwt"
AUTHORIZATION_DETAILS_TYPE = "execution"


class GrantIssuer:
    def __init__(self, keys: KeyRing, clock: Clock, *, issuer: str, lifetime_seconds: int) -> None:
        self._keys = keys
        self._clock = clock
        self._issuer = issuer
        self._lifetime = lifetime_seconds

    def claims(
        self,
        request: VerifiedRequest,
        *,
        decision_id: str | None,
        policy: dict[str, str] | None,
        obligations: dict[str, Any],
    ) -> dict[str, Any]:
        """The claims of the grant that would answer `request`, not yet signed."""
        now = int(self._clock.now().timestamp())
        claims = request.claims
        return {
            "iss": self._issuer,
            "sub": request.identity.id,
            "aud": claims.get("executor") or request.identity.id,
            "iat": now,
            "nbf": now,
            "exp": now + self._lifetime,
            "jti": str(uuid.uuid4()),
            "authorization_details": [
                {
                    "type": AUTHORIZATION_DETAILS_TYPE,
                    "action": claims["action"],
                    "resource": claims["resource"],
                    "args_sha256": sha256_hex(claims["args"]),
                }
            ],
            "req": hashlib.sha256(request.canonical).hexdigest(),
            "decision_id": decision_id,
            "policy": policy,
            "obligations": obligations,
            "parent": request.context.get("parent"),
            "ledger": None,  # set to the origin and index of its cp.authorization record
        }

    async def signing_key(self) -> SigningKey:
        """The key the next grant will be signed with; fetched before any evidence says allow, so
        that a key ring that cannot be loaded ends in a deny, not in an allow without a grant."""
        return await self._keys.active()

    @staticmethod
    def sign(claims: dict[str, Any], key: SigningKey) -> str:
        header = {"alg": SIGNING_ALGORITHM, "kid": key.kid, "typ": GRANT_TYPE}
        return sign_compact(header, jsontext.dumps(claims), key.signer)
