"""The composition root: builds every service of a process from `Settings`, and nothing else does.

The API lifespan, the CLI and the tests all call `open_services`, so that what runs in tests is
wired exactly as what runs in production. Clients are created here and connected lazily inside
the event loop that uses them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from redis.asyncio import Redis

from controlplane.clock import Clock, SystemClock
from controlplane.config import Settings
from controlplane.decisions.opa_client import OpaDecisionClient
from controlplane.decisions.service import DecisionService
from controlplane.ledger.decision_logs import DecisionLogStore
from controlplane.observability.metrics import Metrics
from controlplane.redis_client import connect
from controlplane.tokens.store import TokenStore


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    clock: Clock
    metrics: Metrics
    redis: Redis
    opa: OpaDecisionClient
    tokens: TokenStore
    decisions: DecisionService
    decision_logs: DecisionLogStore


@asynccontextmanager
async def open_services(
    settings: Settings, *, metrics: Metrics | None = None, clock: Clock | None = None
) -> AsyncIterator[Services]:
    """Every service of one process, open for the duration of the `async with`."""
    clock = clock or SystemClock()
    metrics = metrics or Metrics()
    redis = connect(settings.effective_redis_url, timeout_seconds=settings.redis_timeout_seconds)
    opa = OpaDecisionClient(
        settings.opa_url,
        decision_timeout=settings.opa_decision_timeout_seconds,
        connect_timeout=settings.opa_connect_timeout_seconds,
        max_connections=settings.opa_max_connections,
    )
    admin = settings.admin_token.get_secret_value() if settings.admin_token else None
    services = Services(
        settings=settings,
        clock=clock,
        metrics=metrics,
        redis=redis,
        opa=opa,
        tokens=TokenStore(
            redis,
            clock,
            cache_seconds=settings.token_cache_seconds,
            cache_entries=settings.token_cache_entries,
            bootstrap_admin_token=admin,
        ),
        decisions=DecisionService(opa, metrics, settings.decision_roots),
        decision_logs=DecisionLogStore(
            redis,
            metrics,
            dedupe_seconds=settings.decision_log_dedupe_seconds,
            max_entries=settings.decision_log_max_entries,
        ),
    )
    await opa.open()
    try:
        yield services
    finally:
        await opa.close()
        await redis.aclose()
