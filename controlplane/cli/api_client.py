"""A small httpx client the CLI uses to call the control plane's admin API.

Problem+json answers are turned back into the error categories of `errors.py` (by the SDK's
`error_from_response`), so that the CLI maps them to exit codes in the one place it maps errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from controlplane.client import error_from_response
from controlplane.errors import Unavailable


class ApiClient:
    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0) -> None:
        self._base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self._base_url,
            # Public routes take no token (`keys jwks`, `ledger checkpoint`).
            headers={"Authorization": f"Bearer {token}"} if token else {},
            timeout=timeout,
        )

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_: object) -> None:
        self._http.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        try:
            response = self._http.request(
                method, path, json=json, params=params, content=content, headers=headers
            )
        except httpx.HTTPError as exc:
            raise Unavailable(f"cannot reach the control plane at {self._base_url}: {exc}") from exc
        if response.status_code >= 400:
            raise error_from_response(response)
        return response.json()

    def text(self, method: str, path: str) -> str:
        """A text/plain answer (signed notes, keys)."""
        try:
            response = self._http.request(method, path)
        except httpx.HTTPError as exc:
            raise Unavailable(f"cannot reach the control plane at {self._base_url}: {exc}") from exc
        if response.status_code >= 400:
            raise error_from_response(response)
        return response.text

    def pages(self, path: str, *, limit: int, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a paginated listing (`items`, `next_cursor`), page after page."""
        cursor = None
        while True:
            query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
            page = self.call("GET", path, params=query)
            yield from page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return
