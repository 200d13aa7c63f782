"""The FastAPI app factory. `create_app(settings)` is the only way an app is made.

Services are opened in the lifespan, inside the event loop that serves requests (one Redis client
and one OPA connection pool per process). After start-up the heap is frozen (`gc.freeze()`), which
keeps full collections from scanning long-lived objects: measured here, it brought a worker's p99
from ~24 ms to ~6 ms (`reference/performance.md`). The young-generation threshold is raised from
700 to 20,000 allocations: a decision allocates about a thousand objects, so the default ran a
collection on nearly every request; raising it cut the API's CPU per decision by ~15% here
(docs/adr/0002-decision-hot-path.md).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.routing import Match, Route
from starlette.types import Scope

from controlplane import __version__
from controlplane.api import problems
from controlplane.api.middleware import RequestContextMiddleware
from controlplane.api.routes import (
    authorize,
    bundles,
    data,
    discovery,
    grants,
    health,
    identities,
    ledger,
    logs,
    policies,
    tokens,
)
from controlplane.config import Settings
from controlplane.observability.metrics import Metrics
from controlplane.wiring import open_services

GC_YOUNG_THRESHOLD = 20_000


class _LeanRoute(Route):
    """A Starlette route that, like FastAPI's, names itself in the scope (for metrics labels)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope


def create_app(settings: Settings) -> FastAPI:
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_services(settings, metrics=metrics, background=True) as services:
            app.state.services = services
            gc.collect()
            gc.freeze()
            gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)
            yield

    app = FastAPI(
        title="Execution governance control plane",
        version=__version__,
        description="Decides, with OPA, whether an action may run, and keeps the evidence.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        # FastAPI's built-in OpenTelemetry hooks look up three providers (and the environment) on
        # every request even when nothing is configured; metrics are Prometheus here.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    # Set when the server starts shutting down, before it waits for open requests: long polls
    # (`GET /v1/bundles`) answer at once instead of holding the shutdown (api/server.py).
    app.state.stopping = asyncio.Event()
    problems.install(app)
    app.add_middleware(
        RequestContextMiddleware,
        metrics=metrics,
        default_body_limit=settings.max_body_bytes,
        body_limits={
            "/v1/logs": settings.max_log_body_bytes,
            "/v1/authorize": settings.max_request_bytes,
            "/v1/policies": settings.max_bundle_bytes,
        },
        access_log=settings.access_log,
    )
    # The hot paths are plain Starlette endpoints (docs/adr/0002-decision-hot-path.md).
    app.router.routes.append(_LeanRoute(data.DECIDE_PATH, data.decide, methods=["POST"]))
    app.router.routes.append(
        _LeanRoute(authorize.AUTHORIZE_PATH, authorize.authorize, methods=["POST"])
    )
    for router in (
        health.router,
        policies.router,
        bundles.router,
        ledger.router,
        discovery.router,
        data.router,
        grants.router,
        identities.router,
        logs.router,
        tokens.router,
    ):
        app.include_router(router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            schema["paths"] = {**authorize.OPENAPI_PATH, **data.OPENAPI_PATH, **schema["paths"]}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
