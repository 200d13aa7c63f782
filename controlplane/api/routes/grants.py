"""Grants after issuance: single consumption, the signed outcome, the lineage, key rotation."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from controlplane.api.deps import AdminCaller, ServicesDep, actor, require
from controlplane.api.routes.authorize import MEDIA_TYPE
from controlplane.errors import UnsupportedMediaType
from controlplane.tokens.roles import Role
from controlplane.tokens.store import Principal

router = APIRouter(tags=["grants"])
ExecutorCaller = Depends(require(Role.EXECUTOR, Role.SERVICE, Role.ADMIN))
AuditorCaller = Depends(require(Role.AUDITOR, Role.ADMIN))


@router.post("/v1/grants/{jti}/consume", summary="Consume a grant: succeeds once, then 409")
async def consume(
    jti: str, services: ServicesDep, caller: Principal = ExecutorCaller
) -> dict[str, Any]:
    # Any body (or none) is accepted and ignored: the grant id is the whole request.
    return await services.consumption.consume(jti, caller)


@router.post(
    "/v1/grants/{jti}/outcome",
    summary="Report the outcome: a JWS (typ outcome+jwt) signed by the grant's audience",
    openapi_extra={
        "requestBody": {"required": True, "content": {MEDIA_TYPE: {"schema": {"type": "string"}}}}
    },
)
async def outcome(
    jti: str, request: Request, services: ServicesDep, caller: Principal = ExecutorCaller
) -> JSONResponse:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != MEDIA_TYPE:
        raise UnsupportedMediaType(f"send the signed outcome as {MEDIA_TYPE}")
    reported, evidence = await services.consumption.report_outcome(jti, await request.body())
    return JSONResponse({**reported.as_json(), "evidence": evidence.as_json()}, status_code=201)


@router.get("/v1/grants/{jti}", summary="A grant's lineage: claims, consumption, outcome, children")
async def lineage(
    jti: str, services: ServicesDep, caller: Principal = AuditorCaller
) -> dict[str, Any]:
    return await services.grants.lineage(jti)


@router.post(
    "/v1/grant-keys/rotate",
    summary="Rotate the grant signing key (old one stays in the JWKS until its grants expire)",
)
async def rotate(services: ServicesDep, caller: AdminCaller) -> dict[str, Any]:
    new = services.grant_keys.generate()
    async with services.evidence.change(
        "cp.admin.grant_key.rotate", actor=actor(caller), kid=new.thumbprint()
    ):
        key = await services.grant_keys.rotate(new)
    return {"kid": key.kid, "public_jwk": key.public_jwk, "created_at": key.created_at}
