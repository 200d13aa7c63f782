"""Options and helpers shared by the CLI's command groups."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from controlplane.errors import InvalidInput, NotAuthenticated

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
DEFAULT_URL = "http://127.0.0.1:8080"


def admin_token(given: str | None) -> str:
    """The admin token: given, else the one `controlplane up` keeps in its state directory."""
    if given:
        return given
    state_dir = Path(os.environ.get("CONTROLPLANE_STATE_DIR", ".controlplane"))
    kept = state_dir / "admin.token"
    if kept.is_file():
        return kept.read_text().strip()
    raise NotAuthenticated(
        "no admin token: pass --token, set CONTROLPLANE_ADMIN_TOKEN, or run `controlplane up` here"
    )


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in a file. Raises `InvalidInput` naming the file otherwise."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path} is not a JSON file: {exc}", code="invalid_json") from exc
    if not isinstance(value, dict):
        raise InvalidInput(f"{path} must hold a JSON object", code="invalid_json")
    return value


def echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=True))


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A `progress(done, total)` callback drawing a bar on stderr, opened at its first call
    (when the total is known) and closed with the `with` block."""
    with ExitStack() as stack:
        bar: list[Any] = []

        def progress(done: int, total: int) -> None:
            if not bar:
                stderr = typer.get_text_stream("stderr")
                bar.append(
                    stack.enter_context(typer.progressbar(length=total, label=label, file=stderr))
                )
            bar[0].update(done - bar[0].pos)

        yield progress
