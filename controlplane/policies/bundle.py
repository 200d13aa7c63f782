"""OPA bundles as OPA itself builds, hashes and reads them: the files of an author's folder, the
per-file digests OPA signs and checks, the content-derived revision, a byte-for-byte reproducible
tar.gz, and the safe reading of an uploaded one.

Everything here is pure: no Redis, no server, no clock. The facts come from OPA v1.22.3's source
(`v1/bundle/bundle.go`, `file.go`, `hash.go`, `v1/util/json.go`) and are pinned by golden tests
against the real `opa build` (`tests/unit/test_bundle_build.py`). Signing lives in `signing.py`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import stat
import tarfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from controlplane import jsontext
from controlplane.canonical import sha256_hex
from controlplane.errors import InvalidEntity, InvalidInput, TooLarge

if TYPE_CHECKING:
    from controlplane.policies.signing import BundleSigner

MANIFEST = ".manifest"
SIGNATURES = ".signatures.json"
DEFAULT_ROOTS: tuple[str, ...] = ("governance", "system")
REGO_VERSION = 1

_DATA_JSON = "data.json"
_DATA_YAML = "data.yaml"
_DATA_YML = "data.yml"
_REGO_SUFFIX = ".rego"
_TEST_SUFFIX = "_test.rego"
# `IsStructuredDoc` in bundle.go compares the base name with these constants. Note that OPA's
# `SignaturesFile` is "signatures.json" (no dot): `.signatures.json` itself is never hashed anyway.
_STRUCTURED = frozenset({_DATA_JSON, _DATA_YAML, "signatures.json", MANIFEST})
# Tar entries: what `opa build` writes is 0600 root:root at mtime 0 (Go's archive/tar with a
# minimal header); 0644 lets a person who unpacks the bundle read it, OPA never looks at the mode.
_TAR_MODE = 0o644
_UTF8_BOM = b"\xef\xbb\xbf"
_SURROGATE = re.compile("[\ud800-\udfff]")
# Revisions name this description format, so a later change of it cannot collide with today's.
_REVISION_FORMAT = "controlplane.bundle-revision/1"

# A Rego package clause: `package` and a ref of a variable followed by `.name` or `["name"]`
# (Rego strings are JSON strings; raw strings use backticks). Comments and blank lines may come
# first (METADATA blocks do), a comment may follow on the same line.
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_STRING = r'"(?:[^"\\\n]|\\.)*"|`[^`]*`'
_PACKAGE = re.compile(
    rf"package[ \t]+(?P<ref>{_IDENT}(?:\.{_IDENT}|\[[ \t]*(?:{_STRING})[ \t]*\])*)[ \t]*(?:#.*)?"
)
_REF_PART = re.compile(rf"(?P<ident>{_IDENT})|\[[ \t]*(?P<string>{_STRING})[ \t]*\]")
# `Ref.Ptr()` (v1/ast/term.go) joins package segments with url.PathEscape; these characters are
# left alone by it, so a segment made only of them has the same path in Python and in OPA.
_PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9_.~-]+")


@dataclass(frozen=True)
class BuiltBundle:
    """A built bundle: the tar.gz bytes, its revision, the SHA-256 hex of the bytes, and every
    file it holds (`.manifest` and, when signed, `.signatures.json` included), keyed by path
    without the leading `/`."""

    data: bytes
    revision: str
    digest: str
    files: dict[str, bytes]


@dataclass(frozen=True)
class ReadBundle:
    """An uploaded bundle, unpacked. `files` holds every regular file except `.signatures.json`
    (`.manifest` included, as OPA hashes it); `manifest` is the parsed `.manifest` or None;
    `signatures` is the raw `.signatures.json` or None."""

    files: dict[str, bytes]
    manifest: dict[str, Any] | None
    signatures: bytes | None


# --- The author's folder -----------------------------------------------------------------------


def collect(policy_dir: Path) -> dict[str, bytes]:
    """The bundle files of an author's folder, keyed by POSIX path relative to it.

    Every `*.rego` except `*_test.rego`, and data files named exactly `data.json` or `data.yaml`
    (OPA loads data from no other JSON/YAML names). Hidden files and directories are skipped, which
    also keeps the folder's own `.manifest` out (see `read_manifest_template`). `data.yml` is
    loaded by OPA as data too, so it is collected and then refused by `build` rather than silently
    dropped. Raises `InvalidInput` for a symlink that leaves the folder, a directory symlink, or a
    name that is not UTF-8.
    """
    root = policy_dir.resolve()
    if not root.is_dir():
        raise InvalidInput(f"policy folder {policy_dir} is not a directory", code="bundle_invalid")
    files: dict[str, bytes] = {}
    for path in _walk(root, root):
        rel = path.relative_to(root).as_posix()
        try:
            rel.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidInput(f"file name {rel!r} is not UTF-8", code="bundle_invalid") from exc
        files[rel] = path.read_bytes()
    return files


def _walk(directory: Path, root: Path) -> Iterator[Path]:
    for entry in sorted(directory.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_symlink():
            target = entry.resolve()
            if not target.is_relative_to(root):
                raise InvalidInput(
                    f"{entry.relative_to(root).as_posix()} is a symlink out of the policy folder",
                    code="bundle_invalid",
                )
            if target.is_dir():
                # Following it could loop, and would load the same packages twice.
                raise InvalidInput(
                    f"{entry.relative_to(root).as_posix()} is a directory symlink; "
                    "they are not followed",
                    code="bundle_invalid",
                )
        if entry.is_dir():
            yield from _walk(entry, root)
        elif _is_bundle_file(entry.name):
            if not stat.S_ISREG(entry.stat().st_mode):
                raise InvalidInput(
                    f"{entry.relative_to(root).as_posix()} is not a regular file",
                    code="bundle_invalid",
                )
            yield entry


def _is_bundle_file(name: str) -> bool:
    if name.endswith(_REGO_SUFFIX):
        return not name.endswith(_TEST_SUFFIX)
    return name in (_DATA_JSON, _DATA_YAML, _DATA_YML)


def read_manifest_template(policy_dir: Path) -> dict[str, Any]:
    """`{"roots": [...], "metadata": {...}}` from the folder's `.manifest`, or the defaults
    (`roots` governance and system, empty metadata) when there is none.

    The template's `revision` is ignored (revisions are derived from content); `rego_version` must
    be 1 when present. Raises `InvalidEntity` (code `manifest_invalid`) for anything else.
    """
    path = policy_dir / MANIFEST
    if not path.is_file():
        return {"roots": list(DEFAULT_ROOTS), "metadata": {}}
    try:
        template = jsontext.loads(path.read_bytes())
    except InvalidInput as exc:
        raise InvalidEntity(f"{path}: {exc.detail}", code="manifest_invalid") from exc
    if not isinstance(template, dict):
        raise InvalidEntity(f"{path}: must be a JSON object", code="manifest_invalid")
    unknown = sorted(set(template) - {"roots", "metadata", "rego_version", "revision"})
    if unknown:
        raise InvalidEntity(f"{path}: unsupported fields {unknown}", code="manifest_invalid")
    if template.get("rego_version", REGO_VERSION) != REGO_VERSION:
        raise InvalidEntity(f"{path}: only rego_version 1 is built", code="manifest_invalid")
    roots = template.get("roots", list(DEFAULT_ROOTS))
    metadata = template.get("metadata", {})
    if not isinstance(roots, list) or not all(isinstance(r, str) for r in roots):
        raise InvalidEntity(f"{path}: roots must be a list of strings", code="manifest_invalid")
    if not isinstance(metadata, dict):
        raise InvalidEntity(f"{path}: metadata must be a JSON object", code="manifest_invalid")
    return {"roots": roots, "metadata": metadata}


# --- File digests, as OPA computes them --------------------------------------------------------


class _Number:
    """A JSON number kept as its literal text. OPA decodes structured files with `UseNumber()`
    (`util.Unmarshal` → `NewJSONDecoder`, v1/util/json.go) and `encoding/json` writes a
    `json.Number` back verbatim, so `1.50`, `1e2` and `-0` are hashed exactly as written: there is
    no float formatting to reproduce."""

    __slots__ = ("literal",)

    def __init__(self, literal: str) -> None:
        self.literal = literal


def is_structured(name: str) -> bool:
    """OPA's `IsStructuredDoc` (bundle.go): the base name decides."""
    return PurePosixPath(name).name in _STRUCTURED


def opa_hash_input(name: str, content: bytes) -> bytes:
    """The exact bytes OPA feeds to the hash function for this file (`hash.go` `walk`).

    Unstructured files: the raw bytes. Structured files: parsed, then written with object keys in
    byte order, no whitespace, and Go's `json.Encoder` (SetEscapeHTML(false)) for strings and
    numbers. Raises `InvalidEntity` for a structured file that is not JSON (OPA would then try
    YAML), for YAML itself, for invalid UTF-8 and for lone UTF-16 surrogate escapes (Go turns them
    into U+FFFD; we refuse instead of guessing).
    """
    if not is_structured(name):
        return content
    if PurePosixPath(name).name == _DATA_YAML:
        raise InvalidEntity(
            f"{name}: YAML data files are not supported (no YAML parser matching OPA's is "
            "installed); write the same data as data.json",
            code="bundle_yaml_unsupported",
        )
    out: list[str] = []
    try:
        _encode(_parse_structured(name, content), out)
    except RecursionError as exc:
        raise InvalidEntity(f"{name}: nested too deeply", code="bundle_file_invalid") from exc
    return "".join(out).encode("utf-8")


def opa_file_hash(name: str, content: bytes) -> str:
    """Lowercase hex SHA-256 of a bundle file exactly as OPA computes it for `.signatures.json`."""
    return hashlib.sha256(opa_hash_input(name, content)).hexdigest()


def _parse_structured(name: str, content: bytes) -> Any:
    # util.Unmarshal strips one UTF-8 BOM (RFC 8259 §8.1) before parsing.
    if content.startswith(_UTF8_BOM):
        content = content[len(_UTF8_BOM) :]
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEntity(f"{name}: not UTF-8", code="bundle_file_invalid") from exc
    try:
        return json.loads(
            text, parse_int=_Number, parse_float=_Number, parse_constant=_refuse_constant
        )
    except (ValueError, RecursionError) as exc:
        raise InvalidEntity(f"{name}: not valid JSON: {exc}", code="bundle_file_invalid") from exc


def _refuse_constant(literal: str) -> Any:
    raise ValueError(f"{literal} is not JSON")


def _encode(value: Any, out: list[str]) -> None:
    if isinstance(value, dict):
        out.append("{")
        # util.KeysSorted is Go's byte order; UTF-8 byte order is code point order, which is
        # Python's str order once surrogates are excluded (they are, in _go_string).
        for i, key in enumerate(sorted(value)):
            if i:
                out.append(",")
            out.append(_go_string(key))
            out.append(":")
            _encode(value[key], out)
        out.append("}")
    elif isinstance(value, list):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    elif isinstance(value, str):
        out.append(_go_string(value))
    elif isinstance(value, _Number):
        out.append(value.literal)
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    else:
        out.append("null")


def _go_string(text: str) -> str:
    """A string as Go's encoder writes it with SetEscapeHTML(false): `"` and `\\` escaped,
    \\b \\f \\n \\r \\t by name (Go >= 1.22), other controls as lowercase `\\u00XX`, U+2028 and
    U+2029 escaped (encoding/json always does, for JSONP), everything else raw. Python's
    `ensure_ascii=False` matches all of it except U+2028/U+2029."""
    if _SURROGATE.search(text):
        raise InvalidEntity(
            "a string holds a lone UTF-16 surrogate escape; OPA would replace it with U+FFFD",
            code="bundle_file_invalid",
        )
    encoded = json.dumps(text, ensure_ascii=False)
    return encoded.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


# --- Revision ----------------------------------------------------------------------------------


def revision_of(
    files: Mapping[str, bytes], *, roots: Sequence[str], metadata: Mapping[str, Any]
) -> str:
    """The content-derived revision: lowercase hex SHA-256 of the RFC 8785 form of the sorted file
    names with their OPA hashes, the roots and the metadata. Build time, file order and tar details
    play no part. `.manifest` and `.signatures.json` are left out: the first carries the revision,
    the second signs it."""
    listed = [
        [name, opa_file_hash(name, files[name])]
        for name in sorted(files)
        if name not in (MANIFEST, SIGNATURES)
    ]
    return sha256_hex(
        {
            "format": _REVISION_FORMAT,
            "files": listed,
            "roots": list(roots),
            "metadata": dict(metadata),
        }
    )


# --- Build -------------------------------------------------------------------------------------


def build(
    files: Mapping[str, bytes],
    *,
    roots: list[str],
    metadata: dict[str, Any],
    signer: BundleSigner | None,
) -> BuiltBundle:
    """Validate the files against the roots, then write a reproducible tar.gz with a `.manifest`
    (and a `.signatures.json` when a signer is given).

    The same files, roots, metadata and key always give the same bytes. Raises `InvalidEntity`:
    `invalid_roots`, `overlapping_roots`, `outside_roots` (a package or data path no root permits),
    `rego_invalid` (no package clause), `bundle_file_invalid`, `bundle_yaml_unsupported`,
    `unsupported_file` and `reserved_file`.
    """
    root_segments = _validate_roots(roots)
    for name in sorted(files):
        _check_name(name)
        content = files[name]
        if name.endswith(_REGO_SUFFIX):
            package, path = package_of(name, content)
            if not _contained(root_segments, path):
                raise InvalidEntity(
                    f"manifest roots {_go_list(roots)} do not permit 'package {package}' in "
                    f"module '{name}'",
                    code="outside_roots",
                )
        elif PurePosixPath(name).name == _DATA_JSON:
            directory = list(PurePosixPath(name).parent.parts)
            value = _parse_structured(name, content)
            if not directory and not isinstance(value, dict):
                raise InvalidEntity(
                    f"{name}: root value must be object", code="bundle_file_invalid"
                )
            _check_data(directory, value, root_segments, roots)
            opa_hash_input(name, content)  # refuses what OPA would hash differently
        elif PurePosixPath(name).name in (_DATA_YAML, _DATA_YML):
            raise InvalidEntity(
                f"{name}: YAML data files are not supported; write the same data as data.json",
                code="bundle_yaml_unsupported",
            )
        else:
            raise InvalidEntity(
                f"{name}: only .rego files and data.json go into a bundle",
                code="unsupported_file",
            )

    revision = revision_of(files, roots=roots, metadata=metadata)
    bundle_files = dict(files)
    bundle_files[MANIFEST] = _manifest_bytes(revision, roots, metadata)
    if signer is not None:
        bundle_files[SIGNATURES] = signer.signatures_json(bundle_files)
    data = _targz(bundle_files)
    return BuiltBundle(
        data=data,
        revision=revision,
        digest=hashlib.sha256(data).hexdigest(),
        files=bundle_files,
    )


def _validate_roots(roots: Sequence[str]) -> list[list[str]]:
    if not isinstance(roots, list | tuple) or not roots:
        raise InvalidEntity("roots must be a non-empty list of strings", code="invalid_roots")
    for root in roots:
        # OPA trims "/" and treats "" as "all of data"; we want roots named, and written once.
        if not isinstance(root, str) or not root or "" in root.split("/"):
            raise InvalidEntity(
                f"root {root!r} must be a non-empty path like 'governance' or 'a/b'",
                code="invalid_roots",
            )
    # bundle.go validateAndInjectDefaults: no root may contain another.
    for i, first in enumerate(roots):
        for second in roots[i + 1 :]:
            a, b = first.split("/"), second.split("/")
            if a[: len(b)] == b or b[: len(a)] == a:
                raise InvalidEntity(
                    f"manifest has overlapped roots: '{first}' and '{second}'",
                    code="overlapping_roots",
                )
    return [root.split("/") for root in roots]


def _check_name(name: str) -> None:
    parts = name.split("/")
    if name in (MANIFEST, SIGNATURES):
        raise InvalidEntity(f"{name} is written by the builder", code="reserved_file")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise InvalidEntity(f"{name!r} is not a clean relative path", code="bundle_file_invalid")


def _contained(root_segments: list[list[str]], path: list[str]) -> bool:
    # bundle.go rootContains: the root's segments are a prefix of the path's.
    return any(path[: len(root)] == root for root in root_segments)


def _check_data(
    path: list[str], value: Any, root_segments: list[list[str]], roots: Sequence[str]
) -> None:
    """The data at `path` must sit under a root, or be an object on the way to one whose every key
    does (bundle.go's `dfs` over the data; ours is the stricter reading of its prefix test)."""
    if _contained(root_segments, path):
        return
    if isinstance(value, dict) and any(root[: len(path)] == path for root in root_segments):
        for key, child in value.items():
            _check_data([*path, key], child, root_segments, roots)
        return
    raise InvalidEntity(
        f"manifest roots {_go_list(roots)} do not permit data at path '/{'/'.join(path)}' "
        "(hint: check bundle directory structure)",
        code="outside_roots",
    )


def _go_list(items: Sequence[str]) -> str:
    # Go's %v of a []string, as in OPA's messages.
    return "[" + " ".join(items) + "]"


def package_of(name: str, content: bytes) -> tuple[str, list[str]]:
    """The package clause of a Rego file: its ref as written and its path segments (what OPA's
    `Package.Path.Ptr()` gives, split on `/`). Raises `InvalidEntity` (`rego_invalid`) when the
    first statement after comments and blank lines is not a package clause we can read."""
    try:
        text = content.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise InvalidEntity(f"{name}: not UTF-8", code="rego_invalid") from exc
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _PACKAGE.fullmatch(stripped)
        if match is None:
            break
        ref = match.group("ref")
        return ref, [_segment(name, part) for part in _REF_PART.finditer(ref)]
    raise InvalidEntity(
        f"{name}: the first statement must be a package clause", code="rego_invalid"
    )


def _segment(name: str, part: re.Match[str]) -> str:
    if part.group("ident") is not None:
        return part.group("ident")
    literal = part.group("string")
    value = literal[1:-1] if literal.startswith("`") else json.loads(literal)
    if not isinstance(value, str) or not _PLAIN_SEGMENT.fullmatch(value):
        raise InvalidEntity(
            f"{name}: package segment {literal} would be escaped by OPA; use plain names",
            code="rego_invalid",
        )
    return value


def _manifest_bytes(revision: str, roots: Sequence[str], metadata: Mapping[str, Any]) -> bytes:
    manifest = {
        "metadata": dict(metadata),
        "rego_version": REGO_VERSION,
        "revision": revision,
        "roots": list(roots),
    }
    try:
        text = json.dumps(
            manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        data = text.encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise InvalidEntity(
            f"manifest metadata is not plain JSON: {exc}", code="manifest_invalid"
        ) from exc
    opa_hash_input(MANIFEST, data)  # the manifest must hash the same in OPA
    return data


def _targz(files: Mapping[str, bytes]) -> bytes:
    """A reproducible tar.gz: entries sorted by path, each written with a leading `/` as
    `opa build` does (bundle.go Writer uses `util.WithPrefix(path, "/")`), regular files only,
    uid/gid 0, empty owner names, mtime 0; the gzip header has mtime 0 and no file name."""
    tar_buffer = io.BytesIO()
    with tarfile.open(fileobj=tar_buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            content = files[name]
            info = tarfile.TarInfo("/" + name)
            info.size = len(content)
            info.mode = _TAR_MODE
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.type = tarfile.REGTYPE
            tar.addfile(info, io.BytesIO(content))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as gz:
        gz.write(tar_buffer.getvalue())
    return out.getvalue()


# --- Read an upload ----------------------------------------------------------------------------


class _BoundedGunzip(io.RawIOBase):
    """Gunzips on demand and counts: more than `limit` inflated bytes raises `TooLarge` before
    they are held. `GzipFile.read(n)` inflates at most `n` bytes per call, so memory stays bounded
    whatever the compression ratio."""

    def __init__(self, data: bytes, limit: int) -> None:
        super().__init__()
        self._gzip = gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb")
        self._limit = limit
        self._total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        chunk = self._gzip.read(min(len(view), self._limit - self._total + 1))
        self._total += len(chunk)
        if self._total > self._limit:
            raise TooLarge(f"the bundle inflates to more than {self._limit} bytes")
        view[: len(chunk)] = chunk
        return len(chunk)


def read(data: bytes, *, max_bytes: int, max_files: int = 1000, max_file_bytes: int) -> ReadBundle:
    """Unpack an uploaded tar.gz bundle safely.

    Raises `InvalidInput` (code `bundle_invalid`) when the body is not gzip or not tar, for
    absolute paths (after one leading `/`, which `opa build` writes), `..`, links, devices and
    duplicate names, for a `.manifest` that is not a JSON object, and for nested files whose names
    end in `.manifest` or `signatures.json` (OPA's reader takes any such file for the manifest or
    the signatures, bundle.go `Read`/`preProcessBundle`). Raises `TooLarge` when the inflated tar
    exceeds `max_bytes` (checked while inflating), a file exceeds `max_file_bytes`, or there are
    more than `max_files` files.
    """
    if not data.startswith(b"\x1f\x8b"):
        raise InvalidInput(
            "the bundle is not gzip-compressed (expected a .tar.gz)", code="bundle_invalid"
        )
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=_BoundedGunzip(data, max_bytes), mode="r|") as tar:
            for member in tar:
                if member.isdir():
                    continue
                name = _member_name(member)
                if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
                    raise InvalidInput(
                        f"{name}: only regular files may be in a bundle (no links or devices)",
                        code="bundle_invalid",
                    )
                if name in files:
                    raise InvalidInput(f"{name}: appears twice", code="bundle_invalid")
                if len(files) >= max_files:
                    raise TooLarge(f"the bundle holds more than {max_files} files")
                if member.size > max_file_bytes:
                    raise TooLarge(f"{name}: {member.size} bytes, over {max_file_bytes}")
                extracted = tar.extractfile(member)
                files[name] = extracted.read() if extracted is not None else b""
    except (tarfile.TarError, EOFError) as exc:
        raise InvalidInput(
            f"the bundle is not a valid tar.gz: {exc}", code="bundle_invalid"
        ) from exc
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise InvalidInput(f"the bundle is not valid gzip: {exc}", code="bundle_invalid") from exc
    signatures = files.pop(SIGNATURES, None)
    manifest = _parse_manifest(files[MANIFEST]) if MANIFEST in files else None
    return ReadBundle(files=files, manifest=manifest, signatures=signatures)


def _member_name(member: tarfile.TarInfo) -> str:
    raw = member.name
    name = raw.removeprefix("/").removeprefix("./")
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise InvalidInput(f"{raw!r} is not a clean relative path", code="bundle_invalid")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"{raw!r} is not UTF-8", code="bundle_invalid") from exc
    if (name.endswith(MANIFEST) and name != MANIFEST) or (
        name.endswith("signatures.json") and name != SIGNATURES
    ):
        raise InvalidInput(
            f"{name}: OPA would read it as the bundle's manifest or signatures",
            code="bundle_invalid",
        )
    return name


def _parse_manifest(content: bytes) -> dict[str, Any]:
    try:
        value = jsontext.loads(content)
    except InvalidInput as exc:
        raise InvalidInput(f".manifest: {exc.detail}", code="bundle_invalid") from exc
    if not isinstance(value, dict):
        raise InvalidInput(".manifest: must be a JSON object", code="bundle_invalid")
    return value


__all__ = [
    "DEFAULT_ROOTS",
    "MANIFEST",
    "SIGNATURES",
    "BuiltBundle",
    "ReadBundle",
    "build",
    "collect",
    "is_structured",
    "opa_file_hash",
    "opa_hash_input",
    "package_of",
    "read",
    "read_manifest_template",
    "revision_of",
]
