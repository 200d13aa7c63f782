"""`POST /v1/data/{path}`: the OPA-compatible decision endpoint (DESIGN.md §4).

Request problems (bad JSON, wrong content type, a path outside the roots, a refused option) are 4xx
problem+json; anything that goes wrong while deciding is HTTP 200 with the path's deny value, made
by `decisions.service`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from controlplane import jsontext
from controlplane.api.deps import DecisionCaller, ServicesDep
from controlplane.api.media import require_json
from controlplane.decisions.service import REFUSED_OPTIONS
from controlplane.errors import InvalidInput, UnsupportedMediaType

router = APIRouter(tags=["decisions"])

_REQUEST_BODY = {
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"input": {"description": "The input document (any JSON)"}},
                },
                "example": {
                    "input": {
                        "identity": {
                            "id": "agent:demo",
                            "kind": "agent",
                            "status": "active",
                            "attributes": {},
                        },
                        "request": {"action": "demo.echo", "resource": "demo", "args": {}},
                        "context": {},
                    }
                },
            }
        },
    }
}


@router.post(
    "/v1/data/{path:path}",
    summary="Ask for a decision, exactly as with OPA's Data API",
    description=(
        "Evaluates `data.<path>` in OPA with the given input. Only paths under the configured "
        "decision roots are served. Any failure while deciding answers 200 with the path's deny "
        "value as `result` and a top-level `reason`."
    ),
    openapi_extra=_REQUEST_BODY,
    response_class=Response,
)
async def decide(
    path: str, request: Request, services: ServicesDep, caller: DecisionCaller
) -> Response:
    checked = services.decisions.check_path(path)
    refused = sorted(REFUSED_OPTIONS & request.query_params.keys())
    if refused:
        raise InvalidInput(
            f"the OPA option(s) {', '.join(refused)} are not served here", code="option_not_allowed"
        )
    require_json(request)
    if request.headers.get("content-encoding", "identity").lower() != "identity":
        raise UnsupportedMediaType("compressed request bodies are not accepted here")
    body = services.decisions.check_body(await request.body())
    decision = await services.decisions.decide(
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
