"""Fixtures of the integration tests that need a Redis of their own, not a whole stack."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import RedisServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A throwaway Redis (appendfsync always) on a free port, stopped after the test."""
    started = RedisServer(tmp_path)
    started.start()
    try:
        yield started
    finally:
        started.stop()
