"""The composition root: builds every service of a process from `Settings`, and nothing else does.

The API lifespan, the CLI and the tests all call `open_services`, so that what runs in tests is
wired exactly as what runs in production. Clients are created here and connected lazily inside
the event loop that uses them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr
from redis.asyncio import Redis

from controlplane.archive.reader import ArchiveReader
from controlplane.archive.service import ArchiveService
from controlplane.archive.storage import ArchiveStorage, open_storage
from controlplane.clock import Clock, SystemClock
from controlplane.config import DEFAULT_OPA_CACHE, Settings
from controlplane.decisions.asserted import AssertedDecisions
from controlplane.decisions.authorize import AuthorizeService
from controlplane.decisions.opa_client import OpaDecisionClient
from controlplane.decisions.service import DecisionService
from controlplane.errors import ConfigurationError, RedisUnavailable
from controlplane.grants.consumption import ConsumptionService
from controlplane.grants.issue import GrantIssuer
from controlplane.grants.keys import KeyRing
from controlplane.grants.registry import GrantRegistry
from controlplane.identities.store import IdentityStore
from controlplane.ledger.decision_logs import DecisionLogStore
from controlplane.ledger.evidence import EvidenceLog
from controlplane.ledger.migrate import migrate_evidence_stream
from controlplane.ledger.reconcile import Reconciler
from controlplane.ledger.service import LedgerService
from controlplane.observability.metrics import Metrics
from controlplane.policies.fleet import FleetStore
from controlplane.policies.keys import BundleKey
from controlplane.policies.publishing import PolicyPublisher, PublishLimits, token_sha256
from controlplane.policies.revisions import PolicyState, PolicyStore
from controlplane.policies.serving import BUNDLE_NAME, BundleServer
from controlplane.redis_client import connect
from controlplane.requests.verify import RequestVerifier
from controlplane.tokens.store import TokenStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    clock: Clock
    metrics: Metrics
    redis: Redis
    opa: OpaDecisionClient
    tokens: TokenStore
    decisions: DecisionService
    asserted: AssertedDecisions
    decision_logs: DecisionLogStore
    evidence: EvidenceLog
    identities: IdentityStore
    grant_keys: KeyRing
    grants: GrantRegistry
    authorize: AuthorizeService
    consumption: ConsumptionService
    policies: PolicyStore
    policy_state: PolicyState
    bundle_key: BundleKey
    publisher: PolicyPublisher
    bundles: BundleServer
    fleet: FleetStore
    ledger: LedgerService
    reconciler: Reconciler


@asynccontextmanager
async def open_services(
    settings: Settings,
    *,
    metrics: Metrics | None = None,
    clock: Clock | None = None,
    background: bool = False,
) -> AsyncIterator[Services]:
    """Every service of one process, open for the duration of the `async with`. With
    `background`, the process also runs reconciliation and (given an archive) the archiver: what
    a serving API does, not a short-lived caller such as `up` registering a token."""
    clock = clock or SystemClock()
    metrics = metrics or Metrics()
    redis = connect(settings.effective_redis_url, timeout_seconds=settings.redis_timeout_seconds)
    opa_client_token = settings.resolve_opa_client_token()
    opa = OpaDecisionClient(
        settings.opa_url,
        decision_timeout=settings.opa_decision_timeout_seconds,
        connect_timeout=settings.opa_connect_timeout_seconds,
        max_connections=settings.opa_max_connections,
        token=opa_client_token,
    )
    admin = settings.admin_token.get_secret_value() if settings.admin_token else None
    storage = open_storage(settings.archive_url) if settings.archive_url else None
    ledger = LedgerService(
        redis,
        clock,
        passphrase=settings.resolve_key_passphrase(),
        origin=settings.effective_ledger_origin,
        sealed_key=_read_secret(settings.ledger_key, settings.ledger_key_file),
        require_fsync_always=settings.ledger_require_fsync_always,
        state_path=settings.ledger_state_file,
        dedupe_seconds=settings.decision_log_dedupe_seconds,
        archive=ArchiveReader(storage) if storage else None,
    )
    evidence = EvidenceLog(ledger, clock)
    fleet = FleetStore(redis, clock, forget_after_seconds=settings.fleet_forget_after_seconds)
    policies = PolicyStore(redis, clock, evidence)
    policy_state = PolicyState(policies, clock, settings.policy_grace_seconds)
    bundle_key = BundleKey(
        redis, clock, passphrase=settings.resolve_key_passphrase(), scope=settings.bundle_scope
    )
    decisions = DecisionService(opa, metrics, settings.decision_roots, policy_state, BUNDLE_NAME)
    identities = IdentityStore(redis, clock)
    grants = GrantRegistry(redis, retention_seconds=settings.grant_record_retention_seconds)
    grant_keys = KeyRing(
        redis,
        clock,
        passphrase=settings.resolve_key_passphrase(),
        grant_lifetime_seconds=settings.grant_lifetime_seconds,
        clock_skew_seconds=settings.clock_skew_seconds,
    )
    verifier = RequestVerifier(
        identities,
        grants,
        redis,
        clock,
        audience=settings.public_url,
        max_lifetime_seconds=settings.request_max_lifetime_seconds,
        skew_seconds=settings.clock_skew_seconds,
    )
    issuer = GrantIssuer(
        grant_keys,
        clock,
        issuer=settings.public_url,
        lifetime_seconds=settings.grant_lifetime_seconds,
    )
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
        decisions=decisions,
        asserted=AssertedDecisions(decisions, evidence),
        decision_logs=DecisionLogStore(
            redis, evidence, metrics, max_entries=settings.decision_log_max_entries
        ),
        evidence=evidence,
        identities=identities,
        grant_keys=grant_keys,
        grants=grants,
        authorize=AuthorizeService(
            verifier=verifier,
            decisions=decisions,
            issuer=issuer,
            grants=grants,
            evidence=evidence,
            metrics=metrics,
        ),
        consumption=ConsumptionService(
            grants, identities, evidence, clock, skew_seconds=settings.clock_skew_seconds
        ),
        policies=policies,
        policy_state=policy_state,
        bundle_key=bundle_key,
        publisher=PolicyPublisher(
            policies,
            bundle_key,
            opa_bin=settings.opa_bin or DEFAULT_OPA_CACHE,
            opa_client_token_sha256=[token_sha256(opa_client_token)] if opa_client_token else [],
            limits=PublishLimits(
                max_bundle_bytes=settings.max_bundle_bytes,
                max_unpacked_bytes=settings.max_bundle_unpacked_bytes,
            ),
        ),
        bundles=BundleServer(
            policies, policy_state, max_wait_seconds=settings.bundle_long_poll_max_seconds
        ),
        fleet=fleet,
        ledger=ledger,
        reconciler=Reconciler(
            ledger,
            fleet,
            clock,
            metrics,
            window_seconds=settings.ledger_reconcile_window_seconds,
            retention_seconds=settings.ledger_reconcile_retention_seconds,
        ),
    )
    try:
        await grant_keys.start(_read_secret(settings.grant_key, settings.grant_key_file))
    except RedisUnavailable as exc:
        # Serve anyway (health, readiness say why); the ring loads on first use once Redis is back.
        log.warning("grant signing keys not loaded yet: %s", exc.detail)
    try:
        await bundle_key.load(_read_secret(settings.bundle_key, settings.bundle_key_file))
    except RedisUnavailable as exc:
        log.warning("bundle signing key not loaded yet: %s", exc.detail)
    try:
        # A Redis that does not fsync every write stops the start (ConfigurationError).
        await migrate_evidence_stream(redis, await services.ledger.ledger(), clock)
    except RedisUnavailable as exc:
        log.warning("ledger not started yet: %s", exc.detail)
    await opa.open()
    stop = asyncio.Event()
    watcher = asyncio.create_task(policy_state.watch(), name="policy-state")
    tasks = {watcher, *(_background(services, storage, stop) if background else ())}
    try:
        yield services
    finally:
        stop.set()
        watcher.cancel()
        # The archiver ends its round (a partial round is harmless: see archive/archiver.py).
        _, pending = await asyncio.wait(tasks, timeout=5)
        for task in pending:
            task.cancel()
        await opa.close()
        await redis.aclose()


def _background(
    services: Services, storage: ArchiveStorage | None, stop: asyncio.Event
) -> set[asyncio.Task[None]]:
    """The loops a process runs beside its requests until `stop` is set: reconciliation and,
    when an archive is configured, the archiver (which a lease confines to one process)."""
    tasks = {asyncio.create_task(services.reconciler.run(stop), name="reconciler")}
    if storage is not None:
        archive = ArchiveService(
            services.redis,
            storage,
            interval_seconds=services.settings.archive_interval_seconds,
            trim=services.settings.archive_trim,
        )
        tasks.add(asyncio.create_task(archive.run(stop), name="archiver"))
    return tasks


def _read_secret(value: SecretStr | None, path: Path | None) -> str | None:
    """A sealed key given as a setting or as a file (`CONTROLPLANE_GRANT_KEY` or `_FILE`, ...)."""
    if value is not None:
        return value.get_secret_value()
    if path is None:
        return None
    try:
        return path.read_text()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from exc
