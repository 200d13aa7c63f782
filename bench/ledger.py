"""Benchmark: the ledger's write path (OPA decision logs into `POST /v1/logs`) beside a raw
pipelined XADD of the same bytes into the same Redis, and the archive (archiver and offline
verification) of what was ingested.

Starts a throwaway stack on free ports (Redis with `appendonly yes` and `appendfsync always`,
the API, OPA) per worker count, then, interleaved and repeated:

* **ingest**: `--chunks` gzip'd decision-log chunks of 500 realistic OPA `EventV1` events (uuid4
  decision ids, a ~1 KB execution input) POSTed to `/v1/logs` as OPA does (role `opa` token,
  `Content-Encoding: gzip`) by `--concurrency` aiohttp clients, each chunk re-sent until it is
  answered 200: events/s from the first send to the last 200, median and p90 per-chunk latency;
* **raw XADD**: the same number of events, each event's compact JSON as one field, XADDed in
  pipelines of 500 into a scratch stream of the same Redis: events/s.

Columns: `API µs/ev` and `Redis µs/ev` are the CPU those processes used per event (from /proc);
`gen CPU %` is this process's CPU (of one core) during the load, to show that the generator was
not the bottleneck. With the first worker count it then profiles the API with py-spy during one
more ingest (functions by own time, over the samples of whichever thread held the GIL: the API is
one interpreter), builds archives of the
ingested ledger with `Archiver.run_once` and times `verify_archive` over one of them.

Targets (issue #5): ingest ≥ 10,000 events/s; archive verification ≥ 200,000 entries/s.

Usage: .venv/bin/python bench/ledger.py [--chunks 40] [--repeat 3] [--workers 1,2]
  [--concurrency 4] [--no-profile]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gzip
import io
import os
import random
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.loadgen import tree_cpu_seconds
from controlplane.archive.archiver import Archiver
from controlplane.archive.storage import open_storage
from controlplane.archive.verify import verify_archive
from controlplane.ledger.notes import NoteVerifier
from controlplane.redis_client import connect
from controlplane.tokens.roles import Role
from tests.support.stack import Stack, StackFactory

EVENTS_PER_CHUNK = 500
RAW_PIPELINE = 500
PY_SPY = Path(sys.executable).parent / "py-spy"
PY_SPY_OPTIONS = ("--format", "raw", "--function", "--gil", "--rate", "250")
TARGET_INGEST = 10_000  # events/s
TARGET_VERIFY = 200_000  # entries/s

_ACTIONS = ("payments.refund", "crm.update_contact", "tickets.comment", "demo.echo")


def make_event(rng: random.Random, revision: str, req_id: int) -> dict[str, Any]:
    """One OPA decision-log event (EventV1) for an execution decision, ~1.3 KB as JSON."""
    now = time.time()
    agent = f"agent:{uuid.UUID(int=rng.getrandbits(128), version=4)}"
    action = rng.choice(_ACTIONS)
    allow = rng.random() < 0.9
    return {
        "labels": {"id": "3c5b0f4e-7a1d-4a39-9d0b-2f8e6a1c9b77", "version": "1.22.3"},
        "decision_id": str(uuid.uuid4()),
        "bundles": {"governance": {"revision": revision}},
        "path": "governance/execution/decision",
        "input": {
            "identity": {
                "id": agent,
                "kind": "agent",
                "status": "active",
                "attributes": {
                    "team": "billing-automation",
                    "environment": "production",
                    "owner": "ops-oncall@example.com",
                    "risk_tier": "standard",
                },
            },
            "request": {
                "iss": agent,
                "aud": "https://controlplane.example.com",
                "iat": int(now),
                "exp": int(now) + 60,
                "jti": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "action": action,
                "resource": f"customer/{rng.randrange(10**9):09d}",
                "args": {
                    "ticket": f"SUP-{rng.randrange(10**6):06d}",
                    "amount_cents": rng.randrange(100, 500_000),
                    "currency": "EUR",
                    "reason": "duplicate charge reported by the customer on the support chat",
                    "notify_customer": True,
                    "tags": ["support", "refund", "tier-2"],
                },
                "executor": "executor:payments-worker-7",
            },
            "context": {
                "source_ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}",
                "session": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "user_agent": "controlplane-sdk/0.4.2 python/3.11.7",
                "received_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
            },
        },
        "result": (
            {"allow": True, "reasons": []}
            if allow
            else {"allow": False, "reasons": ["action_not_allowed"]}
        ),
        "requested_by": "127.0.0.1:51234",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(now))
        + f"{int(now % 1 * 1e9):09d}Z",
        "metrics": {
            "counter_server_query_cache_hit": 1,
            "timer_rego_input_parse_ns": rng.randrange(20_000, 90_000),
            "timer_rego_query_eval_ns": rng.randrange(60_000, 400_000),
            "timer_server_handler_ns": rng.randrange(150_000, 900_000),
        },
        "req_id": req_id,
    }


@dataclass
class Chunks:
    bodies: list[bytes]  # gzip'd JSON arrays, as OPA uploads them
    events: list[bytes]  # each event's compact JSON, for the raw baseline

    @property
    def count(self) -> int:
        return len(self.events)


def build_chunks(count: int, revision: str, seed: int) -> Chunks:
    rng = random.Random(seed)  # noqa: S311 (reproducible test data, not secrets)
    bodies: list[bytes] = []
    events: list[bytes] = []
    for number in range(count):
        chunk = [
            orjson.dumps(make_event(rng, revision, number * EVENTS_PER_CHUNK + n))
            for n in range(EVENTS_PER_CHUNK)
        ]
        events += chunk
        # OPA's uploader uses Go's gzip.NewWriter: the default level, 6.
        bodies.append(gzip.compress(b"[" + b",".join(chunk) + b"]", compresslevel=6))
    return Chunks(bodies, events)


@dataclass
class Load:
    events_per_s: float
    p50_ms: float  # per chunk (ingest) or per pipeline (raw)
    p90_ms: float
    gen_cpu_percent: float
    api_us_per_event: float
    redis_us_per_event: float
    retries: int = 0  # chunks answered non-200 and re-sent
    conflicts: int = 0  # appends refused with SIZE_CONFLICT (another worker moved the head)


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def accounted(stack: Stack, out: dict[str, float]) -> Any:
    """Wall time and the CPU of this process, the API's process tree and Redis over a block."""
    cpu = (_self_cpu(), tree_cpu_seconds(stack.api.pid), tree_cpu_seconds(stack.redis.pid))
    started = time.perf_counter()
    yield
    out["wall"] = time.perf_counter() - started
    out["gen"] = _self_cpu() - cpu[0]
    out["api"] = tree_cpu_seconds(stack.api.pid) - cpu[1]
    out["redis"] = tree_cpu_seconds(stack.redis.pid) - cpu[2]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def _post_all(
    url: str, token: str, bodies: list[bytes], concurrency: int
) -> tuple[float, list[float], int, int]:
    """(wall s, per-chunk latencies s, retries, events appended): every body POSTed until 200."""
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
    }
    latencies: list[float] = []
    retries = appended = 0
    todo = collections.deque(bodies)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal retries, appended
        while todo:
            body = todo.popleft()
            while True:
                sent = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    answer = await response.read()
                    status = response.status
                if status == 200:
                    latencies.append(time.perf_counter() - sent)
                    appended += orjson.loads(answer)["appended"]
                    break
                retries += 1
                if retries > 100:
                    raise RuntimeError(f"/v1/logs keeps answering {status}: {answer[:300]!r}")
                await asyncio.sleep(0.05)

    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, auto_decompress=False
    ) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return wall, latencies, retries, appended


def size_conflicts(stack: Stack) -> int:
    """How many `SIZE_CONFLICT` errors Redis has answered (INFO errorstats, Redis ≥ 6.2)."""
    with stack.redis.client() as client:
        stats: Any = client.info("errorstats")
    return int(stats.get("errorstat_SIZE_CONFLICT", {}).get("count", 0))


def ingest(stack: Stack, chunks: Chunks, concurrency: int) -> Load:
    cpu: dict[str, float] = {}
    conflicts = size_conflicts(stack)
    with accounted(stack, cpu):
        wall, latencies, retries, appended = asyncio.run(
            _post_all(f"{stack.api.url}/v1/logs", stack.token(Role.OPA), chunks.bodies, concurrency)
        )
    if appended != chunks.count:
        raise RuntimeError(f"{appended} of {chunks.count} events appended (duplicates?)")
    return Load(
        chunks.count / wall,
        statistics.median(latencies) * 1e3,
        percentile(latencies, 0.9) * 1e3,
        cpu["gen"] / cpu["wall"] * 100,
        cpu["api"] / chunks.count * 1e6,
        cpu["redis"] / chunks.count * 1e6,
        retries,
        size_conflicts(stack) - conflicts,
    )


def raw_xadd(stack: Stack, chunks: Chunks, run: int) -> Load:
    """The same events XADDed in pipelines of RAW_PIPELINE into a scratch stream."""
    key = f"bench:raw:{run}"
    latencies: list[float] = []
    cpu: dict[str, float] = {}
    with stack.redis.client() as client:
        with accounted(stack, cpu):
            for start in range(0, chunks.count, RAW_PIPELINE):
                sent = time.perf_counter()
                pipe = client.pipeline(transaction=False)
                for event in chunks.events[start : start + RAW_PIPELINE]:
                    pipe.xadd(key, {"e": event})
                pipe.execute()
                latencies.append(time.perf_counter() - sent)
        client.delete(key)
    return Load(
        chunks.count / cpu["wall"],
        statistics.median(latencies) * 1e3,
        percentile(latencies, 0.9) * 1e3,
        cpu["gen"] / cpu["wall"] * 100,
        cpu["api"] / chunks.count * 1e6,
        cpu["redis"] / chunks.count * 1e6,
    )


def median_load(loads: list[Load]) -> Load:
    return Load(
        *(
            statistics.median(getattr(load, name) for load in loads)
            for name in (
                "events_per_s",
                "p50_ms",
                "p90_ms",
                "gen_cpu_percent",
                "api_us_per_event",
                "redis_us_per_event",
            )
        ),
        retries=sum(load.retries for load in loads),
        conflicts=sum(load.conflicts for load in loads),
    )


def print_loads(results: dict[str, list[Load]]) -> None:
    header = ("case", "events/s", "p50 ms", "p90 ms", "API µs/ev", "Redis µs/ev", "gen CPU %")
    print("{:<22}{:>10}{:>9}{:>9}{:>11}{:>13}{:>11}  runs (events/s)".format(*header))
    for name, loads in results.items():
        m = median_load(loads)
        runs = ", ".join(f"{load.events_per_s:,.0f}" for load in loads)
        retried = f"  ({m.retries} chunks re-sent)" if m.retries else ""
        if m.conflicts:
            retried += f"  ({m.conflicts} appends retried on SIZE_CONFLICT)"
        print(
            f"{name:<22}{m.events_per_s:>10,.0f}{m.p50_ms:>9.1f}{m.p90_ms:>9.1f}"
            f"{m.api_us_per_event:>11.0f}{m.redis_us_per_event:>13.1f}{m.gen_cpu_percent:>11.0f}"
            f"  {runs}{retried}"
        )


# Profile.


def profiled_ingest(
    stack: Stack, chunks: Chunks, concurrency: int, out: Path
) -> tuple[Load, dict[str, int], dict[str, int], int]:
    """One ingest with py-spy recording the API process: (load, own samples by function,
    inclusive samples by function, total samples). Only samples of the thread holding the GIL
    count (`--gil`): the decode runs in worker threads, and a thread waiting for the GIL would
    otherwise be charged to the line that released it (`os.urandom`, a socket write)."""
    spy = subprocess.Popen(
        [str(PY_SPY), "record", "-p", str(stack.api.pid), "-o", str(out), *PY_SPY_OPTIONS],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(1.0)  # py-spy attaches
        if spy.poll() is not None:
            raise RuntimeError(f"py-spy failed: {spy.stderr.read().decode() if spy.stderr else ''}")
        load = ingest(stack, chunks, concurrency)
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        spy.wait(30)
    finally:
        if spy.poll() is None:
            spy.kill()
            spy.wait(10)
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in out.read_text().splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text:
            continue
        count = int(count_text)
        # The first field names the process (and thread); the rest are frames, root first.
        frames = [_short(frame) for frame in stack_text.split(";")[1:]]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    return load, dict(own), dict(inclusive), total


def _short(frame: str) -> str:
    # "name (path/to/file.py)" -> "name (file.py)", keeping our package's path for clarity.
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    if "controlplane/" in where:
        where = where[where.index("controlplane/") :]
    else:
        where = where.rsplit("/", 2)[-2] + "/" + where.rsplit("/", 1)[-1] if "/" in where else where
    return f"{name} ({where})"


def print_profile(own: dict[str, int], inclusive: dict[str, int], total: int) -> None:
    print(f"\n## py-spy on the API worker during an ingest ({total} samples holding the GIL)")
    print("top functions by own time:")
    for frame, count in sorted(own.items(), key=lambda item: -item[1])[:15]:
        print(f"  {count / total:>6.1%}  {frame}")
    print("our code (controlplane/), by inclusive time:")
    ours = [(f, c) for f, c in inclusive.items() if "(controlplane/" in f]
    for frame, count in sorted(ours, key=lambda item: -item[1])[:15]:
        print(f"  {count / total:>6.1%}  {frame}")


# Archive.


async def _archive(redis_url: str, directory: Path, group: str) -> tuple[int, float]:
    client = connect(redis_url, timeout_seconds=30)
    try:
        archiver = Archiver(client, open_storage(str(directory)), group=group, trim=False)
        started = time.perf_counter()
        done = await archiver.run_once()
        return done.archived, time.perf_counter() - started
    finally:
        await client.aclose()


def archive_and_verify(stack: Stack, workdir: Path, repeat: int) -> None:
    vkey = httpx.get(f"{stack.api.url}/v1/ledger/key", timeout=10).text.strip()
    verifier = NoteVerifier.from_vkey(vkey)
    archived: list[tuple[int, float]] = []
    directories = []
    for run in range(repeat):
        directory = workdir / f"archive-{run}"
        directories.append(directory)
        # A group of its own and no trimming: each run archives the whole ledger afresh.
        archived.append(asyncio.run(_archive(stack.redis.url, directory, f"bench-{run}")))
    verified: list[tuple[int, float]] = []
    for _ in range(repeat):
        started = time.perf_counter()
        report = verify_archive(directories[0], verifier, verifier.name)
        verified.append((report.size, time.perf_counter() - started))
    print(f"\n## archive of the ingested ledger ({archived[0][0]:,} entries)")
    print("{:<22}{:>12}{:>10}  runs (entries/s)".format("case", "entries/s", "seconds"))
    for name, runs in (("archiver run_once", archived), ("verify_archive", verified)):
        rates = [count / seconds for count, seconds in runs]
        print(
            f"{name:<22}{statistics.median(rates):>12,.0f}"
            f"{statistics.median(s for _, s in runs):>10.2f}"
            f"  {', '.join(f'{r:,.0f}' for r in rates)}"
        )
    rate = statistics.median(count / seconds for count, seconds in verified)
    print(f"verify target ≥ {TARGET_VERIFY:,} entries/s: {rate / TARGET_VERIFY:.2f} of it")


# Main.


def bench_stack(factory: StackFactory, workers: int) -> Stack:
    return factory.stack(
        WORKERS=str(workers),
        ACCESS_LOG="false",
        LOG_LEVEL="warning",
        OPA_DECISION_TIMEOUT_SECONDS="1.0",
        REDIS_TIMEOUT_SECONDS="1.0",
    )


def _terminate(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # unwinds through every `finally`, which stops the stack


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=40, help="chunks of 500 events per load")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    parser.add_argument("--concurrency", type=int, default=4, help="chunks in flight")
    parser.add_argument("--no-profile", action="store_true", help="skip py-spy")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _terminate)
    profile = not args.no_profile and PY_SPY.is_file() and os.geteuid() == 0
    print(
        f"bench/ledger.py  {time.strftime('%Y-%m-%d %H:%M')}  cores={os.cpu_count()}  "
        f"chunks={args.chunks}x{EVENTS_PER_CHUNK} repeat={args.repeat} workers={args.workers} "
        f"concurrency={args.concurrency}"
    )
    sample = build_chunks(1, "bench", 0)
    average = sum(map(len, sample.events)) / len(sample.events)
    print(
        f"event: {average:.0f} bytes of compact JSON on average; chunk of {EVENTS_PER_CHUNK}: "
        f"{len(sample.bodies[0]):,} bytes gzip'd"
    )
    results: dict[str, list[Load]] = {}
    details = io.StringIO()  # profile and archive, printed after the main table
    seed = 1
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        for position, workers in enumerate(args.workers):
            workdir = Path(tmp) / f"workers-{workers}"
            workdir.mkdir()
            factory = StackFactory(workdir)
            try:
                stack = bench_stack(factory, workers)
                revision = "bench"
                ingest(stack, build_chunks(4, revision, seed := seed + 1), args.concurrency)
                raw_xadd(stack, build_chunks(4, revision, seed), 0)  # warm up
                for run in range(args.repeat):
                    chunks = build_chunks(args.chunks, revision, seed := seed + 1)
                    results.setdefault(f"raw XADD (w={workers})", []).append(
                        raw_xadd(stack, chunks, run)
                    )
                    results.setdefault(f"ingest {workers} worker(s)", []).append(
                        ingest(stack, chunks, args.concurrency)
                    )
                if position == 0:
                    with contextlib.redirect_stdout(details):
                        profile_and_archive(stack, workdir, args, seed + 1, profile=profile)
            finally:
                factory.close()
    print("\n## decision-log ingest vs raw pipelined XADD, same events, same Redis (medians)")
    print_loads(results)
    for workers in args.workers:
        raw = median_load(results[f"raw XADD (w={workers})"]).events_per_s
        got = median_load(results[f"ingest {workers} worker(s)"]).events_per_s
        print(
            f"ingest/raw, {workers} worker(s): {got / raw:.3f}; "
            f"of the {TARGET_INGEST:,} events/s target: {got / TARGET_INGEST:.2f}"
        )
    print(details.getvalue(), end="")


def profile_and_archive(
    stack: Stack, workdir: Path, args: argparse.Namespace, seed: int, *, profile: bool
) -> None:
    if profile:
        chunks = build_chunks(args.chunks, "bench", seed)
        load, own, inclusive, total = profiled_ingest(
            stack, chunks, args.concurrency, workdir / "profile.txt"
        )
        print_profile(own, inclusive, total)
        print(f"(ingest under py-spy: {load.events_per_s:,.0f} events/s)")
    archive_and_verify(stack, workdir, args.repeat)


if __name__ == "__main__":
    main()
