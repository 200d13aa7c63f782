"""The `controlplane` command: `up`, `serve` and `token` (more arrive with later issues).

Errors are mapped to exit codes here and only here (see `EXIT_CODES`); commands never format an
error themselves.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from controlplane.cli.api_client import ApiClient
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
from controlplane.tokens.roles import Role

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
token_app = typer.Typer(
    help="Bearer tokens for services, executors, OPA and people.", no_args_is_help=True
)
app.add_typer(token_app, name="token")

UrlOption = Annotated[
    str, typer.Option("--url", envvar="CONTROLPLANE_URL", help="Base URL of the control plane.")
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="CONTROLPLANE_ADMIN_TOKEN",
        help="Admin token; defaults to the one `controlplane up` keeps in its state directory.",
        show_default=False,
    ),
]


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


@token_app.command("create")
def token_create(
    role: Annotated[Role, typer.Option(help="Role the token carries.")],
    name: Annotated[str, typer.Option(help="Who or what will use it.")],
    url: UrlOption = "http://127.0.0.1:8080",
    token: TokenOption = None,
) -> None:
    """Create a token and print it. The secret is shown only once."""
    with ApiClient(url, _admin_token(token)) as api:
        created = api.call("POST", "/v1/tokens", json={"role": role.value, "name": name})
    typer.echo(created["token"])
    typer.echo(f"id {created['id']}  role {created['role']}  name {created['name']}", err=True)


@token_app.command("list")
def token_list(
    url: UrlOption = "http://127.0.0.1:8080",
    token: TokenOption = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Tokens per page fetched.")] = 100,
) -> None:
    """List every token (id, role, name, created, revoked)."""
    with ApiClient(url, _admin_token(token)) as api:
        cursor = None
        typer.echo(f"{'ID':<18}{'ROLE':<15}{'CREATED':<29}{'REVOKED':<29}NAME")
        while True:
            params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
            page = api.call("GET", "/v1/tokens", params=params)
            for item in page["items"]:
                typer.echo(
                    f"{item['id']:<18}{item['role']:<15}{item['created_at']:<29}"
                    f"{item['revoked_at'] or '-':<29}{item['name']}"
                )
            cursor = page["next_cursor"]
            if cursor is None:
                return


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id, as `token list` shows it.")],
    url: UrlOption = "http://127.0.0.1:8080",
    token: TokenOption = None,
) -> None:
    """Revoke a token (other replicas stop accepting it within the token cache time)."""
    with ApiClient(url, _admin_token(token)) as api:
        revoked = api.call("POST", f"/v1/tokens/{token_id}/revoke")
    typer.echo(f"revoked {revoked['id']} at {revoked['revoked_at']}")


def _admin_token(given: str | None) -> str:
    if given:
        return given
    state_dir = Path(os.environ.get("CONTROLPLANE_STATE_DIR", ".controlplane"))
    kept = state_dir / "admin.token"
    if kept.is_file():
        return kept.read_text().strip()
    raise NotAuthenticated(
        "no admin token: pass --token, set CONTROLPLANE_ADMIN_TOKEN, or run `controlplane up` here"
    )


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
