"""The archiver inside the control plane: one process at a time copies the ledger to the archive.

Every API process may run this loop; a Redis lease (`SET NX PX`, renewed each round) makes one of
them the archiver, since two would race on the archive files and on trimming (`archiver.py`).
The lease outlives a round by far, and a process that loses it (paused, cut off) stops archiving
before another can take over; the archive's own checkpoint keeps a takeover exact either way.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

from redis.asyncio import Redis

from controlplane.archive.archiver import Archiver
from controlplane.archive.storage import ArchiveStorage
from controlplane.archive.verify import ArchiveError
from controlplane.errors import ControlPlaneError
from controlplane.redis_client import redis_errors

log = logging.getLogger(__name__)

LEASE_KEY = "{cp:ledger}:archiver-lease"
# Renews only a lease this process holds, atomically (KEYS: lease; ARGV: holder, ttl ms).
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
"""


class ArchiveService:
    def __init__(
        self,
        redis: Redis,
        storage: ArchiveStorage,
        *,
        interval_seconds: float,
        trim: bool,
    ) -> None:
        self._redis = redis
        self._interval = interval_seconds
        # One consumer name for every process: the lease makes one of them the reader, and a
        # new holder must find the entries its predecessor was given but never acknowledged.
        self._archiver = Archiver(redis, storage, trim=trim)
        self._holder = f"{socket.gethostname()}:{os.getpid()}"
        self._lease_ms = int(max(60.0, 6 * interval_seconds) * 1000)
        self._renew = redis.register_script(_RENEW)

    async def run(self, stop: asyncio.Event) -> None:
        """Archive every `interval_seconds` while holding the lease, until `stop` is set. An
        archive that disagrees with the log (`ArchiveError`) stops the loop: only an operator
        can resolve it, and `controlplane archive verify` names the entry."""
        while not stop.is_set():
            try:
                if await self._hold_lease():
                    done = await self._archiver.run_once()
                    if done.archived:
                        log.info("archived %d entries (archive size %d)", done.archived, done.size)
            except ArchiveError as error:
                log.exception("archiver stopped: %s", error.detail)
                return
            except ControlPlaneError as error:  # Redis or the storage unavailable: next round
                log.warning("archiver: %s; retrying", error.detail)
            try:
                await asyncio.wait_for(stop.wait(), timeout=self._interval)
            except TimeoutError:
                continue

    async def _hold_lease(self) -> bool:
        with redis_errors("renewing the archiver lease"):
            held = await self._renew(keys=[LEASE_KEY], args=[self._holder, self._lease_ms])
        return bool(held)
