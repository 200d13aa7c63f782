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
from typing import Any, NamedTuple, Protocol

from redis import exceptions as redis_exceptions
from redis.asyncio import Redis

from controlplane.clock import Clock
from controlplane.errors import (
    ConfigurationError,
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
CHECKPOINTS_KEY = "{cp:ledger}:checkpoints"  # sorted set: recent signed notes, by size
PAYLOADS_KEY = "{cp:ledger}:payloads"  # hash: index -> the entry's erasable payload (records.py)
AWAITING_KEY = "{cp:ledger}:awaiting"  # sorted set: OPA decision ids awaiting their opa.decision
SEEN_PREFIX = "{cp:ledger}:seen:"  # + dedupe key -> index of the entry that took it
DECISION_PREFIX = "{cp:ledger}:decision:"  # + decision id -> list of the indexes that name it
OPA_SEEN = "opa:"  # dedupe keys of opa.decision entries: "opa:" + decision_id
LIBRARY_NAME = "cpledger"

# One batch is one FCALL: Redis runs nothing else meanwhile, so it is bounded (the decision-log
# ingest measured ~20 ms for a 500-entry script on this class of machine).
MAX_BATCH_ENTRIES = 500
# Compare-and-append attempts per batch before giving up with `LedgerBusy`. Each failed attempt
# means another writer advanced the log, so exhausting them takes sustained contention.
MAX_APPEND_ATTEMPTS = 32
# Recent checkpoints kept in Redis (~200 bytes each): with group commit, one per batch, so they
# pin down a tampered entry to its batch (`ledger/audit.py`) over the last many batches.
HISTORY_CHECKPOINTS = 10_000
# Leaves read per XRANGE when a proof is computed from the stream.
READ_PAGE = 1000

# The Function library (redis.io/docs/latest/develop/programmability/functions-intro/). Loaded
# with FUNCTION LOAD REPLACE at start; Redis persists and replicates it with the dataset.
#
# cpledger_append(keys = {entries, head, payloads, awaiting, <per-entry keys>...},
#                 args = {expected_size, new_head_json, seen_ttl, now,
#                         then per entry: kind, decision_id or '', entry, payload or '', flags})
#   Appends the entries at indexes expected_size, expected_size + 1, ... and sets the head, or
#   returns an error and writes nothing: `SIZE_CONFLICT <actual size>` when the head moved,
#   `DUPLICATE <position>:<index> ...` when an entry's dedupe key is already taken (by the entry
#   at <index>). A Redis script is not rolled back when a command fails midway, so everything
#   that could fail is checked before the first write: the argument shape, the new head's size,
#   that the stream ends at the head (so every explicit XADD id is above its top item), and the
#   dedupe keys. Each letter of an entry's flags takes the next per-entry key, in this order:
#   'S' its dedupe key (set to its index for `seen_ttl` seconds; an OPA decision also leaves the
#   awaiting set), 'A' the dedupe key of its OPA decision (the entry awaits that decision's
#   `opa.decision` entry: it joins the awaiting set at `now` unless the decision is already in),
#   'D' its decision's index list (for `GET /v1/ledger/decisions/{id}`, kept `seen_ttl` seconds).
# cpledger_checkpoint(keys = {checkpoint, checkpoints}, args = {size, note})
#   Stores the note only if its size is larger than the stored one's, so that a slow writer can
#   never replace a newer checkpoint with an older one, and adds it to the recent checkpoints
#   (the newest HISTORY_CHECKPOINTS, by size), which `ledger/audit.py` checks the stream against;
#   returns the stored size.
LIBRARY = """#!lua name=cpledger
local function head_size(key)
  local head = redis.call('GET', key)
  if not head then return 0 end
  return tonumber(cjson.decode(head)['size'])
end

local function has(flags, letter)
  return string.find(flags, letter, 1, true) ~= nil
end

local function append(keys, args)
  local expected = tonumber(args[1])
  local count = (#args - 4) / 5
  if expected == nil or count < 1 or count ~= math.floor(count) then
    return redis.error_reply('BAD_ARGS cpledger_append takes a size, a head, a ttl, a time '
                             .. 'and quintuples')
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
  local k = 5
  local taken = {}
  for i = 0, count - 1 do
    local flags = args[9 + 5 * i]
    if has(flags, 'S') then
      local index = redis.call('GET', keys[k])
      if index then taken[#taken + 1] = i .. ':' .. index end
      k = k + 1
    end
    if has(flags, 'A') then k = k + 1 end
    if has(flags, 'D') then k = k + 1 end
  end
  if #taken > 0 then
    return redis.error_reply('DUPLICATE ' .. table.concat(taken, ' '))
  end
  k = 5
  for i = 0, count - 1 do
    local index = size + i
    local kind, decision_id, entry = args[5 + 5 * i], args[6 + 5 * i], args[7 + 5 * i]
    local payload, flags = args[8 + 5 * i], args[9 + 5 * i]
    if decision_id == '' then
      redis.call('XADD', keys[1], '0-' .. (index + 1), 'e', entry, 'kind', kind)
    else
      redis.call('XADD', keys[1], '0-' .. (index + 1), 'e', entry, 'kind', kind,
                 'decision_id', decision_id)
    end
    if payload ~= '' then redis.call('HSET', keys[3], index, payload) end
    if has(flags, 'S') then
      redis.call('SET', keys[k], index, 'EX', args[3])
      if kind == 'opa.decision' then redis.call('ZREM', keys[4], decision_id) end
      k = k + 1
    end
    if has(flags, 'A') then
      if redis.call('EXISTS', keys[k]) == 0 then
        redis.call('ZADD', keys[4], 'NX', args[4], decision_id)
      end
      k = k + 1
    end
    if has(flags, 'D') then
      redis.call('RPUSH', keys[k], index)
      redis.call('EXPIRE', keys[k], args[3])
      k = k + 1
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
    redis.call('ZADD', keys[2], size, args[2])
    redis.call('ZREMRANGEBYRANK', keys[2], 0, -HISTORY_CHECKPOINTS - 1)
    return size
  end
  return stored
end

redis.register_function('cpledger_append', append)
redis.register_function('cpledger_checkpoint', checkpoint)
""".replace("HISTORY_CHECKPOINTS", str(HISTORY_CHECKPOINTS))

_SIZE_CONFLICT = "SIZE_CONFLICT "
_DUPLICATE = "DUPLICATE "


class LedgerBusy(Unavailable):
    """The log moved under every attempt to append a batch; retrying later may succeed."""

    default_code = "ledger_busy"
    title = "Ledger busy"


class LedgerRollback(Unavailable):
    """The log is smaller than, or differs from, a checkpoint this process already signed: Redis
    lost acknowledged entries or was replaced. Nothing is signed until an operator looks."""

    default_code = "ledger_rollback"
    title = "Ledger rolled back"


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Where a caller's entries are: `indexes[i]` is entry i's index, `appended[i]` whether this
    append put it there (False: its dedupe key was taken, by the entry at that index). The signed
    checkpoint note (of tree `size`, root `root`) covers every one of them."""

    indexes: tuple[int, ...]
    appended: tuple[bool, ...]
    size: int
    root: bytes
    checkpoint: str

    @property
    def first_index(self) -> int:
        return self.indexes[0]


class ArchivedEntries(Protocol):
    """The archive's copy of the entries the stream no longer holds (`archive.reader`)."""

    async def size(self) -> int: ...

    async def leaf_hashes(self, start: int, end: int) -> list[bytes]: ...

    async def entry(self, index: int) -> bytes: ...

    async def payload(self, index: int) -> bytes | None: ...

    async def erase_payload(self, index: int) -> bool: ...


class Entry(NamedTuple):
    """One entry to append. `entry`: the bytes the log hashes (RFC 8785 JSON). `payload`: its
    erasable payload, kept beside it. `seen`: a dedupe key (the append skips an entry whose key
    was taken within the dedupe window). `awaits`: the entry names an OPA decision whose own
    `opa.decision` entry should follow (the reconciler reports it when it does not)."""

    kind: str
    decision_id: str | None
    entry: bytes
    payload: bytes | None = None
    seen: str | None = None
    awaits: bool = False


def leaf_of(entry: bytes) -> bytes:
    """The RFC 9162 leaf hash of an entry: SHA-256(0x00 || entry)."""
    return merkle.leaf_hash(entry)


@dataclass(slots=True)
class _Pending:
    entries: list[Entry]
    future: asyncio.Future[AppendResult]


@dataclass(frozen=True, slots=True)
class _Committed:
    indexes: list[int]
    appended: list[bool]
    size: int
    root: bytes
    note: str


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
        dedupe_seconds: int = 3600,
        archive: ArchivedEntries | None = None,
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
        self._dedupe_seconds = dedupe_seconds
        self._archive = archive
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
                committed = await self._commit([e for p in batch for e in p.entries])
            except Exception as error:  # every caller of the batch learns of the failure
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(error)
                continue
            log.debug(
                "ledger batch of %d entries committed at size %d in %.1f ms",
                count,
                committed.size,
                1000 * (self._clock.monotonic() - began),
            )
            first = 0
            for pending in batch:
                last = first + len(pending.entries)
                if not pending.future.done():  # a caller may have been cancelled
                    result = AppendResult(
                        tuple(committed.indexes[first:last]),
                        tuple(committed.appended[first:last]),
                        committed.size,
                        committed.root,
                        committed.note,
                    )
                    pending.future.set_result(result)
                first = last

    async def _commit(self, entries: list[Entry]) -> _Committed:
        """Append one batch by compare-and-append, then sign and store its checkpoint.

        Entries whose dedupe key is taken (earlier in the batch, or in the log within the
        window) are not appended; they get the index of the entry that took the key.
        """
        indexes: list[int | None] = [None] * len(entries)
        appended = [False] * len(entries)
        first_with = _first_with_each_key(entries)
        # Positions still to append: an entry whose key an earlier one in the batch has is not.
        todo = [p for p, e in enumerate(entries) if e.seen is None or first_with[e.seen] == p]
        head = self._head if self._head is not None else await self._read_head()
        new_head = head
        # No backoff: a writer that lost the race re-reads the head and tries at once, since the
        # winner still has to store its checkpoint before its next append; sleeping would only
        # hand the winner every following round.
        for _attempt in range(self._max_attempts):
            if not todo:
                break
            batch = [entries[p] for p in todo]
            new_head = head
            for item in batch:
                new_head = new_head.append(leaf_of(item.entry))
            with redis_errors("appending to the ledger"):
                outcome = await self._compare_and_append(head.size, new_head, batch)
                if isinstance(outcome, int) and await self._already_appended(
                    head.size, outcome, batch
                ):
                    # Our earlier attempt landed but its reply was lost (the client retries a
                    # command once after a dropped connection): the entries are in; do not
                    # append them twice. The head read now is the one we wrote or a later one.
                    outcome = None
            if outcome is None:
                for offset, position in enumerate(todo):
                    indexes[position], appended[position] = head.size + offset, True
                self._head = new_head
                todo = []
                break
            if isinstance(outcome, dict):  # dedupe keys taken meanwhile: drop those entries
                for offset, index in outcome.items():
                    indexes[todo[offset]] = index
                todo = [p for offset, p in enumerate(todo) if offset not in outcome]
                new_head = head
                continue
            log.debug("ledger head moved to %d (expected %d), retrying", outcome, head.size)
            self._head = None
            head = new_head = await self._read_head()
        else:
            raise LedgerBusy(
                f"the ledger head moved during {self._max_attempts} attempts to append "
                f"{len(entries)} entries; another writer is appending faster than this one"
            )
        if not any(appended):
            # Every entry was in already, maybe appended by a writer that has not stored its
            # checkpoint yet (or died first): sign the current head, which holds them all.
            new_head = await self._read_head()
        size, root = new_head.size, new_head.root()
        note = self._sign(size, root)
        with redis_errors("storing the ledger checkpoint"):
            await self._redis.fcall(
                "cpledger_checkpoint", 2, CHECKPOINT_KEY, CHECKPOINTS_KEY, size, note
            )
        return _Committed(_resolve(indexes, entries, first_with), appended, size, root, note)

    async def _compare_and_append(
        self, expected: int, new_head: merkle.CompactRange, entries: list[Entry]
    ) -> int | dict[int, int] | None:
        """None once appended; the head's actual size if it is not `expected`; the positions
        of the entries whose dedupe key is taken, with the index that took it."""
        keys = [ENTRIES_KEY, HEAD_KEY, PAYLOADS_KEY, AWAITING_KEY]
        args: list[str | bytes | int | float] = [
            expected,
            new_head.to_json(),
            self._dedupe_seconds,
            self._clock.now().timestamp(),
        ]
        for entry in entries:
            flags = ""
            if entry.seen is not None:
                flags += "S"
                keys.append(SEEN_PREFIX + entry.seen)
            if entry.awaits and entry.decision_id is not None:
                flags += "A"
                keys.append(SEEN_PREFIX + OPA_SEEN + entry.decision_id)
            if entry.decision_id is not None:
                flags += "D"
                keys.append(DECISION_PREFIX + entry.decision_id)
            args += [entry.kind, entry.decision_id or "", entry.entry, entry.payload or b"", flags]
        try:
            await self._redis.fcall("cpledger_append", len(keys), *keys, *args)
        except redis_exceptions.ResponseError as error:
            message = str(error)
            if message.startswith(_SIZE_CONFLICT):
                return int(message.removeprefix(_SIZE_CONFLICT))
            if message.startswith(_DUPLICATE):
                pairs = (item.split(":") for item in message.removeprefix(_DUPLICATE).split())
                return {int(position): int(index) for position, index in pairs}
            raise
        return None

    async def _already_appended(self, expected: int, actual: int, entries: list[Entry]) -> bool:
        if actual < expected + len(entries):
            return False
        stored = await self._read_entries(expected, expected + len(entries))
        return [entry for _, entry in stored] == [item.entry for item in entries]

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
        if rows:
            return rows[0][1]
        if self._archive is not None and index < await self.size():
            return await self._archive.entry(index)  # trimmed from Redis, archived
        raise NotFound(f"the ledger has no entry {index}")

    async def decision_indexes(self, decision_id: str) -> list[int]:
        """The indexes of the entries naming `decision_id` appended within the dedupe window."""
        with redis_errors("reading a decision's ledger entries"):
            raw = await self._redis.lrange(DECISION_PREFIX + decision_id, 0, -1)
        return sorted(int(item) for item in raw)

    async def payload(self, index: int) -> bytes | None:
        """The erasable payload kept beside entry `index`, if it has one (and it is not erased)."""
        with redis_errors("reading a ledger payload"):
            raw: Any = await self._redis.hget(PAYLOADS_KEY, str(index))
        if raw is None and self._archive is not None:
            return await self._archive.payload(index)
        return None if raw is None else bytes(raw)

    async def erase_payload(self, index: int) -> bool:
        """Erase the payload of entry `index` (the entry and every proof stay valid). Returns
        whether there was one."""
        # Redis first: the archiver copies the payloads of entries it has not archived yet.
        with redis_errors("erasing a ledger payload"):
            erased = bool(await self._redis.hdel(PAYLOADS_KEY, str(index)))
        if self._archive is not None:
            erased = await self._archive.erase_payload(index) or erased
        return erased

    async def awaiting(self, older_than: float, limit: int) -> tuple[int, list[tuple[str, float]]]:
        """OPA decisions awaiting their `opa.decision` entry since before `older_than` (Unix
        time): how many, and the `limit` oldest as (decision_id, since)."""
        with redis_errors("reading the decisions awaiting their OPA log"):
            count = await self._redis.zcount(AWAITING_KEY, "-inf", older_than)
            oldest: Any = await self._redis.zrangebyscore(
                AWAITING_KEY, "-inf", older_than, start=0, num=limit, withscores=True
            )
        return int(count), [(_text(member), float(score)) for member, score in oldest]

    async def forget_awaiting(self, older_than: float) -> int:
        """Stop waiting for decisions seen before `older_than`; returns how many."""
        with redis_errors("forgetting old decisions awaiting their OPA log"):
            return int(await self._redis.zremrangebyscore(AWAITING_KEY, "-inf", older_than))

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
        # The leaves below the stream's first entry come from the archive's level-0 tiles (the
        # archiver trimmed them); the rest are hashed from the stream. Reads every leaf up to
        # `size`: O(n), fine for audits of logs of millions of entries (ADR 0005).
        if size > await self.size():
            raise NotFound(f"the ledger has fewer than {size} entries")
        with redis_errors("reading ledger entries"):
            first: Any = await self._redis.xrange(ENTRIES_KEY, "-", "+", count=1)
        stream_start = int(_text(first[0][0]).removeprefix("0-")) - 1 if first else size
        leaves: list[bytes] = []
        if stream_start > 0:
            if self._archive is None:
                raise NotFound(f"ledger entries below {stream_start} are trimmed and not archived")
            leaves = await self._archive.leaf_hashes(0, min(stream_start, size))
        while len(leaves) < size:
            start, end = len(leaves), min(len(leaves) + READ_PAGE, size)
            with redis_errors("reading ledger entries"):
                rows = await self._read_entries(start, end)
            if [index for index, _ in rows] != list(range(start, end)):
                raise NotFound(f"ledger entries {start} to {end - 1} are not all stored")
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


def _first_with_each_key(entries: Sequence[Entry]) -> dict[str, int]:
    """The position of the first entry with each dedupe key."""
    first: dict[str, int] = {}
    for position, entry in enumerate(entries):
        if entry.seen is not None:
            first.setdefault(entry.seen, position)
    return first


def _resolve(
    indexes: list[int | None], entries: Sequence[Entry], first_with: dict[str, int]
) -> list[int]:
    """Every entry's index: an entry left out for a key taken earlier in its batch has the
    index of the entry that took it."""
    resolved: list[int] = []
    for position, entry in enumerate(entries):
        index = indexes[position]
        if index is None and entry.seen is not None:
            index = indexes[first_with[entry.seen]]
        if index is None:  # cannot happen: every entry was appended or found taken
            raise LedgerBusy(f"entry {position} of a ledger batch was not placed")
        resolved.append(index)
    return resolved


def _check_entries(entries: Sequence[Entry]) -> list[Entry]:
    # Fail closed on shapes the Function would store wrongly (an empty decision_id would read
    # back as "none") or that are not entries at all.
    if not entries:
        raise InvalidInput("an append needs at least one entry")
    checked: list[Entry] = []
    for position, item in enumerate(entries):
        kind, decision_id, entry, payload, seen, awaits = Entry(*item)
        if not isinstance(kind, str) or not kind:
            raise InvalidInput(f"entry {position}: the kind must be a non-empty string")
        if decision_id is not None and (not isinstance(decision_id, str) or not decision_id):
            raise InvalidInput(f"entry {position}: the decision_id must be None or non-empty")
        if not isinstance(entry, bytes) or not entry:
            raise InvalidInput(f"entry {position}: the entry must be non-empty bytes")
        if payload is not None and (not isinstance(payload, bytes) or not payload):
            raise InvalidInput(f"entry {position}: the payload must be None or non-empty bytes")
        if seen is not None and (not isinstance(seen, str) or not seen):
            raise InvalidInput(f"entry {position}: the dedupe key must be None or non-empty")
        checked.append(Entry(kind, decision_id, entry, payload, seen, bool(awaits)))
    return checked


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
