"""`controlplane token`: bearer tokens for services, executors, OPA and people."""

from __future__ import annotations

from typing import Annotated

import typer

from controlplane.cli.api_client import ApiClient
from controlplane.cli.options import DEFAULT_URL, TokenOption, UrlOption, admin_token
from controlplane.tokens.roles import Role

app = typer.Typer(
    help="Bearer tokens for services, executors, OPA and people.", no_args_is_help=True
)


@app.command("create")
def create(
    role: Annotated[Role, typer.Option(help="Role the token carries.")],
    name: Annotated[str, typer.Option(help="Who or what will use it.")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Create a token and print it. The secret is shown only once."""
    with ApiClient(url, admin_token(token)) as api:
        created = api.call("POST", "/v1/tokens", json={"role": role.value, "name": name})
    typer.echo(created["token"])
    typer.echo(f"id {created['id']}  role {created['role']}  name {created['name']}", err=True)


@app.command("list")
def list_tokens(
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Tokens per page fetched.")] = 100,
) -> None:
    """List every token (id, role, name, created, revoked)."""
    with ApiClient(url, admin_token(token)) as api:
        typer.echo(f"{'ID':<18}{'ROLE':<15}{'CREATED':<29}{'REVOKED':<29}NAME")
        for item in api.pages("/v1/tokens", limit=limit):
            typer.echo(
                f"{item['id']:<18}{item['role']:<15}{item['created_at']:<29}"
                f"{item['revoked_at'] or '-':<29}{item['name']}"
            )


@app.command("revoke")
def revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id, as `token list` shows it.")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Revoke a token (other replicas stop accepting it within the token cache time)."""
    with ApiClient(url, admin_token(token)) as api:
        revoked = api.call("POST", f"/v1/tokens/{token_id}/revoke")
    typer.echo(f"revoked {revoked['id']} at {revoked['revoked_at']}")
