"""The Redis Merkle log against a real Redis: contiguous indexes, signed checkpoints whose roots
match the stream, proofs that verify, group commit, two processes writing one unforked log, the
compare-and-append and checkpoint Functions refusing stale writes, the fsync check, and a dead
Redis failing appends with `RedisUnavailable`."""

from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from nacl.signing import SigningKey

from controlplane.canonical import canonical_json
from controlplane.clock import SystemClock
from controlplane.errors import ConfigurationError, RedisUnavailable
from controlplane.ledger import merkle
from controlplane.ledger.log import (
    AWAITING_KEY,
    CHECKPOINT_KEY,
    CHECKPOINTS_KEY,
    ENTRIES_KEY,
    HEAD_KEY,
    PAYLOADS_KEY,
    AppendResult,
    Ledger,
    LedgerRollback,
)
from controlplane.ledger.notes import Checkpoint, NoteSigner, open_checkpoint
from controlplane.redis_client import connect
from tests.support.processes import RedisServer

pytestmark = pytest.mark.integration

ORIGIN = "controlplane.test/ledger"
SEED = bytes(range(32))  # a test key, never used outside tests


class CountingSigner(NoteSigner):
    """The log key, counting the notes it signs (one per committed batch)."""

    def __init__(self) -> None:
        super().__init__(ORIGIN, SigningKey(SEED))
        self.signed = 0

    def sign(self, text: str) -> str:
        self.signed += 1
        return super().sign(text)


@asynccontextmanager
async def opened(
    url: str, signer: NoteSigner | None = None, **options: Any
) -> AsyncIterator[Ledger]:
    client = connect(url, timeout_seconds=2)
    try:
        ledger = Ledger(client, signer or CountingSigner(), ORIGIN, SystemClock(), **options)
        await ledger.start()
        yield ledger
    finally:
        await client.aclose()


def record(tag: str, n: int) -> bytes:
    return canonical_json({"v": 1, "kind": "cp.test", "time": "2026-11-26T00:00:00Z", tag: n})


def open_note(note: str) -> Checkpoint:
    return open_checkpoint(note, CountingSigner().verifier(), ORIGIN)


def stream(server: RedisServer) -> list[tuple[str, dict[bytes, bytes]]]:
    with server.client() as client:
        rows: Any = client.xrange(ENTRIES_KEY)
    return [(stream_id.decode(), fields) for stream_id, fields in rows]


def test_appends_get_contiguous_indexes_under_a_checkpoint_that_proves_them(
    server: RedisServer,
) -> None:
    async def scenario() -> tuple[AppendResult, AppendResult, list[list[bytes]], list[bytes]]:
        async with opened(server.url) as ledger:
            assert await ledger.checkpoint() is None
            assert await ledger.size() == 0
            one = await ledger.append([("cp.test", "d-0", record("n", 0))])
            many = await ledger.append([("cp.test", None, record("n", i)) for i in range(1, 101)])
            assert await ledger.checkpoint() == many.checkpoint
            assert await ledger.size() == 101
            assert await ledger.entry(50) == record("n", 50)
            proofs = [await ledger.inclusion_proof(i, 101) for i in (0, 1, 63, 64, 100)]
            consistency = await ledger.consistency_proof(1, 101)
            return one, many, proofs, consistency

    one, many, proofs, consistency = asyncio.run(scenario())
    assert list(one.indexes) == [0]
    assert list(many.indexes) == list(range(1, 101))
    rows = stream(server)
    assert [stream_id for stream_id, _ in rows] == [f"0-{i}" for i in range(1, 102)]
    assert rows[0][1] == {b"e": record("n", 0), b"kind": b"cp.test", b"decision_id": b"d-0"}
    assert rows[1][1] == {b"e": record("n", 1), b"kind": b"cp.test"}

    leaves = [merkle.leaf_hash(fields[b"e"]) for _, fields in rows]
    first, second = open_note(one.checkpoint), open_note(many.checkpoint)
    assert (first.size, first.root) == (1, merkle.root(leaves[:1]))
    assert (second.size, second.root) == (101, merkle.root(leaves))
    assert (many.size, many.root) == (second.size, second.root)
    for index, proof in zip((0, 1, 63, 64, 100), proofs, strict=True):
        merkle.verify_inclusion(leaves[index], index, 101, proof, second.root)
    merkle.verify_consistency(1, 101, first.root, second.root, consistency)
    with server.client() as client:
        head = merkle.CompactRange.from_json(client.get(HEAD_KEY))  # type: ignore[arg-type]
        assert (head.size, head.root()) == (101, second.root)
        assert client.hget(CHECKPOINT_KEY, "size") == b"101"


def test_concurrent_appends_in_one_process_share_checkpoints(server: RedisServer) -> None:
    signer = CountingSigner()

    async def scenario() -> list[AppendResult]:
        async with opened(server.url, signer) as ledger:
            return await asyncio.gather(
                *[ledger.append([("cp.test", None, record("call", i))]) for i in range(200)]
            )

    results = asyncio.run(scenario())
    assert sorted(r.first_index for r in results) == list(range(200))
    assert signer.signed <= 20, signer.signed  # group commit: one checkpoint per batch
    assert len({r.size for r in results}) == signer.signed
    by_index = {fields[b"e"]: int(stream_id[2:]) - 1 for stream_id, fields in stream(server)}
    assert len(by_index) == 200  # every entry landed exactly once ...
    for i, result in enumerate(results):  # ... at the index its caller was told
        assert by_index[record("call", i)] == result.first_index
        assert result.first_index < result.size == open_note(result.checkpoint).size


def _writer(url: str, tag: str, total: int, barrier: Any, results: Any) -> None:
    """One of two processes appending to the same log: 16 tasks append 1 to 3 entries at a time
    until `total` entries are in; sends back (index, entry) pairs and every checkpoint got."""

    async def run() -> tuple[list[tuple[int, bytes]], list[str]]:
        placed: list[tuple[int, bytes]] = []
        notes: list[str] = []
        counter = iter(range(total))

        async def task(ledger: Ledger) -> None:
            for n in counter:
                numbers = [n, *(m for _, m in zip(range(n % 3), counter, strict=False))]
                entries = [record(tag, m) for m in numbers]
                result = await ledger.append([("cp.test", None, e) for e in entries])
                placed.extend(zip(result.indexes, entries, strict=True))
                notes.append(result.checkpoint)

        async with opened(url) as ledger:
            barrier.wait()  # both processes start appending together
            await asyncio.gather(*[task(ledger) for _ in range(16)])
        return placed, notes

    results.put(asyncio.run(run()))


def test_two_processes_append_one_consistent_log(server: RedisServer) -> None:
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    writers = [
        context.Process(target=_writer, args=(server.url, tag, 1100, barrier, results))
        for tag in ("a", "b")
    ]
    for writer in writers:
        writer.start()
    got = [results.get(timeout=45) for _ in writers]
    for writer in writers:
        writer.join(10)
        assert writer.exitcode == 0

    rows = stream(server)
    entries = [fields[b"e"] for _, fields in rows]
    assert [stream_id for stream_id, _ in rows] == [f"0-{i}" for i in range(1, len(rows) + 1)]
    placed = [pair for pairs, _ in got for pair in pairs]
    assert len(entries) == len(placed) >= 2000  # no gaps, nothing twice, nothing lost
    assert all(entries[index] == entry for index, entry in placed)
    # The writers really raced: their batches interleave (each switch cost one of them a
    # SIZE_CONFLICT, since each appends against the head it wrote last).
    tags = [b'"a":' in e for e in entries]
    switches = sum(1 for left, right in itertools.pairwise(tags) if left != right)
    assert switches > 4, switches

    leaves = [merkle.leaf_hash(e) for e in entries]
    size, final_root = len(leaves), merkle.root(leaves)
    with server.client() as client:
        stored = open_note(client.hget(CHECKPOINT_KEY, "note").decode())  # type: ignore[union-attr]
    assert (stored.size, stored.root) == (size, final_root)
    subtree = merkle.subtree_from_leaves(leaves)
    notes = {note for _, process_notes in got for note in process_notes}
    assert len(notes) > 2
    for note in notes:
        checkpoint = open_note(note)
        proof = merkle.consistency_proof(checkpoint.size, size, subtree)
        merkle.verify_consistency(checkpoint.size, size, checkpoint.root, final_root, proof)


CHECKPOINT_KEYS = (CHECKPOINT_KEY, CHECKPOINTS_KEY)
ONE_ENTRY = ("k", "", b"x", "", "")  # kind, decision_id, entry, payload, flags


def test_append_with_a_stale_size_is_refused_and_changes_nothing(server: RedisServer) -> None:
    async def scenario() -> None:
        async with opened(server.url) as ledger:
            await ledger.append([("cp.test", None, record("n", i)) for i in range(3)])

    asyncio.run(scenario())
    with server.client() as client:
        before = (client.get(HEAD_KEY), client.xlen(ENTRIES_KEY))
        stale = merkle.CompactRange().append(merkle.leaf_hash(b"x"))
        keys = [ENTRIES_KEY, HEAD_KEY, PAYLOADS_KEY, AWAITING_KEY]
        with pytest.raises(redis.ResponseError, match=r"^SIZE_CONFLICT 3$"):
            client.fcall("cpledger_append", 4, *keys, 0, stale.to_json(), 60, 0, *ONE_ENTRY)
        # The right size with a head that does not hold the new leaves is refused as well.
        with pytest.raises(redis.ResponseError, match=r"^BAD_HEAD"):
            client.fcall("cpledger_append", 4, *keys, 3, stale.to_json(), 60, 0, *ONE_ENTRY)
        assert (client.get(HEAD_KEY), client.xlen(ENTRIES_KEY)) == before


def test_a_smaller_checkpoint_never_replaces_a_larger_one(server: RedisServer) -> None:
    async def scenario() -> None:
        async with opened(server.url):
            pass  # loads the functions

    asyncio.run(scenario())
    with server.client() as client:
        assert client.fcall("cpledger_checkpoint", 2, *CHECKPOINT_KEYS, 5, "note 5") == 5
        assert client.fcall("cpledger_checkpoint", 2, *CHECKPOINT_KEYS, 3, "note 3") == 5
        assert client.fcall("cpledger_checkpoint", 2, *CHECKPOINT_KEYS, 5, "other 5") == 5
        assert client.hgetall(CHECKPOINT_KEY) == {b"size": b"5", b"note": b"note 5"}
        assert client.fcall("cpledger_checkpoint", 2, *CHECKPOINT_KEYS, 7, "note 7") == 7
        assert client.hget(CHECKPOINT_KEY, "note") == b"note 7"


def test_a_log_smaller_than_a_signed_checkpoint_is_never_signed(
    server: RedisServer, tmp_path: Path
) -> None:
    state = tmp_path / "ledger-state.json"

    async def scenario() -> None:
        async with opened(server.url, state_path=state) as ledger:
            await ledger.append([("cp.test", None, record("n", i)) for i in range(3)])
            with server.client() as client:
                client.delete(ENTRIES_KEY, HEAD_KEY)  # Redis loses the log
            with pytest.raises(LedgerRollback):
                await ledger.append([("cp.test", None, record("n", 9))])
        with pytest.raises(LedgerRollback):  # a restart remembers it through the state file
            async with opened(server.url, state_path=state):
                pass

    asyncio.run(scenario())


def test_start_requires_appendfsync_always_unless_told_otherwise(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    with server.client() as client:
        client.config_set("appendfsync", "everysec")

    async def scenario() -> None:
        with pytest.raises(ConfigurationError, match="WAITAOF"):
            async with opened(server.url):
                pass
        with caplog.at_level(logging.WARNING, logger="controlplane.ledger.log"):
            async with opened(server.url, require_fsync_always=False) as ledger:
                assert list((await ledger.append([("cp.test", None, b"{}")])).indexes) == [0]

    asyncio.run(scenario())
    assert "appendfsync everysec" in caplog.text


def test_append_fails_with_redis_unavailable_when_redis_dies(server: RedisServer) -> None:
    async def scenario() -> None:
        async with opened(server.url) as ledger:
            await ledger.append([("cp.test", None, record("n", 0))])
            server.kill()
            results = await asyncio.gather(
                *[ledger.append([("cp.test", None, record("n", i))]) for i in range(1, 4)],
                return_exceptions=True,
            )
            assert all(isinstance(r, RedisUnavailable) for r in results), results
            with pytest.raises(RedisUnavailable):
                await ledger.checkpoint()

    asyncio.run(scenario())


def test_kill_9_of_redis_loses_no_acknowledged_entry(server: RedisServer, tmp_path: Path) -> None:
    """Redis killed (SIGKILL) while four writers append: after a restart the head agrees with
    the stream, every acknowledged entry is at its index, and appends go on from there."""
    state = tmp_path / "ledger-state.json"
    acknowledged: dict[int, bytes] = {}

    async def writer(ledger: Ledger, tag: str) -> None:
        for n in itertools.count():
            entry = record(tag, n)
            try:
                result = await ledger.append([("cp.test", None, entry)])
            except RedisUnavailable:
                return
            acknowledged[result.first_index] = entry

    async def scenario() -> None:
        async with opened(server.url, state_path=state) as ledger:
            writers = asyncio.gather(*[writer(ledger, f"w{w}") for w in range(4)])
            await asyncio.sleep(0.5)
            server.kill()
            await writers
        server.start()
        async with opened(server.url, state_path=state) as ledger:  # no LedgerRollback
            size = await ledger.size()
            with server.client() as client:
                rows = client.xrange(ENTRIES_KEY)
            assert len(rows) == size
            stream = [fields[b"e"] for _, fields in rows]
            for index, entry in acknowledged.items():
                assert stream[index] == entry, index
            after = await ledger.append([("cp.test", None, record("after", 0))])
            assert after.first_index == size
            stream.append(record("after", 0))
            assert after.root == merkle.root([merkle.leaf_hash(e) for e in stream])

    asyncio.run(scenario())
    assert len(acknowledged) > 50  # the writers did get going before the kill
