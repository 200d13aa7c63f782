"""Benchmark: how fast an activation reaches the OPA fleet (issue #4).

Starts a throwaway control plane and OPA instances pulling the signed `governance` bundle from it,
publishes distinct revisions up front, then activates them one by one and measures, for each, the
time from the activation request until every OPA of a group reports the new revision through its
status (`GET /v1/fleet`, what `controlplane policy status` shows; polled every 10 ms).

Two groups side by side on the same control plane:

* long polling (the configuration `controlplane up` writes): `--opas` instances;
* OPA's default periodic polling (min 60 s, max 120 s between polls): as many instances, fewer
  activations, since each takes up to two minutes.

Targets (long polling): median ≤ 1 s, max ≤ 2 s over 20 activations.

Usage: .venv/bin/python bench/propagation.py [--activations 20] [--opas 3]
       [--periodic-activations 2] [--periodic-delays 60,120]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controlplane.stack.seed import build_unsigned, verification_key
from controlplane.tokens.roles import Role
from tests.support.processes import BUNDLE_TEMPLATE, POLICY_DIR, OpaServer
from tests.support.stack import Stack, StackFactory

POLL_SECONDS = 0.01


def revisions(stack: Stack, workdir: Path, count: int, tag: str) -> list[str]:
    """Publish `count` distinct revisions of the default policy; returns them."""
    published = []
    with stack.client(Role.ADMIN) as admin:
        for n in range(count):
            folder = workdir / f"{tag}-{n}"
            shutil.copytree(POLICY_DIR, folder)
            (folder / "governance" / "bench.rego").write_text(
                f'package governance.bench\n\nrun := "{tag}-{n}"\n'
            )
            response = admin.post(
                "/v1/policies",
                content=build_unsigned(folder, BUNDLE_TEMPLATE),
                headers={"Content-Type": "application/gzip"},
                timeout=60,
            )
            response.raise_for_status()
            published.append(response.json()["revision"])
    return published


def propagate(stack: Stack, revision: str, group: list[OpaServer], timeout: float) -> float:
    """Seconds from the activation request until every OPA of `group` reports `revision`."""
    names = {f"test-{opa.port}" for opa in group}
    with stack.client(Role.ADMIN) as admin:
        started = time.monotonic()
        admin.post(f"/v1/policies/{revision}/activate", json={"reason": "bench"}).raise_for_status()
        while time.monotonic() - started < timeout:
            fleet = admin.get("/v1/fleet").json()["instances"]
            running = {
                opa["labels"].get("instance"): opa["bundles"]
                .get("governance", {})
                .get("active_revision")
                for opa in fleet
            }
            if all(running.get(name) == revision for name in names):
                return time.monotonic() - started
            time.sleep(POLL_SECONDS)
    raise RuntimeError(f"revision {revision} did not reach every OPA within {timeout} s")


def summary(name: str, seconds: list[float]) -> None:
    ordered = sorted(seconds)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    print(
        f"{name:<32}{len(ordered):>6}{statistics.median(ordered):>10.3f}"
        f"{p90:>10.3f}{ordered[-1]:>10.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--activations", type=int, default=20)
    parser.add_argument("--opas", type=int, default=3)
    parser.add_argument("--periodic-activations", type=int, default=2)
    parser.add_argument(
        "--periodic-delays",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[60, 120],
        help="min,max seconds between polls (OPA's defaults)",
    )
    args = parser.parse_args()
    print(
        f"bench/propagation.py  {time.strftime('%Y-%m-%d %H:%M')}  cores={os.cpu_count()}  "
        f"activations={args.activations} opas={args.opas} "
        f"periodic={args.periodic_activations}x{args.periodic_delays}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        factory = StackFactory(workdir)
        try:
            stack = factory.stack(ACCESS_LOG="false", LOG_LEVEL="warning")
            key = verification_key(stack.api.url)
            long_polling = [stack.opa] + [
                factory.opa(stack.api, verification_key=key) for _ in range(args.opas - 1)
            ]
            minimum, maximum = args.periodic_delays
            periodic = [
                factory.opa(
                    stack.api,
                    verification_key=key,
                    polling={"min_delay_seconds": minimum, "max_delay_seconds": maximum},
                )
                for _ in range(args.opas)
            ]
            fast = revisions(stack, workdir, args.activations, "long")
            slow = revisions(stack, workdir, args.periodic_activations, "periodic")
            print(f"{args.opas} long-polling and {args.opas} periodic OPAs, revisions published")
            results = {
                "long polling": [propagate(stack, r, long_polling, 30) for r in fast],
            }
            results["periodic polling (OPA defaults)"] = [
                propagate(stack, r, periodic, maximum * 2 + 30) for r in slow
            ]
        finally:
            factory.close()
    print(f"\n{'seconds until all report':<32}{'n':>6}{'median':>10}{'p90':>10}{'max':>10}")
    for name, seconds in results.items():
        summary(name, seconds)
    print("targets (long polling): median <= 1 s, max <= 2 s")


if __name__ == "__main__":
    main()
