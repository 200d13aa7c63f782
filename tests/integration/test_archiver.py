"""The archiver against a real Redis and a real `Ledger`: incremental runs whose archive verifies
after each, payloads archived beside the bundles, a crash between any two writes repaired by the
next run, a re-run that writes nothing, trimming that keeps the newest entry (appends go on,
proofs are whole from the archive plus the stream), the consumer group's cursor out of step with
the archive, an fsspec `memory://` store, tampered entries refused by index, and the CLI."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey
from typer.testing import CliRunner

from controlplane.archive.archiver import (
    PAYLOADS_KEY,
    Archiver,
    archived_leaf_hashes,
    erase_payload,
    payload_path,
)
from controlplane.archive.storage import LocalStorage, ObjectStorage, open_storage
from controlplane.archive.verify import ArchiveError, VerifyReport, verify_archive
from controlplane.canonical import canonical_json
from controlplane.cli.main import app
from controlplane.clock import SystemClock
from controlplane.errors import NotFound
from controlplane.ledger import merkle
from controlplane.ledger.log import ENTRIES_KEY, Ledger
from controlplane.ledger.notes import NoteSigner, open_checkpoint
from controlplane.ledger.records import commit_record
from controlplane.redis_client import connect
from tests.support.processes import RedisServer

pytestmark = pytest.mark.integration

ORIGIN = "controlplane.test/archive"
SIGNER = NoteSigner(ORIGIN, SigningKey(bytes(range(32))))  # a test key, never used outside tests


class Log:
    """A ledger on the test Redis, appending numbered records; every seventh one carries a
    payload (its `input` committed, as `records.commit_record` does), stored where the ledger
    keeps payloads."""

    def __init__(self, ledger: Ledger, server: RedisServer) -> None:
        self.ledger = ledger
        self.server = server
        self.count = 0
        self.payloads: dict[int, dict[str, Any]] = {}

    async def append(self, count: int) -> None:
        while count:
            step = min(count, 500)
            entries, payloads = [], {}
            for n in range(self.count, self.count + step):
                record = {"v": 1, "kind": "cp.test", "time": "2026-11-26T00:00:00Z", "n": n}
                if n % 7 == 0:
                    committed = commit_record({**record, "input": {"user": f"user-{n}"}})
                    entries.append(("cp.test", None, committed.entry))
                    payloads[n] = committed.payloads
                else:
                    entries.append(("cp.test", None, canonical_json(record)))
            result = await self.ledger.append(entries)
            assert result.first_index == self.count
            with self.server.client() as client:
                for index, payload in payloads.items():
                    client.hset(PAYLOADS_KEY, str(index), canonical_json(payload))
            self.payloads.update(payloads)
            self.count += step
            count -= step


@asynccontextmanager
async def opened(server: RedisServer) -> AsyncIterator[tuple[Log, Any]]:
    client = connect(server.url, timeout_seconds=5)
    try:
        ledger = Ledger(client, SIGNER, ORIGIN, SystemClock())
        await ledger.start()
        yield Log(ledger, server), client
    finally:
        await client.aclose()


def verify(directory: Path) -> VerifyReport:
    return verify_archive(directory, SIGNER.verifier(), ORIGIN)


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(directory).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in directory.rglob("*")
        if p.is_file()
    }


def stream_ids(server: RedisServer) -> list[int]:
    with server.client() as client:
        rows: Any = client.xrange(ENTRIES_KEY)
    return [int(stream_id.decode()[2:]) - 1 for stream_id, _ in rows]


async def checkpoint_of(log: Log) -> Any:
    note = await log.ledger.checkpoint()
    assert note is not None
    return open_checkpoint(note, SIGNER.verifier(), ORIGIN)


def test_incremental_runs_verify_after_each_and_trimming_keeps_proofs_whole(
    server: RedisServer, tmp_path: Path
) -> None:
    directory = tmp_path / "archive"
    storage = LocalStorage(directory)

    async def scenario() -> None:
        async with opened(server) as (log, client):
            archiver = Archiver(client, storage, batch=300)
            empty = await archiver.run_once()  # nothing in the log yet
            assert (empty.archived, empty.size) == (0, 0)
            archived = 0
            for count in (1000, 2345, 1, 255, 256, 2000):
                await log.append(count)
                done = await archiver.run_once()
                assert (done.archived, done.size, done.trimmed) == (count, log.count, True)
                archived += count
                report = verify(directory)
                checkpoint = await checkpoint_of(log)
                assert (report.size, report.root) == (log.count, checkpoint.root)
                # Trimmed: the stream keeps the newest archived entry only.
                assert stream_ids(server) == [log.count - 1]
                with server.client() as sync:
                    fields = {int(f) for f in sync.hkeys(PAYLOADS_KEY)}
                assert fields == {i for i in log.payloads if i >= log.count - 1}
            assert archived == log.count == 5857

            # The archive's level-0 tiles for the trimmed indexes, plus the stream, give the
            # checkpoint's root; an inclusion proof from them verifies.
            await log.append(10)  # appends go on after trimming
            kept = stream_ids(server)
            assert kept == list(range(5856, 5867))
            leaves = await archived_leaf_hashes(storage, 0, kept[0])
            with server.client() as sync:
                rows: Any = sync.xrange(ENTRIES_KEY)
            leaves += [merkle.leaf_hash(fields[b"e"]) for _, fields in rows]
            checkpoint = await checkpoint_of(log)
            assert merkle.root(leaves) == checkpoint.root
            proof = merkle.inclusion_proof(4321, 5867, merkle.subtree_from_leaves(leaves))
            merkle.verify_inclusion(leaves[4321], 4321, 5867, proof, checkpoint.root)
            assert await archived_leaf_hashes(storage, 250, 260) == leaves[250:260]
            with pytest.raises(NotFound):
                await archived_leaf_hashes(storage, 0, 5858)

            # Payloads are archived beside their bundles, erasable one by one.
            stored = json_of(directory / payload_path(700))
            assert stored == {str(i): log.payloads[i] for i in log.payloads if 512 <= i < 768}
            assert await erase_payload(storage, 700)
            assert "700" not in json_of(directory / payload_path(700))
            assert not await erase_payload(storage, 700)
            assert not await erase_payload(storage, 701)  # it never had one
            verify(directory)  # erasing a payload changes no entry and no proof

    asyncio.run(scenario())


def json_of(path: Path) -> Any:
    from controlplane import jsontext  # noqa: PLC0415

    return jsontext.loads(path.read_bytes())


def test_a_rerun_writes_nothing(server: RedisServer, tmp_path: Path) -> None:
    directory = tmp_path / "archive"

    async def scenario() -> None:
        async with opened(server) as (log, client):
            await log.append(1500)
            archiver = Archiver(client, LocalStorage(directory))
            await archiver.run_once()
            before = snapshot(directory)
            again = await Archiver(client, LocalStorage(directory)).run_once()
            assert (again.archived, again.size) == (0, 1500)
            assert snapshot(directory) == before  # same files, same bytes, none rewritten

    asyncio.run(scenario())


class Killed(Exception):
    """The archiver's process dying between two writes."""


class Crashing(LocalStorage):
    """A directory whose archiver dies before its `after`-th write."""

    def __init__(self, directory: Path, after: int) -> None:
        super().__init__(directory)
        self.after = after

    def write(self, path: str, data: bytes) -> None:
        if self.after == 0:
            raise Killed(f"killed before writing {path}")
        self.after -= 1
        super().write(path, data)


def test_a_run_killed_between_any_two_writes_is_completed_by_the_next(
    server: RedisServer, tmp_path: Path
) -> None:
    points = range(22)  # the second run below writes 21 files; 21 means "not killed"

    async def scenario() -> None:
        async with opened(server) as (log, client):
            await log.append(700)
            directories = {k: tmp_path / f"crash-{k}" for k in points}
            reference = tmp_path / "reference"
            # trim=False: each archive has its own group over the same stream.
            for name, directory in [("reference", reference), *directories.items()]:
                await Archiver(
                    client, LocalStorage(directory), group=str(name), trim=False
                ).run_once()
            await log.append(1100)
            await Archiver(
                client, LocalStorage(reference), group="reference", trim=False
            ).run_once()
            expected = {k: v[0] for k, v in snapshot(reference).items()}
            for after, directory in directories.items():
                killed = Archiver(client, Crashing(directory, after), group=str(after), trim=False)
                if after < 21:
                    with pytest.raises(Killed):
                        await killed.run_once()
                    # `checkpoint` goes last: a killed run leaves it at the previous size.
                    note = (directory / "checkpoint").read_text()
                    assert open_checkpoint(note, SIGNER.verifier(), ORIGIN).size == 700
                else:
                    await killed.run_once()
                # The next run (a new archiver, same consumer) re-reads its pending entries.
                done = await Archiver(
                    client, LocalStorage(directory), group=str(after), trim=False
                ).run_once()
                assert done.size == 1800
                assert verify(directory).size == 1800
                assert {k: v[0] for k, v in snapshot(directory).items()} == expected
                with server.client() as sync:
                    pending: Any = sync.xpending(ENTRIES_KEY, str(after))
                assert pending["pending"] == 0

    asyncio.run(scenario())


def test_the_archive_wins_over_the_group_cursor(server: RedisServer, tmp_path: Path) -> None:
    directory = tmp_path / "archive"

    async def scenario() -> None:
        async with opened(server) as (log, client):
            await log.append(1000)
            archiver = Archiver(client, LocalStorage(directory), trim=False)
            await archiver.run_once()
            await log.append(500)
            with server.client() as sync:
                # Ahead: the cursor says everything was delivered, the archive holds 1000.
                sync.xgroup_setid(ENTRIES_KEY, "archiver", "$")
            assert (await archiver.run_once()).size == 1500
            assert verify(directory).size == 1500
            await log.append(300)
            with server.client() as sync:
                # Behind: entries re-delivered are checked against the archive, not re-archived.
                sync.xgroup_setid(ENTRIES_KEY, "archiver", "0")
                # Delivered but never acknowledged (a crash after the checkpoint): pending.
                sync.xreadgroup("archiver", "archiver", {ENTRIES_KEY: ">"}, count=50)
            before = snapshot(directory)
            done = await archiver.run_once()
            assert (done.archived, done.size) == (300, 1800)
            assert verify(directory).size == 1800
            # No tile or bundle written before was written again (a growing bundle's payload
            # file and the checkpoint change, as they should).
            tiles = {k: v for k, v in before.items() if k.startswith("tile/")}
            assert {k: v for k, v in snapshot(directory).items() if k in tiles} == tiles
            with server.client() as sync:
                assert sync.xpending(ENTRIES_KEY, "archiver")["pending"] == 0

    asyncio.run(scenario())


def test_an_object_store_through_fsspec(server: RedisServer, tmp_path: Path) -> None:
    url = "memory://controlplane-test-archive"
    storage = open_storage(url)
    assert isinstance(storage, ObjectStorage)

    async def scenario() -> None:
        async with opened(server) as (log, client):
            archiver = Archiver(client, storage)
            for count in (600, 77, 1200):
                await log.append(count)
                await archiver.run_once()
                # The offline verifier reads a directory: copy the store out.
                copy = tmp_path / f"copy-{log.count}"
                for name in storage.list(""):
                    target = copy / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(storage.read(name))
                assert verify(copy).size == log.count
            assert await archived_leaf_hashes(storage, 0, 3) == [
                merkle.leaf_hash(e) for e in await entries_of(copy, 3)
            ]

    try:
        asyncio.run(scenario())
    finally:
        for name in storage.list(""):
            storage.delete(name)


async def entries_of(directory: Path, count: int) -> list[bytes]:
    from controlplane.archive.tiles import decode_entry_bundle  # noqa: PLC0415

    return decode_entry_bundle((directory / "tile/entries/000").read_bytes())[:count]


def rebuild_stream(server: RedisServer, change: dict[int, bytes]) -> None:
    """Rewrite the stream with some entries changed: a stream item cannot be edited in place, so
    whoever tampers with one rebuilds the stream (and loses its consumer groups)."""
    with server.client() as sync:
        rows: Any = sync.xrange(ENTRIES_KEY)
        sync.delete(ENTRIES_KEY)
        for stream_id, fields in rows:
            index = int(stream_id.decode()[2:]) - 1
            fields[b"e"] = change.get(index, fields[b"e"])
            sync.xadd(ENTRIES_KEY, fields, id=stream_id)


def test_tampered_entries_are_refused_by_index_and_nothing_is_written_or_trimmed(
    server: RedisServer, tmp_path: Path
) -> None:
    directory = tmp_path / "archive"

    async def scenario() -> None:
        async with opened(server) as (log, client):
            await log.append(1000)
            await Archiver(client, LocalStorage(directory), trim=False).run_once()
            await log.append(400)
            with server.client() as sync:
                rows: Any = sync.xrange(ENTRIES_KEY)
            original = {int(i.decode()[2:]) - 1: fields[b"e"] for i, fields in rows}

            # An archived entry still in Redis changed: found when the stream is re-read.
            rebuild_stream(server, {613: b'{"forged":true}'})
            before, ids = snapshot(directory), stream_ids(server)
            with pytest.raises(ArchiveError, match="entry 613") as caught:
                await Archiver(client, LocalStorage(directory)).run_once()
            assert caught.value.index == 613
            assert snapshot(directory) == before
            assert stream_ids(server) == ids

            # An entry not yet archived changed: the tree no longer has the signed root.
            rebuild_stream(server, {613: original[613], 1200: b'{"forged":true}'})
            with pytest.raises(ArchiveError, match="from index 1000 on") as caught:
                await Archiver(client, LocalStorage(directory)).run_once()
            assert caught.value.index == 1000
            assert snapshot(directory) == before
            assert stream_ids(server) == ids

            rebuild_stream(server, {1200: original[1200]})
            assert (await Archiver(client, LocalStorage(directory)).run_once()).size == 1400
            assert stream_ids(server) == [1399]

            # The newest archived entry, which trimming keeps, is checked on every run.
            rebuild_stream(server, {1399: b'{"forged":true}'})
            with pytest.raises(ArchiveError, match="entry 1399") as caught:
                await Archiver(client, LocalStorage(directory)).run_once()
            assert caught.value.index == 1399

    asyncio.run(scenario())


def test_controlplane_archive_run(server: RedisServer, tmp_path: Path) -> None:
    directory = tmp_path / "archive"

    async def fill() -> None:
        async with opened(server) as (log, _):
            await log.append(900)

    asyncio.run(fill())
    runner = CliRunner()
    argv = ["archive", "run", "--redis-url", server.url, "--to", str(directory), "--once"]
    result = runner.invoke(app, [*argv, "--no-trim"])
    assert result.exit_code == 0, result.output
    assert "archived 900 entries, the archive holds 900" in result.output
    assert "Redis trimmed" not in result.output
    assert len(stream_ids(server)) == 900
    result = runner.invoke(app, argv)
    assert result.exit_code == 0, result.output
    assert "archived 0 entries, the archive holds 900; Redis trimmed below entry 899" in (
        result.output
    )
    assert stream_ids(server) == [899]
    vkey = SIGNER.vkey()
    result = runner.invoke(app, ["archive", "verify", str(directory), "--key", vkey])
    assert result.exit_code == 0, result.output
    assert base64.b64encode(verify(directory).root).decode() in result.output
