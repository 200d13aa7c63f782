"""Benchmark: end-to-end authorizations (signed request in, signed grant out) beside direct OPA
decisions for the same policy and input, in the same run; and offline grant verification.

Starts a throwaway stack on free ports, registers one agent, pre-signs distinct execution requests
(each is valid once) just before each load, and drives `POST /v1/authorize`:

* at fixed rates (default 100 and 500/s) with vegeta: median and p99;
* at maximum throughput with wrk (one thread, 32 connections, cycling through the requests);

and the same for OPA's own `POST /v1/data/governance/execution/decision` with the input the
control plane builds for that request. Then verifies grants offline in one process (one core):
the executor's side. Checks that every authorization was an allow.

Targets (issue #3): ≥ 1,000 authorizations/s sustained, p99 ≤ 25 ms at 500/s, offline verification
≥ 8,000/s on one core.

Usage: .venv/bin/python bench/authorize.py [--repeat 3] [--duration 10] [--rates 100,500]
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
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.loadgen import VEGETA, Run, counter, measured, median_run, print_table, vegeta, wrk
from controlplane.client import AgentKey, sign_request
from controlplane.grants.verify import verify
from controlplane.jose import b64url_json
from tests.support.agents import register
from tests.support.stack import DECISION_PATH, Stack, StackFactory

# Generous: a 10 s load at the maximum rate seen here needs ~30k distinct requests.
MAX_BODIES = 60_000


def requests(key: AgentKey, identity: str, audience: str, count: int) -> list[bytes]:
    return [
        sign_request(
            key,
            identity=identity,
            audience=audience,
            action="demo.echo",
            resource="demo",
            args={"message": "bench", "n": n},
        ).encode()
        for n in range(count)
    ]


def bench_stack(factory: StackFactory, workers: int) -> tuple[Stack, str, AgentKey]:
    """A stack with production timeouts and no access log, and one registered agent."""
    stack = factory.stack(
        WORKERS=str(workers),
        ACCESS_LOG="false",
        LOG_LEVEL="warning",
        OPA_DECISION_TIMEOUT_SECONDS="1.0",
        REDIS_TIMEOUT_SECONDS="1.0",
    )
    identity, key = register(stack)
    return stack, identity, key


def offline_verification(
    grants: list[str], jwks: dict[str, Any], audience: str, seconds: float
) -> float:
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for grant in grants:
            verify(
                grant,
                jwks,
                audience=audience,
                action="demo.echo",
                args={"message": "bench", "n": 0},
            )
            done += 1
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument(
        "--rates", type=lambda s: [int(x) for x in s.split(",")], default=[100, 500]
    )
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if shutil.which("wrk") is None or not VEGETA.is_file():
        sys.exit("wrk or vegeta not found: run `make tools`")
    print(
        f"bench/authorize.py  {time.strftime('%Y-%m-%d %H:%M')}  cores={os.cpu_count()}  "
        f"repeat={args.repeat} duration={args.duration}s rates={args.rates} workers={args.workers}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        factory = StackFactory(workdir)
        try:
            stack, identity, key = bench_stack(factory, args.workers)
            audience = stack.api.url
            # The input the control plane builds for one of these requests (decisions.authorize).
            sample_claims = b64url_json(
                requests(key, identity, audience, 1)[0].decode().split(".")[1]
            )
            identity_input = {"id": identity, "kind": "agent", "status": "active", "attributes": {}}
            opa_input = {
                "input": {"identity": identity_input, "request": sample_claims, "context": {}}
            }
            opa = (
                f"{stack.opa.url}{DECISION_PATH}",
                # OPA's API is locked (system.authz): present the control plane's token.
                {
                    "Content-Type": "application/json",
                    "Authorization": f"Bearer {factory.opa_client_token}",
                },
                [json.dumps(opa_input).encode()],
            )
            cp_url, cp_headers = (
                f"{stack.api.url}/v1/authorize",
                {"Content-Type": "application/jwt"},
            )
            wrk(opa[0], opa[1], opa[2], 2, workdir)
            wrk(cp_url, cp_headers, requests(key, identity, audience, 6000), 2, workdir)  # warm up
            before = counter(stack.api.url, "controlplane_authorizations_total")
            results: dict[str, dict[str, list[Run]]] = {"opa": {}, "authorize": {}}
            for _ in range(args.repeat):
                for rate in args.rates:
                    results["opa"].setdefault(f"{rate}/s", []).append(
                        measured(
                            stack.api.pid,
                            partial(vegeta, opa[0], opa[1], opa[2], rate, args.duration),
                        )
                    )
                    bodies = requests(key, identity, audience, rate * args.duration + rate)
                    results["authorize"].setdefault(f"{rate}/s", []).append(
                        measured(
                            stack.api.pid,
                            partial(vegeta, cp_url, cp_headers, bodies, rate, args.duration),
                        )
                    )
                results["opa"].setdefault("max", []).append(
                    measured(
                        stack.api.pid, partial(wrk, opa[0], opa[1], opa[2], args.duration, workdir)
                    )
                )
                bodies = requests(key, identity, audience, MAX_BODIES)
                results["authorize"].setdefault("max", []).append(
                    measured(
                        stack.api.pid,
                        partial(wrk, cp_url, cp_headers, bodies, args.duration, workdir),
                    )
                )
            after = counter(stack.api.url, "controlplane_authorizations_total")
            print("\n## authorize vs direct OPA (svc = the API's CPU per request)")
            print_table(
                {n: {k: median_run(v) for k, v in r.items()} for n, r in results.items()},
                "opa",
                "authorize",
            )
            counts = {
                k: after[k] - before.get(k, 0.0) for k in after if after[k] != before.get(k, 0.0)
            }
            print(f"authorizations during the run: {counts}")

            sample = [
                httpx.post(cp_url, content=body, headers=cp_headers).json()["grant"]
                for body in requests(key, identity, audience, 1)
            ]
            jwks = httpx.get(f"{stack.api.url}/.well-known/jwks.json").json()
            rates = [offline_verification(sample, jwks, identity, 3.0) for _ in range(args.repeat)]
            median = sorted(rates)[len(rates) // 2]
            print(f"\noffline grant verification, one process: {median:,.0f}/s")
        finally:
            factory.close()


if __name__ == "__main__":
    main()
