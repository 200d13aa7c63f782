"""Typed dependencies for routes: the services of the process and the caller's principal.

Routes declare who may call them with one of the `...Caller` aliases, so that the role table of
DESIGN.md §4 can be read off the route signatures.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from controlplane.errors import NotAuthenticated, PermissionDenied
from controlplane.tokens.roles import Role
from controlplane.tokens.store import Principal
from controlplane.wiring import Services

# auto_error=False: a missing header must become our 401 problem, not FastAPI's 403.
_bearer = HTTPBearer(auto_error=False, description="A control plane token: `Bearer cp_...`")


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def authenticate(
    services: Services, authorization: str | None, roles: tuple[Role, ...]
) -> Principal:
    """The caller of a request with this `Authorization` header, if its role is one of `roles`.

    Raises `NotAuthenticated` (401), `PermissionDenied` (403) or `RedisUnavailable` (503).
    """
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("send a bearer token: Authorization: Bearer <token>")
    principal = await services.tokens.authenticate(token.strip())
    if principal.role not in roles:
        allowed = ", ".join(role.value for role in roles)
        raise PermissionDenied(f"this route needs a token with role {allowed}")
    return principal


def require(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits a bearer token carrying one of `roles` (401/403 otherwise)."""

    async def caller(
        request: Request,
        services: ServicesDep,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        # HTTPBearer is declared only so that OpenAPI shows the scheme; the header is read here.
        return await authenticate(services, request.headers.get("authorization"), roles)

    return caller


DECISION_ROLES = (Role.SERVICE, Role.ADMIN)
# OpenAPI security requirement for routes that authenticate in their body (the hot path).
BEARER_SECURITY: list[dict[str, list[str]]] = [{"HTTPBearer": []}]

AdminCaller = Annotated[Principal, Depends(require(Role.ADMIN))]


def actor(caller: Principal) -> str:
    """Who made a change, as its ledger record names them."""
    return f"{caller.role.value}:{caller.name} ({caller.token_id})"


DecisionCaller = Annotated[Principal, Depends(require(*DECISION_ROLES))]
OpaCaller = Annotated[Principal, Depends(require(Role.OPA))]
PolicyAuthorCaller = Annotated[Principal, Depends(require(Role.POLICY_AUTHOR, Role.ADMIN))]
FleetCaller = Annotated[Principal, Depends(require(Role.SRE, Role.AUDITOR, Role.ADMIN))]
BundleCaller = Annotated[Principal, Depends(require(Role.OPA, Role.ADMIN))]
AuditorCaller = Annotated[Principal, Depends(require(Role.AUDITOR, Role.ADMIN))]
