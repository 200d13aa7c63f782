"""`controlplane ledger`: the latest checkpoint, receipts for entries, offline verification, and
reconciliation of OPA's decision logs.

A receipt is a C2SP tlog-proof (c2sp.org/tlog-proof@v1): the entry's index, its inclusion proof
and the signed checkpoint it leads to. Its `extra` line carries the entry itself, so that the
receipt is self-contained; `extra` is not authenticated by the format, but the entry is: its leaf
hash must be proven into the signed checkpoint. `verify-receipt` needs only the log's verifier key.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated

import typer

from controlplane.cli.api_client import ApiClient
from controlplane.cli.options import DEFAULT_URL, TokenOption, UrlOption, admin_token, echo_json
from controlplane.errors import Conflict, InvalidInput
from controlplane.ledger.notes import Checkpoint, NoteVerifier, open_checkpoint
from controlplane.ledger.receipts import Receipt, verify_receipt

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
