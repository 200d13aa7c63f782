"""The append-only RFC 9162 Merkle log of the evidence ledger, kept in Redis (DESIGN.md §5).

This module owns the log's storage and its write path: the Redis keys, the Redis Function
library that advances the head by compare-and-append, group commit within a process, and the
signed checkpoint that acknowledges every append. Tree arithmetic is `merkle.py`'s and note
signing `notes.py`'s; what an entry says (a versioned record in RFC 8785 canonical JSON) is the
caller's: entries arrive here as bytes.

Layout, all under one hash tag so that one function call may touch every key (Redis Cluster
requires a script's keys to share a slot; redis.io "CROSSSLOT"):

- `{cp:ledger}:entries`, a stream whose ids are `0-<index + 1>` (index 0-based), fields `e`
  (the entry bytes), `kind` and, when there is one, `decision_id`;
- `{cp:ledger}:head`, the `CompactRange.to_json()` of the log (size and frontier hashes): all a
  writer needs to append and to compute the root without reading the leaves;
- `{cp:ledger}:checkpoint`, a hash with the latest signed checkpoint `note` (c2sp.org/
  tlog-checkpoint) and its tree `size`.

Redis Lua has no SHA-256 (only `redis.sha1hex`), so hashing and signing happen in Python and the
Function only checks and writes: the head advances only through `cpledger_append`, which refuses
an append computed against a head that has moved (`SIZE_CONFLICT`), so concurrent writers in any
number of processes can never fork the log or skip an index. An append is acknowledged only once
a checkpoint covering it is signed and stored in a Redis that fsyncs every write.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis import exceptions as redis_exceptions
from redis.asyncio import Redis

from controlplane.clock import Clock
from controlplane.errors import (
    ConfigurationError,
    ControlPlaneError,
    InvalidInput,
    NotFound,
    TooLarge,
    Unavailable,
)
from controlplane.ledger import merkle
from controlplane.ledger.notes import Checkpoint, NoteSigner, sign_checkpoint
from controlplane.redis_client import redis_errors

log = logging.getLogger(__name__)

ENTRIES_KEY = "{cp:ledger}:entries"
HEAD_KEY = "{cp:ledger}:head"
CHECKPOINT_KEY = "{cp:ledger}:checkpoint"
LIBRARY_NAME = "cpledger"

# One batch is one FCALL: Redis runs nothing else meanwhile, so it is bounded (the decision-log
# ingest measured ~20 ms for a 500-entry script on this class of machine).
MAX_BATCH_ENTRIES = 500
# Compare-and-append attempts per batch before giving up with `LedgerBusy`. Each failed attempt
# means another writer advanced the log, so exhausting them takes sustained contention.
MAX_APPEND_ATTEMPTS = 32
# Leaves read per XRANGE when a proof is computed from the stream.
READ_PAGE = 1000

# The Function library (redis.io/docs/latest/develop/programmability/functions-intro/). Loaded
# with FUNCTION LOAD REPLACE at start; Redis persists and replicates it with the dataset.
#
# cpledger_append(keys = {entries, head}, args = {expected_size, new_head_json,
#                 kind_1, decision_id_1 or '', entry_1, kind_2, ...})
#   Appends the entries at indexes expected_size, expected_size + 1, ... and sets the head, or
#   returns the error `SIZE_CONFLICT <actual size>` and writes nothing. A Redis script is not
#   rolled back when a command fails midway, so everything that could fail is checked before the
#   first write: the argument shape, the new head's size, and that the stream ends at the head
#   (so every explicit XADD id is above the stream's top item).
# cpledger_checkpoint(keys = {checkpoint}, args = {size, note})
#   Stores the note only if its size is larger than the stored one's, so that a slow writer can
#   never replace a newer checkpoint with an older one; returns the stored size.
LIBRARY = """#!lua name=cpledger
local function head_size(key)
  local head = redis.call('GET', key)
  if not head then return 0 end
  return tonumber(cjson.decode(head)['size'])
end

local function append(keys, args)
  local expected = tonumber(args[1])
  local count = (#args - 2) / 3
  if expected == nil or count < 1 or count ~= math.floor(count) then
    return redis.error_reply('BAD_ARGS cpledger_append takes a size, a head and triples')
  end
  local size = head_size(keys[2])
  if size ~= expected then
    return redis.error_reply('SIZE_CONFLICT ' .. size)
  end
  if tonumber(cjson.decode(args[2])['size']) ~= size + count then
    return redis.error_reply('BAD_HEAD the new head does not hold ' .. (size + count) .. ' leaves')
  end
  local top = redis.call('XREVRANGE', keys[1], '+', '-', 'COUNT', 1)
  local top_id = '0-0'
  if #top > 0 then top_id = top[1][1] end
  if top_id ~= '0-' .. size then
    return redis.error_reply('HEAD_MISMATCH stream top ' .. top_id .. ', head size ' .. size)
  end
  for i = 0, count - 1 do
    local kind, decision_id, entry = args[3 + 3 * i], args[4 + 3 * i], args[5 + 3 * i]
    if decision_id == '' then
      redis.call('XADD', keys[1], '0-' .. (size + 1 + i), 'e', entry, 'kind', kind)
    else
      redis.call('XADD', keys[1], '0-' .. (size + 1 + i), 'e', entry, 'kind', kind,
                 'decision_id', decision_id)
    end
  end
  redis.call('SET', keys[2], args[2])
  return size + count
end

local function checkpoint(keys, args)
  local size = tonumber(args[1])
  if size == nil then
    return redis.error_reply('BAD_ARGS cpledger_checkpoint takes a size and a note')
  end
  local stored = tonumber(redis.call('HGET', keys[1], 'size'))
  if stored == nil or size > stored then
    redis.call('HSET', keys[1], 'size', args[1], 'note', args[2])
    return size
  end
  return stored
end

redis.register_function('cpledger_append', append)
redis.register_function('cpledger_checkpoint', checkpoint)
"""

_SIZE_CONFLICT = "SIZE_CONFLICT "


class LedgerBusy(Unavailable):
    """The log moved under every attempt to append a batch; retrying later may succeed."""

    default_code = "ledger_busy"
    title = "Ledger busy"


class LedgerRollback(ControlPlaneError):
    """The log is smaller than, or differs from, a checkpoint this process already signed: Redis
    lost acknowledged entries or was replaced. Nothing is signed until an operator looks."""

    default_code = "ledger_rollback"
    title = "Ledger rolled back"


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Where a caller's entries landed: indexes `first_index` to `first_index + count - 1`, and
    the signed checkpoint note (of tree `size`, root `root`) that covers them."""

    first_index: int
    count: int
    size: int
    root: bytes
    checkpoint: str

    @property
    def indexes(self) -> range:
        return range(self.first_index, self.first_index + self.count)


Entry = tuple[str, str | None, bytes]  # kind, decision_id, entry bytes (RFC 8785 JSON)


def leaf_of(entry: bytes) -> bytes:
    """The RFC 9162 leaf hash of an entry: SHA-256(0x00 || entry)."""
    return merkle.leaf_hash(entry)


@dataclass(slots=True)
class _Pending:
    entries: list[Entry]
    future: asyncio.Future[AppendResult]


class Ledger:
    """One process's handle on the Redis Merkle log: appends with group commit, reads, proofs.

    `redis` must return bytes (no `decode_responses`), as `redis_client.connect` does.
    `signer` is the log key; its name must be `origin` (c2sp.org/tlog-checkpoint: the key name
    SHOULD be the origin). `state_path`, if given, keeps the last signed size and root across
    restarts, so that the refusal to sign a smaller checkpoint survives a restart. `clock` times
    the batches (monotonic), for the debug log.
    """

    def __init__(
        self,
        redis: Redis,
        signer: NoteSigner,
        origin: str,
        clock: Clock,
        *,
        require_fsync_always: bool = True,
        state_path: Path | None = None,
        max_batch: int = MAX_BATCH_ENTRIES,
        max_attempts: int = MAX_APPEND_ATTEMPTS,
    ) -> None:
        if signer.name != origin:
            raise ConfigurationError(
                f"the ledger key is named {signer.name!r}, not the origin {origin!r}"
            )
        self._redis = redis
        self._signer = signer
        self._origin = origin
        self._clock = clock
        self._require_fsync_always = require_fsync_always
        self._state_path = state_path
        self._max_batch = max_batch
        self._max_attempts = max_attempts
        self._queue: deque[_Pending] = deque()
        self._committer: asyncio.Task[None] | None = None
        self._head: merkle.CompactRange | None = None  # our last written head: a guess
        self._last_signed: tuple[int, bytes] | None = self._load_state()

    @property
    def origin(self) -> str:
        return self._origin

    async def start(self) -> None:
        """Load the Function library and check that Redis fsyncs every write.

        Raises `ConfigurationError` when Redis does not run with `appendonly yes` and
        `appendfsync always` (unless `require_fsync_always` is off, then it only warns): an
        append is acknowledged once its checkpoint is stored, and Redis 7.0 has no WAITAOF
        (7.2+) to confirm an fsync any other way, so with `everysec` a crash could lose up to a
        second of acknowledged entries. Raises `LedgerRollback` when the log in Redis is smaller
        than the checkpoint this process last signed, and `RedisUnavailable` on Redis errors.
        """
        with redis_errors("loading the ledger functions"):
            await self._redis.function_load(LIBRARY, replace=True)
            config = await self._redis.config_get("append*")
        settings = {_text(k): _text(v) for k, v in dict(config).items()}
        appendonly, appendfsync = settings.get("appendonly"), settings.get("appendfsync")
        if appendonly != "yes" or appendfsync != "always":
            problem = (
                f"Redis runs with appendonly {appendonly} and appendfsync {appendfsync}; the "
                "ledger acknowledges an append only once its checkpoint is durable, which needs "
                "appendonly yes and appendfsync always (Redis 7.0 has no WAITAOF)"
            )
            if self._require_fsync_always:
                raise ConfigurationError(problem)
            log.warning("%s: acknowledged entries may be lost in a crash", problem)
        head = await self._read_head()
        self._check_not_rolled_back(head.size, head.root())

    async def append(self, entries: Sequence[Entry]) -> AppendResult:
        """Append `entries` (kind, decision_id or None, entry bytes) contiguously, in order.

        Returns once a signed checkpoint covering them is stored. Concurrent calls are committed
        together (one compare-and-append and one checkpoint per batch). Raises `InvalidInput`
        for an empty list or a malformed entry, `TooLarge` above the batch bound,
        `RedisUnavailable` when Redis fails (the entries may or may not be in the log then),
        `LedgerBusy` under sustained contention and `LedgerRollback` (see `start`).
        """
        checked = _check_entries(entries)
        if len(checked) > self._max_batch:
            raise TooLarge(f"{len(checked)} entries in one append, more than {self._max_batch}")
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(checked, future))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_queued())
        return await future

    async def _commit_queued(self) -> None:
        # Group commit: whoever queued while a batch was in flight goes into the next one.
        while self._queue:
            batch: list[_Pending] = []
            count = 0
            while self._queue and count + len(self._queue[0].entries) <= self._max_batch:
                pending = self._queue.popleft()
                batch.append(pending)
                count += len(pending.entries)
            began = self._clock.monotonic()
            try:
                first, size, root, note = await self._commit([e for p in batch for e in p.entries])
            except Exception as error:  # every caller of the batch learns of the failure
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(error)
                continue
            log.debug(
                "ledger batch of %d entries committed at size %d in %.1f ms",
                count,
                size,
                1000 * (self._clock.monotonic() - began),
            )
            for pending in batch:
                if not pending.future.done():  # a caller may have been cancelled
                    result = AppendResult(first, len(pending.entries), size, root, note)
                    pending.future.set_result(result)
                first += len(pending.entries)

    async def _commit(self, entries: list[Entry]) -> tuple[int, int, bytes, str]:
        """Append one batch by compare-and-append, then sign and store its checkpoint.
        Returns (first index, new size, new root, checkpoint note)."""
        leaves = [leaf_of(entry) for _, _, entry in entries]
        triples: list[str | bytes] = []
        for kind, decision_id, entry in entries:
            triples += [kind, decision_id or "", entry]
        head = self._head if self._head is not None else await self._read_head()
        # No backoff: a writer that lost the race re-reads the head and tries at once, since the
        # winner still has to store its checkpoint before its next append; sleeping would only
        # hand the winner every following round.
        for _attempt in range(self._max_attempts):
            new_head = head
            for leaf in leaves:
                new_head = new_head.append(leaf)
            with redis_errors("appending to the ledger"):
                actual = await self._compare_and_append(head.size, new_head, triples)
                if actual is not None and await self._already_appended(head.size, actual, entries):
                    # Our earlier attempt landed but its reply was lost (the client retries a
                    # command once after a dropped connection): the entries are in; do not
                    # append them twice. The head read now is the one we wrote or a later one.
                    actual = None
            if actual is None:
                self._head = new_head
                break
            log.debug("ledger head moved to %d (expected %d), retrying", actual, head.size)
            self._head = None
            head = await self._read_head()
        else:
            raise LedgerBusy(
                f"the ledger head moved during {self._max_attempts} attempts to append "
                f"{len(entries)} entries; another writer is appending faster than this one"
            )
        size, root = new_head.size, new_head.root()
        note = self._sign(size, root)
        with redis_errors("storing the ledger checkpoint"):
            await self._redis.fcall("cpledger_checkpoint", 1, CHECKPOINT_KEY, size, note)
        return head.size, size, root, note

    async def _compare_and_append(
        self, expected: int, new_head: merkle.CompactRange, triples: list[str | bytes]
    ) -> int | None:
        """None once appended; the head's actual size if it is not `expected`."""
        try:
            await self._redis.fcall(
                "cpledger_append", 2, ENTRIES_KEY, HEAD_KEY, expected, new_head.to_json(), *triples
            )
        except redis_exceptions.ResponseError as error:
            message = str(error)
            if not message.startswith(_SIZE_CONFLICT):
                raise
            return int(message.removeprefix(_SIZE_CONFLICT))
        return None

    async def _already_appended(self, expected: int, actual: int, entries: list[Entry]) -> bool:
        if actual < expected + len(entries):
            return False
        stored = await self._read_entries(expected, expected + len(entries))
        return [entry for _, entry in stored] == [entry for _, _, entry in entries]

    def _sign(self, size: int, root: bytes) -> str:
        """Sign the checkpoint of (size, root), never one smaller than, or forking, the last one
        this process signed. Raises `LedgerRollback` otherwise."""
        self._check_not_rolled_back(size, root)
        note = sign_checkpoint(Checkpoint(self._origin, size, root), self._signer)
        self._last_signed = (size, root)
        self._save_state()
        return note

    def _check_not_rolled_back(self, size: int, root: bytes) -> None:
        if self._last_signed is None:
            return
        signed_size, signed_root = self._last_signed
        if size < signed_size or (size == signed_size and root != signed_root):
            raise LedgerRollback(
                f"the ledger has {size} entries (root {root.hex()}), but this process already "
                f"signed a checkpoint of {signed_size} entries (root {signed_root.hex()})"
            )

    def _load_state(self) -> tuple[int, bytes] | None:
        if self._state_path is None or not self._state_path.exists():
            return None
        try:
            state = json.loads(self._state_path.read_text())
            return int(state["size"]), bytes.fromhex(state["root"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ConfigurationError(
                f"the ledger state file {self._state_path} is unreadable: {error}"
            ) from None

    def _save_state(self) -> None:
        # Atomic: write a sibling file, fsync it, rename over the old one (rename is atomic on
        # POSIX), so a crash leaves either the old or the new state, never half of one.
        if self._state_path is None or self._last_signed is None:
            return
        size, root = self._last_signed
        temporary = self._state_path.with_name(self._state_path.name + ".tmp")
        with temporary.open("w") as handle:
            json.dump({"size": size, "root": root.hex()}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(self._state_path)
        directory = os.open(self._state_path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # make the rename itself durable
        finally:
            os.close(directory)

    async def _read_head(self) -> merkle.CompactRange:
        with redis_errors("reading the ledger head"):
            raw = await self._redis.get(HEAD_KEY)
        return merkle.CompactRange() if raw is None else merkle.CompactRange.from_json(raw)

    # Readers.

    async def checkpoint(self) -> str | None:
        """The latest stored signed checkpoint note, or None before the first append."""
        with redis_errors("reading the ledger checkpoint"):
            raw = await self._redis.hget(CHECKPOINT_KEY, "note")
        return None if raw is None else _text(raw)

    async def size(self) -> int:
        """The number of entries in the log (the head's size)."""
        return (await self._read_head()).size

    async def entry(self, index: int) -> bytes:
        """The bytes of entry `index`. Raises `NotFound` if there is none (or it was trimmed)."""
        if index < 0:
            raise NotFound(f"the ledger has no entry {index}")
        with redis_errors("reading a ledger entry"):
            rows = await self._read_entries(index, index + 1)
        if not rows:
            raise NotFound(f"the ledger has no entry {index}")
        return rows[0][1]

    async def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 §2.1.3.1 PATH(index, D[size]). Raises `ProofError` unless 0 <= index < size,
        `NotFound` if the log is smaller than `size`."""
        if not 0 <= index < size:
            raise merkle.ProofError(f"leaf index {index} is not in a tree of size {size}")
        leaves = await self._leaf_hashes(size)
        return merkle.inclusion_proof(index, size, merkle.subtree_from_leaves(leaves))

    async def consistency_proof(self, old: int, new: int) -> list[bytes]:
        """RFC 9162 §2.1.4.1 PROOF(old, D[new]). Raises `ProofError` unless 0 < old <= new,
        `NotFound` if the log is smaller than `new`."""
        if not 0 < old <= new:
            raise merkle.ProofError(f"no consistency proof from size {old} to size {new}")
        leaves = await self._leaf_hashes(new)
        return merkle.consistency_proof(old, new, merkle.subtree_from_leaves(leaves))

    async def _leaf_hashes(self, size: int) -> list[bytes]:
        # Reads every leaf up to `size`: fine while the log is small. tlog-tiles (the archive,
        # issue #5) will replace this with O(log n) tile reads for large logs.
        if size > await self.size():
            raise NotFound(f"the ledger has fewer than {size} entries")
        leaves: list[bytes] = []
        while len(leaves) < size:
            start, end = len(leaves), min(len(leaves) + READ_PAGE, size)
            with redis_errors("reading ledger entries"):
                rows = await self._read_entries(start, end)
            if [index for index, _ in rows] != list(range(start, end)):
                raise NotFound(f"ledger entries {start} to {end - 1} are not all stored (trimmed?)")
            leaves += [leaf_of(entry) for _, entry in rows]
        return leaves

    async def _read_entries(self, start: int, end: int) -> list[tuple[int, bytes]]:
        """(index, entry bytes) of the stored entries with start <= index < end."""
        rows: Any = await self._redis.xrange(ENTRIES_KEY, f"0-{start + 1}", f"0-{end}")
        found: list[tuple[int, bytes]] = []
        for stream_id, fields in rows or []:
            index = int(_text(stream_id).removeprefix("0-")) - 1
            found.append((index, bytes(fields[b"e"])))
        return found


def _check_entries(entries: Sequence[Entry]) -> list[Entry]:
    # Fail closed on shapes the Function would store wrongly (an empty decision_id would read
    # back as "none") or that are not entries at all.
    if not entries:
        raise InvalidInput("an append needs at least one entry")
    checked: list[Entry] = []
    for position, item in enumerate(entries):
        kind, decision_id, entry = item
        if not isinstance(kind, str) or not kind:
            raise InvalidInput(f"entry {position}: the kind must be a non-empty string")
        if decision_id is not None and (not isinstance(decision_id, str) or not decision_id):
            raise InvalidInput(f"entry {position}: the decision_id must be None or non-empty")
        if not isinstance(entry, bytes) or not entry:
            raise InvalidInput(f"entry {position}: the entry must be non-empty bytes")
        checked.append((kind, decision_id, entry))
    return checked


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
