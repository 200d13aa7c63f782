"""Content-type checks shared by routes that take JSON."""

from __future__ import annotations

from fastapi import Request

from controlplane.errors import UnsupportedMediaType


def require_json(request: Request) -> None:
    """Refuse a body declared as anything but JSON (415).

    A request without a Content-Type is read as JSON, as OPA reads it.
    """
    declared = request.headers.get("content-type")
    if declared is None:
        return
    media = declared.split(";", 1)[0].strip().lower()
    if media != "application/json" and not (
        media.startswith("application/") and media.endswith("+json")
    ):
        raise UnsupportedMediaType(f"the body must be application/json, not {media!r}")
