"""`controlplane identity`: the identity registry (needs the admin token)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from controlplane.cli.api_client import ApiClient
from controlplane.cli.options import (
    DEFAULT_URL,
    TokenOption,
    UrlOption,
    admin_token,
    echo_json,
    read_json_object,
)
from controlplane.errors import InvalidInput
from controlplane.identities.models import IdentityKind, check_identity_id

app = typer.Typer(
    help="Agents, services, executors and humans, and their keys.", no_args_is_help=True
)
KeyFiles = Annotated[
    list[Path],
    typer.Option(
        "--key",
        help="A JWK file (public, or private: only the public part is sent).",
        exists=True,
        dir_okay=False,
    ),
]
Reason = Annotated[str | None, typer.Option(help="Why, for the record.")]


@app.command("create")
def create(
    identity_id: Annotated[
        str, typer.Argument(metavar="ID", help="<kind>:<name>, e.g. agent:billing-bot")
    ],
    key: KeyFiles = [],  # noqa: B006 (typer's way of saying "none by default")
    attr: Annotated[
        list[str], typer.Option(help="An attribute, key=value (value parsed as JSON if it can be).")
    ] = [],  # noqa: B006
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Register an identity; its kind is the prefix of its id."""
    kind = check_identity_id(identity_id)
    body = {
        "id": identity_id,
        "kind": kind.value,
        "attributes": dict(_attribute(a) for a in attr),
        "keys": [_public_jwk(path) for path in key],
    }
    with ApiClient(url, admin_token(token)) as api:
        echo_json(api.call("POST", "/v1/identities", json=body))


@app.command("list")
def list_identities(
    kind: Annotated[IdentityKind | None, typer.Option(help="Only this kind.")] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """List identities (id, kind, status, active keys)."""
    params = {"kind": kind.value} if kind else {}
    with ApiClient(url, admin_token(token)) as api:
        typer.echo(f"{'ID':<40}{'KIND':<10}{'STATUS':<11}KEYS")
        for item in api.pages("/v1/identities", limit=200, **params):
            active = [k["kid"] for k in item["keys"] if k["status"] == "active"]
            typer.echo(
                f"{item['id']:<40}{item['kind']:<10}{item['status']:<11}{','.join(active) or '-'}"
            )


@app.command("show")
def show(
    identity_id: Annotated[str, typer.Argument(metavar="ID")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Print one identity as JSON."""
    with ApiClient(url, admin_token(token)) as api:
        echo_json(api.call("GET", f"/v1/identities/{identity_id}"))


@app.command("suspend")
def suspend(
    identity_id: Annotated[str, typer.Argument(metavar="ID")],
    reason: Reason = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Suspend: every request is denied (identity_suspended) until reactivated."""
    _status(identity_id, "suspend", reason, url, token)


@app.command("reactivate")
def reactivate(
    identity_id: Annotated[str, typer.Argument(metavar="ID")],
    reason: Reason = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Reactivate a suspended identity (a revoked one stays revoked)."""
    _status(identity_id, "reactivate", reason, url, token)


@app.command("revoke")
def revoke(
    identity_id: Annotated[str, typer.Argument(metavar="ID")],
    reason: Reason = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Revoke for good: every request is denied (identity_revoked)."""
    _status(identity_id, "revoke", reason, url, token)


@app.command("add-key")
def add_key(
    identity_id: Annotated[str, typer.Argument(metavar="ID")],
    key: Annotated[Path, typer.Option("--key", exists=True, dir_okay=False)],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Add an Ed25519 key (for rotation: add the new one, then revoke the old)."""
    with ApiClient(url, admin_token(token)) as api:
        echo_json(api.call("POST", f"/v1/identities/{identity_id}/keys", json=_public_jwk(key)))


@app.command("revoke-key")
def revoke_key(
    identity_id: Annotated[str, typer.Argument(metavar="ID")],
    kid: Annotated[str, typer.Argument(metavar="KID")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Revoke one key: requests signed with it are denied (key_revoked)."""
    with ApiClient(url, admin_token(token)) as api:
        echo_json(api.call("POST", f"/v1/identities/{identity_id}/keys/{kid}/revoke"))


def _status(identity_id: str, action: str, reason: str | None, url: str, token: str | None) -> None:
    with ApiClient(url, admin_token(token)) as api:
        echo_json(
            api.call("POST", f"/v1/identities/{identity_id}/{action}", json={"reason": reason})
        )


def _attribute(text: str) -> tuple[str, Any]:
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise InvalidInput(f"--attr takes key=value, not {text!r}", code="invalid_attribute")
    try:
        return name, json.loads(raw)
    except ValueError:
        return name, raw


def _public_jwk(path: Path) -> dict[str, Any]:
    # A private JWK file is fine: only its public members are sent.
    return {k: v for k, v in read_json_object(path).items() if k != "d"}
