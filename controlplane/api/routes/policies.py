"""Policy revisions: publish (role `policy-author` or `admin`), list and read them, and the admin
actions activate, roll back and revoke, each with a reason. The bundle verification key is public:
it is what every OPA is configured with."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from controlplane.api.deps import AdminCaller, PolicyAuthorCaller, ServicesDep, actor
from controlplane.errors import UnsupportedMediaType

router = APIRouter(prefix="/v1/policies", tags=["policies"])
BUNDLE_MEDIA_TYPES = frozenset(
    {"application/gzip", "application/x-gzip", "application/octet-stream"}
)
MAX_REASON_LENGTH = 1000


class Change(BaseModel):
    reason: Annotated[str, Field(min_length=1, max_length=MAX_REASON_LENGTH)]


@router.get("/verification-key", summary="The key OPA verifies bundles with (public)")
async def verification_key(services: ServicesDep) -> dict[str, str]:
    return (await services.bundle_key.verification_key()).as_json()


@router.post(
    "/verification-key/rotate",
    summary="Sign with a new bundle key; stored revisions are re-signed, keeping their ids (admin)",
)
async def rotate_key(body: Change, services: ServicesDep, caller: AdminCaller) -> dict[str, Any]:
    return await services.publisher.rotate_key(
        actor=actor(caller), reason=body.reason, evidence=services.evidence
    )


@router.post(
    "",
    status_code=201,
    summary="Publish a bundle (tar.gz from `controlplane policy build`): checked, signed, stored",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def publish(
    request: Request, response: Response, services: ServicesDep, caller: PolicyAuthorCaller
) -> dict[str, Any]:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media not in BUNDLE_MEDIA_TYPES:
        raise UnsupportedMediaType("send the bundle as application/gzip (a tar.gz)")
    meta, created = await services.publisher.publish_upload(
        await request.body(), actor=actor(caller)
    )
    if not created:
        response.status_code = 200
    return meta


@router.get("", summary="Every published revision, newest first, and the active one")
async def list_revisions(services: ServicesDep, caller: PolicyAuthorCaller) -> dict[str, Any]:
    active = await services.policies.active()
    return {
        "active": active.as_json() if active else None,
        "revisions": await services.policies.revisions(),
    }


@router.post("/rollback", summary="Activate the revision that was active before (admin)")
async def rollback(body: Change, services: ServicesDep, caller: AdminCaller) -> dict[str, Any]:
    activation = await services.policies.rollback(actor=actor(caller), reason=body.reason)
    return activation.as_json()


@router.get("/{revision}", summary="One revision's metadata and status")
async def get_revision(
    revision: str, services: ServicesDep, caller: PolicyAuthorCaller
) -> dict[str, Any]:
    return await services.policies.revision(revision)


@router.post("/{revision}/activate", summary="Make a revision the one every OPA runs (admin)")
async def activate(
    revision: str, body: Change, services: ServicesDep, caller: AdminCaller
) -> dict[str, Any]:
    activation = await services.policies.activate(revision, actor=actor(caller), reason=body.reason)
    return activation.as_json()


@router.post("/{revision}/revoke", summary="Revoke a revision for good (admin)")
async def revoke(
    revision: str, body: Change, services: ServicesDep, caller: AdminCaller
) -> dict[str, Any]:
    return await services.policies.revoke(revision, actor=actor(caller), reason=body.reason)
