"""Public discovery: what clients need to build requests and executors need to verify grants."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from controlplane.api.deps import ServicesDep
from controlplane.errors import RedisUnavailable
from controlplane.grants.issue import GRANT_TYPE
from controlplane.grants.keys import SIGNING_ALGORITHM
from controlplane.jose import ED25519_ALGORITHMS
from controlplane.requests.verify import REQUEST_TYPE

router = APIRouter(tags=["discovery"])
# Executors cache the JWKS; a rotated-in key is fetched when an unknown kid shows up.
JWKS_MAX_AGE_SECONDS = 60


@router.get("/.well-known/controlplane", summary="Discovery document (DESIGN.md §4)")
async def discovery(services: ServicesDep) -> dict[str, Any]:
    settings = services.settings
    base = settings.public_url.rstrip("/")
    try:
        ledger_key: str | None = await services.ledger.vkey()
    except RedisUnavailable:  # the key may live in Redis; the rest of the document does not
        ledger_key = None
    return {
        "issuer": settings.public_url,
        "audience": settings.public_url,
        "request_type": REQUEST_TYPE,
        "request_signing_alg_values_supported": sorted(ED25519_ALGORITHMS),
        "request_max_lifetime_seconds": settings.request_max_lifetime_seconds,
        "clock_skew_seconds": settings.clock_skew_seconds,
        "grant_type": GRANT_TYPE,
        "grant_signing_alg_values_supported": [SIGNING_ALGORITHM],
        "grant_lifetime_seconds": settings.grant_lifetime_seconds,
        "jwks_uri": f"{base}/.well-known/jwks.json",
        # The evidence ledger: its checkpoints are signed notes of this origin, by this key.
        "ledger": {"origin": services.ledger.origin, "key": ledger_key},
        "endpoints": {
            "authorize": f"{base}/v1/authorize",
            "data": f"{base}/v1/data/{{path}}",
            "consume": f"{base}/v1/grants/{{jti}}/consume",
            "outcome": f"{base}/v1/grants/{{jti}}/outcome",
            "ledger_checkpoint": f"{base}/v1/ledger/checkpoint",
            "ledger_key": f"{base}/v1/ledger/key",
        },
    }


@router.get("/.well-known/jwks.json", summary="Grant verification keys (RFC 7517 JWKS)")
async def jwks(services: ServicesDep) -> JSONResponse:
    return JSONResponse(
        await services.grant_keys.jwks(),
        headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE_SECONDS}"},
    )
