"""`controlplane ledger`: the latest checkpoint, receipts for entries, offline verification, an
audit of the log in Redis, and reconciliation of OPA's decision logs.

A receipt is a C2SP tlog-proof (c2sp.org/tlog-proof@v1): the entry's index, its inclusion proof
and the signed checkpoint it leads to. Its `extra` line carries the entry itself, so that the
receipt is self-contained; `extra` is not authenticated by the format, but the entry is: its leaf
hash must be proven into the signed checkpoint. `verify-receipt` needs only the log's verifier key.
"""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from controlplane.archive.reader import ArchiveReader
from controlplane.archive.storage import open_storage
from controlplane.cli.api_client import ApiClient
from controlplane.cli.options import (
    DEFAULT_URL,
    TokenOption,
    UrlOption,
    admin_token,
    echo_json,
    progress_bar,
)
from controlplane.errors import Conflict, InvalidInput
from controlplane.ledger.audit import audit
from controlplane.ledger.notes import Checkpoint, NoteVerifier, open_checkpoint
from controlplane.ledger.receipts import Receipt, verify_receipt
from controlplane.redis_client import connect

app = typer.Typer(
    help="The evidence ledger: checkpoints, receipts, verification.", no_args_is_help=True
)
KeyOption = Annotated[
    str | None,
    typer.Option(
        "--key", help="The log's verifier key (vkey); default: the server's /v1/ledger/key."
    ),
]


@app.command("checkpoint")
def checkpoint(url: UrlOption = DEFAULT_URL, key: KeyOption = None) -> None:
    """Print the latest signed checkpoint, after checking its signature."""
    with ApiClient(url, "") as api:
        vkey = key or api.text("GET", "/v1/ledger/key").strip()
        note = api.text("GET", "/v1/ledger/checkpoint")
    verifier = NoteVerifier.from_vkey(vkey)
    opened = open_checkpoint(note, verifier, verifier.name)
    typer.echo(note, nl=False)
    typer.echo(f"# verified: size {opened.size}, origin {opened.origin}", err=True)


@app.command("proof")
def proof(
    index: Annotated[int, typer.Argument(min=0, help="The entry's index.")],
    out: Annotated[Path | None, typer.Option("--out", help="Write the receipt here.")] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    key: KeyOption = None,
) -> None:
    """A receipt (c2sp.org/tlog-proof) for entry INDEX against the latest checkpoint, verified
    before it is written. Reading the entry needs an auditor or admin token."""
    with ApiClient(url, admin_token(token)) as api:
        vkey = key or api.text("GET", "/v1/ledger/key").strip()
        note = api.text("GET", "/v1/ledger/checkpoint")
        verifier = NoteVerifier.from_vkey(vkey)
        size = open_checkpoint(note, verifier, verifier.name).size
        if index >= size:
            raise InvalidInput(f"the latest checkpoint covers {size} entries, not index {index}")
        found = api.call("GET", "/v1/ledger/proof/inclusion", params={"index": index, "size": size})
        entry = api.call("GET", f"/v1/ledger/entries/{index}")["entry"].encode()
    receipt = Receipt(
        index,
        tuple(base64.b64decode(h) for h in found["proof"]),
        note,
        extra=entry,
    )
    _verify(receipt, verifier)
    text = receipt.encode()
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
        typer.echo(f"{out}: receipt for entry {index} of {size}", err=True)


@app.command("verify-receipt")
def verify(
    receipt_file: Annotated[Path, typer.Argument(metavar="FILE", exists=True, dir_okay=False)],
    key: Annotated[str, typer.Option("--key", help="The log's verifier key (vkey).")],
) -> None:
    """Verify a receipt offline with the log's verifier key; print the entry it proves."""
    receipt = Receipt.decode(receipt_file.read_text())
    checkpoint = _verify(receipt, NoteVerifier.from_vkey(key))
    typer.echo(
        f"entry {receipt.index} of {checkpoint.size} in {checkpoint.origin}: verified", err=True
    )
    typer.echo((receipt.extra or b"").decode("utf-8", errors="replace"))


def _verify(receipt: Receipt, verifier: NoteVerifier) -> Checkpoint:
    if receipt.extra is None:
        raise InvalidInput("the receipt carries no entry (its extra line)", code="receipt_invalid")
    return verify_receipt(receipt, receipt.extra, verifier, verifier.name)


@app.command("reconcile")
def reconcile(
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    limit: Annotated[int, typer.Option("--limit", min=0, max=1000, help="List at most.")] = 100,
) -> None:
    """Report the OPA decisions the control plane saw whose OPA decision-log entry is overdue,
    with OPA's own drop counters. Exits 5 when any is missing (for cron and CI)."""
    with ApiClient(url, admin_token(token)) as api:
        report = api.call("GET", "/v1/ledger/reconcile", params={"limit": limit})
    echo_json(report)
    if report["missing"]:
        raise Conflict(
            f"{report['missing']} OPA decisions are missing from the decision logs",
            code="decisions_missing",
        )


@app.command("audit")
def audit_command(
    redis_url: Annotated[str, typer.Option("--redis-url", help="The ledger's Redis.")],
    archive: Annotated[
        str | None,
        typer.Option("--archive", help="The archive (dir or URL), for entries trimmed from Redis."),
    ] = None,
    url: UrlOption = DEFAULT_URL,
    key: KeyOption = None,
) -> None:
    """Check the log in Redis against every signed checkpoint it keeps, with the log's public
    key: names the first entry that was changed, deleted, swapped, inserted or cut off."""
    if key is None:
        with ApiClient(url, "") as api:
            key = api.text("GET", "/v1/ledger/key").strip()
    verifier = NoteVerifier.from_vkey(key)
    reader = ArchiveReader(open_storage(archive)) if archive else None
    started = time.perf_counter()
    report = asyncio.run(_audit(redis_url, verifier, reader))
    elapsed = time.perf_counter() - started
    typer.echo(
        f"audited {report.size} entries of {verifier.name} against {report.checkpoints} signed "
        f"checkpoints (entries below {report.stream_start} from the archive), root "
        f"{base64.b64encode(report.root).decode('ascii')} ({elapsed:.2f} s)"
    )


async def _audit(redis_url: str, verifier: NoteVerifier, reader: ArchiveReader | None) -> Any:
    client = connect(redis_url, timeout_seconds=10)
    try:
        with progress_bar("entries") as progress:
            return await audit(client, verifier, verifier.name, archive=reader, progress=progress)
    finally:
        await client.aclose()
