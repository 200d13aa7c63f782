"""The identity registry (role `admin`): create, list, read, change attributes and status, keys.

Every change is a `cp.admin.identity.*` ledger record, appended before the change is made
(`EvidenceLog.change`); attributes may hold personal data and are committed, not logged.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from controlplane.api.deps import AdminCaller, ServicesDep, actor
from controlplane.identities.models import MAX_REASON_LENGTH, IdentityKind
from controlplane.identities.store import MAX_PAGE_SIZE

router = APIRouter(prefix="/v1/identities", tags=["identities"])


class IdentityCreate(BaseModel):
    id: Annotated[str, Field(max_length=160, examples=["agent:billing-bot"])]
    kind: IdentityKind
    attributes: dict[str, Any] = Field(default_factory=dict)
    keys: Annotated[list[dict[str, Any]], Field(max_length=16)] = Field(default_factory=list)


class AttributesChange(BaseModel):
    attributes: dict[str, Any]


class StatusChange(BaseModel):
    reason: Annotated[str | None, Field(max_length=MAX_REASON_LENGTH)] = None


@router.post("", status_code=201, summary="Register an identity with its public keys")
async def create_identity(
    body: IdentityCreate, services: ServicesDep, caller: AdminCaller
) -> dict[str, Any]:
    async with services.evidence.change(
        "cp.admin.identity.create",
        actor=actor(caller),
        identity=body.id,
        identity_kind=body.kind.value,
        attributes=body.attributes,
        keys=body.keys,
    ):
        identity = await services.identities.create(body.id, body.kind, body.attributes, body.keys)
    return identity.as_json()


@router.get("", summary="List identities in id order (paginated)")
async def list_identities(
    services: ServicesDep,
    caller: AdminCaller,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 100,
    cursor: Annotated[str | None, Query(max_length=160)] = None,
    kind: IdentityKind | None = None,
) -> dict[str, Any]:
    page = await services.identities.list(cursor=cursor, limit=limit, kind=kind)
    return {"items": [item.as_json() for item in page.items], "next_cursor": page.next_cursor}


@router.get("/{identity_id}", summary="Read an identity")
async def get_identity(
    identity_id: str, services: ServicesDep, caller: AdminCaller
) -> dict[str, Any]:
    return (await services.identities.get(identity_id)).as_json()


@router.patch("/{identity_id}", summary="Replace an identity's attributes")
async def change_attributes(
    identity_id: str, body: AttributesChange, services: ServicesDep, caller: AdminCaller
) -> dict[str, Any]:
    async with services.evidence.change(
        "cp.admin.identity.attributes",
        actor=actor(caller),
        identity=identity_id,
        attributes=body.attributes,
    ):
        return (await services.identities.set_attributes(identity_id, body.attributes)).as_json()


@router.post("/{identity_id}/suspend", summary="Suspend: its requests are denied until reactivated")
async def suspend(
    identity_id: str, services: ServicesDep, caller: AdminCaller, body: StatusChange | None = None
) -> dict[str, Any]:
    async with services.evidence.change(
        "cp.admin.identity.suspend", actor=actor(caller), identity=identity_id, reason=_reason(body)
    ):
        return (await services.identities.suspend(identity_id, _reason(body))).as_json()


@router.post("/{identity_id}/reactivate", summary="Reactivate a suspended identity")
async def reactivate(
    identity_id: str, services: ServicesDep, caller: AdminCaller, body: StatusChange | None = None
) -> dict[str, Any]:
    async with services.evidence.change(
        "cp.admin.identity.reactivate",
        actor=actor(caller),
        identity=identity_id,
        reason=_reason(body),
    ):
        return (await services.identities.reactivate(identity_id, _reason(body))).as_json()


@router.post("/{identity_id}/revoke", summary="Revoke, for good")
async def revoke(
    identity_id: str, services: ServicesDep, caller: AdminCaller, body: StatusChange | None = None
) -> dict[str, Any]:
    async with services.evidence.change(
        "cp.admin.identity.revoke", actor=actor(caller), identity=identity_id, reason=_reason(body)
    ):
        return (await services.identities.revoke(identity_id, _reason(body))).as_json()


@router.post("/{identity_id}/keys", status_code=201, summary="Add an Ed25519 public key (JWK)")
async def add_key(
    identity_id: str, jwk: dict[str, Any], services: ServicesDep, caller: AdminCaller
) -> dict[str, Any]:
    async with services.evidence.change(
        "cp.admin.identity.key_add", actor=actor(caller), identity=identity_id, jwk=jwk
    ):
        return (await services.identities.add_key(identity_id, jwk)).as_json()


@router.post("/{identity_id}/keys/{kid}/revoke", summary="Revoke one key")
async def revoke_key(
    identity_id: str, kid: str, services: ServicesDep, caller: AdminCaller
) -> dict[str, Any]:
    async with services.evidence.change(
        "cp.admin.identity.key_revoke", actor=actor(caller), identity=identity_id, kid=kid
    ):
        return (await services.identities.revoke_key(identity_id, kid)).as_json()


def _reason(body: StatusChange | None) -> str | None:
    return body.reason if body else None
