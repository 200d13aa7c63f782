"""`POST /v1/data/{path}`: the OPA-compatible decision endpoint (DESIGN.md §4).

Request problems (bad JSON, wrong content type, a path outside the roots, a refused option) are 4xx
problem+json; anything that goes wrong while deciding is HTTP 200 with the path's deny value, made
by `decisions.service`.

This is the hot path, so `decide` is a plain Starlette endpoint rather than a FastAPI route:
FastAPI's per-request dependency solving and validation measured ~70 µs of the ~460 µs of CPU this
route costs per request (docs/adr/0002-decision-hot-path.md). It authenticates with the same
function as every other route, first, and is documented in OpenAPI by `OPENAPI_PATH`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from controlplane import jsontext
from controlplane.api.deps import BEARER_SECURITY, DECISION_ROLES, DecisionCaller, authenticate
from controlplane.api.media import require_json
from controlplane.api.problems import PROBLEM
from controlplane.decisions.demo import DEMO_INPUT
from controlplane.decisions.service import REFUSED_OPTIONS
from controlplane.errors import InvalidInput, UnsupportedMediaType
from controlplane.wiring import Services

DECIDE_PATH = "/v1/data/{path:path}"
router = APIRouter(tags=["decisions"])


async def decide(request: Request) -> Response:
    """Evaluate `data.<path>` in OPA with the caller's input, once; deny on any failure."""
    services: Services = request.app.state.services
    caller = await authenticate(services, request.headers.get("authorization"), DECISION_ROLES)
    checked = services.decisions.check_path(request.path_params["path"])
    refused = sorted(REFUSED_OPTIONS & request.query_params.keys())
    if refused:
        raise InvalidInput(
            f"the OPA option(s) {', '.join(refused)} are not served here", code="option_not_allowed"
        )
    require_json(request)
    if request.headers.get("content-encoding", "identity").lower() != "identity":
        raise UnsupportedMediaType("compressed request bodies are not accepted here")
    body = services.decisions.check_body(await request.body())
    decision = await services.asserted.decide(
        caller,
        checked,
        body,
        with_provenance=_flag(request, "provenance"),
        with_metrics=_flag(request, "metrics"),
    )
    return Response(jsontext.dumps(decision.body), media_type="application/json")


@router.post("/v1/data", include_in_schema=False)
async def decide_everything(caller: DecisionCaller) -> Response:
    """The bare `/v1/data` would evaluate all of `data`, system policies included: refused."""
    raise InvalidInput("name a decision path: POST /v1/data/<path>", code="path_not_allowed")


def _flag(request: Request, name: str) -> bool:
    # OPA reads a boolean query parameter as true when present and empty or "true".
    value = request.query_params.get(name)
    return value is not None and value.lower() in {"", "true"}


# The OpenAPI operation of `decide`, which FastAPI cannot derive from a plain endpoint.
OPENAPI_PATH: dict[str, Any] = {
    "/v1/data/{path}": {
        "post": {
            "tags": ["decisions"],
            "summary": "Ask for a decision, exactly as with OPA's Data API",
            "description": (
                "Evaluates `data.<path>` in OPA with the given input. Only paths under the "
                "configured decision roots are served. Any failure while deciding answers 200 "
                "with the path's deny value as `result` and a top-level `reason`."
            ),
            "operationId": "decide",
            "security": BEARER_SECURITY,
            "parameters": [
                {"name": "path", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "provenance", "in": "query", "schema": {"type": "boolean"}},
                {"name": "metrics", "in": "query", "schema": {"type": "boolean"}},
            ],
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {"input": {"description": "The input (any JSON)"}},
                        },
                        "example": {"input": DEMO_INPUT},
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "OPA's answer, or the path's deny value and a `reason`",
                    "content": {
                        "application/json": {
                            "example": {
                                "result": {"allow": True, "reasons": []},
                                "decision_id": "3f5c2b8e-8f1e-4d2a-9c4b-1b2a3c4d5e6f",
                            }
                        }
                    },
                },
                "400": {"description": "Bad JSON, a path outside the roots", "content": PROBLEM},
                "401": {"description": "No valid token", "content": PROBLEM},
                "403": {"description": "Not a service or admin token", "content": PROBLEM},
                "413": {"description": "Body over the limit", "content": PROBLEM},
                "415": {"description": "Not JSON", "content": PROBLEM},
                "503": {"description": "The token could not be checked", "content": PROBLEM},
            },
        }
    }
}
