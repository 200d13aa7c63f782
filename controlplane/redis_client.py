"""The one Redis client of a process, and the translation of Redis failures into our errors.

Every call into Redis goes through `redis_errors()`, so that a Redis that is down, paused or
refusing writes surfaces as `RedisUnavailable` (HTTP 503, reason `redis_unavailable`) and never as
an unhandled exception or, worse, as a silent success.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from redis import exceptions as redis_exceptions
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from controlplane.errors import RedisUnavailable

MAX_CONNECTIONS = 64


def connect(url: str, *, timeout_seconds: float) -> Redis:
    """A pooled client; no I/O happens until the first command.

    One retry without backoff covers the stale pooled connection left after a Redis restart; more
    retries would only stretch the time until a caller learns that Redis is down.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=timeout_seconds,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        retry=Retry(NoBackoff(), retries=1),
        retry_on_error=[redis_exceptions.ConnectionError],
    )
    return Redis(connection_pool=pool)


@contextmanager
def redis_errors(action: str) -> Iterator[None]:
    """Turn Redis connection, timeout and server errors into `RedisUnavailable`.

    `action` says what was being done, for the error detail ("checking a token").
    """
    try:
        yield
    except (redis_exceptions.ConnectionError, redis_exceptions.TimeoutError, TimeoutError) as exc:
        raise RedisUnavailable(f"Redis did not answer while {action}: {exc}") from exc
    except redis_exceptions.ResponseError as exc:
        # Redis refusing a write (MISCONF, OOM, READONLY replica, BUSY script) is an outage too.
        raise RedisUnavailable(f"Redis refused the command while {action}: {exc}") from exc
