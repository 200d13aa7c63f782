"""Benchmark: where the latency tail of `POST /v1/authorize` at a fixed rate comes from.

One open-loop vegeta load (default 500/s for 10 s) against a throwaway stack, while three probes
measure, every 5 ms on their own connections, the round trip of Redis `PING`, OPA `GET /health`
and the API's `GET /healthz`, and a sampler reads the CPU of each process and of the machine from
/proc every 50 ms.
It prints:

* the authorizations' median and p99, and the slow ones (> `--slow` ms) grouped into bursts
  (start offset, length, worst latency, requests);
* each probe's p99 and maximum: a component that stalls shows here, one that does not is cleared;
* the CPU of each API worker, OPA and Redis, and of the whole machine, over the run and around
  each burst: whether a burst is one process's own work or the machine's cores all taken.

Usage: .venv/bin/python bench/tail.py [--rate 500] [--duration 10] [--workers 2] [--slow 25]
Needs vegeta (`make tools`).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.authorize import bench_stack, requests
from bench.loadgen import CLOCK_TICKS, VEGETA, vegeta_attack
from tests.support.stack import StackFactory

PROBE_INTERVAL = 0.005
CPU_INTERVAL = 0.05


@dataclass
class Probe:
    """Round trips of one tiny request, repeated on one connection until stopped."""

    name: str
    port: int
    request: bytes
    round_trips_ms: list[float] = field(default_factory=list)

    def run(self, stop: threading.Event) -> None:
        with socket.create_connection(("127.0.0.1", self.port)) as conn:
            while not stop.is_set():
                started = time.perf_counter()
                conn.sendall(self.request)
                conn.recv(65536)  # each answer fits one read: PONG, or a short JSON document
                self.round_trips_ms.append((time.perf_counter() - started) * 1000)
                time.sleep(PROBE_INTERVAL)


def process_cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    values = stat[stat.rindex(")") + 2 :].split()
    return (int(values[11]) + int(values[12])) / CLOCK_TICKS


def api_processes(root: int) -> list[int]:
    """The API's supervisor and its workers."""
    found = [root]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == root:
                found.append(int(entry.name))
    return found


def machine_busy_seconds() -> float:
    """CPU seconds the machine spent on anything but idle and I/O wait, over all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / CLOCK_TICKS


@dataclass
class CpuSampler:
    """CPU seconds of named processes, and of the whole machine, every `CPU_INTERVAL`."""

    pids: dict[str, int]
    samples: list[tuple[float, list[float]]] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [*self.pids, "machine"]

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            seconds = [process_cpu_seconds(pid) for pid in self.pids.values()]
            self.samples.append((time.time(), [*seconds, machine_busy_seconds()]))
            time.sleep(CPU_INTERVAL)

    def shares(self, start: float, end: float) -> list[float]:
        """Each process's share of one core (and the machine's of all cores) in [start, end]."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return [float("nan")] * len(self.names)
        (t0, c0), (t1, c1) = inside[0], inside[-1]
        cores = [1.0] * len(self.pids) + [float(os.cpu_count() or 1)]
        return [(b - a) / (t1 - t0) / n * 100 for a, b, n in zip(c0, c1, cores, strict=True)]


Burst = tuple[float, float, float, int]


def bursts(results: list[tuple[float, float]], slow_ms: float) -> list[Burst]:
    """Slow requests (offset s, latency ms) grouped when they start within 0.1 s of each other:
    (start s, length ms, worst ms, requests)."""
    grouped: list[list[float]] = []
    for offset, latency in sorted(r for r in results if r[1] > slow_ms):
        if grouped and offset - grouped[-1][1] <= 0.1:
            grouped[-1][1] = offset
            grouped[-1][2] = max(grouped[-1][2], latency)
            grouped[-1][3] += 1
        else:
            grouped.append([offset, offset, latency, 1])
    return [(a, (b - a) * 1000, worst, int(n)) for a, b, worst, n in grouped]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--slow", type=float, default=25.0, help="ms above which a request is slow")
    args = parser.parse_args()
    if not VEGETA.is_file():
        sys.exit("vegeta not found: run `make tools`")
    print(
        f"bench/tail.py  {time.strftime('%Y-%m-%d %H:%M')}  cores={os.cpu_count()}  "
        f"rate={args.rate}/s duration={args.duration}s workers={args.workers}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        factory = StackFactory(Path(tmp))
        try:
            stack, identity, key = bench_stack(factory, args.workers)
            url = f"{stack.api.url}/v1/authorize"
            headers = {"Content-Type": "application/jwt"}
            vegeta_attack(url, headers, requests(key, identity, stack.api.url, 2000), 200, 5)
            bodies = requests(key, identity, stack.api.url, args.rate * (args.duration + 1))

            probes = [
                Probe("redis PING", urlsplit(stack.redis.url).port or 0, b"PING\r\n"),
                Probe("opa /health", urlsplit(stack.opa.url).port or 0, _get("/health")),
                Probe("api /healthz", urlsplit(stack.api.url).port or 0, _get("/healthz")),
            ]
            workers = api_processes(stack.api.pid)[1:]
            cpu = CpuSampler(
                {f"api {pid}": pid for pid in workers}
                | {"opa": stack.opa.pid, "redis": stack.redis.pid}
            )
            stop = threading.Event()
            tasks = [probe.run for probe in probes] + [cpu.run]
            threads = [threading.Thread(target=t, args=(stop,), daemon=True) for t in tasks]
            for thread in threads:
                thread.start()
            attack = vegeta_attack(url, headers, bodies, args.rate, args.duration)
            stop.set()
            for thread in threads:
                thread.join()
        finally:
            factory.close()

    report(attack, probes, cpu, args.slow)


def report(attack: bytes, probes: list[Probe], cpu: CpuSampler, slow_ms: float) -> None:
    encoded = subprocess.run(
        [str(VEGETA), "encode", "--to=json"], input=attack, capture_output=True, check=True
    ).stdout.splitlines()
    results, codes = [], set()
    for line in encoded:
        row = json.loads(line)
        started = datetime.fromisoformat(row["timestamp"]).timestamp()
        results.append((started, row["latency"] / 1e6))
        codes.add(row["code"])
    first = min(started for started, _ in results)
    results = [(started - first, latency) for started, latency in results]
    last = max(started + latency / 1000 for started, latency in results)
    latencies = [latency for _, latency in results]
    print(
        f"\nauthorize: {len(results)} requests, status codes {sorted(codes)}, "
        f"p50 {statistics.median(latencies):.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms"
    )
    print(
        f"\nbursts of requests slower than {slow_ms:g} ms, with the CPU used from 0.2 s before "
        "each burst to its end: processes in % of one core, the machine in % of all its cores"
    )
    names = "".join(f"{name:>9}" for name in cpu.names)
    print(f"{'start s':>8}{'length ms':>11}{'worst ms':>10}{'requests':>10}{names}")
    print(f"{'whole run':>39}" + "".join(f"{v:>9.0f}" for v in cpu.shares(first, first + last)))
    for start, length, worst, count in bursts(results, slow_ms):
        shares = cpu.shares(first + start - 0.2, first + start + (length + worst) / 1000)
        print(
            f"{start:>8.2f}{length:>11.0f}{worst:>10.0f}{count:>10}"
            + "".join(f"{v:>9.0f}" for v in shares)
        )

    print("\nprobes, every 5 ms on their own connection")
    print(f"{'probe':<14}{'samples':>9}{'p99 ms':>9}{'max ms':>9}")
    for probe in probes:
        trips = probe.round_trips_ms
        print(f"{probe.name:<14}{len(trips):>9}{percentile(trips, 0.99):>9.1f}{max(trips):>9.1f}")


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


if __name__ == "__main__":
    main()
