"""The bundle service OPA pulls from: `GET /v1/bundles/{name}` (OPA docs `management-bundles`).

Only the active revision is ever served, with a strong `ETag` naming it. OPA echoes that ETag in
`If-None-Match`; while it is still the active revision the answer is `304`, at once for periodic
polling, or after waiting for a change when OPA long-polls (`Prefer: modes=snapshot,delta;wait=N`).
A long-poll answer, 200 or 304, carries `Content-Type: application/vnd.openpolicyagent.bundles`:
OPA stays in long-polling mode only while the server answers with it (`isLongPollSupported` in
`v1/download/download.go`). The wait is capped, and ends at once when the process shuts down.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass

from controlplane.errors import NotFound
from controlplane.policies.revisions import PolicyState, PolicyStore

BUNDLE_NAME = "governance"
LONG_POLL_TYPE = "application/vnd.openpolicyagent.bundles"
SNAPSHOT_TYPE = "application/gzip"
_WAIT = re.compile(r"(?:^|[;,\s])wait=(\d{1,6})(?:$|[;,\s])")


@dataclass(frozen=True, slots=True)
class BundleReply:
    status: int  # 200 or 304
    etag: str
    content_type: str
    body: bytes = b""


def requested_wait(prefer: str | None) -> int | None:
    """The `wait=N` seconds of OPA's `Prefer` header, if it long-polls."""
    if not prefer:
        return None
    match = _WAIT.search(prefer)
    return int(match.group(1)) if match else None


def etag_of(revision: str) -> str:
    return f'"{revision}"'


class BundleServer:
    def __init__(self, store: PolicyStore, state: PolicyState, *, max_wait_seconds: float) -> None:
        self._store = store
        self._state = state
        self._max_wait = max_wait_seconds

    async def fetch(
        self,
        name: str,
        *,
        if_none_match: str | None,
        wait_seconds: int | None,
        stopping: asyncio.Event,
    ) -> BundleReply:
        """The active bundle, or 304 when `if_none_match` names it (after waiting for a change
        when long polling). Raises `NotFound` for an unknown bundle or when nothing is active."""
        if name != BUNDLE_NAME:
            raise NotFound(
                f"no bundle named {name!r}; OPA pulls {BUNDLE_NAME!r}", code="bundle_unknown"
            )
        long_poll = wait_seconds is not None
        content_type = LONG_POLL_TYPE if long_poll else SNAPSHOT_TYPE
        if self._state.snapshot is None:
            await self._state.refresh()
        deadline = time.monotonic() + min(wait_seconds or 0, self._max_wait)
        while True:
            snapshot = self._state.snapshot
            active = snapshot.active if snapshot else None
            if active is None:
                raise NotFound("no policy revision is active", code="policy_not_active")
            etag = etag_of(active.revision)
            if if_none_match != etag:
                data = await self._store.bundle(active.revision)
                if data is None:
                    raise NotFound(f"revision {active.revision} has no stored bundle")
                return BundleReply(200, etag, content_type, data)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or stopping.is_set():
                return BundleReply(304, etag, content_type)
            waits = [
                asyncio.ensure_future(self._state.changed()),
                asyncio.ensure_future(stopping.wait()),
            ]
            try:
                await asyncio.wait(waits, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()
