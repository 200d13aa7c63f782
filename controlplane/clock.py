"""Time, injected: wall-clock UTC for records and monotonic seconds for expiry of caches.

Services take a `Clock` so that tests can move time without sleeping; nothing calls
`datetime.utcnow()` or `time.time()` directly.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Timezone-aware current time in UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary start; never goes backwards."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


def rfc3339(moment: datetime) -> str:
    """RFC 3339 text in UTC with a `Z` suffix and microseconds, as stored in records."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
