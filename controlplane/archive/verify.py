"""Offline verification of an archive directory (c2sp.org/tlog-tiles layout, see `tiles`).

`verify_archive` trusts nothing but the log's verifier key and origin: it reads every entry
bundle, recomputes every leaf hash and every tile level once, compares each stored tile with the
recomputed one, opens every checkpoint with the key, and checks that each checkpoint's root is the
MTH of the first `size` entries. Consistency between successive checkpoints is checked as equal
prefix roots, not with generated RFC 9162 proofs: both roots are recomputed from the same entry
list, so the older tree is by construction a prefix of the newer, which is what a consistency
proof would establish; generating and verifying proofs would re-hash the same subtrees to the same
answer.

It fails closed: a missing tile or checkpoint, an unknown file under `tile/` or `checkpoints/`
(a leftover temporary file included), a gap in the bundles, or entries beyond the latest
checkpoint (unsigned, so indistinguishable from injected ones) are all failures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from controlplane.archive.tiles import (
    TILE_WIDTH,
    TileError,
    iter_entry_bundle,
    leaf_hashes,
    parse_tile_path,
    prefix_root,
    tiles_of_levels,
    tree_levels,
)
from controlplane.errors import InvalidEntity, InvalidInput
from controlplane.ledger.merkle import HASH_SIZE
from controlplane.ledger.notes import Checkpoint, NoteVerifier, open_checkpoint

# Failure ranks: the report names the first failure of the most precise rank. Entry-level checks
# (bundles, level-0 tiles, entry counts) pin the exact entry; a higher-level tile mismatch caused
# by a bad entry covers a whole subtree, and a checkpoint mismatch the whole prefix.
_ENTRY, _TILE, _CHECKPOINT = 0, 1, 2


class ArchiveError(InvalidEntity):
    """The archive does not verify. `index` is the first bad entry index when one can be named,
    `path` the archive file at fault (relative, `/`-separated)."""

    default_code = "archive_invalid"
    title = "Archive invalid"

    def __init__(self, detail: str, *, index: int | None = None, path: str | None = None) -> None:
        super().__init__(detail)
        self.index = index
        self.path = path


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What a verified archive holds: `size` entries under `origin` with root `root`, the sizes of
    its checkpoints in increasing order, and how many bundles and tiles were checked."""

    origin: str
    size: int
    root: bytes
    checkpoint_sizes: tuple[int, ...]
    bundles: int
    tiles: int


@dataclass(frozen=True, slots=True, order=True)
class _Failure:
    rank: int
    index: int
    order: int  # among failures without an index: a smaller checkpoint first
    path: str
    message: str


class _Failures:
    def __init__(self) -> None:
        self.found: list[_Failure] = []

    def add(self, rank: int, index: int | None, path: str, message: str, *, order: int = 0) -> None:
        self.found.append(_Failure(rank, -1 if index is None else index, order, path, message))

    def raise_first(self) -> None:
        if not self.found:
            return
        # A failure that names an entry wins over one that cannot; then the most precise rank,
        # then the smallest index (fields compare in that order).
        best = min([f for f in self.found if f.index >= 0] or self.found)
        index = None if best.index < 0 else best.index
        where = "" if index is None else f" (first bad entry: {index})"
        more = len(self.found) - 1
        tail = f"; {more} more problem{'s' * (more != 1)}" if more else ""
        raise ArchiveError(f"{best.path}: {best.message}{where}{tail}", index=index, path=best.path)


def _relative(directory: Path, path: Path) -> str:
    return path.relative_to(directory).as_posix()


def verify_archive(
    directory: Path,
    verifier: NoteVerifier,
    origin: str,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Verify the archive in `directory` against the log key `verifier` and `origin`, using only
    its files; `progress(entries_read, entries_total)` is called after each bundle.

    Raises `ArchiveError` naming the first bad entry index (when there is one) and the file at
    fault, with the number of further problems found.
    """
    failures = _Failures()
    tile_dir = directory / "tile"
    bundles: dict[int, dict[int | None, Path]] = {}
    stored_tiles: dict[str, Path] = {}
    for path in sorted(tile_dir.rglob("*")) if tile_dir.is_dir() else []:
        if path.is_dir():
            continue
        name = _relative(directory, path)
        try:
            level, index, width = parse_tile_path(name)
        except TileError as error:
            failures.add(_TILE, None, name, f"not a tile or entry bundle: {error.detail}")
            continue
        if level == -1:
            bundles.setdefault(index, {})[width] = path
        else:
            stored_tiles[name] = path

    entries = _read_bundles(directory, bundles, failures, progress)
    size = len(entries)
    levels = tree_levels(leaf_hashes(entries), size)
    tiles_checked = _check_tiles(levels, stored_tiles, failures)

    checkpoints = _open_checkpoints(directory, verifier, origin, failures)
    latest = checkpoints.get("checkpoint")
    sizes = sorted({c.size for c in checkpoints.values()})
    for name, checkpoint in sorted(checkpoints.items(), key=lambda item: item[1].size):
        if checkpoint.size > size:
            failures.add(
                _ENTRY,
                size,
                name,
                f"the checkpoint covers {checkpoint.size} entries, the bundles hold {size}",
            )
        elif checkpoint.root != prefix_root(levels, checkpoint.size):
            failures.add(
                _CHECKPOINT,
                None,
                name,
                f"the root of the checkpoint of size {checkpoint.size} is not the MTH of "
                f"entries [0, {checkpoint.size})",
                order=checkpoint.size,
            )
    if latest is not None:
        if latest.size != max(sizes):
            failures.add(
                _CHECKPOINT,
                None,
                "checkpoint",
                f"the latest checkpoint has size {latest.size}, but checkpoints/{max(sizes)} "
                "is larger",
            )
        if size > latest.size:
            failures.add(
                _ENTRY,
                latest.size,
                "checkpoint",
                f"the bundles hold {size} entries, beyond the {latest.size} that are signed",
            )
    failures.raise_first()
    if latest is None:  # unreachable: a missing `checkpoint` is a failure, raised above
        raise ArchiveError("checkpoint: no latest checkpoint", path="checkpoint")
    return VerifyReport(
        origin=origin,
        size=size,
        root=latest.root,
        checkpoint_sizes=tuple(sizes),
        bundles=len(bundles),
        tiles=tiles_checked,
    )


def _read_bundles(
    directory: Path,
    bundles: dict[int, dict[int | None, Path]],
    failures: _Failures,
    progress: Callable[[int, int], None] | None,
) -> list[bytes]:
    """The entries of the contiguous bundles from 0: each full bundle, then the last one (full,
    or its widest partial). Older partial bundles must be prefixes of the bundle that replaced
    them. Reading stops at the first gap."""
    entries: list[bytes] = []
    last = max(bundles, default=-1)
    total = last * TILE_WIDTH + max(
        (TILE_WIDTH if w is None else w for w in bundles.get(last, {})), default=0
    )
    for number in range(last + 1):
        start = number * TILE_WIDTH
        versions = bundles.get(number, {})
        if None in versions:
            width: int | None = None
        elif number == last:
            width = max(w for w in versions if w is not None)
        else:
            failures.add(_ENTRY, start, f"tile/entries/{number}", "the full bundle is missing")
            break
        path = versions[width]
        name = _relative(directory, path)
        read = _decode(path, name, start, failures)
        expected = TILE_WIDTH if width is None else width
        if len(read) != expected:
            failures.add(
                _ENTRY,
                start + min(len(read), expected),
                name,
                f"the bundle holds {len(read)} entries, not {expected}",
            )
        for older_width, older_path in sorted(
            (w, p) for w, p in versions.items() if w is not None and w != width
        ):
            older_name = _relative(directory, older_path)
            older = _decode(older_path, older_name, start, failures)
            for position, entry in enumerate(older):
                if position >= len(read) or read[position] != entry:
                    failures.add(
                        _ENTRY,
                        start + position,
                        older_name,
                        "the partial bundle is not a prefix of the bundle that follows it",
                    )
                    break
            else:
                if len(older) != older_width:
                    failures.add(
                        _ENTRY,
                        start + len(older),
                        older_name,
                        f"the bundle holds {len(older)} entries, not {older_width}",
                    )
        entries.extend(read)
        if progress is not None:
            progress(len(entries), total)
    return entries


def _decode(path: Path, name: str, start: int, failures: _Failures) -> list[bytes]:
    read: list[bytes] = []
    try:
        read.extend(iter_entry_bundle(path.read_bytes()))
    except TileError as error:
        failures.add(_ENTRY, start + len(read), name, f"truncated: {error.detail}")
    return read


def _check_tiles(levels: list[list[bytes]], stored: dict[str, Path], failures: _Failures) -> int:
    """Compare every stored tile with the recomputed levels; every tile of the final tree must be
    stored; older partial tiles may remain and must match too. Returns the number checked."""
    for name in tiles_of_levels(levels):
        if name not in stored:
            level, index, _ = parse_tile_path(name)
            failures.add(_TILE, index * TILE_WIDTH ** (level + 1), name, "the tile is missing")
    for name, path in stored.items():
        level, index, width = parse_tile_path(name)
        count = TILE_WIDTH if width is None else width
        rank = _ENTRY if level == 0 else _TILE
        scale = TILE_WIDTH**level
        first = index * TILE_WIDTH
        hashes = levels[level][first : first + count] if level < len(levels) else []
        data = path.read_bytes()
        if len(data) != count * HASH_SIZE:
            failures.add(_TILE, first * scale, name, f"{len(data)} bytes, not {count * HASH_SIZE}")
            continue
        for position in range(count):
            if position >= len(hashes):
                failures.add(
                    rank,
                    (first + position) * scale,
                    name,
                    "the tile covers entries that the bundles do not hold",
                )
                break
            if data[position * HASH_SIZE : (position + 1) * HASH_SIZE] != hashes[position]:
                failures.add(
                    rank,
                    (first + position) * scale,
                    name,
                    f"hash {position} differs from the one recomputed from the entries",
                )
                break
    return len(stored)


def _open_checkpoints(
    directory: Path, verifier: NoteVerifier, origin: str, failures: _Failures
) -> dict[str, Checkpoint]:
    """Every checkpoint that opens with the key and origin, by relative path; `checkpoints/<n>`
    must state size n."""
    names: list[str] = ["checkpoint"]
    folder = directory / "checkpoints"
    if folder.is_dir():
        names += sorted(_relative(directory, p) for p in folder.iterdir())
    opened: dict[str, Checkpoint] = {}
    for name in names:
        path = directory / name
        if not path.is_file():
            failures.add(_CHECKPOINT, None, name, "no such checkpoint file")
            continue
        try:
            checkpoint = open_checkpoint(path.read_bytes(), verifier, origin)
        except InvalidInput as error:
            failures.add(_CHECKPOINT, None, name, f"does not open: {error.detail}")
            continue
        if name not in ("checkpoint", f"checkpoints/{checkpoint.size}"):
            failures.add(_CHECKPOINT, None, name, f"holds the checkpoint of size {checkpoint.size}")
            continue
        opened[name] = checkpoint
    return opened
