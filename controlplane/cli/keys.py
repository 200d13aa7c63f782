"""`controlplane keys`: Ed25519 keys for agents and executors, and the grant signing keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from controlplane.cli.api_client import ApiClient
from controlplane.cli.options import DEFAULT_URL, TokenOption, UrlOption, admin_token, echo_json
from controlplane.client import AgentKey
from controlplane.config import load_settings
from controlplane.errors import Conflict
from controlplane.grants.keys import generate_encrypted_key
from controlplane.ledger.service import generate_sealed_ledger_key
from controlplane.policies.keys import generate_sealed_key
from controlplane.secretfile import write_secret

app = typer.Typer(help="Identity keys and grant signing keys.", no_args_is_help=True)
OutFile = Annotated[Path, typer.Option("--out", help="Where to write the private key (mode 0600).")]


@app.command("agent")
def agent_key(
    out: OutFile,
    kid: Annotated[
        str | None, typer.Option(help="Key id (default: its RFC 7638 thumbprint).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Generate an Ed25519 key for an agent or executor: private JWK to --out, public JWK printed
    (register it with `controlplane identity create ID --key FILE`)."""
    _refuse_overwrite(out, force)
    key = AgentKey.generate(kid)
    key.save(out)
    echo_json(key.public_jwk())


@app.command("generate")
def generate_grant_key(
    out: OutFile,
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
    bundle: Annotated[
        bool, typer.Option("--bundle", help="A bundle signing key (ES256) instead.")
    ] = False,
    ledger: Annotated[
        bool, typer.Option("--ledger", help="A ledger log key (Ed25519 note key) instead.")
    ] = False,
) -> None:
    """Generate a grant signing key (or, with --bundle, a bundle signing key; with --ledger, the
    ledger's log key) encrypted with CONTROLPLANE_KEY_PASSPHRASE(_FILE), for
    CONTROLPLANE_GRANT_KEY_FILE (BUNDLE_KEY_FILE, LEDGER_KEY_FILE). Prints its key id."""
    _refuse_overwrite(out, force)
    passphrase = load_settings().resolve_key_passphrase()
    if ledger:
        write_secret(out, generate_sealed_ledger_key(passphrase))
        typer.echo(f"ledger key written to {out}; its verifier key is at GET /v1/ledger/key")
        return
    generate = generate_sealed_key if bundle else generate_encrypted_key
    kid, encrypted = generate(passphrase)
    write_secret(out, encrypted)
    typer.echo(kid)


@app.command("rotate")
def rotate(url: UrlOption = DEFAULT_URL, token: TokenOption = None) -> None:
    """Rotate the grant signing key; the old one stays in the JWKS until its grants expire."""
    with ApiClient(url, admin_token(token)) as api:
        echo_json(api.call("POST", "/v1/grant-keys/rotate"))


@app.command("jwks")
def jwks(url: UrlOption = DEFAULT_URL) -> None:
    """Print the published grant verification keys (public)."""
    with ApiClient(url, "") as api:
        typer.echo(json.dumps(api.call("GET", "/.well-known/jwks.json"), indent=2))


def _refuse_overwrite(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise Conflict(f"{path} exists; pass --force to overwrite it", code="file_exists")
