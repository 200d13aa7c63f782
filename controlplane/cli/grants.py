"""`controlplane grant verify`: check a grant offline, as an executor does before running."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from controlplane.cli.options import echo_json, read_json_object
from controlplane.errors import Unavailable
from controlplane.grants.verify import DEFAULT_LEEWAY_SECONDS, verify

app = typer.Typer(help="Grants: verify one offline.", no_args_is_help=True)


@app.command("verify")
def verify_grant(
    token: Annotated[
        str, typer.Argument(help="The grant (compact JWS), or - to read it from stdin.")
    ],
    jwks: Annotated[str, typer.Option(help="JWKS: an http(s) URL or a file.")],
    audience: Annotated[str, typer.Option(help="Who is about to run it (the grant's aud).")],
    action: Annotated[str | None, typer.Option(help="The action about to run.")] = None,
    resource: Annotated[str | None, typer.Option(help="The resource about to be acted on.")] = None,
    args: Annotated[
        Path | None,
        typer.Option(
            help="JSON file with the arguments about to be used.", exists=True, dir_okay=False
        ),
    ] = None,
    understand: Annotated[
        list[str], typer.Option(help="An obligation this executor fulfils (repeatable).")
    ] = [],  # noqa: B006
    issuer: Annotated[str | None, typer.Option(help="Expected issuer.")] = None,
    leeway: Annotated[
        int, typer.Option(min=0, max=300, help="Clock leeway, seconds.")
    ] = DEFAULT_LEEWAY_SECONDS,
) -> None:
    """Exit 0 and print the claims if the grant allows exactly this; else name why (exit 3)."""
    grant = sys.stdin.read().strip() if token == "-" else token.strip()  # noqa: S105
    arguments = read_json_object(args) if args else None
    verified = verify(
        grant,
        _load_jwks(jwks),
        audience=audience,
        action=action,
        resource=resource,
        args=arguments,
        understood_obligations=understand,
        issuer=issuer,
        leeway=leeway,
    )
    echo_json(verified.claims)


def _load_jwks(source: str) -> dict[str, Any]:
    if source.startswith(("http://", "https://")):
        try:
            response = httpx.get(source, timeout=10)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise Unavailable(f"cannot fetch the JWKS from {source}: {exc}") from exc
        return dict(response.json())
    return read_json_object(Path(source))
