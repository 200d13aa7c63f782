"""The archive layout (c2sp.org/tlog-tiles) and its offline verifier: the spec's path and tile
examples, entry bundles, a 70,000-entry archive that verifies, and each tampering detected at the
right entry or file."""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from nacl.signing import SigningKey
from typer.testing import CliRunner

from controlplane.archive.tiles import (
    TileError,
    decode_entry_bundle,
    encode_entry_bundle,
    entries_path,
    leaf_hashes,
    parse_tile_path,
    tile_path,
    tiles_for,
    write_archive,
)
from controlplane.archive.verify import ArchiveError, verify_archive
from controlplane.cli import archive as archive_cli
from controlplane.errors import InvalidEntity
from controlplane.ledger.merkle import root
from controlplane.ledger.notes import Checkpoint, NoteSigner, sign_checkpoint

ORIGIN = "controlplane.test/archive"
SIGNER = NoteSigner(ORIGIN, SigningKey(bytes(range(32))))
OTHER_SIGNER = NoteSigner(ORIGIN, SigningKey(bytes(range(1, 33))))
SIZE = 70_000
CHECKPOINT_SIZES = (1, 256, 1000, SIZE)


def _entries(count: int) -> list[bytes]:
    return [f"entry {i}".encode() for i in range(count)]


def _note(entries: list[bytes], size: int, signer: NoteSigner = SIGNER) -> str:
    return sign_checkpoint(Checkpoint(ORIGIN, size, root(leaf_hashes(entries[:size]))), signer)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("archive")
    entries = _entries(SIZE)
    write_archive(directory, entries, [_note(entries, size) for size in CHECKPOINT_SIZES])
    return directory


@pytest.fixture
def archive(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "archive"
    shutil.copytree(pristine, copy)
    return copy


def _verify(directory: Path) -> None:
    verify_archive(directory, SIGNER.verifier(), ORIGIN)


def _rewrite_bundle(directory: Path, index: int, change: object) -> None:
    """Apply `change` (a function on the list of entries) to the bundle holding `index`."""
    number = index // 256
    matches = [
        p
        for p in (directory / "tile" / "entries").rglob("*")
        if p.is_file() and parse_tile_path(p.relative_to(directory).as_posix())[1] == number
    ]
    (path,) = matches
    entries = decode_entry_bundle(path.read_bytes())
    assert callable(change)
    change(entries, index % 256)
    path.write_bytes(encode_entry_bundle(entries))


def test_tile_paths_follow_the_spec() -> None:
    assert tile_path(0, 1234067, None) == "tile/0/x001/x234/067"
    assert tile_path(1, 0, None) == "tile/1/000"
    assert tile_path(2, 0, 1) == "tile/2/000.p/1"
    assert tile_path(0, 1000, 112) == "tile/0/x001/000.p/112"
    assert entries_path(273, 112) == "tile/entries/273.p/112"
    assert parse_tile_path("tile/0/x001/x234/067") == (0, 1234067, None)
    assert parse_tile_path("tile/entries/273.p/112") == (-1, 273, 112)
    for bad in (
        "tile/0/x000/067",
        "tile/0/067.p/07",
        "tile/01/000",
        "tile/0/67",
        "tile/0/067.p/256",
    ):
        with pytest.raises(TileError):
            parse_tile_path(bad)
    for level, index, width in ((64, 0, None), (0, -1, None), (0, 0, 0), (0, 0, 256)):
        with pytest.raises(TileError):
            tile_path(level, index, width)


def test_tiles_of_the_spec_examples() -> None:
    hashes = leaf_hashes(_entries(SIZE))
    # "a tree of size 70,000 will be represented by 273 full level 0 tiles, one partial level 0
    # tile of width 112, one full level 1 tile, one partial level 1 tile of width 17, and one
    # partial level 2 tile of width 1."
    tiles = tiles_for(hashes, SIZE)
    assert len(tiles) == 273 + 1 + 1 + 1 + 1
    assert "tile/0/272" in tiles and "tile/0/273.p/112" in tiles
    assert "tile/1/000" in tiles and "tile/1/001.p/17" in tiles and "tile/2/000.p/1" in tiles
    assert all(len(data) == 8192 for name, data in tiles.items() if ".p/" not in name)
    # "a tree of size 256 will be represented by a full level 0 tile and a partial level 1 tile
    # of width 1", whose one hash is the root of the tree.
    small = tiles_for(hashes, 256)
    assert set(small) == {"tile/0/000", "tile/1/000.p/1"}
    assert small["tile/1/000.p/1"] == root(hashes[:256])
    assert tiles["tile/2/000.p/1"] == root(hashes[:65536])
    assert tiles_for(hashes, 0) == {}


def test_entry_bundles_round_trip_and_reject_truncation() -> None:
    entries = [b"", b"a", b"\xff" * 300, b"x" * 65535]
    data = encode_entry_bundle(entries)
    assert data[:5] == b"\x00\x00\x00\x01a"
    assert decode_entry_bundle(data) == entries
    assert decode_entry_bundle(b"") == []
    for cut in (1, 4, len(data) - 1):
        with pytest.raises(TileError):
            decode_entry_bundle(data[:cut])
    with pytest.raises(TileError) as caught:
        encode_entry_bundle([b"ok", b"x" * 65536])
    assert caught.value.position == 1


def test_the_archive_verifies(archive: Path) -> None:
    calls: list[tuple[int, int]] = []
    report = verify_archive(archive, SIGNER.verifier(), ORIGIN, lambda d, t: calls.append((d, t)))
    assert report.size == SIZE
    assert report.checkpoint_sizes == CHECKPOINT_SIZES
    assert report.bundles == 274
    assert report.tiles == 277
    assert report.root == root(leaf_hashes(_entries(SIZE)))
    assert calls[-1] == (SIZE, SIZE) and len(calls) == 274


def test_older_partial_tiles_and_bundles_may_remain(archive: Path) -> None:
    entries = _entries(SIZE)
    # What a log serving the checkpoint of size 1000 wrote, still present beside the full tiles.
    for name, data in tiles_for(leaf_hashes(entries), 1000).items():
        (archive / name).parent.mkdir(parents=True, exist_ok=True)
        (archive / name).write_bytes(data)
    (archive / entries_path(3, 232)).parent.mkdir(parents=True, exist_ok=True)
    (archive / entries_path(3, 232)).write_bytes(encode_entry_bundle(entries[768:1000]))
    _verify(archive)
    (archive / entries_path(3, 232)).write_bytes(encode_entry_bundle(entries[769:1001]))
    with pytest.raises(ArchiveError) as caught:
        _verify(archive)
    assert caught.value.index == 768


def test_an_empty_archive_verifies(tmp_path: Path) -> None:
    write_archive(tmp_path, [], [_note([], 0)])
    assert verify_archive(tmp_path, SIGNER.verifier(), ORIGIN).size == 0


@pytest.mark.parametrize(
    ("index", "change"),
    [
        (12_345, lambda entries, i: entries.__setitem__(i, entries[i][:-1] + b"!")),
        (50_000, lambda entries, i: entries.pop(i)),
        (69_990, lambda entries, i: entries.pop(i)),
        (
            300,
            lambda entries, i: entries.__setitem__(slice(i, i + 2), [entries[i + 1], entries[i]]),
        ),
        (65_536, lambda entries, i: entries.insert(i, b"forged")),
        (69_999, lambda entries, i: entries.insert(i, b"forged")),
    ],
    ids=["change-a-byte", "delete", "delete-in-last-bundle", "swap", "insert", "insert-last"],
)
def test_tampered_entries_are_found_at_their_index(
    archive: Path, index: int, change: object
) -> None:
    _rewrite_bundle(archive, index, change)
    with pytest.raises(ArchiveError) as caught:
        _verify(archive)
    assert caught.value.index == index
    assert caught.value.code == "archive_invalid"
    assert isinstance(caught.value, InvalidEntity)
    assert f"first bad entry: {index}" in caught.value.detail


def test_a_truncated_tail_is_found(archive: Path) -> None:
    (archive / "tile/entries/273.p/112").unlink()
    with pytest.raises(ArchiveError) as caught:
        _verify(archive)
    assert caught.value.index == 273 * 256


def test_a_missing_bundle_in_the_middle_is_found(archive: Path) -> None:
    (archive / "tile/entries/100").unlink()
    with pytest.raises(ArchiveError) as caught:
        _verify(archive)
    assert caught.value.index == 25_600


def test_a_truncated_bundle_is_found(archive: Path) -> None:
    path = archive / "tile/entries/010"
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(ArchiveError) as caught:
        _verify(archive)
    assert caught.value.index == 2815


def test_entries_and_tiles_rewritten_together_fail_the_checkpoints(archive: Path) -> None:
    entries = _entries(SIZE)
    entries[500] = b"forged"
    write_archive(archive, entries, [_note(_entries(SIZE), size) for size in CHECKPOINT_SIZES])
    with pytest.raises(ArchiveError) as caught:
        _verify(archive)
    assert caught.value.path == "checkpoints/1000"
    assert "2 more problems" in caught.value.detail


def test_a_tampered_tile_is_found(archive: Path) -> None:
    path = archive / "tile/1/000"
    data = bytearray(path.read_bytes())
    data[32 * 7] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ArchiveError) as caught:
        _verify(archive)
    assert (caught.value.index, caught.value.path) == (7 * 256, "tile/1/000")


def test_a_checkpoint_over_another_root_is_found(archive: Path) -> None:
    forged = Checkpoint(ORIGIN, 1000, root(leaf_hashes(_entries(1001))[1:]))
    (archive / "checkpoints/1000").write_text(sign_checkpoint(forged, SIGNER))
    with pytest.raises(ArchiveError) as caught:
        _verify(archive)
    assert (caught.value.index, caught.value.path) == (None, "checkpoints/1000")


def test_a_checkpoint_signed_by_another_key_is_found(archive: Path) -> None:
    (archive / "checkpoints/256").write_text(_note(_entries(256), 256, OTHER_SIGNER))
    with pytest.raises(ArchiveError) as caught:
        _verify(archive)
    assert caught.value.path == "checkpoints/256"
    assert "does not open" in caught.value.detail


def test_the_latest_checkpoint_must_be_the_largest(archive: Path) -> None:
    shutil.copy(archive / "checkpoints/1000", archive / "checkpoint")
    with pytest.raises(ArchiveError) as caught:
        _verify(archive)
    assert caught.value.path == "checkpoint"


def test_a_checkpoint_under_the_wrong_name_or_origin_is_found(archive: Path) -> None:
    shutil.copy(archive / "checkpoints/1000", archive / "checkpoints/999")
    with pytest.raises(ArchiveError) as caught:
        _verify(archive)
    assert caught.value.path == "checkpoints/999"
    with pytest.raises(ArchiveError):
        verify_archive(archive, SIGNER.verifier(), "controlplane.test/other")


def test_unknown_and_missing_files_fail_closed(archive: Path) -> None:
    (archive / "tile/0/.005.tmp-1").write_bytes(b"")
    with pytest.raises(ArchiveError) as caught:
        _verify(archive)
    assert caught.value.path == "tile/0/.005.tmp-1"
    (archive / "tile/0/.005.tmp-1").unlink()
    (archive / "tile/0/005").unlink()
    with pytest.raises(ArchiveError) as caught:
        _verify(archive)
    assert (caught.value.index, caught.value.path) == (1280, "tile/0/005")


def test_the_cli_verifies_and_refuses(archive: Path) -> None:
    runner = CliRunner()
    app = typer.Typer()
    app.add_typer(archive_cli.app, name="archive")
    result = runner.invoke(app, ["archive", "verify", str(archive), "--key", SIGNER.vkey()])
    assert result.exit_code == 0, result.output
    assert f"verified {SIZE} entries of {ORIGIN}" in result.stdout
    assert base64.b64encode(root(leaf_hashes(_entries(SIZE)))).decode() in result.stdout
    (archive / "checkpoint").unlink()
    result = runner.invoke(app, ["archive", "verify", str(archive), "--key", SIGNER.vkey()])
    assert isinstance(result.exception, ArchiveError)


def test_the_controlplane_command_verifies_and_refuses(tmp_path: Path) -> None:
    """`controlplane archive verify` as an auditor runs it: exit 0, then 2 on a tampered entry."""
    entries = _entries(600)
    write_archive(tmp_path, entries, [_note(entries, 600)])
    command = [sys.executable, "-m", "controlplane", "archive", "verify", str(tmp_path)]
    command += ["--key", SIGNER.vkey()]
    verified = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert verified.returncode == 0, verified.stderr

    def change(bundle: list[bytes], offset: int) -> None:
        bundle[offset] += b" "

    _rewrite_bundle(tmp_path, 300, change)
    refused = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 2
    assert "300" in refused.stderr
