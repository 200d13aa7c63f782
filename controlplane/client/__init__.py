"""The agent and executor SDK: keys, signed execution requests, authorize, consume, outcome, and the
`governed` decorator that runs a function only with a valid grant for exactly its arguments.

Depends only on httpx, joserfc and rfc8785, so that it can be vendored into any agent runtime.

    key = AgentKey.generate()            # register key.public_jwk() with the identity (admin)
    client = ControlPlaneClient("http://127.0.0.1:8080", executor_token="cp_...")

    @governed(client, key, identity="agent:demo", action="demo.echo", resource="demo")
    def echo(**args): ...

    echo(message="hi")   # runs only if allowed; raises Denied(reasons) otherwise
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx
from joserfc.jwk import OKPKey
from nacl.signing import SigningKey

from controlplane.canonical import sha256_hex
from controlplane.errors import (
    ControlPlaneError,
    PermissionDenied,
    Unavailable,
    category_of_status,
)
from controlplane.grants.verify import PublishedKeys, VerifiedGrant, verify
from controlplane.jose import ed25519_signer, sign_compact

REQUEST_TYPE = "exec-request+jwt"
OUTCOME_TYPE = "outcome+jwt"
DEFAULT_LIFETIME_SECONDS = 30
F = TypeVar("F", bound=Callable[..., Any])


class Denied(PermissionDenied):
    """The control plane denied the request; `reasons` says why (stable codes first)."""

    default_code = "denied"
    title = "Denied"

    def __init__(self, reasons: list[str], decision_id: str | None) -> None:
        super().__init__(f"denied: {', '.join(reasons)}", code=reasons[0] if reasons else None)
        self.reasons = reasons
        self.decision_id = decision_id


@dataclass(frozen=True, slots=True)
class AgentKey:
    """An Ed25519 key of an identity (agent or executor). The private part never leaves here."""

    private: OKPKey
    kid: str
    signer: SigningKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "signer", ed25519_signer(self.private))

    @classmethod
    def generate(cls, kid: str | None = None) -> AgentKey:
        key = OKPKey.generate_key("Ed25519")
        return cls(key, kid or key.thumbprint())

    @classmethod
    def load(cls, path: Path) -> AgentKey:
        data = json.loads(path.read_text())
        return cls(OKPKey.import_key(data), str(data["kid"]))

    def save(self, path: Path) -> None:
        """Write the private JWK with mode 0600."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({**self.private.as_dict(private=True), "kid": self.kid}, handle)

    def public_jwk(self) -> dict[str, Any]:
        return {
            **self.private.as_dict(private=False),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        }

    def sign(self, typ: str, claims: dict[str, Any]) -> str:
        header = {"alg": "EdDSA", "kid": self.kid, "typ": typ}
        return sign_compact(
            header, json.dumps(claims, separators=(",", ":")).encode(), self.private
        )


def sign_request(
    key: AgentKey,
    *,
    identity: str,
    audience: str,
    action: str,
    resource: str,
    args: dict[str, Any],
    executor: str | None = None,
    context: dict[str, Any] | None = None,
    lifetime_seconds: int = DEFAULT_LIFETIME_SECONDS,
) -> str:
    """A signed execution request (DESIGN.md §5), good for `lifetime_seconds` and one use."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": identity,
        "aud": audience,
        "iat": now,
        "exp": now + lifetime_seconds,
        "jti": str(uuid.uuid4()),
        "action": action,
        "resource": resource,
        "args": args,
    }
    if executor is not None:
        claims["executor"] = executor
    if context is not None:
        claims["context"] = context
    return key.sign(REQUEST_TYPE, claims)


def sign_outcome(
    key: AgentKey, *, identity: str, grant: str, succeeded: bool, result: Any = None
) -> str:
    """The signed outcome of a grant, by the identity it was issued to."""
    claims: dict[str, Any] = {
        "iss": identity,
        "grant": grant,
        "status": "succeeded" if succeeded else "failed",
        "iat": int(time.time()),
    }
    if result is not None:
        claims["result_sha256"] = sha256_hex(result)
    return key.sign(OUTCOME_TYPE, claims)


@dataclass(frozen=True, slots=True)
class AuthorizeResult:
    decision: str
    reasons: list[str]
    decision_id: str | None
    grant: str | None

    @property
    def allowed(self) -> bool:
        return self.decision == "allow" and self.grant is not None


class ControlPlaneClient:
    """Synchronous client. `executor_token` (role executor or service) is needed to consume
    grants and report outcomes; authorizing needs no token, only a signed request."""

    def __init__(
        self, base_url: str, *, executor_token: str | None = None, timeout: float = 10.0
    ) -> None:
        headers = {"Authorization": f"Bearer {executor_token}"} if executor_token else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)
        self._discovery: dict[str, Any] | None = None
        self._jwks: PublishedKeys | None = None

    def __enter__(self) -> ControlPlaneClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def discovery(self) -> dict[str, Any]:
        if self._discovery is None:
            self._discovery = _json(self._send("GET", "/.well-known/controlplane"))
        return self._discovery

    def jwks(self, *, refresh: bool = False) -> PublishedKeys:
        if self._jwks is None or refresh:
            self._jwks = PublishedKeys.from_jwks(_json(self._send("GET", "/.well-known/jwks.json")))
        return self._jwks

    def authorize(self, signed_request: str) -> AuthorizeResult:
        response = self._send(
            "POST",
            "/v1/authorize",
            content=signed_request,
            headers={"Content-Type": "application/jwt"},
        )
        return _result(_json(response))

    def verify_grant(self, grant: str, **expected: Any) -> VerifiedGrant:
        """Verify offline against the cached JWKS (re-fetched once for an unknown key)."""
        try:
            return verify(grant, self.jwks(), **expected)
        except PermissionDenied as exc:
            if exc.code != "key_unknown":
                raise
            return verify(grant, self.jwks(refresh=True), **expected)

    def consume(self, jti: str) -> dict[str, Any]:
        return _json(self._send("POST", f"/v1/grants/{jti}/consume", json={}))

    def report_outcome(self, jti: str, signed_outcome: str) -> dict[str, Any]:
        response = self._send(
            "POST",
            f"/v1/grants/{jti}/outcome",
            content=signed_outcome,
            headers={"Content-Type": "application/jwt"},
        )
        return _json(response)

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise Unavailable(f"cannot reach the control plane: {exc}") from exc
        _raise_for_problem(response)
        return response


class AsyncControlPlaneClient:
    """The asynchronous twin of `ControlPlaneClient`."""

    def __init__(
        self, base_url: str, *, executor_token: str | None = None, timeout: float = 10.0
    ) -> None:
        headers = {"Authorization": f"Bearer {executor_token}"} if executor_token else {}
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout
        )
        self._discovery: dict[str, Any] | None = None
        self._jwks: PublishedKeys | None = None

    async def __aenter__(self) -> AsyncControlPlaneClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def discovery(self) -> dict[str, Any]:
        if self._discovery is None:
            self._discovery = _json(await self._send("GET", "/.well-known/controlplane"))
        return self._discovery

    async def jwks(self, *, refresh: bool = False) -> PublishedKeys:
        if self._jwks is None or refresh:
            self._jwks = PublishedKeys.from_jwks(
                _json(await self._send("GET", "/.well-known/jwks.json"))
            )
        return self._jwks

    async def authorize(self, signed_request: str) -> AuthorizeResult:
        response = await self._send(
            "POST",
            "/v1/authorize",
            content=signed_request,
            headers={"Content-Type": "application/jwt"},
        )
        return _result(_json(response))

    async def verify_grant(self, grant: str, **expected: Any) -> VerifiedGrant:
        try:
            return verify(grant, await self.jwks(), **expected)
        except PermissionDenied as exc:
            if exc.code != "key_unknown":
                raise
            return verify(grant, await self.jwks(refresh=True), **expected)

    async def consume(self, jti: str) -> dict[str, Any]:
        return _json(await self._send("POST", f"/v1/grants/{jti}/consume", json={}))

    async def report_outcome(self, jti: str, signed_outcome: str) -> dict[str, Any]:
        response = await self._send(
            "POST",
            f"/v1/grants/{jti}/outcome",
            content=signed_outcome,
            headers={"Content-Type": "application/jwt"},
        )
        return _json(response)

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise Unavailable(f"cannot reach the control plane: {exc}") from exc
        _raise_for_problem(response)
        return response


def governed(
    client: ControlPlaneClient | AsyncControlPlaneClient,
    key: AgentKey,
    *,
    identity: str,
    action: str,
    resource: str,
    executor: str | None = None,
    executor_key: AgentKey | None = None,
    understood_obligations: tuple[str, ...] = (),
) -> Callable[[F], F]:
    """Run the decorated function only with a grant for exactly its keyword arguments.

    Each call signs a request (`args` = the keyword arguments), authorizes it (raising `Denied`
    with the reasons on a deny), verifies the grant offline for this executor, action, resource
    and arguments, consumes it, runs the function, and reports the signed outcome (`failed` if it
    raised, and the exception goes on). `executor`/`executor_key` name the identity that runs it;
    by default the agent runs it itself.
    """
    runner, runner_key = (executor, executor_key or key) if executor else (identity, key)

    def request(audience: str, args: dict[str, Any]) -> str:
        return sign_request(
            key, identity=identity, audience=audience, action=action,
            resource=resource, args=args, executor=executor,
        )  # fmt: skip

    def expected(args: dict[str, Any]) -> dict[str, Any]:
        return {
            "audience": runner, "action": action, "resource": resource, "args": args,
            "understood_obligations": understood_obligations,
        }  # fmt: skip

    def outcome(jti: str, succeeded: bool, value: Any = None) -> str:
        result = _jsonable(value) if succeeded else None
        return sign_outcome(
            runner_key, identity=runner, grant=jti, succeeded=succeeded, result=result
        )

    def decorate(function: F) -> F:
        if isinstance(client, AsyncControlPlaneClient):
            if not inspect.iscoroutinefunction(function):
                raise TypeError("an AsyncControlPlaneClient governs async functions")

            @functools.wraps(function)
            async def run_async(*positional: Any, **args: Any) -> Any:
                _keywords_only(positional)
                audience = (await client.discovery())["audience"]
                grant = _granted(await client.authorize(request(audience, args)))
                jti = (await client.verify_grant(grant, **expected(args))).jti
                await client.consume(jti)
                try:
                    value = await cast(Callable[..., Awaitable[Any]], function)(**args)
                except Exception:
                    await client.report_outcome(jti, outcome(jti, succeeded=False))
                    raise
                await client.report_outcome(jti, outcome(jti, succeeded=True, value=value))
                return value

            return cast(F, run_async)

        if not isinstance(client, ControlPlaneClient):
            raise TypeError("a ControlPlaneClient governs plain functions")

        @functools.wraps(function)
        def run(*positional: Any, **args: Any) -> Any:
            _keywords_only(positional)
            grant = _granted(client.authorize(request(client.discovery()["audience"], args)))
            jti = client.verify_grant(grant, **expected(args)).jti
            client.consume(jti)
            try:
                value = function(**args)
            except Exception:
                client.report_outcome(jti, outcome(jti, succeeded=False))
                raise
            client.report_outcome(jti, outcome(jti, succeeded=True, value=value))
            return value

        return cast(F, run)

    return decorate


def _keywords_only(positional: tuple[Any, ...]) -> None:
    if positional:
        raise TypeError("governed functions take keyword arguments only (they are signed)")


def _granted(result: AuthorizeResult) -> str:
    if not result.allowed or result.grant is None:
        raise Denied(result.reasons, result.decision_id)
    return result.grant


def _jsonable(value: Any) -> Any:
    """The result as hashed into the outcome: JSON values as they are, anything else as text."""
    try:
        sha256_hex(value)
    except ControlPlaneError:
        return repr(value)
    return value


def _result(body: dict[str, Any]) -> AuthorizeResult:
    return AuthorizeResult(
        body["decision"], list(body["reasons"]), body.get("decision_id"), body.get("grant")
    )


def _json(response: httpx.Response) -> dict[str, Any]:
    return dict(response.json())


def error_from_response(response: httpx.Response) -> ControlPlaneError:
    """The `ControlPlaneError` a problem+json answer stands for, with its `reason` as code."""
    try:
        problem = response.json()
    except ValueError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    detail = problem.get("detail") or response.text[:200] or response.reason_phrase
    cls = category_of_status(response.status_code)
    return cls(f"{response.status_code}: {detail}", code=problem.get("reason"))


def _raise_for_problem(response: httpx.Response) -> None:
    if response.status_code >= 400:
        raise error_from_response(response)
