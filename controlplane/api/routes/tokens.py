"""Bearer-token administration (role `admin`): create, list, revoke.

Each change is a `cp.admin.token.*` ledger record. A revocation is recorded before it is made; a
token's id exists only once it is created, so a creation is recorded right after, and a token
whose creation cannot be recorded is revoked again before the error is answered.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from controlplane.api.deps import AdminCaller, ServicesDep, actor
from controlplane.ledger.evidence import EvidenceUnavailable
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
    evidence = services.evidence
    try:
        await evidence.append(
            evidence.record(
                "cp.admin.token.create",
                actor=actor(caller),
                token_id=record.id,
                role=body.role.value,
                name=body.name,
            )
        )
    except EvidenceUnavailable:
        await services.tokens.revoke(record.id)
        raise
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
    async with services.evidence.change(
        "cp.admin.token.revoke", actor=actor(caller), token_id=token_id
    ):
        record = await services.tokens.revoke(token_id)
    return record.as_json()
