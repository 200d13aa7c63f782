"""The identity registry: validation (422), pagination, status changes, keys, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from controlplane.client import AgentKey
from controlplane.tokens.roles import Role
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


def jwk() -> dict[str, Any]:
    return AgentKey.generate().public_jwk()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"id": "agent", "kind": "agent"}, "invalid_identity_id"),
        ({"id": "agent:has space", "kind": "agent"}, "invalid_identity_id"),
        ({"id": "service:x", "kind": "agent"}, "invalid_identity_id"),
        ({"id": "agent:" + "x" * 129, "kind": "agent"}, "invalid_identity_id"),
        ({"id": "agent:a", "kind": "agent", "keys": [{**jwk(), "d": "secret"}]}, "invalid_jwk"),
        ({"id": "agent:a", "kind": "agent", "keys": [{**jwk(), "crv": "P-256"}]}, "invalid_jwk"),
        ({"id": "agent:a", "kind": "agent", "keys": [{**jwk(), "x": "short"}]}, "invalid_jwk"),
        (
            {
                "id": "agent:a",
                "kind": "agent",
                "keys": [{k: v for k, v in jwk().items() if k != "kid"}],
            },
            "invalid_jwk",
        ),
        ({"id": "agent:a", "kind": "agent", "keys": [{**jwk(), "alg": "RS256"}]}, "invalid_jwk"),
        (
            {
                "id": "agent:a",
                "kind": "agent",
                "keys": [{**jwk(), "kid": "k"}, {**jwk(), "kid": "k"}],
            },
            "duplicate_kid",
        ),
        (
            {"id": "agent:a", "kind": "agent", "attributes": {"big": "x" * 20000}},
            "invalid_attributes",
        ),
        ({"id": "agent:a", "kind": "robot"}, "invalid_request"),
        ({"id": "agent:a", "kind": "agent", "attributes": []}, "invalid_request"),
    ],
)
def test_invalid_identities_are_422(stack: Stack, body: dict[str, Any], reason: str) -> None:
    with stack.client(Role.ADMIN) as admin:
        response = admin.post("/v1/identities", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["reason"] == reason


def test_identity_lifecycle(stack: Stack) -> None:
    first, second = jwk(), jwk()
    with stack.client(Role.ADMIN) as admin:
        created = admin.post(
            "/v1/identities",
            json={
                "id": "human:ada",
                "kind": "human",
                "attributes": {"team": "audit"},
                "keys": [first],
            },
        )
        assert created.status_code == 201
        assert created.json()["status"] == "active"
        assert (
            admin.post("/v1/identities", json={"id": "human:ada", "kind": "human"}).status_code
            == 409
        )
        patched = admin.patch(
            "/v1/identities/human:ada", json={"attributes": {"team": "ops", "level": 2}}
        )
        assert patched.json()["attributes"] == {"team": "ops", "level": 2}
        added = admin.post("/v1/identities/human:ada/keys", json=second)
        assert [k["kid"] for k in added.json()["keys"]] == [first["kid"], second["kid"]]
        assert (
            admin.post("/v1/identities/human:ada/keys", json=second).json()["reason"]
            == "duplicate_kid"
        )
        revoked_key = admin.post(f"/v1/identities/human:ada/keys/{first['kid']}/revoke").json()
        assert [k["status"] for k in revoked_key["keys"]] == ["revoked", "active"]
        assert admin.post("/v1/identities/human:ada/keys/nope/revoke").status_code == 404
        suspended = admin.post(
            "/v1/identities/human:ada/suspend", json={"reason": "on leave"}
        ).json()
        assert (suspended["status"], suspended["status_reason"]) == ("suspended", "on leave")
        assert admin.post("/v1/identities/human:ada/reactivate").json()["status"] == "active"
        assert admin.post("/v1/identities/human:ada/revoke").json()["status"] == "revoked"
        final = admin.post("/v1/identities/human:ada/reactivate")
        assert final.status_code == 409
        assert final.json()["reason"] == "identity_revoked"
        assert admin.get("/v1/identities/human:nobody").status_code == 404


def test_identities_are_paginated_and_filtered_by_kind(stack: Stack) -> None:
    with stack.client(Role.ADMIN) as admin:
        for n in range(5):
            admin.post("/v1/identities", json={"id": f"executor:page-{n}", "kind": "executor"})
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 2, "kind": "executor"}
            if cursor:
                params["cursor"] = cursor
            page = admin.get("/v1/identities", params=params).json()
            assert len(page["items"]) <= 2
            seen += [item["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert all(i.startswith("executor:") for i in seen)
    assert {f"executor:page-{n}" for n in range(5)} <= set(seen)
    assert seen == sorted(seen) and len(seen) == len(set(seen))


def test_identity_cli(stack: Stack, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CONTROLPLANE_URL": stack.api.url,
        "CONTROLPLANE_ADMIN_TOKEN": stack.admin_token,
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "controlplane", *args],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
        )

    key_file = tmp_path / "agent.jwk"
    generated = cli("keys", "agent", "--out", str(key_file), "--kid", "cli-1")
    assert generated.returncode == 0, generated.stderr
    assert json.loads(generated.stdout)["kid"] == "cli-1" and "d" not in json.loads(
        generated.stdout
    )
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert cli("keys", "agent", "--out", str(key_file)).returncode == 5  # will not overwrite

    created = cli(
        "identity",
        "create",
        "agent:cli-bot",
        "--key",
        str(key_file),
        "--attr",
        "team=billing",
        "--attr",
        "tier=2",
    )
    assert created.returncode == 0, created.stderr
    body = json.loads(created.stdout)
    assert body["attributes"] == {"team": "billing", "tier": 2}
    assert body["keys"][0]["jwk"].get("d") is None
    assert "agent:cli-bot" in cli("identity", "list", "--kind", "agent").stdout
    assert cli("identity", "suspend", "agent:cli-bot", "--reason", "test").returncode == 0
    assert json.loads(cli("identity", "show", "agent:cli-bot").stdout)["status"] == "suspended"
    assert cli("identity", "revoke-key", "agent:cli-bot", "cli-1").returncode == 0
    bad = cli("identity", "create", "robot:x")
    assert bad.returncode == 2 and bad.stderr.startswith("controlplane:")
    assert cli("identity", "show", "agent:missing").returncode == 4
