"""Tampering with the ledger in Redis is found by the audit, which names the entry: a changed
byte, a deleted entry, two swapped, one inserted, the tail cut off, a replaced checkpoint; and a
log that was left alone passes, also after trimming with the archive's help."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from nacl.signing import SigningKey

from controlplane.archive.archiver import Archiver
from controlplane.archive.reader import ArchiveReader
from controlplane.archive.storage import open_storage
from controlplane.canonical import canonical_json
from controlplane.clock import SystemClock
from controlplane.ledger.audit import AuditError, AuditReport, audit
from controlplane.ledger.log import CHECKPOINT_KEY, ENTRIES_KEY, HEAD_KEY, Ledger
from controlplane.ledger.notes import Checkpoint, NoteSigner, sign_checkpoint
from controlplane.redis_client import connect
from tests.support.processes import RedisServer

pytestmark = pytest.mark.integration

ORIGIN = "controlplane.test/ledger"
SIGNER = NoteSigner(ORIGIN, SigningKey(bytes(range(32))))
SIZE = 20


def entry(n: int) -> bytes:
    return canonical_json({"v": 1, "kind": "cp.test", "time": "2026-11-26T00:00:00Z", "n": n})


async def _with_ledger(url: str, action: Callable[[Ledger], Any]) -> Any:
    client = connect(url, timeout_seconds=5)
    try:
        ledger = Ledger(client, SIGNER, ORIGIN, SystemClock())
        await ledger.start()
        return await action(ledger)
    finally:
        await client.aclose()


def fill(server: RedisServer, batches: list[int]) -> None:
    """Append batches of the given sizes, one after another (one checkpoint each)."""

    async def run(ledger: Ledger) -> None:
        n = 0
        for size in batches:
            await ledger.append([("cp.test", None, entry(n + i)) for i in range(size)])
            n += size

    asyncio.run(_with_ledger(server.url, run))


def audited(server: RedisServer, archive: Path | None = None) -> AuditReport:
    async def run() -> AuditReport:
        client = connect(server.url, timeout_seconds=5)
        try:
            reader = ArchiveReader(open_storage(str(archive))) if archive else None
            return await audit(client, SIGNER.verifier(), ORIGIN, archive=reader)
        finally:
            await client.aclose()

    return asyncio.run(run())


def rewrite(client: redis.Redis, change: Callable[[list[bytes]], list[bytes]]) -> None:
    """Replace the stream by `change` of its entries, with ids 0-1, 0-2, ... as the log writes."""
    entries = [fields[b"e"] for _, fields in client.xrange(ENTRIES_KEY)]
    client.delete(ENTRIES_KEY)
    for index, data in enumerate(change(entries)):
        client.xadd(ENTRIES_KEY, {"e": data, "kind": "cp.test"}, id=f"0-{index + 1}")


def flip_byte(entries: list[bytes]) -> list[bytes]:
    changed = bytearray(entries[7])
    changed[-3] ^= 0x01
    return [*entries[:7], bytes(changed), *entries[8:]]


def swap(entries: list[bytes]) -> list[bytes]:
    return [*entries[:7], entries[8], entries[7], *entries[9:]]


def insert(entries: list[bytes]) -> list[bytes]:
    return [*entries[:7], entry(999), *entries[7:]]


def test_an_untouched_log_passes(server: RedisServer) -> None:
    fill(server, [1] * SIZE)
    report = audited(server)
    assert (report.size, report.checkpoints, report.stream_start) == (SIZE, SIZE, 0)


@pytest.mark.parametrize("change", [flip_byte, swap, insert], ids=["byte", "swap", "insert"])
def test_a_changed_swapped_or_inserted_entry_is_named(
    server: RedisServer, change: Callable[[list[bytes]], list[bytes]]
) -> None:
    fill(server, [1] * SIZE)
    with server.client() as client:
        rewrite(client, change)
    with pytest.raises(AuditError) as caught:
        audited(server)
    assert caught.value.index == 7, caught.value.detail


def test_a_deleted_entry_is_named(server: RedisServer) -> None:
    fill(server, [1] * SIZE)
    with server.client() as client:
        client.xdel(ENTRIES_KEY, "0-8")
    with pytest.raises(AuditError, match="entry 7 is missing") as caught:
        audited(server)
    assert caught.value.index == 7


@pytest.mark.parametrize("fix_head", [False, True])
def test_a_truncated_tail_is_named_even_with_the_head_rewritten(
    server: RedisServer, fix_head: bool
) -> None:
    fill(server, [1] * SIZE)
    with server.client() as client:
        rewrite(client, lambda entries: entries[: SIZE - 3])
        if fix_head:
            client.delete(HEAD_KEY)
    with pytest.raises(AuditError) as caught:
        audited(server)
    assert caught.value.index == SIZE - 3, caught.value.detail


def test_a_replaced_checkpoint_is_refused(server: RedisServer) -> None:
    fill(server, [1] * SIZE)
    forger = NoteSigner(ORIGIN, SigningKey(bytes(32)))
    forged = sign_checkpoint(Checkpoint(ORIGIN, SIZE, bytes(32)), forger)
    with server.client() as client:
        client.hset(CHECKPOINT_KEY, mapping={"size": SIZE, "note": forged})
    with pytest.raises(AuditError, match=f"size {SIZE}"):
        audited(server)


def test_inside_a_batch_the_range_is_named(server: RedisServer) -> None:
    fill(server, [5, 10, 5])
    with server.client() as client:
        rewrite(client, flip_byte)  # entry 7, in the batch [5, 15)
    with pytest.raises(AuditError, match=r"\[5, 15\)") as caught:
        audited(server)
    assert caught.value.index == 5


def test_after_trimming_the_archive_supplies_the_rest(server: RedisServer, tmp_path: Path) -> None:
    fill(server, [1] * SIZE)
    archive = tmp_path / "archive"

    async def archive_and_trim() -> None:
        client = connect(server.url, timeout_seconds=5)
        try:
            await Archiver(client, open_storage(str(archive))).run_once()
        finally:
            await client.aclose()

    asyncio.run(archive_and_trim())
    fill(server, [1] * 5)
    with pytest.raises(AuditError, match="give the archive"):
        audited(server)
    report = audited(server, archive)
    assert (report.size, report.stream_start) == (SIZE + 5, SIZE - 1)


def test_controlplane_ledger_audit(server: RedisServer) -> None:
    fill(server, [1] * SIZE)

    def run() -> subprocess.CompletedProcess[str]:
        argv = ["ledger", "audit", "--redis-url", server.url, "--key", SIGNER.vkey()]
        return subprocess.run(
            [sys.executable, "-m", "controlplane", *argv],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    clean = run()
    assert clean.returncode == 0, clean.stderr
    assert f"audited {SIZE} entries" in clean.stdout
    with server.client() as client:
        rewrite(client, swap)
    tampered = run()
    assert tampered.returncode == 2
    assert "entry 7" in tampered.stderr
