"""`POST /v1/authorize`: a signed execution request in, a deny or a signed grant out.

No bearer token: the signed request is the credential. A body that is not a compact JWS at all is
a 400 problem; anything that parses gets 200 with the decision (`decisions.authorize`).

A hot path, so `authorize` is a plain Starlette endpoint like `data.decide`, for the reason in
docs/adr/0002-decision-hot-path.md; `OPENAPI_PATH` documents it.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from controlplane import jsontext
from controlplane.api.problems import PROBLEM
from controlplane.errors import UnsupportedMediaType
from controlplane.jose import compact_jws
from controlplane.wiring import Services

AUTHORIZE_PATH = "/v1/authorize"
MEDIA_TYPE = "application/jwt"


async def authorize(request: Request) -> Response:
    """Verify the signed execution request, decide, and answer with a deny or a grant."""
    services: Services = request.app.state.services
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != MEDIA_TYPE:
        raise UnsupportedMediaType(f"send the signed request as {MEDIA_TYPE}")
    token = compact_jws(await request.body())
    answer = await services.authorize.authorize(token)
    return Response(jsontext.dumps(answer.as_json()), media_type="application/json")


OPENAPI_PATH: dict[str, Any] = {
    AUTHORIZE_PATH: {
        "post": {
            "tags": ["authorize"],
            "summary": "Ask to run one action with one set of arguments; get a deny or a grant",
            "description": (
                "The body is the compact JWS of a signed execution request (DESIGN.md §5). Any "
                "request that parses is answered 200 with `decision`, `reasons`, `decision_id`, "
                "`evidence` and, for an allow, `grant`."
            ),
            "operationId": "authorize",
            "requestBody": {
                "required": True,
                "content": {MEDIA_TYPE: {"schema": {"type": "string", "format": "jws"}}},
            },
            "responses": {
                "200": {
                    "description": "allow with a grant, or deny with reasons",
                    "content": {
                        "application/json": {
                            "example": {
                                "decision": "deny",
                                "reasons": ["request_expired"],
                                "decision_id": None,
                                "evidence": None,
                            }
                        }
                    },
                },
                "400": {"description": "not a compact JWS at all", "content": PROBLEM},
                "413": {"description": "over the size limit", "content": PROBLEM},
                "415": {"description": "not application/jwt", "content": PROBLEM},
            },
        }
    }
}
