"""The ASGI layer every request passes: request id, body limit, access log, HTTP metrics.

Written as plain ASGI rather than Starlette's `BaseHTTPMiddleware`, which costs a task and a
memory stream per request on the decision hot path. The body limit is enforced here for every
route, before any route code runs: a declared `Content-Length` over the limit is refused without
reading the body, and a chunked body is read only up to the limit (DESIGN.md §2.5).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controlplane.api.problems import problem
from controlplane.observability.jsonlog import request_id_var
from controlplane.observability.metrics import Metrics

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

access = logging.getLogger("controlplane.access")


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        default_body_limit: int,
        body_limits: Mapping[str, int],
        access_log: bool,
    ) -> None:
        self._app = app
        self._metrics = metrics
        self._default_limit = default_body_limit
        self._limits = dict(body_limits)
        self._access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        offered = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = offered if _REQUEST_ID.fullmatch(offered) else os.urandom(16).hex()
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            if scope["method"] in _BODY_METHODS:
                limit = self._limits.get(scope["path"], self._default_limit)
                replay = await _read_body(scope, receive, headers, limit)
                if isinstance(replay, int):
                    detail = f"the request body is over the limit of {limit} bytes for this route"
                    response = problem(413, "too_large", "Payload too large", detail, scope["path"])
                    await response(scope, receive, send_with_id)
                    return
                receive = replay
            await self._app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            self._metrics.http_request(scope["method"], template, status).inc()
            if self._access_log:
                access.info(
                    "%s %s %s",
                    scope["method"],
                    scope["path"],
                    status,
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "route": template,
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    },
                )
            request_id_var.reset(token)


async def _read_body(
    scope: Scope, receive: Receive, headers: dict[bytes, bytes], limit: int
) -> Receive | int:
    """A `receive` that replays the whole body, or the limit as an int when the body is over it."""
    declared = headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return limit
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            # The client went away; let the app see the disconnect.
            return _replay_message(message, receive)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return limit
        chunks.append(chunk)
        more = message.get("more_body", False)
    return _replay_message({"type": "http.request", "body": b"".join(chunks)}, receive)


def _replay_message(first: Message, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return first
        return await receive()

    return replay
