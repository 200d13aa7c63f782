"""Readiness: may this process take traffic? Redis must answer and OPA must be ready.

OPA is ready when `GET /health?bundles&plugins` answers 200: it can evaluate, every configured
bundle has been activated at least once, and every plugin (decision logs included) is OK (OPA docs
`rest-api.md`, Health API). The grant signing keys must be loaded. And OPA must run an acceptable
policy revision: anything but a revoked one, and only while some revision is active; a previous
revision during a rollout is fine, so that an activation never takes every replica out of service
(issue #4).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from controlplane.decisions.opa_client import OpaDecisionClient
from controlplane.errors import ControlPlaneError, RedisUnavailable
from controlplane.grants.keys import KeyRing
from controlplane.policies.revisions import PolicyState
from controlplane.redis_client import redis_errors


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    checks: dict[str, dict[str, Any]]


async def check_readiness(
    redis: Redis, opa: OpaDecisionClient, keys: KeyRing, policy: PolicyState, bundle: str
) -> Readiness:
    redis_check, opa_check, keys_check, policy_check = await asyncio.gather(
        _redis(redis), _opa(opa), _keys(keys), _policy(opa, policy, bundle)
    )
    checks = {
        "redis": redis_check,
        "opa": opa_check,
        "signing_keys": keys_check,
        "policy": policy_check,
    }
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


async def _policy(opa: OpaDecisionClient, policy: PolicyState, bundle: str) -> dict[str, Any]:
    revision = await opa.active_revision(bundle)
    snapshot = policy.snapshot
    if snapshot is None:
        return {"ok": False, "detail": "the policy state has not been read from Redis yet"}
    if snapshot.active is None:
        return {"ok": False, "detail": "no policy revision is active"}
    if not policy.acceptable(revision):
        return {"ok": False, "detail": f"OPA runs revision {revision}, which is not acceptable"}
    current = "active" if revision == snapshot.active.revision else "previous"
    return {"ok": True, "detail": f"OPA runs the {current} revision {revision}"}
