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
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controlplane.tokens.roles import Role
from tests.support.stack import DECISION_PATH, DEMO_INPUT, Stack, StackFactory

VEGETA = Path.home() / ".cache" / "controlplane" / "vegeta-v12.13.0" / "vegeta"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    generator_cpu_percent: float  # of one core, over the run's wall time
    api_cpu_us_per_request: float


def tree_cpu_seconds(root: int) -> float:
    """User+system CPU of a process and all its descendants (from /proc)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    total, frontier = 0.0, [root]
    while frontier:
        pid = frontier.pop()
        total += times.get(pid, 0.0)
        frontier += [child for child, parent in parents.items() if parent == pid]
    return total


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measured(api_pid: int, run: Callable[[], tuple[float, float, float, int]]) -> Run:
    started = time.monotonic()
    generator_before, api_before = children_cpu(), tree_cpu_seconds(api_pid)
    rps, p50, p99, requests = run()
    wall = time.monotonic() - started
    generator = children_cpu() - generator_before
    api = tree_cpu_seconds(api_pid) - api_before
    return Run(rps, p50, p99, generator / wall * 100, api / max(requests, 1) * 1e6)


def vegeta(
    url: str, headers: dict[str, str], body: Path, rate: int, duration: int
) -> tuple[float, float, float, int]:
    target = "\n".join([f"POST {url}", *(f"{k}: {v}" for k, v in headers.items()), f"@{body}", ""])
    attack = subprocess.run(
        [
            str(VEGETA),
            "attack",
            f"-rate={rate}/s",
            f"-duration={duration}s",
            "-keepalive",
            "-max-workers=64",
        ],
        input=target.encode(),
        capture_output=True,
        check=True,
    )
    report = json.loads(
        subprocess.run(
            [str(VEGETA), "report", "-type=json"],
            input=attack.stdout,
            capture_output=True,
            check=True,
        ).stdout
    )
    if report["success"] < 1:
        raise RuntimeError(
            f"vegeta saw failures against {url}: {report['status_codes']} {report.get('errors')}"
        )
    latencies = report["latencies"]
    return (
        report["throughput"],
        latencies["50th"] / 1e6,
        latencies["99th"] / 1e6,
        report["requests"],
    )


def wrk(
    url: str, headers: dict[str, str], body: bytes, duration: int, workdir: Path
) -> tuple[float, float, float, int]:
    script = workdir / "post.lua"
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body.decode())}"]
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    script.write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        ["wrk", "-t1", "-c32", f"-d{duration}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw non-2xx answers from {url}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return rps, _latency(out, "50%"), _latency(out, "99%"), total


def _latency(out: str, percentile: str) -> float:
    value, unit = re.search(rf"{percentile}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def decisions(stack: Stack) -> dict[str, float]:
    text = httpx.get(f"{stack.api.url}/metrics", timeout=10).text
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("controlplane_decisions_total{"):
            labels, value = line.rsplit(" ", 1)
            found[labels] = found.get(labels, 0.0) + float(value)
    return found


def median_run(runs: list[Run]) -> Run:
    return Run(*(statistics.median(getattr(r, f) for r in runs) for f in Run.__dataclass_fields__))


def bench_workers(workers: int, args: argparse.Namespace, workdir: Path) -> dict[str, object]:
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
        body = json.dumps({"input": DEMO_INPUT}).encode()
        body_file = workdir / "body.json"
        body_file.write_bytes(body)
        targets = {
            "opa": (f"{stack.opa.url}{DECISION_PATH}", {"Content-Type": "application/json"}),
            "controlplane": (
                f"{stack.api.url}{DECISION_PATH}",
                {"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
            ),
        }
        api_pid = stack.api.pid
        for url, headers in targets.values():  # warm up both paths
            wrk(url, headers, body, 2, workdir)
        before = decisions(stack)
        results: dict[str, dict[str, list[Run]]] = {name: {} for name in targets}
        for _ in range(args.repeat):
            for rate in args.rates:
                for name, (url, headers) in targets.items():
                    attack = partial(vegeta, url, headers, body_file, rate, args.duration)
                    run = measured(api_pid, attack)
                    results[name].setdefault(f"{rate}/s", []).append(run)
            for name, (url, headers) in targets.items():
                run = measured(api_pid, partial(wrk, url, headers, body, args.duration, workdir))
                results[name].setdefault("max", []).append(run)
        after = decisions(stack)
        denies = {
            k: after[k] - before.get(k, 0.0)
            for k in after
            if 'outcome="deny"' in k and after[k] != before.get(k, 0.0)
        }
        return {
            "workers": workers,
            "results": {n: {k: median_run(v) for k, v in r.items()} for n, r in results.items()},
            "denies": denies,
        }
    finally:
        factory.close()


def report(outcome: dict[str, object]) -> None:
    results: dict[str, dict[str, Run]] = outcome["results"]  # type: ignore[assignment]
    print(f"\n## API workers: {outcome['workers']}")
    header = ("load", "target", "rps", "p50 ms", "p99 ms", "API µs/req", "gen CPU %")
    print("{:<8}{:<14}{:>9}{:>9}{:>9}{:>12}{:>11}".format(*header))
    for load in results["opa"]:
        for name in ("opa", "controlplane"):
            run = results[name][load]
            # Against OPA directly, the API still ingests OPA's decision logs: that is its cost.
            print(
                f"{load:<8}{name:<14}{run.rps:>9.0f}{run.p50_ms:>9.2f}{run.p99_ms:>9.2f}"
                f"{run.api_cpu_us_per_request:>12.0f}{run.generator_cpu_percent:>11.0f}"
            )
        opa, cp = results["opa"][load], results["controlplane"][load]
        print(
            f"{'':<8}{'ratio cp/opa':<14}{cp.rps / opa.rps:>9.2f}{cp.p50_ms / opa.p50_ms:>9.2f}"
            f"{cp.p99_ms / opa.p99_ms:>9.2f}   added median: {cp.p50_ms - opa.p50_ms:.2f} ms"
        )
    print(f"control plane denies during the run: {outcome['denies'] or 'none'}")


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
    for tool in ("wrk",):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: run `make tools`")
    if not VEGETA.is_file():
        sys.exit(f"vegeta not found at {VEGETA}: run `make tools`")
    print(
        f"bench/decide.py  {time.strftime('%Y-%m-%d %H:%M')}  cores={os.cpu_count()}  "
        f"repeat={args.repeat} duration={args.duration}s rates={args.rates}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for workers in args.workers:
            report(bench_workers(workers, args, Path(tmp)))


if __name__ == "__main__":
    main()
