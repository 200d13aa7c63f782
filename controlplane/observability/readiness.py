"""Readiness: may this process take traffic? Redis must answer and OPA must be ready.

OPA is ready when `GET /health?bundles&plugins` answers 200: it can evaluate, every configured
bundle has been activated at least once, and every plugin (decision logs included) is OK (OPA docs
`rest-api.md`, Health API). The grant signing keys must be loaded. Issue #4 adds the
acceptable-revision check.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from controlplane.decisions.opa_client import OpaDecisionClient
from controlplane.errors import ControlPlaneError, RedisUnavailable
from controlplane.grants.keys import KeyRing
from controlplane.redis_client import redis_errors


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    checks: dict[str, dict[str, Any]]


async def check_readiness(redis: Redis, opa: OpaDecisionClient, keys: KeyRing) -> Readiness:
    redis_check, opa_check, keys_check = await asyncio.gather(_redis(redis), _opa(opa), _keys(keys))
    checks = {"redis": redis_check, "opa": opa_check, "signing_keys": keys_check}
    return Readiness(all(check["ok"] for check in checks.values()), checks)


async def _redis(redis: Redis) -> dict[str, Any]:
    try:
        with redis_errors("checking readiness"):
            await redis.ping()
    except RedisUnavailable as exc:
        return {"ok": False, "detail": exc.detail}
    return {"ok": True, "detail": "ok"}


async def _opa(opa: OpaDecisionClient) -> dict[str, Any]:
    health = await opa.health()
    return {"ok": health.ready, "detail": health.detail}


async def _keys(keys: KeyRing) -> dict[str, Any]:
    try:
        active = await keys.active()
    except ControlPlaneError as exc:
        return {"ok": False, "detail": exc.detail}
    return {"ok": True, "detail": f"active kid {active.kid}"}
