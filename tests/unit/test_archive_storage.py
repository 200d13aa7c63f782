"""Archive storage: the same contract from a local directory and from an fsspec object store
(`memory://`): read, atomic write, exists, list, delete, paths that cannot leave the archive, and
`open_storage` choosing by location."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.archive.storage import (
    ArchiveStorage,
    LocalStorage,
    ObjectStorage,
    StorageUnavailable,
    open_storage,
)
from controlplane.errors import InvalidInput, NotFound


@pytest.fixture(params=["local", "memory"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArchiveStorage]:
    if request.param == "local":
        yield LocalStorage(tmp_path / "archive")
        return
    store = ObjectStorage(f"memory://archive-{uuid.uuid4().hex}")
    try:
        yield store
    finally:
        for name in store.list(""):
            store.delete(name)


def test_files_are_written_read_listed_and_deleted(storage: ArchiveStorage) -> None:
    assert storage.list("") == []
    assert not storage.exists("checkpoint")
    storage.write("tile/0/x001/234", b"a" * 32)
    storage.write("tile/entries/000.p/7", b"bundle")
    storage.write("checkpoint", b"note 1")
    storage.write("checkpoint", b"note 2")  # replaced whole
    storage.sync()
    assert storage.read("checkpoint") == b"note 2"
    assert storage.exists("tile/0/x001/234")
    assert not storage.exists("tile/0")  # a folder is not a file
    assert storage.list("") == ["checkpoint", "tile/0/x001/234", "tile/entries/000.p/7"]
    assert storage.list("tile/entries") == ["tile/entries/000.p/7"]
    assert storage.list("payloads") == []
    storage.delete("checkpoint")
    storage.delete("checkpoint")  # deleting a missing file is not an error
    with pytest.raises(NotFound):
        storage.read("checkpoint")


@pytest.mark.parametrize("path", ["", "/etc/passwd", "../outside", "tile/../../x", "a//b", "./a"])
def test_a_path_cannot_leave_the_archive(storage: ArchiveStorage, path: str) -> None:
    with pytest.raises(InvalidInput):
        storage.write(path, b"x")
    with pytest.raises(InvalidInput):
        storage.read(path)


def test_a_local_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.write("tile/1/000", b"x" * 64)
    assert sorted(p.name for p in (tmp_path / "tile" / "1").iterdir()) == ["000"]


def test_a_local_storage_that_cannot_write_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    storage = LocalStorage(tmp_path / "file")  # a file where the folder should be
    with pytest.raises(StorageUnavailable):
        storage.write("checkpoint", b"x")


def test_open_storage_picks_by_location(tmp_path: Path) -> None:
    local = open_storage(str(tmp_path))
    assert isinstance(local, LocalStorage)
    assert local.directory == tmp_path
    from_url = open_storage(f"file://{tmp_path}")
    assert isinstance(from_url, LocalStorage)
    assert from_url.directory == tmp_path
    assert isinstance(open_storage("memory://somewhere"), ObjectStorage)
    with pytest.raises(InvalidInput):
        open_storage("nosuchprotocol://bucket/prefix")
