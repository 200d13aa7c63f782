"""Bearer-token administration (role `admin`): create, list, revoke."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from controlplane.api.deps import AdminCaller, ServicesDep
from controlplane.tokens.roles import Role
from controlplane.tokens.store import MAX_NAME_LENGTH, MAX_PAGE_SIZE

router = APIRouter(prefix="/v1/tokens", tags=["tokens"])


class TokenCreate(BaseModel):
    role: Role
    name: Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH)]


@router.post("", status_code=201, summary="Create a token; its secret is shown only in this answer")
async def create_token(
    body: TokenCreate, services: ServicesDep, caller: AdminCaller
) -> dict[str, Any]:
    secret, record = await services.tokens.create(body.role, body.name)
    return {**record.as_json(), "token": secret}


@router.get("", summary="List tokens in creation order (paginated)")
async def list_tokens(
    services: ServicesDep,
    caller: AdminCaller,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 100,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    page = await services.tokens.list(cursor=cursor, limit=limit)
    return {"items": [item.as_json() for item in page.items], "next_cursor": page.next_cursor}


@router.post("/{token_id}/revoke", summary="Revoke a token")
async def revoke_token(token_id: str, services: ServicesDep, caller: AdminCaller) -> dict[str, Any]:
    record = await services.tokens.revoke(token_id)
    return record.as_json()
