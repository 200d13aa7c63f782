"""Bundle helpers for tests: the OPA binary, the default policy folder, and tar.gz in and out
without our own code (so that tests can build what our reader must refuse)."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from collections.abc import Mapping
from pathlib import Path

import pytest

from controlplane.config import DEFAULT_OPA_CACHE

OPA = Path(os.environ.get("CONTROLPLANE_OPA_BIN") or DEFAULT_OPA_CACHE)
needs_opa = pytest.mark.skipif(not OPA.is_file(), reason=f"no OPA binary at {OPA}; run `make opa`")
POLICY_DIR = Path(__file__).resolve().parents[2] / "rego"
ROOTS = ["governance", "system"]
SCOPE = "controlplane/test"


def targz(files: Mapping[str, bytes]) -> bytes:
    """A tar.gz of `files`, named with a leading `/` as `opa build` names them."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo("/" + name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue())


def untar(data: bytes) -> dict[str, bytes]:
    """The regular files of a tar.gz, by name without the leading `/`."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {
            member.name.lstrip("/"): tar.extractfile(member).read()  # type: ignore[union-attr]
            for member in tar.getmembers()
            if member.isfile()
        }
