"""How `controlplane up` and the test fixtures run OPA: its configuration and its flags.

OPA pulls the signed bundle `governance` from the control plane (`GET /v1/bundles/governance`,
long polling) and verifies it with the key of `/v1/policies/verification-key`, with `signing.keyid`
and `signing.scope` set explicitly: OPA enforces a missing `.signatures.json` only when a keyid is
configured (`checkSignaturesAndDescriptors` in `v1/bundle/bundle.go`). It reports its status to
`/v1/status` and its decision logs to `/v1/logs`. Its own REST API is locked: token
authentication and the bundle's `system.authz` (OPA docs `security.md`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

BUNDLE_NAME = "governance"
# Uploads every second (DESIGN.md: nothing lost, quickly), in chunks of at most 1 MiB, from a
# buffer bounded at 64 MiB instead of OPA's unlimited default (OPA #4659).
DECISION_LOG_REPORTING = {
    "min_delay_seconds": 1,
    "max_delay_seconds": 1,
    "buffer_type": "size",
    "buffer_size_limit_bytes": 64 * 1024 * 1024,
    "upload_size_limit_bytes": 1024 * 1024,
}
# OPA holds a long poll open this long; the control plane answers 304 at the end (or earlier when
# a revision is activated). After a failed download OPA backs off up to max_delay_seconds.
BUNDLE_POLLING = {
    "min_delay_seconds": 1,
    "max_delay_seconds": 5,
    "long_polling_timeout_seconds": 30,
}


def opa_config(
    *,
    api_url: str,
    token_path: Path,
    instance: str,
    verification_key: dict[str, str] | None,
    polling: dict[str, int] | None = None,
) -> dict[str, Any]:
    """OPA's configuration file (OPA docs `configuration.md`), as a JSON-compatible dict.

    `verification_key` is the document of `/v1/policies/verification-key`; without it OPA pulls
    no bundle (an OPA with no policy, for tests of that case)."""
    config: dict[str, Any] = {
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
        "status": {"service": "controlplane"},
    }
    if verification_key is not None:
        keyid = verification_key["keyid"]
        config["keys"] = {
            keyid: {
                "algorithm": verification_key["algorithm"],
                "key": verification_key["public_key_pem"],
                "scope": verification_key["scope"],
            }
        }
        config["bundles"] = {
            BUNDLE_NAME: {
                "service": "controlplane",
                "resource": f"bundles/{BUNDLE_NAME}",
                "signing": {"keyid": keyid, "scope": verification_key["scope"]},
                "polling": polling or BUNDLE_POLLING,
            }
        }
    return config


def opa_argv(binary: Path, *, port: int, config_file: Path, locked: bool = True) -> list[str]:
    """`opa run --server` on loopback; `locked` turns on token authentication and `system.authz`
    (which only a bundle can provide, so an OPA without one runs unlocked)."""
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
    if locked:
        argv += ["--authentication=token", "--authorization=basic"]
    return argv
