"""`controlplane archive`: offline verification of an archive directory (c2sp.org/tlog-tiles).

`verify` needs nothing but the directory and the log's verifier key: no server, no Redis.
"""

from __future__ import annotations

import base64
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

import typer

from controlplane.archive.verify import verify_archive
from controlplane.ledger.notes import NoteVerifier

app = typer.Typer(help="The evidence archive: offline verification.", no_args_is_help=True)


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
    with ExitStack() as stack:
        bar: list[Any] = []

        def progress(done: int, total: int) -> None:
            if not bar:
                bar.append(
                    stack.enter_context(
                        typer.progressbar(
                            length=total, label="entries", file=typer.get_text_stream("stderr")
                        )
                    )
                )
            bar[0].update(done - bar[0].pos)

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
