"""The OPA decision client: one pooled aiohttp session per process, no retries, fail closed.

`decide` asks OPA's Data API (`POST /v1/data/{path}?provenance=true`, OPA docs `rest-api.md`) and
returns either an `OpaAnswer` (HTTP 200 with a JSON object body) or an `OpaFailure` naming the deny
reason. It never raises for anything OPA or the network does: every such outcome is a value the
caller must handle, which keeps "forgot to catch it" from ever becoming an allow.

Decisions are never retried: a retried POST would be a second evaluation with a second
`decision_id` in OPA's decision log. aiohttp rather than httpx carries this path because httpx's
pool measured 12 times slower as a proxy client here (`reference/performance.md`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp

from controlplane import jsontext
from controlplane.errors import InvalidInput
from controlplane.reasons import DenyReason

# OPA's answers are small; a bound keeps a confused upstream from filling our memory.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
# OPA's status carries all its Prometheus metrics (tens of KB): more than a decision's timeout.
_STATUS_TIMEOUT = aiohttp.ClientTimeout(total=5.0, sock_connect=1.0)
_JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class OpaAnswer:
    """OPA answered HTTP 200 with a JSON object: its `DataResponseV1` body."""

    body: dict[str, Any]

    @property
    def decision_id(self) -> str | None:
        value = self.body.get("decision_id")
        return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class OpaFailure:
    """No usable answer: the reason to deny with, and what OPA said if it said anything."""

    reason: DenyReason
    detail: str
    opa_code: str | None = None


@dataclass(frozen=True, slots=True)
class OpaHealth:
    ready: bool
    detail: str


class OpaDecisionClient:
    """Talks to one OPA server. Open it inside the event loop that will use it (the lifespan)."""

    def __init__(
        self,
        base_url: str,
        *,
        decision_timeout: float,
        connect_timeout: float,
        max_connections: int,
        token: str | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        # OPA runs with --authentication=token; its system.authz admits this token's digest.
        self._headers = {**_JSON, **({"Authorization": f"Bearer {token}"} if token else {})}
        self._timeout = aiohttp.ClientTimeout(total=decision_timeout, sock_connect=connect_timeout)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            # OPA is one host; idle connections are kept for reuse (keep-alive) and DNS is cached.
            limit_per_host=self._max_connections,
            ttl_dns_cache=300,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            json_serialize=lambda value: jsontext.dumps(value).decode(),
            auto_decompress=True,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def decide(
        self, path: str, body: bytes, *, metrics: bool = False
    ) -> OpaAnswer | OpaFailure:
        """Evaluate `data.<path>` with the given request body (`{"input": ...}`), once."""
        session = self._require_session()
        url = f"{self._base}/v1/data/{path}?provenance=true"
        if metrics:
            url += "&metrics=true"
        try:
            async with session.post(url, data=body, headers=self._headers) as response:
                raw = await _read_bounded(response)
                status = response.status
        except TimeoutError:
            return OpaFailure(DenyReason.OPA_TIMEOUT, "OPA did not answer within the timeout")
        except (aiohttp.ClientError, OSError) as exc:
            return OpaFailure(DenyReason.OPA_UNREACHABLE, f"OPA could not be reached: {exc!r}")
        except _ResponseTooLargeError:
            return OpaFailure(
                DenyReason.OPA_MALFORMED_RESULT, "OPA's answer is over the size limit"
            )
        return _interpret(status, raw)

    async def health(self) -> OpaHealth:
        """OPA's readiness: `GET /health?bundles&plugins` (OPA docs `rest-api.md`, Health API)."""
        session = self._require_session()
        try:
            async with session.get(f"{self._base}/health?bundles&plugins") as response:
                raw = await _read_bounded(response)
                if response.status == 200:
                    return OpaHealth(True, "ok")
                return OpaHealth(
                    False, f"OPA health {response.status}: {raw[:200].decode(errors='replace')}"
                )
        except TimeoutError:
            return OpaHealth(False, "OPA health check timed out")
        except (aiohttp.ClientError, OSError, _ResponseTooLargeError) as exc:
            return OpaHealth(False, f"OPA could not be reached: {exc!r}")

    async def active_revision(self, bundle: str) -> str | None:
        """The revision of `bundle` OPA has active, from its status API (`GET /v1/status`, OPA
        docs `rest-api.md`), which unlike a data query leaves no decision-log entry. None when
        OPA cannot say."""
        session = self._require_session()
        try:
            async with session.get(
                f"{self._base}/v1/status", headers=self._headers, timeout=_STATUS_TIMEOUT
            ) as response:
                raw = await _read_bounded(response)
                if response.status != 200:
                    return None
        except (TimeoutError, aiohttp.ClientError, OSError, _ResponseTooLargeError):
            return None
        try:
            status = jsontext.loads(raw)
        except InvalidInput:
            return None
        bundles = status.get("result", {}).get("bundles") if isinstance(status, dict) else None
        state = bundles.get(bundle) if isinstance(bundles, dict) else None
        revision = state.get("active_revision") if isinstance(state, dict) else None
        return revision if isinstance(revision, str) and revision else None

    def _require_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("OpaDecisionClient used before open()")
        return self._session


class _ResponseTooLargeError(Exception):
    pass


async def _read_bounded(response: aiohttp.ClientResponse) -> bytes:
    """The whole body, refusing more than MAX_RESPONSE_BYTES. (`StreamReader.read(n)` returns
    what is buffered, at most n bytes: a body of several TCP segments needs a loop.)"""
    body = bytearray()
    async for chunk in response.content.iter_any():
        body += chunk
        if len(body) > MAX_RESPONSE_BYTES:
            raise _ResponseTooLargeError
    return bytes(body)


def _interpret(status: int, raw: bytes) -> OpaAnswer | OpaFailure:
    try:
        body = jsontext.loads(raw)
    except InvalidInput:
        body = None
    if status != 200:
        code = body.get("code") if isinstance(body, dict) else None
        message = body.get("message") if isinstance(body, dict) else None
        errors = body.get("errors") if isinstance(body, dict) else None
        # A 500 from a conflict carries the specific code in errors[0] (eval_conflict_error).
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            code = errors[0].get("code", code)
            message = errors[0].get("message", message)
        return OpaFailure(
            DenyReason.OPA_ERROR,
            f"OPA answered HTTP {status}: {message or 'no message'}",
            opa_code=code if isinstance(code, str) else None,
        )
    if not isinstance(body, dict):
        return OpaFailure(DenyReason.OPA_MALFORMED_RESULT, "OPA answered 200 without a JSON object")
    return OpaAnswer(body)
