"""`GET /v1/bundles/{name}`: the OPA bundle service (roles `opa`, `admin`); `policies.serving`
holds the protocol. OPA's fleet reports back through `POST /v1/status` (role `opa`), read by SREs
and auditors at `GET /v1/fleet`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from controlplane.api.deps import BundleCaller, FleetCaller, OpaCaller, ServicesDep
from controlplane.policies.serving import BUNDLE_NAME, requested_wait

router = APIRouter(tags=["bundles"])


@router.get(
    "/v1/bundles/{name:path}",
    summary="The active signed bundle; 304 while OPA has it (long polling with Prefer: wait=N)",
    response_class=Response,
)
async def bundle(
    name: str, request: Request, services: ServicesDep, caller: BundleCaller
) -> Response:
    reply = await services.bundles.fetch(
        name,
        if_none_match=request.headers.get("if-none-match"),
        wait_seconds=requested_wait(request.headers.get("prefer")),
        stopping=request.app.state.stopping,
    )
    headers = {"ETag": reply.etag, "Cache-Control": "no-cache"}
    if reply.status == 304:
        return Response(status_code=304, headers={**headers, "Content-Type": reply.content_type})
    return Response(reply.body, media_type=reply.content_type, headers=headers)


@router.post("/v1/status", status_code=204, summary="OPA's status report (OPA's Status API)")
async def status(request: Request, services: ServicesDep, caller: OpaCaller) -> Response:
    await services.fleet.report(await request.body())
    return Response(status_code=204)


@router.get("/v1/fleet", summary="Each OPA: its revision, errors, and when it last reported")
async def fleet(services: ServicesDep, caller: FleetCaller) -> dict[str, Any]:
    active = await services.policies.active()
    revision = active.revision if active else None
    return {
        "bundle": BUNDLE_NAME,
        "active_revision": revision,
        "instances": await services.fleet.instances(revision, BUNDLE_NAME),
    }
