"""RFC 9457 problem+json: the one place where errors become HTTP statuses and bodies.

Every error answer of the API, ours or the framework's (unknown route, wrong method, a body that
fails validation), is a problem document with `type`, `title`, `status`, `detail`, `instance`, and
two extension members: `reason` (the stable snake_case code clients switch on) and `request_id`.
The `type` URIs are documented in `docs/problems.md`.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from controlplane import jsontext
from controlplane.errors import (
    ControlPlaneError,
    NotAuthenticated,
    Unavailable,
    http_status,
)
from controlplane.observability.jsonlog import request_id_var

MEDIA_TYPE = "application/problem+json"
# The OpenAPI content of a problem answer, for routes documented by hand.
PROBLEM = {MEDIA_TYPE: {"schema": {"type": "object"}}}
TYPE_PREFIX = "urn:problem-type:controlplane:"

_FRAMEWORK_CODES = {
    404: "route_not_found",
    405: "method_not_allowed",
    415: "unsupported_media_type",
}

log = logging.getLogger(__name__)


def problem(
    status: int,
    reason: str,
    title: str,
    detail: str,
    instance: str,
    *,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + reason,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        "reason": reason,
        "request_id": request_id_var.get(),
    }
    if extra:
        body.update(extra)
    return Response(jsontext.dumps(body), status, headers=headers, media_type=MEDIA_TYPE)


def error_response(error: ControlPlaneError, instance: str) -> Response:
    status = http_status(error)
    headers = None
    if isinstance(error, NotAuthenticated):
        # RFC 6750 §3: a 401 names the scheme the client should use.
        headers = {"WWW-Authenticate": 'Bearer realm="controlplane"'}
    elif isinstance(error, Unavailable):
        headers = {"Retry-After": "1"}
    return problem(status, error.code, error.title, error.detail, instance, headers=headers)


def install(app: FastAPI) -> None:
    """Route every error raised while handling a request to a problem document."""

    async def on_control_plane_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, ControlPlaneError):  # registered for this type only
            raise exc
        return error_response(exc, request.url.path)

    async def on_http_exception(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, StarletteHTTPException):  # registered for this type only
            raise exc
        reason = _FRAMEWORK_CODES.get(exc.status_code, "http_error")
        title = "Not found" if exc.status_code == 404 else str(exc.detail)
        return problem(
            exc.status_code,
            reason,
            title,
            str(exc.detail),
            request.url.path,
            headers=dict(exc.headers) if exc.headers else None,
        )

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, RequestValidationError):  # registered for this type only
            raise exc
        errors = [
            {"location": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['location']}: {e['message']}" for e in errors)
        return problem(
            422,
            "invalid_request",
            "Invalid request",
            detail,
            request.url.path,
            extra={"errors": errors},
        )

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", extra={"path": request.url.path})
        return problem(
            500,
            "internal_error",
            "Internal error",
            "an unexpected error occurred; see the logs",
            request.url.path,
        )

    app.add_exception_handler(ControlPlaneError, on_control_plane_error)
    app.add_exception_handler(StarletteHTTPException, on_http_exception)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_unexpected)
