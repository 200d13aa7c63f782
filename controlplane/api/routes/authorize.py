"""`POST /v1/authorize`: a signed execution request in, a deny or a signed grant out.

No bearer token: the signed request is the credential. A body that is not a compact JWS at all is
a 400 problem; anything that parses gets 200 with the decision (`decisions.authorize`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from controlplane.api.deps import ServicesDep
from controlplane.errors import UnsupportedMediaType
from controlplane.jose import compact_jws

router = APIRouter(tags=["authorize"])
MEDIA_TYPE = "application/jwt"

_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {MEDIA_TYPE: {"schema": {"type": "string", "description": "compact JWS"}}},
    }
}


@router.post(
    "/v1/authorize",
    summary="Ask to run one action with one set of arguments; get a deny or a grant",
    openapi_extra=_OPENAPI,
)
async def authorize(request: Request, services: ServicesDep) -> JSONResponse:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != MEDIA_TYPE:
        raise UnsupportedMediaType(f"send the signed request as {MEDIA_TYPE}")
    token = compact_jws(await request.body())
    answer = await services.authorize.authorize(token)
    return JSONResponse(answer.as_json())
