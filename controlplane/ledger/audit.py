"""An audit of the ledger in Redis against the checkpoints it signed, with the log's public key.

Someone with write access to Redis can change, delete, swap, insert or truncate entries and
replace stored checkpoints, but cannot sign. The audit recomputes the tree from the stream (and,
below the trim point, from the archive's tiles) and compares it with every signed checkpoint
Redis keeps (`{cp:ledger}:checkpoints`, one per committed batch, and the latest one), and with
the head the append Function advances. The first disagreement names the entry at fault:

- a gap in the stream ids names the missing index exactly;
- a changed, swapped or inserted entry makes the first checkpoint after it disagree, which names
  the batch it lies in: exactly the entry when its batch held one entry, as single answers
  (authorize, `/v1/data`) usually do, else the batch's first index and its range;
- a stream shorter than a signed checkpoint names the first missing index;
- a checkpoint that does not verify with the key is named by its size.

For entries already archived, `controlplane archive verify` names the exact index from the tiles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from controlplane.errors import InvalidEntity
from controlplane.ledger import merkle
from controlplane.ledger.log import (
    CHECKPOINT_KEY,
    CHECKPOINTS_KEY,
    ENTRIES_KEY,
    HEAD_KEY,
    READ_PAGE,
    ArchivedEntries,
)
from controlplane.ledger.notes import Checkpoint, NoteError, NoteVerifier, open_checkpoint
from controlplane.redis_client import redis_errors

Progress = Callable[[int, int], None]  # (entries audited, entries in all)


class AuditError(InvalidEntity):
    """The ledger in Redis disagrees with what was signed; `index` is the first entry at fault
    when one can be named."""

    default_code = "ledger_tampered"
    title = "Ledger tampered with"

    def __init__(self, detail: str, *, index: int | None = None) -> None:
        super().__init__(detail)
        self.index = index


@dataclass(frozen=True, slots=True)
class AuditReport:
    size: int
    root: bytes
    checkpoints: int  # signed checkpoints the tree was checked against
    stream_start: int  # entries below this index were read from the archive


async def audit(
    redis: Redis,
    verifier: NoteVerifier,
    origin: str,
    *,
    archive: ArchivedEntries | None = None,
    progress: Progress | None = None,
) -> AuditReport:
    """Check the whole log in Redis. Raises `AuditError` at the first disagreement,
    `RedisUnavailable` when Redis does not answer."""
    with redis_errors("reading the ledger for an audit"):
        raw_head: Any = await redis.get(HEAD_KEY)
        latest: Any = await redis.hget(CHECKPOINT_KEY, "note")
        history: Any = await redis.zrange(CHECKPOINTS_KEY, 0, -1)
        first: Any = await redis.xrange(ENTRIES_KEY, "-", "+", count=1)
    head = merkle.CompactRange() if raw_head is None else merkle.CompactRange.from_json(raw_head)
    checkpoints = _opened([*history, *([latest] if latest else [])], verifier, origin)
    start = _index(first[0][0]) if first else head.size
    total = max([head.size, *(c.size for c in checkpoints)])
    tree = merkle.CompactRange()
    pending = [c for c in checkpoints if c.size > 0]
    checked = 0

    def grow(leaf: bytes) -> None:
        nonlocal tree, checked
        tree = tree.append(leaf)
        while pending and pending[0].size == tree.size:
            signed = pending.pop(0)
            if tree.root() != signed.root:
                raise _disagrees(signed, checked_size=_last_size(checkpoints, signed))
            checked += 1

    if start > 0:
        if archive is None or await archive.size() < start:
            raise AuditError(
                f"the stream starts at entry {start}: entries below it are trimmed; give the "
                "archive that holds them"
            )
        for leaf in await archive.leaf_hashes(0, start):
            grow(leaf)
    expected = start
    while True:
        with redis_errors("reading the ledger for an audit"):
            rows: Any = await redis.xrange(ENTRIES_KEY, f"0-{expected + 1}", "+", count=READ_PAGE)
        if not rows:
            break
        for stream_id, fields in rows:
            index = _index(stream_id)
            if index != expected:
                raise AuditError(
                    f"entry {expected} is missing: the stream goes from {expected - 1} to {index}",
                    index=expected,
                )
            grow(merkle.leaf_hash(bytes(fields[b"e"])))
            expected += 1
        if progress is not None:
            progress(expected, total)
    if pending:
        raise AuditError(
            f"a signed checkpoint covers {pending[-1].size} entries but the stream ends at "
            f"{expected}: entries from {expected} on are missing",
            index=expected,
        )
    if head.size != expected:
        raise AuditError(
            f"the head says {head.size} entries, the stream holds {expected}",
            index=min(head.size, expected),
        )
    if head.root() != tree.root():
        raise AuditError("the head's root is not the root of the stream's entries")
    return AuditReport(expected, tree.root(), checked, start)


def _opened(notes: list[Any], verifier: NoteVerifier, origin: str) -> list[Checkpoint]:
    """The checkpoints of `notes`, each verified, one per size, smallest first."""
    by_size: dict[int, Checkpoint] = {}
    for note in notes:
        text = note.decode("utf-8", "replace") if isinstance(note, bytes) else str(note)
        try:
            checkpoint = open_checkpoint(text, verifier, origin)
        except NoteError as error:
            size = text.split("\n")[1] if text.count("\n") > 1 else "?"
            raise AuditError(
                f"a stored checkpoint (size {size}) does not verify with the log key: "
                f"{error.detail}"
            ) from error
        known = by_size.get(checkpoint.size)
        if known is not None and known.root != checkpoint.root:
            raise AuditError(
                f"two signed checkpoints of size {checkpoint.size} have different roots: the "
                "log key signed a fork"
            )
        by_size[checkpoint.size] = checkpoint
    return [by_size[size] for size in sorted(by_size)]


def _last_size(checkpoints: list[Checkpoint], signed: Checkpoint) -> int:
    """The size of the checkpoint before `signed` (0 if none)."""
    smaller = [c.size for c in checkpoints if c.size < signed.size]
    return max(smaller, default=0)


def _disagrees(signed: Checkpoint, *, checked_size: int) -> AuditError:
    first, end = checked_size, signed.size
    if end - first == 1:
        where = f"entry {first} is not the one the checkpoint of size {end} signed"
    else:
        where = (
            f"an entry in [{first}, {end}) is not what the checkpoint of size {end} signed "
            f"(the first may be {first})"
        )
    return AuditError(where, index=first)


def _index(stream_id: Any) -> int:
    text = stream_id.decode() if isinstance(stream_id, bytes) else str(stream_id)
    return int(text.removeprefix("0-")) - 1
