"""`controlplane archive`: the archiver and offline verification (c2sp.org/tlog-tiles).

`run` copies the ledger's log from Redis into an archive directory or object store (see
`archive/archiver.py`), once or every few seconds. `verify` needs nothing but the directory and
the log's verifier key: no server, no Redis.
"""

from __future__ import annotations

import asyncio
import base64
import signal
import time
from pathlib import Path
from typing import Annotated

import typer

from controlplane.archive.archiver import ArchiveProgress, Archiver
from controlplane.archive.storage import open_storage
from controlplane.archive.verify import verify_archive
from controlplane.cli.options import progress_bar
from controlplane.ledger.notes import NoteVerifier
from controlplane.redis_client import connect

app = typer.Typer(
    help="The evidence archive: archiver, offline verification.", no_args_is_help=True
)


@app.command("run")
def run(
    redis_url: Annotated[str, typer.Option("--redis-url", help="The ledger's Redis.")],
    to: Annotated[
        str,
        typer.Option(
            "--to", metavar="DIR_OR_URL", help="The archive: a directory or an fsspec URL."
        ),
    ],
    once: Annotated[bool, typer.Option("--once", help="Archive once, then exit.")] = False,
    trim: Annotated[
        bool,
        typer.Option("--trim/--no-trim", help="Trim the archived entries from Redis."),
    ] = True,
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, help="Seconds between runs.")
    ] = 5.0,
) -> None:
    """Copy the ledger's log from Redis into the archive (tiles, bundles, payloads, checkpoint),
    then trim Redis; with --once a single run, else one every --interval until interrupted."""
    asyncio.run(_run(redis_url, to, once=once, trim=trim, interval=interval))


async def _run(redis_url: str, to: str, *, once: bool, trim: bool, interval: float) -> None:
    stderr = typer.get_text_stream("stderr")
    shown: dict[str, int] = {}

    def progress(stage: str, done: int, total: int) -> None:
        # One line per stage and tenth of the run: enough to see a large backlog move.
        step = max(total // 10, 1)
        if done == total or done // step != shown.get(stage, -1):
            shown[stage] = done // step
            typer.echo(f"{stage}: {done}/{total} entries", file=stderr)

    def report(done: ArchiveProgress) -> None:
        shown.clear()
        if once or done.archived:
            trimmed = f"; Redis trimmed below entry {done.size - 1}" if done.trimmed else ""
            typer.echo(
                f"{to}: archived {done.archived} entries, the archive holds {done.size}{trimmed}"
            )

    client = connect(redis_url, timeout_seconds=10)
    try:
        archiver = Archiver(client, open_storage(to), trim=trim, progress=progress)
        if once:
            started = time.perf_counter()
            done = await archiver.run_once()
            report(done)
            elapsed = time.perf_counter() - started
            rate = done.archived / elapsed if elapsed > 0 else 0.0
            typer.echo(f"({elapsed:.2f} s, {rate:,.0f} entries/s)", file=stderr)
            return
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(number, stop.set)
        await archiver.run(stop, interval, report)
    finally:
        await client.aclose()


@app.command("verify")
def verify(
    directory: Annotated[
        Path, typer.Argument(metavar="DIR", exists=True, file_okay=False, help="The archive.")
    ],
    key: Annotated[str, typer.Option("--key", help="The log's verifier key (vkey).")],
    origin: Annotated[
        str | None, typer.Option("--origin", help="The log's origin; default: the key's name.")
    ] = None,
) -> None:
    """Verify every entry, tile and checkpoint of the archive in DIR against the log key."""
    verifier = NoteVerifier.from_vkey(key)
    with progress_bar("entries") as progress:
        started = time.perf_counter()
        report = verify_archive(directory, verifier, origin or verifier.name, progress)
        elapsed = time.perf_counter() - started
    rate = report.size / elapsed if elapsed > 0 else 0.0
    root = base64.b64encode(report.root).decode("ascii")
    typer.echo(
        f"{directory}: verified {report.size} entries of {report.origin}, "
        f"{len(report.checkpoint_sizes)} checkpoints, {report.tiles} tiles, root {root} "
        f"({elapsed:.2f} s, {rate:,.0f} entries/s)"
    )
