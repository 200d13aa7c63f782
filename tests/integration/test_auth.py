"""Who may call what (DESIGN.md §4): every route of the app, every role, and the token lifecycle."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from controlplane.api.app import create_app
from controlplane.config import Settings
from controlplane.tokens.roles import Role
from tests.support.stack import DEMO_INPUT, Stack

pytestmark = pytest.mark.integration

PUBLIC = {
    ("GET", "/.well-known/controlplane"),
    ("GET", "/.well-known/jwks.json"),
    ("POST", "/v1/authorize"),  # the signed execution request is the credential
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/v1/policies/verification-key"),
    ("GET", "/v1/ledger/checkpoint"),
    ("GET", "/v1/ledger/key"),
    ("GET", "/v1/ledger/proof/inclusion"),
    ("GET", "/v1/ledger/proof/consistency"),
}
# The table of DESIGN.md §4, written out independently of the code under test.
PROTECTED = {
    ("POST", "/v1/data/{path:path}"): {Role.SERVICE, Role.ADMIN},
    ("POST", "/v1/data"): {Role.SERVICE, Role.ADMIN},
    ("POST", "/v1/logs"): {Role.OPA},
    ("POST", "/v1/tokens"): {Role.ADMIN},
    ("GET", "/v1/tokens"): {Role.ADMIN},
    ("POST", "/v1/tokens/{token_id}/revoke"): {Role.ADMIN},
    ("POST", "/v1/identities"): {Role.ADMIN},
    ("GET", "/v1/identities"): {Role.ADMIN},
    ("GET", "/v1/identities/{identity_id}"): {Role.ADMIN},
    ("PATCH", "/v1/identities/{identity_id}"): {Role.ADMIN},
    ("POST", "/v1/identities/{identity_id}/suspend"): {Role.ADMIN},
    ("POST", "/v1/identities/{identity_id}/reactivate"): {Role.ADMIN},
    ("POST", "/v1/identities/{identity_id}/revoke"): {Role.ADMIN},
    ("POST", "/v1/identities/{identity_id}/keys"): {Role.ADMIN},
    ("POST", "/v1/identities/{identity_id}/keys/{kid}/revoke"): {Role.ADMIN},
    ("POST", "/v1/grants/{jti}/consume"): {Role.EXECUTOR, Role.SERVICE, Role.ADMIN},
    ("POST", "/v1/grants/{jti}/outcome"): {Role.EXECUTOR, Role.SERVICE, Role.ADMIN},
    ("GET", "/v1/grants/{jti}"): {Role.AUDITOR, Role.ADMIN},
    ("POST", "/v1/grant-keys/rotate"): {Role.ADMIN},
    ("POST", "/v1/policies"): {Role.POLICY_AUTHOR, Role.ADMIN},
    ("POST", "/v1/policies/verification-key/rotate"): {Role.ADMIN},
    ("GET", "/v1/policies"): {Role.POLICY_AUTHOR, Role.ADMIN},
    ("GET", "/v1/policies/{revision}"): {Role.POLICY_AUTHOR, Role.ADMIN},
    ("POST", "/v1/policies/{revision}/activate"): {Role.ADMIN},
    ("POST", "/v1/policies/rollback"): {Role.ADMIN},
    ("POST", "/v1/policies/{revision}/revoke"): {Role.ADMIN},
    ("GET", "/v1/bundles/{name:path}"): {Role.OPA, Role.ADMIN},
    ("POST", "/v1/status"): {Role.OPA},
    ("GET", "/v1/fleet"): {Role.SRE, Role.AUDITOR, Role.ADMIN},
    ("GET", "/v1/ledger/entries/{index}"): {Role.AUDITOR, Role.ADMIN},
    ("DELETE", "/v1/ledger/entries/{index}/payload"): {Role.ADMIN},
    ("GET", "/v1/ledger/decisions/{decision_id}"): {Role.AUDITOR, Role.ADMIN},
    ("GET", "/v1/ledger/reconcile"): {Role.AUDITOR, Role.ADMIN},
}
SAMPLE_PARAMS = {
    "path": "governance/execution/decision",
    "token_id": "0000000000000000",
    "identity_id": "agent:nobody-here",
    "kid": "k1",
    "jti": "00000000-0000-0000-0000-000000000000",
    "revision": "0" * 64,
    "name": "governance",
    "index": "0",
    "decision_id": "no-such-decision",
}


def app_routes() -> set[tuple[str, str]]:
    app = create_app(Settings())  # no I/O until the lifespan runs
    found = set()
    for route in iter_route_contexts(app.routes):  # included routers are resolved lazily
        for method in route.methods or ():
            if method != "HEAD" and route.path is not None:
                found.add((method, route.path))
    return found


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: SAMPLE_PARAMS[m.group(1)], path)


def test_every_route_is_classified() -> None:
    """A new route must be added to PUBLIC or PROTECTED: someone decided who may call it."""
    assert app_routes() == PUBLIC | set(PROTECTED)


@pytest.mark.parametrize(("method", "path"), sorted(PROTECTED))
def test_protected_route_refuses_missing_wrong_and_other_roles(
    stack: Stack, method: str, path: str
) -> None:
    url = stack.api.url + concrete(path)
    allowed = PROTECTED[(method, path)]
    body = {"input": DEMO_INPUT} if method == "POST" else None
    for headers in ({}, {"Authorization": "Bearer cp_wrong"}, {"Authorization": "Basic abc"}):
        response = httpx.request(method, url, json=body, headers=headers, timeout=10)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"].startswith("Bearer")
    for role in Role:
        response = httpx.request(
            method,
            url,
            json=body,
            headers={"Authorization": f"Bearer {stack.token(role)}"},
            timeout=10,
        )
        if role in allowed:
            assert response.status_code not in (401, 403), (role, response.text)
        else:
            assert response.status_code == 403, (role, response.text)
            assert response.json()["reason"] == "permission_denied"


# Public routes that answer something other than 200 to a bare request, and why.
PUBLIC_OTHER_STATUS = {
    ("GET", "/v1/ledger/checkpoint"): {200, 404},  # 404 while the log is empty
    ("GET", "/v1/ledger/proof/inclusion"): {422},  # index and size are required
    ("GET", "/v1/ledger/proof/consistency"): {422},  # from and to are required
}


@pytest.mark.parametrize(("method", "path"), sorted(PUBLIC))
def test_public_routes_need_no_token(stack: Stack, method: str, path: str) -> None:
    response = httpx.request(method, stack.api.url + path, timeout=10)
    if (method, path) in PUBLIC_OTHER_STATUS:
        assert response.status_code in PUBLIC_OTHER_STATUS[(method, path)], response.text
    elif method == "GET":
        assert response.status_code == 200
    else:  # /v1/authorize: the missing signed request is the problem, not a missing token
        assert response.status_code == 415


def test_token_lifecycle(stack: Stack) -> None:
    with stack.client(Role.ADMIN) as admin:
        created = admin.post("/v1/tokens", json={"role": "service", "name": "billing"})
        assert created.status_code == 201
        token, token_id = created.json()["token"], created.json()["id"]
        assert token.startswith("cp_")
        with httpx.Client(
            base_url=stack.api.url, headers={"Authorization": f"Bearer {token}"}
        ) as svc:
            assert stack.decide(svc).json()["result"]["allow"] is True
            listed = _all_tokens(admin)
            assert {"id": token_id, "role": "service", "name": "billing"}.items() <= listed[
                token_id
            ].items()
            assert "token" not in listed[token_id] and "digest" not in listed[token_id]
            revoked = admin.post(f"/v1/tokens/{token_id}/revoke")
            assert revoked.json()["revoked_at"] is not None
            time.sleep(0.3)  # the other cache entries of this API expire after 0.2 s
            refused = stack.decide(svc)
            assert refused.status_code == 401


def test_token_listing_is_paginated(stack: Stack) -> None:
    with stack.client(Role.ADMIN) as admin:
        for n in range(5):
            admin.post("/v1/tokens", json={"role": "executor", "name": f"page-{n}"})
        seen: list[str] = []
        cursor = None
        while True:
            page = admin.get(
                "/v1/tokens", params={"limit": 2, **({"cursor": cursor} if cursor else {})}
            ).json()
            assert len(page["items"]) <= 2
            seen += [item["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) >= 5
        assert admin.get("/v1/tokens", params={"limit": 0}).status_code == 422
        assert admin.get("/v1/tokens", params={"limit": 501}).status_code == 422


@pytest.mark.parametrize(
    "body",
    [
        {"role": "root", "name": "x"},
        {"role": "service", "name": ""},
        {"role": "service"},
        {"name": "x" * 200, "role": "sre"},
    ],
)
def test_bad_token_requests_are_problems(stack: Stack, body: dict[str, str]) -> None:
    with stack.client(Role.ADMIN) as admin:
        response = admin.post("/v1/tokens", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["reason"] == "invalid_request"


def test_revoking_an_unknown_token_is_404(stack: Stack) -> None:
    with stack.client(Role.ADMIN) as admin:
        response = admin.post("/v1/tokens/ffffffffffffffff/revoke")
    assert response.status_code == 404
    assert response.json()["reason"] == "token_not_found"


def test_token_cli(stack: Stack) -> None:
    env = {"CONTROLPLANE_URL": stack.api.url, "CONTROLPLANE_ADMIN_TOKEN": stack.admin_token}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "controlplane", "token", *args],
            capture_output=True,
            text=True,
            timeout=30,
            env={**_environ(), **env},
        )

    created = cli("create", "--role", "auditor", "--name", "cli auditor")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    token_id = re.search(r"id (\w+)", created.stderr).group(1)  # type: ignore[union-attr]
    assert token_id in cli("list").stdout
    revoked = cli("revoke", token_id)
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    missing = cli("revoke", "ffffffffffffffff")
    assert missing.returncode == 4
    assert missing.stderr.startswith("controlplane: 404")
    assert token.startswith("cp_")
    bad_admin = subprocess.run(
        [sys.executable, "-m", "controlplane", "token", "list"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**_environ(), **env, "CONTROLPLANE_ADMIN_TOKEN": "cp_not_the_admin"},
    )
    assert bad_admin.returncode == 3
    unreachable = subprocess.run(
        [sys.executable, "-m", "controlplane", "token", "list", "--url", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**_environ(), **env},
    )
    assert unreachable.returncode == 69
    assert "cannot reach the control plane" in unreachable.stderr


def _environ() -> dict[str, str]:
    return dict(os.environ)


def _all_tokens(admin: httpx.Client) -> dict[str, dict[str, object]]:
    found: dict[str, dict[str, object]] = {}
    cursor = None
    while True:
        page = admin.get(
            "/v1/tokens", params={"limit": 500, **({"cursor": cursor} if cursor else {})}
        ).json()
        found.update({item["id"]: item for item in page["items"]})
        cursor = page["next_cursor"]
        if cursor is None:
            return found
