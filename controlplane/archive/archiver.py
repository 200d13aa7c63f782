"""The archiver: copies the ledger's Redis Merkle log into archive storage as c2sp.org/tlog-tiles,
incrementally, then trims Redis; and the readers of the archive that proofs need once it has.

This module owns the path from the stream `{cp:ledger}:entries` to the archive files: which
entries a run copies, the entry bundles, tiles and payload files it writes, the order it writes
them in, the checks it makes before publishing a checkpoint, and the trimming of the stream and
of `{cp:ledger}:payloads` afterwards. The layout is `tiles.py`'s and the offline check
`verify.py`'s; the log itself (its keys and its Function) is `ledger/log.py`'s.

A run archives the entries [S, N): S is the size of the archive's own `checkpoint` (the source
of truth on where the archive stands) and N the size of the checkpoint the ledger last stored in
Redis, whose note becomes the archive's. Entries reach the archiver through a Redis consumer
group, so that a restarted archiver re-reads what it was given but never acknowledged; when the
group's cursor disagrees with the archive, the archive wins. A run:

1. reads [S, N) (this consumer's pending entries first, then new ones), with their payloads,
   into a spool (memory, then a temporary file for a large backlog), while extending the tree's
   right edge: the partial tile of each level, read from the archive (c2sp.org/tlog-tiles: the
   tiles of size S hold every hash needed to go on), so no run holds the whole log;
2. refuses, writing nothing, unless the root of the extended tree is the root of Redis's
   checkpoint; entries Redis still holds below S (re-delivered ones, and the newest archived
   entry, which trimming keeps) must equal the archived ones;
3. writes the full bundles and tiles as they fill, then the partial ones of size N (a partial
   tile is a new file `.p/<W>` at each width, as the spec names them), the payload file of each
   touched bundle, `checkpoints/<N>` and, last, `checkpoint`: a crash at any point leaves the
   previous checkpoint naming files that exist, and the next run rewrites the same bytes;
4. acknowledges the entries, then trims the stream and the payloads below N - 1.

One archiver runs per log: two would race on the archive files and on trimming.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any

from redis import exceptions as redis_exceptions
from redis.asyncio import Redis

from controlplane import jsontext
from controlplane.archive.storage import ArchiveStorage
from controlplane.archive.tiles import (
    MAX_ENTRY_SIZE,
    TILE_HEIGHT,
    TILE_WIDTH,
    TileError,
    decode_entry_bundle,
    encode_entry_bundle,
    entries_path,
    perfect_root,
    tile_path,
)
from controlplane.archive.verify import ArchiveError
from controlplane.canonical import canonical_json
from controlplane.errors import InvalidInput, NotFound, Unavailable
from controlplane.ledger.log import CHECKPOINT_KEY, ENTRIES_KEY
from controlplane.ledger.merkle import EMPTY_ROOT, HASH_SIZE, leaf_hash, node_hash
from controlplane.ledger.notes import Checkpoint
from controlplane.redis_client import redis_errors

log = logging.getLogger(__name__)

# The ledger's erasable payloads: field = decimal index, value = a canonical JSON object.
PAYLOADS_KEY = "{cp:ledger}:payloads"
CHECKPOINT_FILE = "checkpoint"
PAYLOADS_FOLDER = "payloads"

DEFAULT_BATCH = 1024  # entries per XREADGROUP
_SPOOL_MEMORY = 32 * 1024 * 1024  # a backlog spills to a temporary file beyond this
_FILES_PER_WRITE = 256  # files handed to the storage thread at once
_ACK_CHUNK = 1000  # ids per XACK, fields per HDEL: bounded commands
_SPOOL_HEADER = struct.Struct(">HI")  # entry length (a bundle's uint16), payload length

Progress = Callable[[str, int, int], None]  # (stage, done, total); stages "reading", "writing"


@dataclass(frozen=True, slots=True)
class ArchiveProgress:
    """What a run did: `archived` entries added, the archive now holding `size` entries (its
    checkpoint's), and whether the stream was trimmed below index `size - 1`."""

    archived: int
    size: int
    trimmed: bool


def payload_path(index: int) -> str:
    """`payloads/tile/entries/<N>.json`, the payloads of the entries of bundle N, the bundle that
    holds `index`: a canonical JSON object, decimal index → the entry's payload. One file per
    bundle whatever its width: unlike a tile it changes when a payload is erased."""
    return f"{PAYLOADS_FOLDER}/{entries_path(index // TILE_WIDTH, None)}.json"


def _bundle_width(number: int, size: int) -> int | None:
    """The width of bundle or tile `number` (of 256 leaves) in a tree of `size`: None if full."""
    return None if (number + 1) * TILE_WIDTH <= size else size % TILE_WIDTH


def _split_hashes(data: bytes, path: str, count: int) -> list[bytes]:
    if len(data) != count * HASH_SIZE:
        raise ArchiveError(f"{path}: {len(data)} bytes, not {count * HASH_SIZE}", path=path)
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def _parse_note(note: str, where: str) -> Checkpoint:
    # The body ends at the note's blank line (c2sp.org/signed-note); signatures follow it.
    try:
        return Checkpoint.parse(note[: note.find("\n\n") + 1])
    except InvalidInput as error:
        raise ArchiveError(f"{where}: not a checkpoint note: {error.detail}", path=where) from None


class _Edge:
    """The right edge of a tiled tree of `size` leaves: at each tile level, the hashes of its last,
    partial tile (c2sp.org/tlog-tiles: level l holds floor(size / 256**l) hashes, so the partial
    tile of level l has floor(size / 256**l) mod 256 of them). That is all it takes to append
    leaves and to compute the root."""

    def __init__(self, size: int, partials: list[list[bytes]]) -> None:
        self.size = size
        self.partials = partials

    def copy(self) -> _Edge:
        return _Edge(self.size, [list(hashes) for hashes in self.partials])

    def append(self, leaf: bytes) -> list[tuple[str, bytes]]:
        """Append a leaf hash; returns the full tiles it completed, (path, 8,192 bytes)."""
        self.size += 1
        completed: list[tuple[str, bytes]] = []
        value, level = leaf, 0
        while True:
            if level == len(self.partials):
                self.partials.append([])
            hashes = self.partials[level]
            hashes.append(value)
            if len(hashes) < TILE_WIDTH:
                return completed
            number = (self.size >> (TILE_HEIGHT * (level + 1))) - 1
            completed.append((tile_path(level, number, None), b"".join(hashes)))
            value = perfect_root(hashes)  # the tile's MTH is one hash of the level above
            hashes.clear()
            level += 1

    def root(self) -> bytes:
        """MTH of the tree: one perfect subtree per set bit of size, largest (leftmost) first;
        bit b of level l's width is a subtree of 2**b hashes of that level."""
        subtrees: list[bytes] = []
        for level in reversed(range(len(self.partials))):
            hashes, start = self.partials[level], 0
            for bit in reversed(range(TILE_HEIGHT)):
                if len(hashes) >> bit & 1:
                    subtrees.append(perfect_root(hashes[start : start + (1 << bit)]))
                    start += 1 << bit
        if not subtrees:
            return EMPTY_ROOT
        result = subtrees[-1]
        for left in reversed(subtrees[:-1]):
            result = node_hash(left, result)
        return result

    def partial_tiles(self) -> list[tuple[str, bytes]]:
        """The partial tile of each level that has one ("Empty tiles MUST NOT be served")."""
        return [
            (
                tile_path(level, self.size >> (TILE_HEIGHT * (level + 1)), len(hashes)),
                b"".join(hashes),
            )
            for level, hashes in enumerate(self.partials)
            if hashes
        ]


@dataclass(slots=True)
class _Archived:
    """Where the archive stands: its checkpoint (None when empty), the right edge of its tree,
    and the entries of its last, partial bundle."""

    checkpoint: Checkpoint | None
    edge: _Edge
    bundle: list[bytes]

    @property
    def size(self) -> int:
        return self.edge.size


def read_archived_checkpoint(storage: ArchiveStorage) -> Checkpoint | None:
    try:
        note = storage.read(CHECKPOINT_FILE)
    except NotFound:
        return None
    return _parse_note(note.decode("utf-8", "replace"), CHECKPOINT_FILE)


def _load_archived(storage: ArchiveStorage) -> _Archived:
    """The archive's state, from its checkpoint and the partial tiles of that size. Raises
    `ArchiveError` when a file the checkpoint needs is missing or the tiles do not hash to it."""
    checkpoint = read_archived_checkpoint(storage)
    size = 0 if checkpoint is None else checkpoint.size
    partials: list[list[bytes]] = []
    level = 0
    try:
        while size >> (TILE_HEIGHT * level):
            width = (size >> (TILE_HEIGHT * level)) % TILE_WIDTH
            hashes: list[bytes] = []
            if width:
                path = tile_path(level, size >> (TILE_HEIGHT * (level + 1)), width)
                hashes = _split_hashes(storage.read(path), path, width)
            partials.append(hashes)
            level += 1
        bundle: list[bytes] = []
        if size % TILE_WIDTH:
            path = entries_path(size // TILE_WIDTH, size % TILE_WIDTH)
            bundle = decode_entry_bundle(storage.read(path))
            if [leaf_hash(entry) for entry in bundle] != partials[0]:
                raise ArchiveError(
                    f"{path}: the entries do not match their level-0 tile", path=path
                )
    except NotFound as error:
        raise ArchiveError(
            f"the archive's checkpoint covers {size} entries, but {error.detail}"
        ) from None
    except TileError as error:
        raise ArchiveError(f"the archive's last entry bundle: {error.detail}") from None
    edge = _Edge(size, partials)
    if checkpoint is not None and edge.root() != checkpoint.root:
        raise ArchiveError(
            f"the archive's tiles of size {size} do not hash to the root of its checkpoint",
            path=CHECKPOINT_FILE,
        )
    return _Archived(checkpoint, edge, bundle)


class _Spool:
    """The entries of a run and their payloads, in order, between reading and writing: in memory
    up to `_SPOOL_MEMORY` bytes, then in a temporary file, so a large backlog is never all in
    memory."""

    def __init__(self) -> None:
        self._file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY)  # noqa: SIM115
        self.count = 0

    def add(self, entry: bytes, payload: bytes) -> None:
        self._file.write(_SPOOL_HEADER.pack(len(entry), len(payload)) + entry + payload)
        self.count += 1

    def replay(self) -> list[tuple[bytes, bytes]]:
        """Up to `_FILES_PER_WRITE * TILE_WIDTH` next (entry, payload) pairs; [] at the end."""
        pairs: list[tuple[bytes, bytes]] = []
        while len(pairs) < _FILES_PER_WRITE * TILE_WIDTH:
            header = self._file.read(_SPOOL_HEADER.size)
            if not header:
                break
            entry_length, payload_length = _SPOOL_HEADER.unpack(header)
            pairs.append((self._file.read(entry_length), self._file.read(payload_length)))
        return pairs

    def rewind(self) -> None:
        self._file.seek(0)

    def close(self) -> None:
        self._file.close()


class Archiver:
    """Copies the ledger's log from Redis into `storage` (see the module docstring).

    `redis` must return bytes (`redis_client.connect`). `group` and `consumer` name the Redis
    consumer group and this archiver in it; keep `consumer` stable across restarts, so that a
    restarted archiver finds what it was given. `batch` entries are read per XREADGROUP. With
    `trim`, the stream and the payloads are trimmed below the archived size minus one (the
    ledger's append Function needs the newest entry). `progress(stage, done, total)` is called
    while a run reads ("reading") and writes ("writing").
    """

    def __init__(
        self,
        redis: Redis,
        storage: ArchiveStorage,
        *,
        group: str = "archiver",
        consumer: str = "archiver",
        batch: int = DEFAULT_BATCH,
        trim: bool = True,
        progress: Progress | None = None,
    ) -> None:
        if batch < 1:
            raise InvalidInput(f"the archiver batch must be at least 1, not {batch}")
        self._redis = redis
        self._storage = storage
        self._group = group
        self._consumer = consumer
        self._batch = batch
        self._trim = trim
        self._progress = progress
        self._bundle_cache: tuple[str, list[bytes]] | None = None

    async def run(
        self,
        stop: asyncio.Event,
        interval_seconds: float,
        report: Callable[[ArchiveProgress], None] | None = None,
    ) -> None:
        """Run `run_once` every `interval_seconds` until `stop` is set, handing each result to
        `report` (default: log the runs that archived something). An unavailable Redis or
        storage is logged and retried; an `ArchiveError` (the log and the archive disagree)
        ends the loop, since only an operator can resolve it."""
        while not stop.is_set():
            try:
                done = await self.run_once()
            except Unavailable as error:
                log.warning("archiver: %s; retrying in %.1f s", error.detail, interval_seconds)
            else:
                if report is not None:
                    report(done)
                elif done.archived:
                    log.info("archived %d entries; the archive holds %d", done.archived, done.size)
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval_seconds)
            except TimeoutError:
                continue

    async def run_once(self) -> ArchiveProgress:
        """Archive every entry up to Redis's latest checkpoint, then trim (see the module
        docstring). Raises `ArchiveError` (naming the first index at fault when it can) if Redis
        and the archive disagree, `RedisUnavailable` and `StorageUnavailable` on outages."""
        self._bundle_cache = None
        archived = await asyncio.to_thread(_load_archived, self._storage)
        start = archived.size
        with redis_errors("reading the ledger checkpoint for the archive"):
            note_raw: Any = await self._redis.hget(CHECKPOINT_KEY, "note")
            await self._create_group()
        if note_raw is None:  # an empty log: nothing to archive yet
            return ArchiveProgress(0, start, trimmed=False)
        note = bytes(note_raw).decode("utf-8")
        target = _parse_note(note, "the ledger checkpoint in Redis")
        self._check_target(archived, target)
        end = target.size
        await self._check_joint(archived)

        spool = _Spool()
        try:
            edge = archived.edge.copy()
            stale = await self._read(start, end, edge, spool)
            if edge.root() != target.root:
                raise ArchiveError(
                    f"entries {start} to {end - 1} read from Redis do not hash to the root of "
                    f"its checkpoint of size {end}: an entry from index {start} on differs from "
                    f"the one that was signed; nothing was archived",
                    index=start,
                )
            if end > start:
                await self._write(archived, spool, target, note)
        finally:
            spool.close()
        await self._acknowledge(start, end, stale)
        trimmed = self._trim and end > 0
        if trimmed:
            await self._trim_below(end - 1)
        return ArchiveProgress(end - start, end, trimmed)

    def _check_target(self, archived: _Archived, target: Checkpoint) -> None:
        current = archived.checkpoint
        if current is None:
            return
        if target.origin != current.origin:
            raise ArchiveError(
                f"Redis holds the log {target.origin!r}, the archive the log {current.origin!r}",
                path=CHECKPOINT_FILE,
            )
        if target.size < current.size or (
            target.size == current.size and target.root != current.root
        ):
            raise ArchiveError(
                f"Redis's checkpoint (size {target.size}) is not an extension of the archive's "
                f"(size {current.size}): Redis lost entries or was replaced",
                path=CHECKPOINT_FILE,
            )

    async def _create_group(self) -> None:
        # MKSTREAM: the group may come before the first entry; the append Function accepts an
        # empty stream (its top id is then 0-0). Id 0: a new group starts at the first entry.
        try:
            await self._redis.xgroup_create(ENTRIES_KEY, self._group, id="0", mkstream=True)
        except redis_exceptions.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    async def _check_joint(self, archived: _Archived) -> None:
        """The newest archived entry is where the stream, which trimming leaves it in, joins the
        archive: if Redis still holds it, it must be the archived one."""
        if archived.size == 0:
            return
        index = archived.size - 1
        with redis_errors("reading the ledger stream for the archive"):
            rows: Any = await self._redis.xrange(ENTRIES_KEY, f"0-{index + 1}", f"0-{index + 1}")
        if rows:
            await self._compare(index, bytes(rows[0][1][b"e"]), archived.size)

    async def _compare(self, index: int, entry: bytes, size: int) -> None:
        """Raise `ArchiveError` unless `entry` is the archived entry `index` (of `size`)."""
        if entry != await self._archived_entry(index, size):
            raise ArchiveError(
                f"entry {index} in Redis differs from the archived entry {index}",
                index=index,
                path=entries_path(index // TILE_WIDTH, None),
            )

    async def _archived_entry(self, index: int, size: int) -> bytes:
        number = index // TILE_WIDTH
        path = entries_path(number, _bundle_width(number, size))
        if self._bundle_cache is None or self._bundle_cache[0] != path:
            data = await asyncio.to_thread(self._storage.read, path)
            self._bundle_cache = (path, decode_entry_bundle(data))
        entries = self._bundle_cache[1]
        position = index % TILE_WIDTH
        if position >= len(entries):
            raise ArchiveError(f"{path}: no entry {index}", index=index, path=path)
        return entries[position]

    async def _read(self, start: int, end: int, edge: _Edge, spool: _Spool) -> list[bytes]:
        """Spool entries [start, end) and their payloads, extending `edge` with their leaves.
        Returns the stream ids of already archived entries the group re-delivered (checked)."""
        stale: list[bytes] = []
        async for rows in self._deliveries(start, end, stale):
            indexes = [index for index, _ in rows]
            with redis_errors("reading ledger payloads for the archive"):
                payloads: list[Any] = await self._redis.hmget(
                    PAYLOADS_KEY, [str(index) for index in indexes]
                )
            for (index, entry), payload in zip(rows, payloads, strict=True):
                if len(entry) > MAX_ENTRY_SIZE:  # c2sp.org/tlog-tiles: uint16 entry lengths
                    raise ArchiveError(
                        f"entry {index} is {len(entry)} bytes; an entry bundle holds at most "
                        f"{MAX_ENTRY_SIZE}",
                        index=index,
                    )
                spool.add(entry, b"" if payload is None else _checked_payload(index, payload))
                edge.append(leaf_hash(entry))
            if self._progress is not None:
                self._progress("reading", spool.count, end - start)
        return stale

    async def _deliveries(
        self, start: int, end: int, stale: list[bytes]
    ) -> AsyncIterator[list[tuple[int, bytes]]]:
        """Entries [start, end) in order, in batches, through the consumer group: this consumer's
        pending entries first (delivered before a crash, never acknowledged), then new ones.
        Entries below `start` are compared with the archive and their ids put in `stale`.

        When the group's cursor is past the archive (a gap: entries acknowledged, or delivered
        to another consumer, without being archived), the archive wins: the cursor is set back
        to `start` once (XGROUP SETID) and the entries are read again."""
        expected, pending, after, rewound = start, True, "0-0", False
        while expected < end:
            rows = await self._read_group(after if pending else ">", end - expected)
            if not rows and pending:
                pending = False
                continue
            batch: list[tuple[int, bytes]] = []
            gap = not rows
            for raw_id, fields in rows:
                stream_id = bytes(raw_id)
                index = _index_of(stream_id)
                if pending:
                    after = stream_id.decode()
                if index < expected:
                    if index < start:
                        if fields:  # not trimmed since it was delivered
                            await self._compare(index, bytes(fields[b"e"]), start)
                        stale.append(stream_id)
                    continue  # or delivered twice in this run, after a rewind
                if expected == end:  # the rest is beyond the checkpoint: pending until next run
                    break
                if index > expected or not fields:
                    gap = True
                    break
                batch.append((index, bytes(fields[b"e"])))
                expected += 1
            if batch:
                yield batch
            if gap and expected < end:
                if rewound:
                    raise ArchiveError(
                        f"Redis's checkpoint covers {end} entries but the stream does not hold "
                        f"entry {expected}: it was trimmed or lost before it was archived",
                        index=expected,
                    )
                log.warning(
                    "the archiver group %r is not at the archive's size %d; reading from there",
                    self._group,
                    expected,
                )
                with redis_errors("moving the archiver's group cursor"):
                    await self._redis.xgroup_setid(ENTRIES_KEY, self._group, f"0-{expected}")
                pending, rewound = False, True

    async def _read_group(self, stream_id: str, wanted: int) -> list[Any]:
        with redis_errors("reading the ledger stream for the archive"):
            reply: Any = await self._redis.xreadgroup(
                self._group,
                self._consumer,
                {ENTRIES_KEY: stream_id},
                count=min(self._batch, max(wanted, 1)),
            )
        if not reply:
            return []
        if isinstance(reply, dict):  # RESP3
            return list(next(iter(reply.values()))[0])
        return list(reply[0][1])

    async def _write(
        self, archived: _Archived, spool: _Spool, target: Checkpoint, note: str
    ) -> None:
        """Write the bundles, tiles and payload files of [archived size, target size) from the
        spool, then `checkpoints/<N>` and `checkpoint`, in that order."""
        edge = archived.edge.copy()
        bundle = list(archived.bundle)
        number = archived.size // TILE_WIDTH
        payloads = await asyncio.to_thread(self._archived_payloads, archived.size)
        total, written = target.size - archived.size, 0
        spool.rewind()
        while pairs := spool.replay():
            files: list[tuple[str, bytes]] = []
            for entry, payload in pairs:
                bundle.append(entry)
                files += edge.append(leaf_hash(entry))
                if payload:
                    payloads[str(edge.size - 1)] = payload
                if len(bundle) == TILE_WIDTH:
                    files += _bundle_files(number, bundle, payloads, full=True)
                    bundle, payloads, number = [], {}, number + 1
            written += len(pairs)
            if written == total:
                if bundle:
                    files += _bundle_files(number, bundle, payloads, full=False)
                files += edge.partial_tiles()
            await asyncio.to_thread(self._put, files)
            if self._progress is not None:
                self._progress("writing", written, total)
        # Every tile the checkpoint names is durable before the checkpoint is written.
        await asyncio.to_thread(self._storage.sync)
        await asyncio.to_thread(
            self._put,
            [(f"checkpoints/{target.size}", note.encode()), (CHECKPOINT_FILE, note.encode())],
        )
        await asyncio.to_thread(self._storage.sync)

    def _archived_payloads(self, size: int) -> dict[str, bytes]:
        """The archived payloads of the partial bundle at `size`, which the run extends."""
        if size % TILE_WIDTH == 0:
            return {}
        try:
            data = self._storage.read(payload_path(size))
        except NotFound:
            return {}
        payloads: dict[str, Any] = jsontext.loads(data)
        return {index: canonical_json(value) for index, value in payloads.items()}

    def _put(self, files: Sequence[tuple[str, bytes]]) -> None:
        for path, data in files:
            self._storage.write(path, data)

    async def _acknowledge(self, start: int, end: int, stale: list[bytes]) -> None:
        ids: list[bytes | str] = [*stale, *(f"0-{index + 1}" for index in range(start, end))]
        if not ids:
            return
        with redis_errors("acknowledging archived entries"):
            async with self._redis.pipeline(transaction=False) as pipe:
                for first in range(0, len(ids), _ACK_CHUNK):
                    pipe.xack(ENTRIES_KEY, self._group, *ids[first : first + _ACK_CHUNK])
                await pipe.execute()

    async def _trim_below(self, keep: int) -> None:
        """Remove the entries and payloads below index `keep` (all archived): `XTRIM MINID` with
        id `0-<keep + 1>` keeps index `keep`, the newest entry the append Function compares the
        head with. Each chunk's payloads and entries go in one MULTI, so that no entry left in
        Redis ever lacks its payload."""
        with redis_errors("trimming the ledger stream"):
            oldest: Any = await self._redis.xrange(ENTRIES_KEY, "-", "+", count=1)
            first = _index_of(bytes(oldest[0][0])) if oldest else keep
            for low in range(first, keep, _ACK_CHUNK):
                high = min(low + _ACK_CHUNK, keep)
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.hdel(PAYLOADS_KEY, *(str(index) for index in range(low, high)))
                    pipe.xtrim(ENTRIES_KEY, minid=f"0-{high + 1}", approximate=False)
                    await pipe.execute()


def _index_of(stream_id: bytes) -> int:
    """The log index of a stream id `0-<index + 1>`."""
    return int(stream_id.partition(b"-")[2]) - 1


def _checked_payload(index: int, payload: Any) -> bytes:
    """A payload from Redis, as stored (the ledger writes it as RFC 8785 JSON; the archive does
    not hash it: its commitment in the entry is what proves it). Raises `ArchiveError` unless it
    is a JSON object: a payload that cannot be archived is found before anything is written."""
    data = bytes(payload)
    try:
        value = jsontext.loads(data)
    except InvalidInput as error:
        raise ArchiveError(f"the payload of entry {index}: {error.detail}", index=index) from None
    if not isinstance(value, dict):
        raise ArchiveError(f"the payload of entry {index} is not a JSON object", index=index)
    return data


def _bundle_files(
    number: int, bundle: list[bytes], payloads: dict[str, bytes], *, full: bool
) -> list[tuple[str, bytes]]:
    files = [(entries_path(number, None if full else len(bundle)), encode_entry_bundle(bundle))]
    if payloads:
        # One JSON object, index -> payload, assembled from the payloads' own JSON (sorted keys
        # as RFC 8785 would; walking every payload again cost most of a run).
        members = (b'"%s":%s' % (index.encode(), payloads[index]) for index in sorted(payloads))
        files.append((payload_path(number * TILE_WIDTH), b"{" + b",".join(members) + b"}"))
    return files


def _read_archived_leaves(storage: ArchiveStorage, start: int, end: int) -> list[bytes]:
    checkpoint = read_archived_checkpoint(storage)
    size = 0 if checkpoint is None else checkpoint.size
    if not 0 <= start <= end <= size:
        raise NotFound(f"the archive holds entries [0, {size}), not [{start}, {end})")
    hashes: list[bytes] = []
    for number in range(start // TILE_WIDTH, (end + TILE_WIDTH - 1) // TILE_WIDTH):
        width = _bundle_width(number, size)
        path = tile_path(0, number, width)
        try:
            tile = _split_hashes(storage.read(path), path, width or TILE_WIDTH)
        except NotFound:
            raise ArchiveError(f"{path}: missing, though the checkpoint covers it") from None
        first = number * TILE_WIDTH
        hashes += tile[max(start - first, 0) : end - first]
    return hashes


async def archived_leaf_hashes(storage: ArchiveStorage, start: int, end: int) -> list[bytes]:
    """The leaf hashes of entries [start, end), read from the archive's level-0 tiles (for the
    indexes the stream no longer holds). Raises `NotFound` unless the archive's checkpoint
    covers them, `ArchiveError` if a tile it needs is missing or malformed."""
    return await asyncio.to_thread(_read_archived_leaves, storage, start, end)


def _erase(storage: ArchiveStorage, index: int) -> bool:
    path = payload_path(index)
    try:
        payloads = jsontext.loads(storage.read(path))
    except NotFound:
        return False
    if payloads.pop(str(index), None) is None:
        return False
    if payloads:
        storage.write(path, canonical_json(payloads))
    else:
        storage.delete(path)
    return True


async def erase_payload(storage: ArchiveStorage, index: int) -> bool:
    """Remove the payload of entry `index` from the archive (a deletion request); the entry, its
    commitment and every proof stay as they were. Returns whether there was one. Erase it from
    `{cp:ledger}:payloads` first: the archiver copies payloads of entries it has not archived."""
    if index < 0:
        raise InvalidInput(f"no entry {index}")
    return await asyncio.to_thread(_erase, storage, index)
