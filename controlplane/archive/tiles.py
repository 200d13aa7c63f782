"""The archive layout of c2sp.org/tlog-tiles: tile and entry bundle paths, their encodings, and
the tiles of a tree, written to a directory.

A tiled log is static files: `checkpoint` (the latest signed tree head), `tile/<L>/<N>[.p/<W>]`
(the Merkle Tree Hashes of 256**L-leaf subtrees, 256 per full tile, concatenated) and
`tile/entries/<N>[.p/<W>]` (the entries, each prefixed by its big-endian uint16 length). We also
keep every signed checkpoint under `checkpoints/<size>`, so that an auditor can check that each
one the log ever published is a prefix of the archive. Hashing is RFC 9162 §2.1 via
`controlplane.ledger.merkle`; where the levels are built, `hashlib` is called in tight loops,
because the verifier recomputes every tile of the log.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from controlplane.errors import InvalidEntity
from controlplane.ledger.merkle import EMPTY_ROOT, node_hash
from controlplane.ledger.notes import Checkpoint

TILE_WIDTH = 256  # "Full tiles MUST be exactly 256 hashes wide, or 8,192 bytes."
TILE_HEIGHT = 8  # a tile is a perfect subtree of height 8 over its hashes
MAX_LEVEL = 63  # "<L> ... MUST be a decimal ASCII integer between 0 and 63"
MAX_ENTRY_SIZE = 0xFFFF  # entry bundles prefix each entry with a big-endian uint16 length
_LENGTH_SIZE = 2
_DIGITS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() also accepts "²", which int() refuses
_NODE_PREFIX = b"\x01"  # RFC 9162 §2.1.1, as in merkle.node_hash (inlined in the hot loop)


class TileError(InvalidEntity):
    """A tile path, entry or entry bundle that does not follow c2sp.org/tlog-tiles.

    `position` is the index, within its bundle, of the entry at fault, when there is one.
    """

    default_code = "tile_invalid"
    title = "Tile invalid"

    def __init__(self, detail: str, *, position: int | None = None) -> None:
        super().__init__(detail)
        self.position = position


def _encode_index(index: int) -> str:
    # "zero-padded 3-digit path elements. All but the last path element MUST begin with an x"
    groups = [f"{index % 1000:03d}"]
    index //= 1000
    while index:
        groups.append(f"x{index % 1000:03d}")
        index //= 1000
    return "/".join(reversed(groups))


def tile_path(level: int, index: int, width: int | None) -> str:
    """`tile/<level>/<N>` (full) or `tile/<level>/<N>.p/<width>` (partial), with N in 3-digit
    groups (1234067 → `x001/x234/067`); `level=-1` names entry bundles, `tile/entries/<N>...`.

    Raises `TileError` unless -1 <= level <= 63, index >= 0 and width is None or in 1..255.
    """
    if not -1 <= level <= MAX_LEVEL:
        raise TileError(f"tile level {level} is outside 0..{MAX_LEVEL}")
    if index < 0:
        raise TileError(f"tile index {index} is negative")
    if width is not None and not 1 <= width < TILE_WIDTH:
        raise TileError(f"partial tile width {width} is outside 1..{TILE_WIDTH - 1}")
    name = "entries" if level == -1 else str(level)
    suffix = "" if width is None else f".p/{width}"
    return f"tile/{name}/{_encode_index(index)}{suffix}"


def entries_path(index: int, width: int | None) -> str:
    """`tile/entries/<N>[.p/<W>]`, the path of entry bundle `index` (see `tile_path`)."""
    return tile_path(-1, index, width)


def parse_tile_path(path: str) -> tuple[int, int, int | None]:
    """(level, index, width) of a canonical tile or entry bundle path (level -1 for bundles).

    Raises `TileError` for any other path, including non-canonical spellings of a valid one
    (`x000/067`, `.p/07`): one tile, one name.
    """
    parts = path.split("/")
    width: int | None = None
    if len(parts) >= 4 and parts[-2].endswith(".p"):
        if not _DIGITS.fullmatch(parts[-1]):
            raise TileError(f"{path!r}: the partial width is not a decimal number")
        width = int(parts[-1])
        parts = [*parts[:-2], parts[-2][:-2]]
    if len(parts) < 3 or parts[0] != "tile":
        raise TileError(f"{path!r} is not a tile path")
    if parts[1] == "entries":
        level = -1
    elif _DIGITS.fullmatch(parts[1]):
        level = int(parts[1])
    else:
        raise TileError(f"{path!r}: the level is not a decimal number")
    index = 0
    for group in parts[2:]:
        digits = group.removeprefix("x")
        if not _DIGITS.fullmatch(digits) or len(digits) != 3:
            raise TileError(f"{path!r}: {group!r} is not a 3-digit index element")
        index = index * 1000 + int(digits)
    if tile_path(level, index, width) != path:
        raise TileError(f"{path!r} is not the canonical tile path")
    return level, index, width


def encode_entry_bundle(entries: Sequence[bytes]) -> bytes:
    """The entries, each prefixed by its length as a big-endian uint16. Raises `TileError`
    (with `position`) for an entry over 65,535 bytes, which the format cannot carry."""
    parts: list[bytes] = []
    for position, entry in enumerate(entries):
        if len(entry) > MAX_ENTRY_SIZE:
            raise TileError(
                f"entry {position} is {len(entry)} bytes; an entry bundle holds at most "
                f"{MAX_ENTRY_SIZE}",
                position=position,
            )
        parts.append(len(entry).to_bytes(_LENGTH_SIZE, "big"))
        parts.append(entry)
    return b"".join(parts)


def iter_entry_bundle(data: bytes) -> Iterator[bytes]:
    """The entries of an entry bundle, in order. Raises `TileError` (with `position`) when a
    length prefix or an entry is cut short, after yielding the entries before it."""
    offset, position, end = 0, 0, len(data)
    while offset < end:
        if end - offset < _LENGTH_SIZE:
            raise TileError(
                f"entry {position}: the bundle ends inside its length prefix", position=position
            )
        length = (data[offset] << 8) | data[offset + 1]
        start = offset + _LENGTH_SIZE
        offset = start + length
        if offset > end:
            raise TileError(
                f"entry {position}: {length} bytes announced, {end - start} left in the bundle",
                position=position,
            )
        yield data[start:offset]
        position += 1


def decode_entry_bundle(data: bytes) -> list[bytes]:
    """The entries of an entry bundle. Raises `TileError` if the data is truncated."""
    return list(iter_entry_bundle(data))


def leaf_hashes(entries: Sequence[bytes]) -> list[bytes]:
    """RFC 9162 leaf hashes of the entries (`merkle.leaf_hash`, in one tight loop)."""
    sha256 = hashlib.sha256
    return [sha256(b"\x00" + entry).digest() for entry in entries]


def perfect_root(hashes: Sequence[bytes]) -> bytes:
    """MTH of a perfect subtree whose 2**k bottom hashes are given (k >= 0)."""
    sha256 = hashlib.sha256
    level = list(hashes)
    while len(level) > 1:
        it = iter(level)
        level = [
            sha256(_NODE_PREFIX + left + right).digest() for left, right in zip(it, it, strict=True)
        ]
    return level[0]


def tree_levels(leaf_hashes: Sequence[bytes], size: int) -> list[list[bytes]]:
    """The hashes of every tile level of the tree of the first `size` leaves: level 0 is the leaf
    hashes, level l+1 the MTH of each full tile of level l. Only levels with a hash are given.

    Raises `TileError` if fewer than `size` leaf hashes are given.
    """
    if not 0 <= size <= len(leaf_hashes):
        raise TileError(f"a tree of size {size} needs {size} leaf hashes, not {len(leaf_hashes)}")
    levels: list[list[bytes]] = []
    current = list(leaf_hashes[:size])
    while current:
        levels.append(current)
        current = [
            perfect_root(current[start : start + TILE_WIDTH])
            for start in range(0, len(current) - TILE_WIDTH + 1, TILE_WIDTH)
        ]
    return levels


def prefix_root(levels: Sequence[Sequence[bytes]], size: int) -> bytes:
    """MTH of the first `size` leaves, from `tree_levels` of a tree at least that large.

    [0, size) splits into perfect subtrees, one per set bit of size, largest first (as in
    `merkle.CompactRange`); one of 2**k leaves is the perfect root of 2**(k mod 8) hashes of
    level k // 8, so no leaf is hashed twice. Raises `TileError` if the levels are too small.
    """
    if size == 0:
        return EMPTY_ROOT
    if not levels or len(levels[0]) < size:
        raise TileError(f"the tree has fewer than {size} leaves")
    subtrees: list[bytes] = []
    start = 0
    for k in range(size.bit_length() - 1, -1, -1):
        if size >> k & 1:
            level = k // TILE_HEIGHT
            first = start >> (TILE_HEIGHT * level)
            subtrees.append(perfect_root(levels[level][first : first + (1 << k % TILE_HEIGHT)]))
            start += 1 << k
    result = subtrees[-1]
    for left in reversed(subtrees[:-1]):
        result = node_hash(left, result)
    return result


def tiles_for(leaf_hashes: Sequence[bytes], size: int) -> dict[str, bytes]:
    """Every full tile and the final partial tile of each level of the tree of the first `size`
    leaves, path → concatenated 32-byte hashes (c2sp.org/tlog-tiles "Merkle Tree").

    At level l there are floor(size / 256**l) hashes, so floor(size / 256**(l+1)) full tiles and a
    partial one of width floor(size / 256**l) mod 256 when that is not 0 ("Empty tiles MUST NOT be
    served"). Raises `TileError` if fewer than `size` leaf hashes are given.
    """
    return tiles_of_levels(tree_levels(leaf_hashes, size))


def tiles_of_levels(levels: Sequence[Sequence[bytes]]) -> dict[str, bytes]:
    """`tiles_for`, from the levels `tree_levels` computed."""
    tiles: dict[str, bytes] = {}
    for level, hashes in enumerate(levels):
        for start in range(0, len(hashes), TILE_WIDTH):
            chunk = hashes[start : start + TILE_WIDTH]
            width = None if len(chunk) == TILE_WIDTH else len(chunk)
            tiles[tile_path(level, start // TILE_WIDTH, width)] = b"".join(chunk)
    return tiles


def bundles_for(entries: Sequence[bytes]) -> dict[str, bytes]:
    """Every full entry bundle and the final partial one, path → encoded bundle. Raises
    `TileError` for an entry over 65,535 bytes."""
    bundles: dict[str, bytes] = {}
    for start in range(0, len(entries), TILE_WIDTH):
        chunk = entries[start : start + TILE_WIDTH]
        width = None if len(chunk) == TILE_WIDTH else len(chunk)
        try:
            bundles[entries_path(start // TILE_WIDTH, width)] = encode_entry_bundle(chunk)
        except TileError as error:
            index = start + (error.position or 0)
            raise TileError(f"entry {index}: {error.detail}", position=index) from None
    return bundles


def checkpoint_size(note: str) -> int:
    """The tree size a signed checkpoint note states, read without checking its signature (for
    naming files; the verifier opens every checkpoint with the key). Raises `NoteError`."""
    return Checkpoint.parse(note[: note.rfind("\n\n") + 1]).size


def write_file_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same directory, flushed to disk and
    renamed over `path`, so that a reader sees the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with temporary.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    temporary.replace(path)


def write_archive(
    directory: Path, entries: Sequence[bytes], checkpoint_notes: Sequence[str]
) -> None:
    """Write the archive of `entries` into `directory`: the entry bundles and tiles of the tree of
    all the entries, every signed checkpoint as `checkpoints/<size>`, and the largest one as
    `checkpoint`. Each file is written atomically (`write_file_atomically`).

    Raises `TileError` if an entry is too large, no checkpoint is given or a checkpoint states
    more entries than given, and `NoteError` if a note is not a checkpoint.
    """
    if not checkpoint_notes:
        raise TileError("an archive needs at least one checkpoint")
    sizes = [checkpoint_size(note) for note in checkpoint_notes]
    if max(sizes) > len(entries):
        raise TileError(f"a checkpoint of size {max(sizes)} but only {len(entries)} entries")
    files = bundles_for(entries)
    files.update(tiles_for(leaf_hashes(entries), len(entries)))
    for size, note in zip(sizes, checkpoint_notes, strict=True):
        files[f"checkpoints/{size}"] = note.encode("utf-8")
    latest = max(range(len(sizes)), key=lambda position: (sizes[position], position))
    for name, data in files.items():
        write_file_atomically(directory / name, data)
    # The latest checkpoint goes last: a reader that sees it finds every tile it needs.
    write_file_atomically(directory / "checkpoint", checkpoint_notes[latest].encode("utf-8"))
