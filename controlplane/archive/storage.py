"""Where the archive's files live: a local directory or any fsspec object store.

This module owns the storage abstraction the archiver writes through and the proof helpers read
through: `ArchiveStorage` (read, write, exists, list and delete files named by relative
`/`-separated paths, each write atomic), `LocalStorage` (a directory, the default, written with
`tiles.write_file_atomically`), `ObjectStorage` (an fsspec filesystem: `s3://bucket/prefix` with
s3fs installed, `memory://...` in tests) and `open_storage`, which picks one from a path or URL.

Atomic writes are what make the archive crash-safe: c2sp.org/tlog-tiles readers fetch a file
whole, so a reader (or the next archiver run) must see the old file or the new one, never part
of one. A local write goes through a flushed temporary file renamed over the target; an object
store PUT replaces the object atomically (S3, GCS and Azure all document whole-object writes).
"""

from __future__ import annotations

import builtins
import os
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import fsspec  # type: ignore[import-untyped]

from controlplane.archive.tiles import write_file_atomically
from controlplane.errors import InvalidInput, NotFound, Unavailable


class StorageUnavailable(Unavailable):
    """The archive storage failed to read or write a file (disk full, network, permissions)."""

    default_code = "archive_storage_unavailable"
    title = "Archive storage unavailable"


class ArchiveStorage(Protocol):
    """Files of the archive, named by relative `/`-separated paths (`tile/0/x001/234`)."""

    def read(self, path: str) -> bytes:
        """The file's bytes. Raises `NotFound` if there is no such file."""
        ...

    def write(self, path: str, data: bytes) -> None:
        """Create or replace the file atomically: a reader sees the old bytes or the new ones."""
        ...

    def exists(self, path: str) -> bool: ...

    def list(self, prefix: str) -> builtins.list[str]:
        """The paths of every file under the folder `prefix` (`""` for all), sorted."""
        ...

    def delete(self, path: str) -> None:
        """Remove the file; removing a missing file is not an error."""
        ...

    def sync(self) -> None:
        """Make every write so far durable, so that a file written next (the checkpoint) can
        never outlive, in a crash, the files it names."""
        ...


def check_path(path: str) -> str:
    """`path` if it is a relative `/`-separated path inside the archive. Raises `InvalidInput`
    for an absolute path, an empty element, `.` or `..`: nothing may escape the archive root."""
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise InvalidInput(f"{path!r} is not a relative path inside the archive")
    return path


class LocalStorage:
    """The archive in a local directory (created on the first write)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._unsynced: set[Path] = set()  # folders holding renames not yet made durable

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.directory)!r})"

    def read(self, path: str) -> bytes:
        try:
            return (self.directory / check_path(path)).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"the archive has no file {path}") from None
        except OSError as error:
            raise StorageUnavailable(f"reading {path} from {self.directory}: {error}") from error

    def write(self, path: str, data: bytes) -> None:
        try:
            target = self.directory / check_path(path)
            write_file_atomically(target, data)
        except OSError as error:
            raise StorageUnavailable(f"writing {path} to {self.directory}: {error}") from error
        self._unsynced.add(target.parent)

    def exists(self, path: str) -> bool:
        return (self.directory / check_path(path)).is_file()

    def list(self, prefix: str) -> builtins.list[str]:
        folder = self.directory / check_path(prefix) if prefix else self.directory
        if not folder.is_dir():
            return []
        return sorted(
            p.relative_to(self.directory).as_posix() for p in folder.rglob("*") if p.is_file()
        )

    def delete(self, path: str) -> None:
        try:
            (self.directory / check_path(path)).unlink(missing_ok=True)
        except OSError as error:
            raise StorageUnavailable(f"deleting {path} from {self.directory}: {error}") from error

    def sync(self) -> None:
        # `write_file_atomically` fsyncs each file, not the rename: on POSIX a rename is durable
        # only once its directory is fsynced, so each folder written to is, once per batch.
        for folder in sorted(self._unsynced):
            try:
                handle = os.open(folder, os.O_RDONLY)
                try:
                    os.fsync(handle)
                finally:
                    os.close(handle)
            except OSError as error:
                raise StorageUnavailable(f"syncing {folder}: {error}") from error
        self._unsynced.clear()


class ObjectStorage:
    """The archive under an fsspec URL (`s3://bucket/prefix`, `gs://...`, `memory://...`).

    Object stores have no directories and replace an object in one PUT, which is the atomic write
    the archive needs; `options` go to the fsspec filesystem (credentials, endpoint).
    """

    def __init__(self, url: str, **options: Any) -> None:
        try:
            filesystem, root = fsspec.core.url_to_fs(url, **options)
        except (ImportError, ValueError) as error:  # no such protocol, or its package missing
            raise InvalidInput(f"cannot open the archive storage {url!r}: {error}") from error
        self.url = url
        self._fs: Any = filesystem
        self._root = str(root).rstrip("/")

    def __repr__(self) -> str:
        return f"ObjectStorage({self.url!r})"

    def _full(self, path: str) -> str:
        return f"{self._root}/{check_path(path)}"

    def read(self, path: str) -> bytes:
        try:
            return bytes(self._fs.cat_file(self._full(path)))
        except FileNotFoundError:
            raise NotFound(f"the archive has no file {path}") from None
        except OSError as error:
            raise StorageUnavailable(f"reading {path} from {self.url}: {error}") from error

    def write(self, path: str, data: bytes) -> None:
        try:
            self._fs.pipe_file(self._full(path), data)
        except OSError as error:
            raise StorageUnavailable(f"writing {path} to {self.url}: {error}") from error

    def exists(self, path: str) -> bool:
        try:
            return bool(self._fs.isfile(self._full(path)))
        except OSError as error:
            raise StorageUnavailable(f"looking for {path} in {self.url}: {error}") from error

    def list(self, prefix: str) -> builtins.list[str]:
        folder = self._full(prefix) if prefix else self._root
        try:
            found = self._fs.find(folder)
        except FileNotFoundError:
            return []
        except OSError as error:
            raise StorageUnavailable(f"listing {prefix or '/'} in {self.url}: {error}") from error
        # fsspec may answer with or without the leading "/" of the root it was given.
        root = PurePosixPath("/" + self._root.lstrip("/"))
        return sorted(
            PurePosixPath("/" + str(name).lstrip("/")).relative_to(root).as_posix()
            for name in found
        )

    def delete(self, path: str) -> None:
        try:
            self._fs.rm_file(self._full(path))
        except FileNotFoundError:
            return
        except OSError as error:
            raise StorageUnavailable(f"deleting {path} from {self.url}: {error}") from error

    def sync(self) -> None:
        """Nothing to do: an object store acknowledges a PUT once the object is durable."""


def open_storage(location: str, **options: Any) -> ArchiveStorage:
    """`LocalStorage` for a plain path or a `file://` URL, else `ObjectStorage` for the fsspec
    URL (`options` go to its filesystem). Raises `InvalidInput` for an unknown protocol."""
    if "://" not in location:
        return LocalStorage(Path(location))
    if location.startswith("file://"):
        return LocalStorage(Path(location.removeprefix("file://")))
    return ObjectStorage(location, **options)
