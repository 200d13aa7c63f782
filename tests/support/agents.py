"""Agents for the tests: registered identities with keys, and execution requests of every shape,
including the malformed, mistyped, mis-signed and stale ones a real attacker would send."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from typing import Any

import httpx

from controlplane.client import AgentKey
from controlplane.jose import sign_compact
from controlplane.tokens.roles import Role
from tests.support.stack import Stack


def register(
    stack: Stack, kind: str = "agent", *, attributes: dict[str, Any] | None = None
) -> tuple[str, AgentKey]:
    """A new identity of `kind` with one fresh key."""
    identity = f"{kind}:test-{secrets.token_hex(5)}"
    key = AgentKey.generate()
    with stack.client(Role.ADMIN) as admin:
        response = admin.post(
            "/v1/identities",
            json={
                "id": identity,
                "kind": kind,
                "attributes": attributes or {},
                "keys": [key.public_jwk()],
            },
        )
    assert response.status_code == 201, response.text
    return identity, key


def claims(stack: Stack, identity: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": identity,
        "aud": stack.api.url,
        "iat": now,
        "exp": now + 30,
        "jti": str(uuid.uuid4()),
        "action": "demo.echo",
        "resource": "demo",
        "args": {"message": "hello"},
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def signed(key: AgentKey, body: dict[str, Any], **header: Any) -> str:
    """`body` signed with `key`; header fields can be overridden (`typ`, `kid`, `alg`)."""
    protected = {"alg": "EdDSA", "kid": key.kid, "typ": "exec-request+jwt", **header}
    return sign_compact(protected, json.dumps(body).encode(), key.private)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_with_public_key(key: AgentKey, body: dict[str, Any]) -> str:
    """The classic confusion attack: HMAC over the token with the public key as the secret."""
    header = b64(json.dumps({"alg": "HS256", "kid": key.kid, "typ": "exec-request+jwt"}).encode())
    payload = b64(json.dumps(body).encode())
    secret = key.public_jwk()["x"].encode()
    mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(mac)}"


def unsigned(key: AgentKey, body: dict[str, Any]) -> str:
    header = b64(json.dumps({"alg": "none", "kid": key.kid, "typ": "exec-request+jwt"}).encode())
    return f"{header}.{b64(json.dumps(body).encode())}."


def authorize(stack: Stack, token: str) -> dict[str, Any]:
    response = httpx.post(
        f"{stack.api.url}/v1/authorize",
        content=token,
        headers={"Content-Type": "application/jwt"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())
