"""Benchmark: the control plane's decision endpoint beside direct OPA, in the same run.

Starts a throwaway stack (Redis, OPA with the default policy logging its decisions to the API, the
API) on free ports, then drives the same decision query at:

* fixed rates (default 100 and 300 requests/s) with vegeta, an open-loop generator, reporting
  median and p99 latency; and
* maximum throughput with wrk (one thread, 32 connections), reporting requests/s;

each against `POST /v1/data/governance/execution/decision` of the control plane and of OPA itself,
interleaved and repeated, so that both see the same machine. Reports medians over the repeats,
the control plane/OPA ratios, CPU per request of the API and the CPU the load generator used, and
checks that every control plane answer was an allow (a deny under load would be a failure that a
load generator counting HTTP 200s cannot see).

Usage: .venv/bin/python bench/decide.py [--repeat 3] [--duration 10] [--workers 1,2]
Needs wrk (Debian) and vegeta (`make tools`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.loadgen import VEGETA, Run, counter, measured, median_run, print_table, vegeta, wrk
from controlplane.tokens.roles import Role
from tests.support.stack import DECISION_PATH, DEMO_INPUT, StackFactory


def bench_workers(workers: int, args: argparse.Namespace, workdir: Path) -> None:
    factory = StackFactory(workdir / f"w{workers}")
    try:
        # Production defaults, not the test fixtures' short timeouts; no access log (it would
        # measure stderr rather than decisions).
        stack = factory.stack(
            WORKERS=str(workers),
            ACCESS_LOG="false",
            LOG_LEVEL="warning",
            OPA_DECISION_TIMEOUT_SECONDS="1.0",
            REDIS_TIMEOUT_SECONDS="1.0",
            TOKEN_CACHE_SECONDS="2.0",  # noqa: S106 (a duration, not a secret)
        )
        token = stack.token(Role.SERVICE)
        body = [json.dumps({"input": DEMO_INPUT}).encode()]
        targets = {
            # OPA's API is locked (system.authz): the baseline presents the control plane's token.
            "opa": (
                f"{stack.opa.url}{DECISION_PATH}",
                {
                    "Content-Type": "application/json",
                    "Authorization": f"Bearer {factory.opa_client_token}",
                },
            ),
            "controlplane": (
                f"{stack.api.url}{DECISION_PATH}",
                {"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
            ),
        }
        api_pid = stack.api.pid
        for url, headers in targets.values():  # warm up both paths
            wrk(url, headers, body, 2, workdir)
        before = counter(stack.api.url, "controlplane_decisions_total")
        results: dict[str, dict[str, list[Run]]] = {name: {} for name in targets}
        for _ in range(args.repeat):
            for rate in args.rates:
                for name, (url, headers) in targets.items():
                    attack = partial(vegeta, url, headers, body, rate, args.duration)
                    results[name].setdefault(f"{rate}/s", []).append(measured(api_pid, attack))
            for name, (url, headers) in targets.items():
                load = partial(wrk, url, headers, body, args.duration, workdir)
                results[name].setdefault("max", []).append(measured(api_pid, load))
        after = counter(stack.api.url, "controlplane_decisions_total")
        denies = {
            k: after[k] - before.get(k, 0.0)
            for k in after
            if 'outcome="deny"' in k and after[k] != before.get(k, 0.0)
        }
        print(f"\n## API workers: {workers}  (svc = the API; on the opa rows it only ingests logs)")
        print_table(
            {n: {k: median_run(v) for k, v in r.items()} for n, r in results.items()},
            "opa",
            "controlplane",
        )
        print(f"control plane denies during the run: {denies or 'none'}")
    finally:
        factory.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument(
        "--rates", type=lambda s: [int(x) for x in s.split(",")], default=[100, 300]
    )
    parser.add_argument("--workers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    args = parser.parse_args()
    if shutil.which("wrk") is None or not VEGETA.is_file():
        sys.exit("wrk or vegeta not found: run `make tools`")
    print(
        f"bench/decide.py  {time.strftime('%Y-%m-%d %H:%M')}  cores={os.cpu_count()}  "
        f"repeat={args.repeat} duration={args.duration}s rates={args.rates}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for workers in args.workers:
            bench_workers(workers, args, Path(tmp))


if __name__ == "__main__":
    main()
