"""The `controlplane` command: `up`, `serve`, `token`, `identity`, `keys`, `grant`, `policy`,
`ledger`, `archive`.

Errors are mapped to exit codes here and only here (see `EXIT_CODES`); commands never format an
error themselves.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer

from controlplane.cli import archive, grants, identities, keys, ledger, policies, tokens
from controlplane.config import load_settings
from controlplane.errors import (
    ConfigurationError,
    Conflict,
    ControlPlaneError,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    Unavailable,
)

# sysexits(3) where one fits: 69 EX_UNAVAILABLE, 78 EX_CONFIG.
EXIT_CODES: dict[type[ControlPlaneError], int] = {
    InvalidInput: 2,
    NotAuthenticated: 3,
    PermissionDenied: 3,
    NotFound: 4,
    Conflict: 5,
    Unavailable: 69,
    ConfigurationError: 78,
}

app = typer.Typer(
    help="Execution governance control plane.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(tokens.app, name="token")
app.add_typer(identities.app, name="identity")
app.add_typer(keys.app, name="keys")
app.add_typer(grants.app, name="grant")
app.add_typer(policies.app, name="policy")
app.add_typer(ledger.app, name="ledger")
app.add_typer(archive.app, name="archive")


@app.command()
def up() -> None:
    """Start Redis, OPA and the control plane in the foreground; Ctrl-C stops all of them."""
    # Imported here so that quick commands (`token list`) do not pay for the server stack.
    from controlplane.stack.up import up as run_up  # noqa: PLC0415

    raise typer.Exit(asyncio.run(run_up(load_settings())))


@app.command()
def serve(
    port: Annotated[
        int | None, typer.Option(help="Port (default CONTROLPLANE_PORT or 8080).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Processes, each with its own SO_REUSEPORT listener.")
    ] = None,
) -> None:
    """Serve the API (Redis and OPA must already run; see `up`)."""
    from controlplane.api.server import serve as run_serve  # noqa: PLC0415

    overrides = {k: v for k, v in {"port": port, "workers": workers}.items() if v is not None}
    raise typer.Exit(run_serve(load_settings(**overrides)))


def exit_code_for(error: ControlPlaneError) -> int:
    for cls in type(error).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return 1


def main() -> None:
    try:
        app()
    except ControlPlaneError as error:
        print(f"controlplane: {error.detail}", file=sys.stderr)
        sys.exit(exit_code_for(error))
