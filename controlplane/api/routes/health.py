"""Operations routes: liveness, readiness and Prometheus metrics (all public, DESIGN.md §4)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from controlplane.api.deps import ServicesDep
from controlplane.api.problems import problem
from controlplane.observability.metrics import CONTENT_TYPE
from controlplane.observability.readiness import check_readiness
from controlplane.policies.serving import BUNDLE_NAME

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Redis answers and OPA is ready (bundles activated, plugins OK)")
async def readyz(request: Request, services: ServicesDep) -> Response:
    report = await check_readiness(
        services.redis, services.opa, services.grant_keys, services.policy_state, BUNDLE_NAME
    )
    if report.ready:
        return JSONResponse({"status": "ready", "checks": report.checks})
    return problem(
        503,
        "not_ready",
        "Not ready",
        "; ".join(f"{name}: {c['detail']}" for name, c in report.checks.items() if not c["ok"]),
        request.url.path,
        extra={"checks": report.checks},
    )


@router.get("/metrics", summary="Prometheus metrics of this process")
async def metrics(services: ServicesDep) -> Response:
    # Rendering walks every series; keep it off the event loop that serves decisions.
    body = await asyncio.to_thread(services.metrics.render)
    return Response(body, media_type=CONTENT_TYPE)
