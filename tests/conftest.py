"""Fixtures shared by all tests. Integration fixtures start real processes; see tests/support."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.stack import Stack, StackFactory


@pytest.fixture(scope="session")
def factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackFactory]:
    """Starts stacks for the whole session and stops every process at the end."""
    made = StackFactory(tmp_path_factory.mktemp("stack"))
    yield made
    made.close()


@pytest.fixture(scope="session")
def stack(factory: StackFactory) -> Stack:
    """The default stack: the policies of rego/, served by real OPA, Redis and API processes."""
    return factory.stack()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
