"""What the Redis log refuses before touching Redis: malformed entries, oversized appends, a log
key not named for its origin; and the leaf hash of an entry."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest
from nacl.signing import SigningKey
from redis.asyncio import Redis

from controlplane.clock import SystemClock
from controlplane.errors import ConfigurationError, InvalidInput, TooLarge
from controlplane.ledger.log import Ledger, leaf_of
from controlplane.ledger.notes import NoteSigner

ORIGIN = "controlplane.test/ledger"


def ledger(**options: Any) -> Ledger:
    # No I/O happens before the first command, and these appends fail before any command.
    signer = NoteSigner(ORIGIN, SigningKey(bytes(range(32))))
    return Ledger(Redis(port=1), signer, ORIGIN, SystemClock(), **options)


def test_leaf_of_is_the_rfc9162_leaf_hash() -> None:
    assert leaf_of(b"{}") == hashlib.sha256(b"\x00{}").digest()


@pytest.mark.parametrize(
    "entries",
    [
        [],
        [("", None, b"{}")],
        [("cp.test", "", b"{}")],
        [("cp.test", None, b"")],
        [("cp.test", None, "{}")],
    ],
)
def test_append_refuses_malformed_entries(entries: Any) -> None:
    with pytest.raises(InvalidInput):
        asyncio.run(ledger().append(entries))


def test_append_refuses_more_entries_than_a_batch() -> None:
    entries = [("cp.test", None, b"{}")] * 11
    with pytest.raises(TooLarge):
        asyncio.run(ledger(max_batch=10).append(entries))


def test_the_log_key_must_be_named_for_the_origin() -> None:
    signer = NoteSigner("other.test/log", SigningKey(bytes(range(32))))
    with pytest.raises(ConfigurationError):
        Ledger(Redis(port=1), signer, ORIGIN, SystemClock())
