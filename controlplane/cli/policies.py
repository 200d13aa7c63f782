"""`controlplane policy`: the policy author's and the admin's commands.

`test` and `build` work offline on a folder of Rego (they need only the OPA binary); `publish`
sends a bundle to the control plane, which checks and signs it; `activate`, `rollback` and
`revoke` are admin actions with a reason; `list` shows the revisions and `status` the OPA fleet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from controlplane.cli.api_client import ApiClient
from controlplane.cli.options import DEFAULT_URL, TokenOption, UrlOption, admin_token, echo_json
from controlplane.config import load_settings
from controlplane.errors import InvalidInput
from controlplane.policies import bundle
from controlplane.policies.signing import BundleSigner, keyid_of, load_private_pem

app = typer.Typer(
    help="Policies: test, build, publish, activate, roll back, revoke.", no_args_is_help=True
)
DEFAULT_TEMPLATE = Path("bundles/governance")
Reason = Annotated[str, typer.Option(help="Why, for the record (required).")]
PolicyDir = Annotated[
    Path, typer.Argument(metavar="DIR", exists=True, file_okay=False, help="A folder of Rego.")
]


@app.command("test")
def run_tests(
    policy_dir: PolicyDir,
    coverage: Annotated[float, typer.Option(help="Minimum test coverage, in %.")] = 90.0,
) -> None:
    """opa fmt, opa check --strict (with the input schema), opa test with coverage."""
    from controlplane.policies.authoring import test_policies  # noqa: PLC0415 (needs only opa)

    report = test_policies(
        policy_dir, opa=load_settings().resolve_opa_bin(), coverage_threshold=coverage
    )
    typer.echo(report.render())
    if not report.ok:
        raise typer.Exit(1)


@app.command("build")
def build(
    policy_dir: PolicyDir,
    out: Annotated[Path, typer.Option("--out", help="Where to write the bundle (tar.gz).")],
    template: Annotated[
        Path, typer.Option(help="Folder whose .manifest gives roots and metadata.")
    ] = DEFAULT_TEMPLATE,
    signing_key: Annotated[
        Path | None,
        typer.Option(
            help="PEM P-256 private key to sign with (else unsigned: the server signs).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    scope: Annotated[str, typer.Option(help="Signature scope, with --signing-key.")] = "governance",
) -> None:
    """Build an OPA bundle; the same folder (and key) always gives the same bytes."""
    manifest = bundle.read_manifest_template(
        template if (template / ".manifest").is_file() else policy_dir
    )
    signer = None
    if signing_key is not None:
        private = load_private_pem(signing_key.read_bytes())
        signer = BundleSigner(private, keyid_of(private.public_key()), scope)
    built = bundle.build(
        bundle.collect(policy_dir),
        roots=manifest["roots"],
        metadata=manifest.get("metadata", {}),
        signer=signer,
    )
    out.write_bytes(built.data)
    typer.echo(f"{out}: revision {built.revision}, {len(built.data)} bytes, sha256 {built.digest}")


@app.command("publish")
def publish(
    source: Annotated[
        Path, typer.Argument(metavar="FILE|DIR", exists=True, help="A bundle or a folder.")
    ],
    template: Annotated[
        Path, typer.Option(help="With a folder: where .manifest is.")
    ] = DEFAULT_TEMPLATE,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Send a bundle (or a folder, built first) to be checked, signed and stored."""
    if source.is_dir():
        manifest = bundle.read_manifest_template(
            template if (template / ".manifest").is_file() else source
        )
        data = bundle.build(
            bundle.collect(source),
            roots=manifest["roots"],
            metadata=manifest.get("metadata", {}),
            signer=None,
        ).data
    else:
        data = source.read_bytes()
    with ApiClient(url, admin_token(token), timeout=120) as api:
        echo_json(
            api.call(
                "POST", "/v1/policies", content=data, headers={"Content-Type": "application/gzip"}
            )
        )


@app.command("activate")
def activate(
    revision: str, reason: Reason, url: UrlOption = DEFAULT_URL, token: TokenOption = None
) -> None:
    """Make REVISION the one every OPA runs."""
    with ApiClient(url, admin_token(token)) as api:
        echo_json(
            api.call(
                "POST", f"/v1/policies/{_revision(revision)}/activate", json={"reason": reason}
            )
        )


@app.command("rollback")
def rollback(reason: Reason, url: UrlOption = DEFAULT_URL, token: TokenOption = None) -> None:
    """Activate the revision that was active before the current one."""
    with ApiClient(url, admin_token(token)) as api:
        echo_json(api.call("POST", "/v1/policies/rollback", json={"reason": reason}))


@app.command("revoke")
def revoke(
    revision: str, reason: Reason, url: UrlOption = DEFAULT_URL, token: TokenOption = None
) -> None:
    """Revoke REVISION for good: never served again, its decisions denied."""
    with ApiClient(url, admin_token(token)) as api:
        echo_json(
            api.call("POST", f"/v1/policies/{_revision(revision)}/revoke", json={"reason": reason})
        )


@app.command("rotate-key")
def rotate_key(reason: Reason, url: UrlOption = DEFAULT_URL, token: TokenOption = None) -> None:
    """Sign bundles with a new key from now on (stored revisions are re-signed, same ids);
    then roll every OPA with the new key id (docs/policies.md)."""
    with ApiClient(url, admin_token(token), timeout=120) as api:
        echo_json(api.call("POST", "/v1/policies/verification-key/rotate", json={"reason": reason}))


@app.command("list")
def list_revisions(url: UrlOption = DEFAULT_URL, token: TokenOption = None) -> None:
    """The published revisions, newest first."""
    with ApiClient(url, admin_token(token)) as api:
        listing = api.call("GET", "/v1/policies")
    rows = [
        [meta["revision"][:16], meta["status"], meta["published_at"], meta["published_by"]]
        for meta in listing["revisions"]
    ]
    _table(["REVISION", "STATUS", "PUBLISHED", "BY"], rows)


@app.command("status")
def status(url: UrlOption = DEFAULT_URL, token: TokenOption = None) -> None:
    """The OPA fleet: which revision each OPA runs, its errors, when it last reported."""
    with ApiClient(url, admin_token(token)) as api:
        fleet = api.call("GET", "/v1/fleet")
    active = fleet["active_revision"]
    typer.echo(f"active revision: {active or '(none)'}")
    rows = []
    for opa in fleet["instances"]:
        state = opa["bundles"].get(fleet["bundle"], {})
        running = state.get("active_revision") or "-"
        problems = [state.get("code"), opa["decision_logs"].get("code")]
        problems += [f"{n}:{s}" for n, s in opa["plugins"].items() if s != "OK"]
        problems += [f"{n}={v}" for n, v in opa["decision_logs_dropped"].items() if v]
        rows.append(
            [
                opa["labels"].get("instance") or opa["id"],
                running[:16],
                "yes" if opa["current"] else "NO",
                f"{opa['seconds_since_report']:.0f}s ago",
                ", ".join(p for p in problems if p) or "-",
            ]
        )
    _table(["OPA", "REVISION", "CURRENT", "LAST REPORT", "PROBLEMS"], rows)


def _revision(value: str) -> str:
    if not value or len(value) > 128 or not all(c.isalnum() or c in "-_." for c in value):
        raise InvalidInput(f"{value!r} is not a revision")
    return value


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]
    for row in [header, *rows]:
        typer.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
