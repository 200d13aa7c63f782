"""Policy revisions in Redis: published bundles (immutable), the active one, history, revocations.

A revision is the content-derived id of a signed bundle (`policies.bundle.revision_of`). Publishing
stores the signed bytes once; publishing the same content again is a no-op. Activation, rollback
and revocation are admin actions with an actor and a reason. Each change is checked, then its
ledger record is appended, then one Redis script makes it (checking again, atomically); a change
refused at that point (a concurrent change won) is followed by a `cp.admin.aborted` record
(`EvidenceLog.change`), and a change whose record cannot be appended is not made.

Revocation is for a policy that must never decide again: a revoked revision can never be activated
or served, and revoking the active revision leaves nothing active, so that every decision is denied
(`policy_revoked`, then `policy_not_active`) until an admin activates another. Failing closed is the
point: an operator revoking a policy means it is wrong.

Every change bumps a generation counter, which each process polls (`PolicyState`) to see changes
within a fraction of a second without a subscription that a Redis restart would silently end.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from redis.asyncio import Redis

from controlplane import jsontext
from controlplane.clock import Clock, rfc3339
from controlplane.errors import Conflict, NotFound, RedisUnavailable
from controlplane.ledger.evidence import EvidenceLog
from controlplane.reasons import DenyReason
from controlplane.redis_client import redis_errors

_PREFIX = "cp:policy:"
_REVISIONS = _PREFIX + "revisions"  # hash: revision -> JSON meta
_BUNDLE = _PREFIX + "bundle:"  # string per revision: the signed tar.gz
_REVOKED = _PREFIX + "revoked"  # hash: revision -> JSON {at, actor, reason}
_ACTIVE = _PREFIX + "active"  # string: JSON {revision, at, actor, reason}
_HISTORY = _PREFIX + "history"  # list, newest first: JSON activations
_GENERATION = _PREFIX + "generation"
HISTORY_LENGTH = 100
POLL_SECONDS = 0.1

log = logging.getLogger(__name__)

# KEYS: revisions, bundle, revoked, generation. ARGV: revision, meta, bytes.
_PUBLISH = """
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then return 'revoked' end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 'exists' end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[3])
redis.call('INCR', KEYS[4])
return 'ok'
"""

# KEYS: revisions, revoked, active, history, generation.
# ARGV: revision, activation JSON, expected current revision ('*' = any, '' = none).
# With ARGV[4] = 'check', only answers what the change would do.
_ACTIVATE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 'unknown' end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 'revoked' end
local current = redis.call('GET', KEYS[3])
local current_revision = ''
if current then current_revision = cjson.decode(current)['revision'] end
if ARGV[3] ~= '*' and ARGV[3] ~= current_revision then return 'moved' end
if current_revision == ARGV[1] then return 'already' end
if ARGV[4] == 'check' then return 'ok' end
redis.call('SET', KEYS[3], ARGV[2])
redis.call('LPUSH', KEYS[4], ARGV[2])
redis.call('LTRIM', KEYS[4], 0, HISTORY_LAST)
redis.call('INCR', KEYS[5])
return 'ok'
""".replace("HISTORY_LAST", str(HISTORY_LENGTH - 1))

# KEYS: revisions, revoked, active, generation. ARGV: revision, revocation JSON, 'check' or ''.
_REVOKE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 'unknown' end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 'already' end
if ARGV[3] == 'check' then return 'ok' end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local current = redis.call('GET', KEYS[3])
if current and cjson.decode(current)['revision'] == ARGV[1] then redis.call('DEL', KEYS[3]) end
redis.call('INCR', KEYS[4])
return 'ok'
"""


@dataclass(frozen=True, slots=True)
class Activation:
    revision: str
    at: str
    actor: str
    reason: str

    def as_json(self) -> dict[str, str]:
        return {
            "revision": self.revision,
            "at": self.at,
            "actor": self.actor,
            "reason": self.reason,
        }


class PolicyStore:
    """Revisions and their lifecycle, shared by every replica through Redis."""

    def __init__(self, redis: Redis, clock: Clock, evidence: EvidenceLog) -> None:
        self._redis = redis
        self._clock = clock
        self._evidence = evidence
        self._publish = redis.register_script(_PUBLISH)
        self._activate = redis.register_script(_ACTIVATE)
        self._revoke = redis.register_script(_REVOKE)

    async def publish(
        self, revision: str, bundle: bytes, meta: dict[str, Any], *, actor: str
    ) -> tuple[dict[str, Any], bool]:
        """Store a signed bundle under its revision. Returns (meta, created): publishing the same
        revision again changes nothing. Raises `Conflict` for a revoked revision."""
        with redis_errors("reading a policy revision"):
            revoked, exists = (
                await self._redis.hexists(_REVOKED, revision),
                await self._redis.hexists(_REVISIONS, revision),
            )
        if revoked:
            raise _refused("revoked", revision)
        if exists:
            return await self.revision(revision), False
        stored = {**meta, "revision": revision, "published_at": self._now(), "published_by": actor}
        async with self._evidence.change("cp.admin.policy.publish", actor=actor, policy=stored):
            with redis_errors("publishing a policy revision"):
                outcome = _text(
                    await self._publish(
                        keys=[_REVISIONS, _BUNDLE + revision, _REVOKED, _GENERATION],
                        args=[revision, jsontext.dumps(stored), bundle],
                    )
                )
            if outcome == "revoked":
                raise _refused(outcome, revision)
        if outcome == "exists":  # published meanwhile by another caller, with the same content
            return await self.revision(revision), False
        return stored, True

    async def activate(
        self, revision: str, *, actor: str, reason: str, expected: str = "*", kind: str = "activate"
    ) -> Activation:
        """Make `revision` the one every OPA should run. `expected` guards a rollback against a
        concurrent change ('*' = whatever is active). Activating the active revision is a no-op."""
        activation = Activation(revision, self._now(), actor, reason)
        keys: list[str] = [_REVISIONS, _REVOKED, _ACTIVE, _HISTORY, _GENERATION]
        args: list[str | bytes] = [revision, jsontext.dumps(activation.as_json()), expected]
        with redis_errors("activating a policy revision"):
            outcome = _text(await self._activate(keys=keys, args=[*args, "check"]))
        if outcome == "ok":
            async with self._evidence.change(
                f"cp.admin.policy.{kind}", actor=actor, reason=reason, revision=revision
            ):
                with redis_errors("activating a policy revision"):
                    outcome = _text(await self._activate(keys=keys, args=[*args, ""]))
                if outcome != "ok":
                    raise _refused(outcome, revision)
            return activation
        if outcome == "already":
            current = await self.active()
            return current or activation
        raise _refused(outcome, revision)

    async def rollback(self, *, actor: str, reason: str) -> Activation:
        """Activate the revision that was active before the current one (skipping revoked ones)."""
        current = await self.active()
        revoked = await self.revoked()
        for entry in await self.history():
            candidate = entry["revision"]
            if candidate != (current.revision if current else None) and candidate not in revoked:
                return await self.activate(
                    candidate,
                    actor=actor,
                    reason=reason,
                    expected=current.revision if current else "",
                    kind="rollback",
                )
        raise Conflict("no earlier revision to roll back to", code="nothing_to_roll_back")

    async def revoke(self, revision: str, *, actor: str, reason: str) -> dict[str, Any]:
        """Revoke `revision` for good. Revoking it twice is a no-op."""
        revocation = {"at": self._now(), "actor": actor, "reason": reason}
        keys = [_REVISIONS, _REVOKED, _ACTIVE, _GENERATION]
        args: list[str | bytes] = [revision, jsontext.dumps(revocation)]
        with redis_errors("revoking a policy revision"):
            outcome = _text(await self._revoke(keys=keys, args=[*args, "check"]))
        if outcome == "ok":
            async with self._evidence.change(
                "cp.admin.policy.revoke", actor=actor, reason=reason, revision=revision
            ):
                with redis_errors("revoking a policy revision"):
                    outcome = _text(await self._revoke(keys=keys, args=[*args, ""]))
                if outcome == "unknown":
                    raise _refused(outcome, revision)
        elif outcome == "unknown":
            raise _refused(outcome, revision)
        return await self.revision(revision)

    async def revision(self, revision: str) -> dict[str, Any]:
        """A revision's metadata, with `status` (active, revoked or published)."""
        with redis_errors("reading a policy revision"):
            raw = await self._redis.hget(_REVISIONS, revision)
            revoked = await self._redis.hget(_REVOKED, revision)
        if raw is None:
            raise NotFound(f"no published revision {revision}", code="policy_unknown")
        active = await self.active()
        return _with_status(
            dict(jsontext.loads(raw)),
            active.revision if active else None,
            jsontext.loads(revoked) if revoked is not None else None,
        )

    async def revisions(self) -> list[dict[str, Any]]:
        """Every published revision, newest first."""
        with redis_errors("listing policy revisions"):
            raw = await self._redis.hgetall(_REVISIONS)
        active = await self.active()
        revoked = await self.revoked()
        found = [
            _with_status(
                dict(jsontext.loads(value)),
                active.revision if active else None,
                revoked.get(_text(key)),
            )
            for key, value in raw.items()
        ]
        return sorted(found, key=lambda meta: str(meta["published_at"]), reverse=True)

    async def replace_bundle(self, revision: str, data: bytes, digest: str) -> None:
        """Store a re-signed bundle of the same revision (after a bundle key rotation)."""
        meta = await self.revision(revision)
        stored = {k: v for k, v in meta.items() if k not in ("status", "revoked")}
        stored.update(digest=digest, size=len(data))
        with redis_errors("storing a re-signed policy bundle"):
            await self._redis.set(_BUNDLE + revision, data)
            await self._redis.hset(_REVISIONS, revision, jsontext.dumps(stored))

    async def bundle(self, revision: str) -> bytes | None:
        with redis_errors("reading a policy bundle"):
            data = await self._redis.get(_BUNDLE + revision)
        return data.encode() if isinstance(data, str) else data

    async def active(self) -> Activation | None:
        with redis_errors("reading the active policy"):
            raw = await self._redis.get(_ACTIVE)
        if raw is None:
            return None
        return Activation(**jsontext.loads(raw))

    async def revoked(self) -> dict[str, dict[str, Any]]:
        with redis_errors("reading revoked policies"):
            raw = await self._redis.hgetall(_REVOKED)
        return {_text(k): dict(jsontext.loads(v)) for k, v in raw.items()}

    async def history(self) -> list[dict[str, Any]]:
        with redis_errors("reading the policy history"):
            raw = await self._redis.lrange(_HISTORY, 0, -1)
        return [dict(jsontext.loads(item)) for item in raw]

    async def generation(self) -> int:
        with redis_errors("reading the policy generation"):
            raw = await self._redis.get(_GENERATION)
        return int(raw or 0)

    def _now(self) -> str:
        return rfc3339(self._clock.now())


@dataclass
class PolicySnapshot:
    """What one process knows of the policy state, refreshed by `PolicyState`."""

    active: Activation | None
    revoked: frozenset[str]
    generation: int


@dataclass
class PolicyState:
    """Each process's view of the active and revoked revisions, polled from Redis, for deciding
    whether a decision's revision is acceptable and for waking long-polling bundle requests."""

    store: PolicyStore
    clock: Clock
    grace_seconds: float
    snapshot: PolicySnapshot | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def refresh(self) -> bool:
        """Re-read the state if its generation moved. Returns whether it changed."""
        generation = await self.store.generation()
        if self.snapshot is not None and self.snapshot.generation == generation:
            return False
        self.snapshot = PolicySnapshot(
            await self.store.active(), frozenset(await self.store.revoked()), generation
        )
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        return True

    async def watch(self) -> None:
        """Poll for changes until cancelled; a Redis outage keeps the last state (logged once)."""
        failing = False
        task = asyncio.current_task()
        while True:
            try:
                await self.refresh()
                failing = False
            except RedisUnavailable as exc:
                if not failing:
                    log.warning("policy state not refreshed, keeping the last one: %s", exc)
                failing = True
            # A cancellation that lands inside a Redis call can be swallowed on Python 3.11
            # (redis-py's timeouts wrap the read): honour it here.
            if task is not None and task.cancelling():
                raise asyncio.CancelledError
            await asyncio.sleep(POLL_SECONDS)

    async def changed(self) -> None:
        """Wait for the next change."""
        await self._changed.wait()

    def check(self, revision: str | None) -> DenyReason | None:
        """Why a decision made by `revision` must be denied, or None if it is acceptable."""
        snapshot = self.snapshot
        if snapshot is None:
            return DenyReason.REDIS_UNAVAILABLE
        if revision is not None and revision in snapshot.revoked:
            return DenyReason.POLICY_REVOKED
        active = snapshot.active
        if active is None:
            return DenyReason.POLICY_NOT_ACTIVE
        if revision == active.revision:
            return None
        # During a rollout the fleet converges on the new revision within seconds; until the
        # grace period has passed, the previous (unrevoked) revision may still decide. A bundle
        # that names no revision is no policy of ours: no grace for it.
        since = self.clock.now() - datetime.fromisoformat(active.at)
        if revision is None or since > timedelta(seconds=self.grace_seconds):
            return DenyReason.POLICY_STALE
        return None

    def acceptable(self, revision: str | None) -> bool:
        """Whether an OPA running `revision` can serve at all (readiness): anything but no
        active revision or a revoked one, so that an activation never takes every replica out."""
        snapshot = self.snapshot
        if snapshot is None or snapshot.active is None or revision is None:
            return False
        return revision not in snapshot.revoked


def _with_status(
    meta: dict[str, Any], active: str | None, revoked: dict[str, Any] | None
) -> dict[str, Any]:
    status = "revoked" if revoked else "active" if meta["revision"] == active else "published"
    return {**meta, "status": status, "revoked": revoked}


def _refused(outcome: str, revision: str) -> Exception:
    """The error for a change the revision scripts refused."""
    if outcome == "unknown":
        return NotFound(f"no published revision {revision}", code="policy_unknown")
    if outcome == "revoked":
        return Conflict(
            f"revision {revision} is revoked and can never be published or activated again",
            code="policy_revoked",
        )
    return Conflict(
        "the active revision changed meanwhile; look again and retry", code="policy_changed"
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
