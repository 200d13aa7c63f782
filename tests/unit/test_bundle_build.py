"""Bundles built like `opa build`: file digests golden against the real OPA binary, reproducible
bytes, content-derived revisions, root validation, and the safe reading of uploads."""

from __future__ import annotations

import base64
import gzip
import io
import json
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from controlplane.errors import InvalidEntity, InvalidInput, TooLarge
from controlplane.policies import bundle, signing
from controlplane.policies.bundle import (
    build,
    collect,
    opa_file_hash,
    opa_hash_input,
    package_of,
    read,
    read_manifest_template,
    revision_of,
)
from tests.support.bundles import OPA, POLICY_DIR, ROOTS, SCOPE, needs_opa

METADATA = {"owner": "é <>& \u2028", "n": 3, "nested": {"b": [2, 1], "a": {"z": None, "y": True}}}

# Root data.json with what OPA's canonical re-encoding must get right: HTML characters (Go's
# encoder escapes them unless SetEscapeHTML(false)), raw non-ASCII, a non-BMP character, U+2028/9
# (always escaped by Go, never by Python), control characters, unsorted keys in nested objects
# (including non-ASCII keys, sorted by UTF-8 bytes), integers beyond 64 bits, and numbers OPA keeps
# as written (`1.50`, `1e2`, `-0`: json.Number is re-encoded verbatim).
GOLDEN_DATA = (
    '{"governance": {"golden": {\n'
    '  "z": 1, "Z": -7, "é": "accent", "a": "first",\n'
    '  "html": "<script>&</script>", "accented": "é", "escaped": "\\u00e9\\u003c",\n'
    '  "emoji": "😀", "separators": "a\u2028b\u2029c",\n'
    '  "controls": "\\b\\f\\n\\r\\t\\u0001\\u001f\u007f", "quote": "\\"\\\\/",\n'
    '  "nested": {"b": [3, 2, 1], "a": {"y": true, "x": null, "w": false}},\n'
    '  "big": 12345678901234567890123, "numbers": [1.50, 1e2, -0, 0.1, 1E+2, 2.5e-3]\n'
    "}}}\n"
).encode()


def run_opa(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(OPA), *map(str, args)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
    )


def tar_members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {
            m.name.removeprefix("/"): tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def jwt_payload(signatures_json: bytes) -> dict[str, object]:
    (token,) = json.loads(signatures_json)["signatures"]
    segment = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def policy_files() -> dict[str, bytes]:
    """The repo's policies (tests left out by `collect`) with their own nested data dropped, and
    GOLDEN_DATA at the root: `opa build` merges all data into one root data.json, so this keeps
    OPA's file names equal to ours."""
    files = {n: c for n, c in collect(POLICY_DIR).items() if not n.endswith("data.json")}
    files["data.json"] = GOLDEN_DATA
    return files


def signer() -> signing.BundleSigner:
    key = signing.generate_key()
    return signing.BundleSigner(key, signing.keyid_of(key.public_key()), SCOPE)


def private_pem(key: signing.PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


# --- Golden against `opa build` ----------------------------------------------------------------


@needs_opa
def test_file_hashes_equal_what_opa_build_signs(tmp_path: Path) -> None:
    files = policy_files()
    key = signing.generate_key()
    ours = build(
        files,
        roots=ROOTS,
        metadata=METADATA,
        signer=signing.BundleSigner(key, "golden", SCOPE),
    )
    folder = tmp_path / "bundle"
    for name, content in {**files, ".manifest": ours.files[".manifest"]}.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    (tmp_path / "priv.pem").write_bytes(private_pem(key))
    (tmp_path / "claims.json").write_text(json.dumps({"scope": SCOPE}))
    out = tmp_path / "opa.tar.gz"

    # `-b .` from inside the folder: opa build names modules by the path given on the command line
    # (`-b bundle` would give `/bundle/governance/...`).
    done = run_opa(
        "build", "-b", ".", "--signing-key", tmp_path / "priv.pem", "--signing-alg", "ES256",
        "--claims-file", tmp_path / "claims.json", "-o", out, cwd=folder,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout
    opa_files = tar_members(out.read_bytes())
    payload = jwt_payload(opa_files.pop(".signatures.json"))
    opa_hashes = {f["name"]: f["hash"] for f in payload["files"]}  # type: ignore[attr-defined]
    assert payload["scope"] == SCOPE

    assert set(opa_hashes) == set(ours.files) - {".signatures.json"}
    for name, opa_hash in opa_hashes.items():
        assert opa_file_hash(name, ours.files[name]) == opa_hash, name
    ours_payload = jwt_payload(ours.files[".signatures.json"])
    assert {f["name"]: f["hash"] for f in ours_payload["files"]} == opa_hashes  # type: ignore[attr-defined]

    # OPA rewrote data.json and .manifest in its own encoding (\u003c for "<", struct field
    # order); the canonical hash of its bytes is the same as of ours.
    assert opa_files["data.json"] != GOLDEN_DATA
    assert b"\\u003c" in opa_files["data.json"]
    assert b"1.50" in opa_files["data.json"]
    assert opa_files[".manifest"] != ours.files[".manifest"]
    for name in ("data.json", ".manifest"):
        assert opa_file_hash(name, opa_files[name]) == opa_hashes[name]


@needs_opa
def test_opa_build_keeps_our_manifest(tmp_path: Path) -> None:
    """What OPA reads from our `.manifest` is what we wrote: revision, roots, rego_version,
    metadata (seen through its re-encoding)."""
    files = policy_files()
    ours = build(files, roots=ROOTS, metadata=METADATA, signer=None)
    folder = tmp_path / "bundle"
    for name, content in ours.files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    done = run_opa("build", "-b", ".", "-o", tmp_path / "out.tar.gz", cwd=folder)
    assert done.returncode == 0, done.stdout
    manifest = json.loads(tar_members((tmp_path / "out.tar.gz").read_bytes())[".manifest"])
    assert manifest == json.loads(ours.files[".manifest"])
    assert manifest["revision"] == ours.revision


# --- Canonical hashing, without OPA ------------------------------------------------------------


def test_structured_files_hash_their_canonical_form() -> None:
    content = '{"b": 1.50, "a": "<é>\u2028", "c": {"y": [1e2, -0], "x": "\\u0001\\b"}}'.encode()
    expected = '{"a":"<é>\\u2028","b":1.50,"c":{"x":"\\u0001\\b","y":[1e2,-0]}}'.encode()
    assert opa_hash_input("data.json", content) == expected
    assert opa_hash_input("x/.manifest", content) == expected
    assert opa_hash_input("x/data.json", b"\xef\xbb\xbf" + content) == expected  # BOM stripped
    assert opa_hash_input("x/other.json", content) == content  # not structured: raw bytes
    assert opa_hash_input("x/policy.rego", content) == content


def test_whitespace_and_key_order_do_not_change_a_data_hash() -> None:
    assert opa_file_hash("data.json", b'{"a": 1, "b": [true, null]}') == opa_file_hash(
        "data.json", b'{\n  "b":[true,null],\n  "a":1\n}\n'
    )


@pytest.mark.parametrize(
    "content",
    [b"{not json", b'{"a": NaN}', b'{"a": "\\ud800"}', b'{"a": "\xff"}', b"{} {}", b""],
)
def test_structured_files_opa_would_read_differently_are_refused(content: bytes) -> None:
    with pytest.raises(InvalidEntity) as caught:
        opa_file_hash("data.json", content)
    assert caught.value.code == "bundle_file_invalid"


def test_yaml_data_is_refused_with_a_pointer_to_json() -> None:
    with pytest.raises(InvalidEntity, match=r"data\.json") as caught:
        opa_file_hash("a/data.yaml", b"a: 1\n")
    assert caught.value.code == "bundle_yaml_unsupported"


# --- Determinism and revisions -----------------------------------------------------------------


def test_same_input_and_key_build_identical_bytes() -> None:
    files = collect(POLICY_DIR)
    same_signer = signer()
    first = build(files, roots=ROOTS, metadata=METADATA, signer=same_signer)
    reordered = dict(reversed(list(files.items())))
    second = build(reordered, roots=ROOTS, metadata=dict(METADATA), signer=same_signer)
    assert first.data == second.data
    assert first.digest == second.digest
    assert first.revision == second.revision
    assert len(first.revision) == 64
    assert int(first.revision, 16) >= 0


def test_revision_follows_content_only() -> None:
    files = collect(POLICY_DIR)
    revision = revision_of(files, roots=ROOTS, metadata=METADATA)
    assert revision == build(files, roots=ROOTS, metadata=METADATA, signer=None).revision
    assert revision == revision_of(
        dict(sorted(files.items(), reverse=True)), roots=ROOTS, metadata=METADATA
    )
    name = "governance/execution/decision.rego"
    changed = {**files, name: files[name][:-1] + bytes([files[name][-1] ^ 1])}
    assert revision_of(changed, roots=ROOTS, metadata=METADATA) != revision
    renamed = {**files, "governance/execution/other.rego": files[name]}
    del renamed[name]
    assert revision_of(renamed, roots=ROOTS, metadata=METADATA) != revision
    assert revision_of(files, roots=ROOTS, metadata={"other": 1}) != revision
    assert revision_of(files, roots=["governance", "system", "x"], metadata=METADATA) != revision


def test_tar_is_written_like_opa_build() -> None:
    built = build(collect(POLICY_DIR), roots=ROOTS, metadata={}, signer=signer())
    assert built.data[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"  # mtime 0, no name
    with tarfile.open(fileobj=io.BytesIO(built.data), mode="r:gz") as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names)
    assert names[:2] == ["/.manifest", "/.signatures.json"]
    assert all(n.startswith("/") for n in names)
    for m in members:
        assert (m.type, m.mode, m.uid, m.gid, m.uname, m.gname, m.mtime) == (
            tarfile.REGTYPE, 0o644, 0, 0, "", "", 0
        )  # fmt: skip
    assert tar_members(built.data) == built.files
    manifest = json.loads(built.files[".manifest"])
    assert manifest == {
        "revision": built.revision,
        "roots": ROOTS,
        "rego_version": 1,
        "metadata": {},
    }


# --- Validation --------------------------------------------------------------------------------

POLICY = b"# METADATA\n# title: x\n\n  package governance.x # trailing\n\nallow := true\n"


@pytest.mark.parametrize(
    ("roots", "code"),
    [
        (["governance", "governance/x"], "overlapping_roots"),
        (["a/b", "a"], "overlapping_roots"),
        (["governance", "governance"], "overlapping_roots"),
        ([], "invalid_roots"),
        ([""], "invalid_roots"),
        (["/governance"], "invalid_roots"),
        (["a//b"], "invalid_roots"),
    ],
)
def test_bad_roots_are_refused(roots: list[str], code: str) -> None:
    with pytest.raises(InvalidEntity) as caught:
        build({"governance/x.rego": POLICY}, roots=roots, metadata={}, signer=None)
    assert caught.value.code == code


def test_overlap_message_is_opas() -> None:
    with pytest.raises(InvalidEntity, match="manifest has overlapped roots: 'governance' and"):
        build({}, roots=["governance", "governance/x"], metadata={}, signer=None)


def test_package_outside_the_roots_is_refused() -> None:
    with pytest.raises(InvalidEntity) as caught:
        build({"x.rego": b"package elsewhere.x\n"}, roots=ROOTS, metadata={}, signer=None)
    assert caught.value.code == "outside_roots"
    assert caught.value.detail == (
        "manifest roots [governance system] do not permit 'package elsewhere.x' in module 'x.rego'"
    )


def test_root_prefix_is_segment_wise() -> None:
    with pytest.raises(InvalidEntity, match="do not permit"):
        build({"x.rego": b"package governancex\n"}, roots=ROOTS, metadata={}, signer=None)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("elsewhere/data.json", b'{"a": 1}'),
        ("data.json", b'{"governance": {"a": 1}, "other": 2}'),
        ("data.json", b'{"system": 1, "elsewhere": {"a": 1}}'),
    ],
)
def test_data_outside_the_roots_is_refused(name: str, content: bytes) -> None:
    with pytest.raises(InvalidEntity, match="do not permit data at path") as caught:
        build({name: content}, roots=ROOTS, metadata={}, signer=None)
    assert caught.value.code == "outside_roots"


def test_data_under_the_roots_is_accepted_at_any_depth() -> None:
    files = {
        "data.json": b'{"governance": {"a": 1}, "system": {}}',
        "governance/data.json": b'{"b": 2}',
        "governance/c/d/data.json": b"[1, 2]",
    }
    built = build(files, roots=ROOTS, metadata={}, signer=None)
    assert set(built.files) == {*files, ".manifest"}


def test_root_data_must_be_an_object() -> None:
    with pytest.raises(InvalidEntity, match="root value must be object"):
        build({"data.json": b"[1]"}, roots=ROOTS, metadata={}, signer=None)


@pytest.mark.parametrize(
    ("content", "package", "path"),
    [
        (POLICY, "governance.x", ["governance", "x"]),
        (b"\xef\xbb\xbfpackage governance\n", "governance", ["governance"]),
        (
            b'# c\r\n\r\npackage governance["a-b"].c\r\n',
            'governance["a-b"].c',
            ["governance", "a-b", "c"],
        ),
        (b"package system[`log`]\nimport rego.v1\n", "system[`log`]", ["system", "log"]),
    ],
)  # fmt: skip
def test_package_clause_is_read_after_comments(
    content: bytes, package: str, path: list[str]
) -> None:
    assert package_of("p.rego", content) == (package, path)


@pytest.mark.parametrize(
    "content",
    [
        b"# only a comment\n",
        b"import rego.v1\npackage governance\n",
        b"allow := true\n",
        b"package\n",
        b'package governance["a b"]\n',  # OPA would path-escape the space
        b"package governance.\n",
        b"\xff\xfe",
    ],
)
def test_a_module_without_a_readable_package_is_refused(content: bytes) -> None:
    with pytest.raises(InvalidEntity) as caught:
        build({"governance/p.rego": content}, roots=ROOTS, metadata={}, signer=None)
    assert caught.value.code == "rego_invalid"


@pytest.mark.parametrize(
    ("name", "code"),
    [
        (".manifest", "reserved_file"),
        (".signatures.json", "reserved_file"),
        ("governance/README.md", "unsupported_file"),
        ("governance/data.yaml", "bundle_yaml_unsupported"),
        ("../governance/x.rego", "bundle_file_invalid"),
        ("/governance/x.rego", "bundle_file_invalid"),
    ],
)
def test_files_a_bundle_cannot_hold_are_refused(name: str, code: str) -> None:
    with pytest.raises(InvalidEntity) as caught:
        build({name: b"package governance\n"}, roots=ROOTS, metadata={}, signer=None)
    assert caught.value.code == code


def test_metadata_that_is_not_json_is_refused() -> None:
    with pytest.raises(InvalidInput):
        build({}, roots=ROOTS, metadata={"when": object()}, signer=None)


# --- The author's folder -----------------------------------------------------------------------


def test_collect_takes_policies_and_data_only(tmp_path: Path) -> None:
    shutil.copytree(POLICY_DIR, tmp_path, dirs_exist_ok=True)
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.rego").write_text("package hidden\n")
    (tmp_path / "governance" / ".swap.rego").write_text("package swap\n")
    (tmp_path / "schemas").mkdir(exist_ok=True)
    (tmp_path / "schemas" / "input.json").write_text("{}")
    (tmp_path / "governance" / "notes.md").write_text("notes")
    (tmp_path / ".manifest").write_text('{"roots": ["governance"]}')
    files = collect(tmp_path)
    assert files
    for name in files:
        assert name.endswith(".rego") or name.rsplit("/", 1)[-1] == "data.json", name
        assert not name.endswith("_test.rego")
        assert not any(part.startswith(".") for part in name.split("/"))
    assert (
        files["governance/execution/decision.rego"]
        == (POLICY_DIR / "governance" / "execution" / "decision.rego").read_bytes()
    )


def test_collect_refuses_a_symlink_out_of_the_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside.rego"
    outside.write_text("package governance\n")
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "inside.rego").write_text("package governance.inside\n")
    (folder / "link.rego").symlink_to(folder / "inside.rego")
    assert set(collect(folder)) == {"inside.rego", "link.rego"}
    (folder / "escape.rego").symlink_to(outside)
    with pytest.raises(InvalidInput, match="out of the policy folder"):
        collect(folder)


def test_collect_refuses_directory_symlinks(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    with pytest.raises(InvalidInput, match="directory symlink"):
        collect(tmp_path)


def test_manifest_template_defaults_and_overrides(tmp_path: Path) -> None:
    assert read_manifest_template(tmp_path) == {"roots": ROOTS, "metadata": {}}
    (tmp_path / ".manifest").write_text(
        '{"roots": ["governance"], "rego_version": 1, "metadata": {"name": "g"}, "revision": "x"}'
    )
    assert read_manifest_template(tmp_path) == {"roots": ["governance"], "metadata": {"name": "g"}}
    (tmp_path / ".manifest").write_text('{"roots": ["governance"], "rego_version": 0}')
    with pytest.raises(InvalidEntity, match="rego_version"):
        read_manifest_template(tmp_path)
    (tmp_path / ".manifest").write_text('{"wasm": []}')
    with pytest.raises(InvalidEntity, match="unsupported fields"):
        read_manifest_template(tmp_path)


def test_repository_bundle_template_is_readable() -> None:
    template_dir = POLICY_DIR.parent / "bundles" / "governance"
    if not (template_dir / ".manifest").is_file():
        pytest.skip("no bundles/governance/.manifest in this checkout")
    template = read_manifest_template(template_dir)
    build(collect(POLICY_DIR), signer=None, **template)


# --- Reading uploads ---------------------------------------------------------------------------

LIMITS = {"max_bytes": 1 << 20, "max_file_bytes": 1 << 18}


def make_tar(entries: list[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
            else:
                info = tarfile.TarInfo(entry[0])
                info.size = len(entry[1])
                tar.addfile(info, io.BytesIO(entry[1]))
    return gzip.compress(raw.getvalue())


def test_read_returns_what_build_wrote() -> None:
    built = build(collect(POLICY_DIR), roots=ROOTS, metadata=METADATA, signer=signer())
    got = read(built.data, **LIMITS)
    assert got.signatures == built.files[".signatures.json"]
    assert got.files == {n: c for n, c in built.files.items() if n != ".signatures.json"}
    assert got.manifest == json.loads(built.files[".manifest"])


def test_read_accepts_plain_tar_layouts() -> None:
    directory = tarfile.TarInfo("./governance/")
    directory.type = tarfile.DIRTYPE
    got = read(make_tar([directory, ("./governance/x.rego", b"package governance.x\n")]), **LIMITS)
    assert got.files == {"governance/x.rego": b"package governance.x\n"}
    assert got.manifest is None
    assert got.signatures is None


def test_read_refuses_a_body_that_is_not_gzip() -> None:
    with pytest.raises(InvalidInput, match="not gzip") as caught:
        read(b"PK\x03\x04 a zip file", **LIMITS)
    assert caught.value.code == "bundle_invalid"
    assert not isinstance(caught.value, InvalidEntity | TooLarge)


@pytest.mark.parametrize(
    "body",
    [
        gzip.compress(b"this is no tar archive, just text. " * 30),
        gzip.compress(b"short"),
        gzip.compress(b"x" * 600)[:-12],  # truncated gzip
        b"\x1f\x8b but then garbage",
    ],
)
def test_read_refuses_gzip_that_is_not_a_tar(body: bytes) -> None:
    with pytest.raises(InvalidInput) as caught:
        read(body, **LIMITS)
    assert caught.value.code == "bundle_invalid"


def link(name: str, kind: bytes, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


@pytest.mark.parametrize(
    ("entries", "match"),
    [
        ([("../x.rego", b"package x\n")], "clean relative path"),
        ([("governance/../../x.rego", b"")], "clean relative path"),
        ([("//etc/passwd", b"")], "clean relative path"),
        ([link("governance/x.rego", tarfile.SYMTYPE, "/etc/passwd")], "regular files"),
        ([link("governance/x.rego", tarfile.LNKTYPE, "data.json")], "regular files"),
        ([link("governance/dev", tarfile.CHRTYPE)], "regular files"),
        ([link("governance/fifo", tarfile.FIFOTYPE)], "regular files"),
        ([("/a.rego", b"1"), ("a.rego", b"2")], "twice"),
        ([("governance/x/.manifest", b"{}")], "manifest or signatures"),
        ([("governance/signatures.json", b"{}")], "manifest or signatures"),
        ([(".manifest", b"[1]")], "JSON object"),
    ],
)
def test_read_refuses_unsafe_entries(
    entries: list[tarfile.TarInfo | tuple[str, bytes]], match: str
) -> None:
    with pytest.raises(InvalidInput, match=match) as caught:
        read(make_tar(entries), **LIMITS)
    assert caught.value.code == "bundle_invalid"


def test_read_stops_a_gzip_bomb_early() -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("governance/data.json")
        info.size = 64 << 20
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    bomb = gzip.compress(raw.getvalue(), compresslevel=9)
    assert len(bomb) < 128 << 10  # a 64 MiB tar in well under 128 KiB
    started = time.perf_counter()
    with pytest.raises(TooLarge, match="inflates"):
        read(bomb, max_bytes=1 << 20, max_file_bytes=1 << 30)
    assert time.perf_counter() - started < 1.0


def test_read_limits_file_count_and_file_size() -> None:
    many = make_tar([(f"governance/{i}.rego", b"package governance\n") for i in range(5)])
    assert len(read(many, max_files=5, **LIMITS).files) == 5
    with pytest.raises(TooLarge, match="more than 4 files"):
        read(many, max_files=4, **LIMITS)
    big = make_tar([("governance/data.json", b"{}" + b" " * 2000)])
    with pytest.raises(TooLarge, match="over 1000"):
        read(big, max_bytes=1 << 20, max_file_bytes=1000)


def test_module_exports_are_the_public_api() -> None:
    assert set(bundle.__all__) >= {"build", "collect", "read", "revision_of", "opa_file_hash"}
