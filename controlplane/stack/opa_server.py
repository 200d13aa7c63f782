"""How `controlplane up` and the test fixtures run OPA: its bundle, its configuration, its flags.

Until signed bundles are served (issue #4), OPA loads the policies of `rego/` as a bundle
directory (`opa run --bundle`), staged with a `.manifest` whose `revision` is derived from the
content, so that every decision's provenance names what decided it. OPA's decision logs go to the
control plane's `/v1/logs` from the start, which is also what makes OPA return `decision_id`s.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

BUNDLE_NAME = "governance"
# Uploads every second (DESIGN.md: nothing lost, quickly), in chunks of at most 256 KiB, from a
# buffer bounded at 64 MiB instead of OPA's unlimited default (OPA #4659).
DECISION_LOG_REPORTING = {
    "min_delay_seconds": 1,
    "max_delay_seconds": 1,
    "buffer_type": "size",
    "buffer_size_limit_bytes": 64 * 1024 * 1024,
    "upload_size_limit_bytes": 1024 * 1024,
}


def is_bundle_file(path: Path) -> bool:
    """Policies and data that belong in the bundle; tests stay out of it."""
    if path.suffix == ".rego":
        return not path.name.endswith("_test.rego")
    return path.name in {"data.json", "data.yaml"}


def stage_bundle(policy_dir: Path, template_dir: Path, bundles_dir: Path) -> str:
    """Copy the bundle files of `policy_dir` into `bundles_dir/<BUNDLE_NAME>` with a `.manifest`.

    The manifest is the template's, plus a `revision`: the SHA-256 of the template and of every
    file's path and bytes, so that the same policies always give the same revision.
    Returns the revision.
    """
    template_path = template_dir / ".manifest"
    if not policy_dir.is_dir():
        raise FileNotFoundError(f"policy directory {policy_dir} does not exist")
    template = template_path.read_bytes()
    files = sorted(p for p in policy_dir.rglob("*") if p.is_file() and is_bundle_file(p))
    digest = hashlib.sha256(template)
    for path in files:
        relative = path.relative_to(policy_dir).as_posix()
        content = path.read_bytes()
        digest.update(f"\0{relative}\0{len(content)}\0".encode())
        digest.update(content)
    revision = digest.hexdigest()
    target = bundles_dir / BUNDLE_NAME
    shutil.rmtree(target, ignore_errors=True)
    for path in files:
        destination = target / path.relative_to(policy_dir)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)
    manifest = {**json.loads(template), "revision": revision}
    target.mkdir(parents=True, exist_ok=True)
    (target / ".manifest").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return revision


def opa_config(*, api_url: str, token_path: Path, instance: str) -> dict[str, Any]:
    """OPA's configuration file (OPA docs `configuration.md`), as a JSON-compatible dict."""
    return {
        "services": {
            "controlplane": {
                "url": api_url.rstrip("/") + "/v1",
                "credentials": {"bearer": {"token_path": str(token_path)}},
            }
        },
        "labels": {"app": "controlplane", "instance": instance},
        "decision_logs": {
            "service": "controlplane",
            "resource": "/logs",
            "reporting": DECISION_LOG_REPORTING,
        },
    }


def opa_argv(
    binary: Path, *, port: int, config_file: Path, bundle: str | None = BUNDLE_NAME
) -> list[str]:
    """`opa run --server` on loopback. Run it with the bundles directory as working directory,
    so that the bundle is named `governance` in provenance and decision logs."""
    argv = [
        str(binary),
        "run",
        "--server",
        "--addr", f"127.0.0.1:{port}",
        "--config-file", str(config_file),
        "--log-format", "json",
        "--log-level", "info",
        # One access-log line per request doubled OPA's CPU per decision; debug hides them.
        "--log-level-request", "debug",
        "--shutdown-grace-period", "5",
    ]  # fmt: skip
    if bundle is not None:
        argv += ["--bundle", bundle]
    return argv
