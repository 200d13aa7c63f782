"""Load generation and measurement shared by the benchmarks.

vegeta (open loop, fixed rates: latency is not hidden by coordinated omission) and wrk (closed
loop, one thread, 32 connections: maximum throughput). Both can cycle through many distinct bodies,
which signed requests need (each is valid once). CPU is read from /proc for the service under
test and from `getrusage` for the load generator, so that the table shows that the generator was
not the bottleneck.
"""

from __future__ import annotations

import base64
import json
import os
import re
import resource
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import httpx

VEGETA = Path.home() / ".cache" / "controlplane" / "vegeta-v12.13.0" / "vegeta"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    generator_cpu_percent: float  # of one core, over the run's wall time
    service_cpu_us_per_request: float


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
        values = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry.name)] = int(values[1])
        times[int(entry.name)] = (int(values[11]) + int(values[12])) / CLOCK_TICKS
    total, frontier = 0.0, [root]
    while frontier:
        pid = frontier.pop()
        total += times.get(pid, 0.0)
        frontier += [child for child, parent in parents.items() if parent == pid]
    return total


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measured(service_pid: int, run: Callable[[], tuple[float, float, float, int]]) -> Run:
    """Run a load and account the CPU of the generator and of the service's process tree."""
    started = time.monotonic()
    generator_before, service_before = _children_cpu(), tree_cpu_seconds(service_pid)
    rps, p50, p99, requests = run()
    wall = time.monotonic() - started
    generator = _children_cpu() - generator_before
    service = tree_cpu_seconds(service_pid) - service_before
    return Run(rps, p50, p99, generator / wall * 100, service / max(requests, 1) * 1e6)


def median_run(runs: list[Run]) -> Run:
    return Run(*(statistics.median(getattr(r, f.name) for r in runs) for f in fields(Run)))


def vegeta_attack(
    url: str, headers: dict[str, str], bodies: Sequence[bytes], rate: int, duration: int
) -> bytes:
    """vegeta's binary results of an open-loop attack at `rate`, cycling through `bodies`."""
    targets = "".join(
        json.dumps(
            {
                "method": "POST",
                "url": url,
                "header": {k: [v] for k, v in headers.items()},
                "body": base64.b64encode(body).decode(),
            }
        )
        + "\n"
        for body in bodies
    )
    return subprocess.run(
        [
            str(VEGETA),
            "attack",
            "-format=json",
            f"-rate={rate}/s",
            f"-duration={duration}s",
            "-keepalive",
            "-max-workers=64",
        ],
        input=targets.encode(),
        capture_output=True,
        check=True,
    ).stdout


def vegeta(
    url: str, headers: dict[str, str], bodies: Sequence[bytes], rate: int, duration: int
) -> tuple[float, float, float, int]:
    """(throughput, p50 ms, p99 ms, requests) at a fixed `rate`, cycling through `bodies`."""
    attack = vegeta_attack(url, headers, bodies, rate, duration)
    report = json.loads(
        subprocess.run(
            [str(VEGETA), "report", "-type=json"],
            input=attack,
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
    url: str, headers: dict[str, str], bodies: Sequence[bytes], duration: int, workdir: Path
) -> tuple[float, float, float, int]:
    """(requests/s, p50 ms, p99 ms, requests): wrk -t1 -c32, cycling through `bodies`."""
    script = workdir / "post.lua"
    lines = ['wrk.method = "POST"']
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    if len(bodies) == 1:
        lines.append(f"wrk.body = {json.dumps(bodies[0].decode())}")
    else:
        body_file = workdir / "bodies.txt"
        body_file.write_bytes(b"\n".join(bodies) + b"\n")
        lines += [
            "local bodies, n = {}, 0",
            f'for line in io.lines("{body_file}") do n = n + 1; bodies[n] = line end',
            "local i = 0",
            "request = function()",
            "  i = i % n + 1",
            "  return wrk.format(nil, nil, nil, bodies[i])",
            "end",
        ]
    script.write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        ["wrk", "-t1", "-c32", f"-d{duration}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw non-2xx answers from {url}:\n{out}")
    rps = float(_find(r"Requests/sec:\s+([\d.]+)", out))
    total = int(_find(r"(\d+) requests in", out))
    return rps, _latency(out, "50%"), _latency(out, "99%"), total


def _find(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    if match is None:
        raise RuntimeError(f"no {pattern!r} in:\n{text}")
    return match.group(1)


def _latency(out: str, percentile: str) -> float:
    match = re.search(rf"{percentile}\s+([\d.]+)(us|ms|s)", out)
    if match is None:
        raise RuntimeError(f"no {percentile} latency in:\n{out}")
    value, unit = match.groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def print_table(results: dict[str, dict[str, Run]], baseline: str, subject: str) -> None:
    header = ("load", "target", "rps", "p50 ms", "p99 ms", "svc µs/req", "gen CPU %")
    print("{:<8}{:<14}{:>9}{:>9}{:>9}{:>12}{:>11}".format(*header))
    for load in results[baseline]:
        for name in (baseline, subject):
            run = results[name][load]
            print(
                f"{load:<8}{name:<14}{run.rps:>9.0f}{run.p50_ms:>9.2f}{run.p99_ms:>9.2f}"
                f"{run.service_cpu_us_per_request:>12.0f}{run.generator_cpu_percent:>11.0f}"
            )
        base, other = results[baseline][load], results[subject][load]
        added = other.p50_ms - base.p50_ms
        print(
            f"{'':<8}{'ratio':<14}{other.rps / base.rps:>9.2f}{other.p50_ms / base.p50_ms:>9.2f}"
            f"{other.p99_ms / base.p99_ms:>9.2f}   added median: {added:.2f} ms"
        )


def counter(url: str, name: str) -> dict[str, float]:
    """The series of a Prometheus counter on `url`/metrics, by their label set."""
    found: dict[str, float] = {}
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line.rsplit(" ", 1)
            found[labels] = found.get(labels, 0.0) + float(value)
    return found
