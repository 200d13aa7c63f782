"""A small httpx client the CLI uses to call the control plane's admin API.

Problem+json answers are turned back into the error categories of `errors.py`, so that the CLI
maps them to exit codes in the one place it maps every error.
"""

from __future__ import annotations

from typing import Any

import httpx

from controlplane.errors import (
    Conflict,
    ControlPlaneError,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    Unavailable,
)

_BY_STATUS: dict[int, type[ControlPlaneError]] = {
    400: InvalidInput,
    401: NotAuthenticated,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: InvalidInput,
    415: InvalidInput,
    422: InvalidInput,
    503: Unavailable,
}


class ApiClient:
    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0) -> None:
        self._base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self._base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_: object) -> None:
        self._http.close()

    def call(self, method: str, path: str, *, json: Any = None, params: Any = None) -> Any:
        try:
            response = self._http.request(method, path, json=json, params=params)
        except httpx.HTTPError as exc:
            raise Unavailable(f"cannot reach the control plane at {self._base_url}: {exc}") from exc
        if response.status_code >= 400:
            raise _error_from(response)
        return response.json()


def _error_from(response: httpx.Response) -> ControlPlaneError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    detail = body.get("detail") or response.text[:200] or response.reason_phrase
    cls = _BY_STATUS.get(response.status_code, ControlPlaneError)
    return cls(f"{response.status_code}: {detail}", code=body.get("reason"))
