"""Grants after issuance: independent verification with PyJWT, the executor CLI, key rotation,
single consumption under concurrency, signed outcomes, and the SDK example end to end."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import jwt as pyjwt
import pytest
import rfc8785

from controlplane.client import AgentKey, AsyncControlPlaneClient, Denied, governed, sign_outcome
from controlplane.grants.verify import GrantRejectedError, verify
from controlplane.tokens.roles import Role
from tests.support.agents import authorize, claims, register, signed
from tests.support.processes import KEY_PASSPHRASE, REPO
from tests.support.stack import Stack, StackFactory

pytestmark = pytest.mark.integration


def grant_for(stack: Stack, **overrides: Any) -> tuple[str, str, AgentKey, dict[str, Any]]:
    """(grant, requester id, requester key, request claims) for an allowed request."""
    identity, key = register(stack)
    body = claims(stack, identity, **overrides)
    answer = authorize(stack, signed(key, body))
    assert answer["decision"] == "allow", answer
    return answer["grant"], identity, key, body


def jwks(stack: Stack) -> dict[str, Any]:
    return dict(httpx.get(f"{stack.api.url}/.well-known/jwks.json").json())


def test_pyjwt_verifies_a_grant_with_only_the_jwks(stack: Stack) -> None:
    grant, identity, _, body = grant_for(stack, args={"message": "hi", "n": 3})
    header = pyjwt.get_unverified_header(grant)
    assert header["typ"] == "grant+jwt" and header["alg"] == "EdDSA"
    key = next(k for k in jwks(stack)["keys"] if k["kid"] == header["kid"])
    decoded = pyjwt.decode(
        grant,
        key=pyjwt.PyJWK(key),
        algorithms=["EdDSA"],
        audience=identity,
        issuer=stack.api.url,
        options={"require": ["exp", "iat", "nbf", "jti", "sub"]},
    )
    assert decoded["sub"] == identity
    # args_sha256: lowercase hex SHA-256 of the RFC 8785 form of the arguments.
    assert decoded["authorization_details"] == [
        {
            "type": "execution",
            "action": "demo.echo",
            "resource": "demo",
            "args_sha256": hashlib.sha256(b'{"message":"hi","n":3}').hexdigest(),
        }
    ]
    assert decoded["req"] == hashlib.sha256(rfc8785.dumps(body)).hexdigest()
    assert decoded["exp"] - decoded["iat"] == 60
    assert decoded["policy"]["bundle"] == "governance"
    assert decoded["policy"]["revision"] == stack.active_revision()
    assert isinstance(decoded["decision_id"], str)
    assert decoded["obligations"] == {}


def test_grant_audience_is_the_named_executor(stack: Stack) -> None:
    executor, _ = register(stack, "executor")
    grant, _, _, _ = grant_for(stack, executor=executor)
    assert pyjwt.decode(grant, options={"verify_signature": False})["aud"] == executor


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controlplane", "grant", "verify", *args],
        capture_output=True,
        text=True,
        timeout=30,
        input=stdin,
        env=dict(os.environ),
    )


def test_grant_verify_cli(stack: Stack, tmp_path: Path) -> None:
    grant, identity, _, _ = grant_for(stack, args={"amount": 5, "to": "bob"})
    jwks_url = f"{stack.api.url}/.well-known/jwks.json"
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"to": "bob", "amount": 5}))  # key order does not matter
    ok = _cli(
        grant,
        "--jwks",
        jwks_url,
        "--audience",
        identity,
        "--action",
        "demo.echo",
        "--args",
        str(args_file),
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["sub"] == identity

    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(jwks(stack)))
    from_stdin = _cli("-", "--jwks", str(jwks_file), "--audience", identity, stdin=grant)
    assert from_stdin.returncode == 0, from_stdin.stderr

    other_args = tmp_path / "other.json"
    other_args.write_text(json.dumps({"to": "mallory", "amount": 5}))
    wrong_args = _cli(grant, "--jwks", jwks_url, "--audience", identity, "--args", str(other_args))
    assert wrong_args.returncode == 3
    assert "arguments differ" in wrong_args.stderr

    header, payload, signature = grant.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    tampered = _cli(f"{header}.{payload}.{flipped}", "--jwks", jwks_url, "--audience", identity)
    assert tampered.returncode == 3
    assert "signature" in tampered.stderr

    wrong_action = _cli(
        grant, "--jwks", jwks_url, "--audience", identity, "--action", "payments.transfer"
    )
    assert wrong_action.returncode == 3
    other_audience = _cli(grant, "--jwks", jwks_url, "--audience", "executor:someone-else")
    assert other_audience.returncode == 3


def test_every_byte_of_a_grant_matters(stack: Stack) -> None:
    grant, identity, _, _ = grant_for(stack)
    keys = jwks(stack)
    verify(grant, keys, audience=identity)
    for position in range(0, len(grant), max(1, len(grant) // 40)):
        if grant[position] == ".":
            continue
        changed = (
            grant[:position] + ("A" if grant[position] != "A" else "B") + grant[position + 1 :]
        )
        with pytest.raises(GrantRejectedError):
            verify(changed, keys, audience=identity)


def test_expired_grant_is_rejected(factory: StackFactory, tmp_path: Path) -> None:
    stack = factory.stack(GRANT_LIFETIME_SECONDS="1")
    grant, identity, _, _ = grant_for(stack)
    time.sleep(2.2)
    result = _cli(
        grant,
        "--jwks",
        f"{stack.api.url}/.well-known/jwks.json",
        "--audience",
        identity,
        "--leeway",
        "0",
    )
    assert result.returncode == 3
    assert "exp has passed" in result.stderr


def test_key_rotation_keeps_old_grants_verifiable_until_they_expire(factory: StackFactory) -> None:
    # Its own Redis: the key ring is shared by every API on one Redis, as replicas share it.
    stack = factory.stack(redis=factory.redis(), GRANT_LIFETIME_SECONDS="4", CLOCK_SKEW_SECONDS="0")
    old_grant, old_identity, _, _ = grant_for(stack)
    old_kid = pyjwt.get_unverified_header(old_grant)["kid"]
    with stack.client(Role.ADMIN) as admin:
        rotated = admin.post("/v1/grant-keys/rotate").json()
    assert rotated["kid"] != old_kid
    published = {k["kid"] for k in jwks(stack)["keys"]}
    assert published == {old_kid, rotated["kid"]}
    verify(old_grant, jwks(stack), audience=old_identity, leeway=0)  # still valid, still published
    new_grant, _, _, _ = grant_for(stack)
    assert pyjwt.get_unverified_header(new_grant)["kid"] == rotated["kid"]
    # The old key leaves the JWKS once every grant it signed has expired (rotation + lifetime).
    time.sleep(
        max(0.0, pyjwt.decode(old_grant, options={"verify_signature": False})["exp"] - time.time())
        + 1.5
    )
    assert {k["kid"] for k in jwks(stack)["keys"]} == {rotated["kid"]}
    with pytest.raises(GrantRejectedError) as caught:
        verify(old_grant, jwks(stack), audience=old_identity, leeway=3600)  # even ignoring exp
    assert caught.value.code == "key_unknown"


def test_fifty_parallel_requests_with_one_jti_give_one_allow(stack: Stack) -> None:
    identity, key = register(stack)
    token = signed(key, claims(stack, identity))

    async def storm() -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=stack.api.url, timeout=30) as client:
            responses = await asyncio.gather(
                *(
                    client.post(
                        "/v1/authorize", content=token, headers={"Content-Type": "application/jwt"}
                    )
                    for _ in range(50)
                )
            )
        return [r.json() for r in responses]

    answers = asyncio.run(storm())
    assert sum(a["decision"] == "allow" for a in answers) == 1
    assert sum(a["reasons"] == ["request_replayed"] for a in answers) == 49


def test_fifty_parallel_consumes_give_one_success(stack: Stack) -> None:
    grant, _, _, _ = grant_for(stack)
    jti = pyjwt.decode(grant, options={"verify_signature": False})["jti"]
    token = stack.token(Role.EXECUTOR)

    async def storm() -> list[httpx.Response]:
        async with httpx.AsyncClient(
            base_url=stack.api.url, timeout=30, headers={"Authorization": f"Bearer {token}"}
        ) as client:
            return await asyncio.gather(
                *(client.post(f"/v1/grants/{jti}/consume") for _ in range(50))
            )

    responses = asyncio.run(storm())
    assert sorted(r.status_code for r in responses) == [200] + [409] * 49
    refused = next(r for r in responses if r.status_code == 409)
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["reason"] == "grant_already_consumed"


def test_consume_unknown_and_expired(factory: StackFactory, stack: Stack) -> None:
    with stack.client(Role.EXECUTOR) as executor:
        unknown = executor.post("/v1/grants/no-such-grant/consume", json={"any": "body"})
    assert unknown.status_code == 404
    assert unknown.json()["reason"] == "grant_unknown"
    short = factory.stack(GRANT_LIFETIME_SECONDS="1", CLOCK_SKEW_SECONDS="0")
    grant, _, _, _ = grant_for(short)
    jti = pyjwt.decode(grant, options={"verify_signature": False})["jti"]
    time.sleep(1.5)
    with short.client(Role.EXECUTOR) as executor:
        expired = executor.post(f"/v1/grants/{jti}/consume")
    assert expired.status_code == 409
    assert expired.json()["reason"] == "grant_expired"


def test_outcome_signed_by_the_executor(stack: Stack) -> None:
    executor, executor_key = register(stack, "executor")
    grant, identity, agent_key, _ = grant_for(stack, executor=executor)
    jti = pyjwt.decode(grant, options={"verify_signature": False})["jti"]
    outcome = sign_outcome(
        executor_key, identity=executor, grant=jti, succeeded=True, result={"ok": True}
    )
    with stack.client(Role.EXECUTOR) as client:
        early = client.post(
            f"/v1/grants/{jti}/outcome",
            content=outcome,
            headers={"Content-Type": "application/jwt"},
        )
        assert early.status_code == 409 and early.json()["reason"] == "grant_not_consumed"
        assert client.post(f"/v1/grants/{jti}/consume").status_code == 200
        by_agent = sign_outcome(agent_key, identity=identity, grant=jti, succeeded=True)
        wrong_signer = client.post(
            f"/v1/grants/{jti}/outcome",
            content=by_agent,
            headers={"Content-Type": "application/jwt"},
        )
        assert wrong_signer.status_code == 401
        assert wrong_signer.json()["reason"] == "outcome_signer_invalid"
        forged = sign_outcome(
            AgentKey(AgentKey.generate().private, executor_key.kid),
            identity=executor,
            grant=jti,
            succeeded=True,
        )
        bad_signature = client.post(
            f"/v1/grants/{jti}/outcome", content=forged, headers={"Content-Type": "application/jwt"}
        )
        assert bad_signature.json()["reason"] == "outcome_signature_invalid"
        accepted = client.post(
            f"/v1/grants/{jti}/outcome",
            content=outcome,
            headers={"Content-Type": "application/jwt"},
        )
        assert accepted.status_code == 201, accepted.text
        assert accepted.json()["status"] == "succeeded"
        again = client.post(
            f"/v1/grants/{jti}/outcome",
            content=outcome,
            headers={"Content-Type": "application/jwt"},
        )
        assert again.status_code == 409 and again.json()["reason"] == "outcome_already_reported"
    with stack.client(Role.AUDITOR) as auditor:
        lineage = auditor.get(f"/v1/grants/{jti}").json()
    assert lineage["consumed"]["jti"] == jti
    assert lineage["outcome"]["status"] == "succeeded"
    assert lineage["grant"]["aud"] == executor


def test_discovery_document(stack: Stack) -> None:
    doc = httpx.get(f"{stack.api.url}/.well-known/controlplane").json()
    assert doc["issuer"] == doc["audience"] == stack.api.url
    assert set(doc["request_signing_alg_values_supported"]) == {"EdDSA", "Ed25519"}
    assert doc["request_max_lifetime_seconds"] == 60
    assert doc["jwks_uri"] == f"{stack.api.url}/.well-known/jwks.json"
    assert doc["ledger"]["origin"] == stack.api.url.removeprefix("http://") + "/ledger"
    assert doc["ledger"]["key"].startswith(doc["ledger"]["origin"] + "+")
    keys = httpx.get(doc["jwks_uri"]).json()["keys"]
    assert keys and all(
        k["kty"] == "OKP" and k["crv"] == "Ed25519" and k["alg"] == "EdDSA" and k["kid"]
        for k in keys
    )
    assert all("d" not in k for k in keys)


def test_sdk_example_runs_against_the_stack(stack: Stack) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "agent_demo.py")],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "CONTROLPLANE_URL": stack.api.url,
            "CONTROLPLANE_ADMIN_TOKEN": stack.admin_token,
        },
    )
    assert result.returncode == 0, result.stderr
    assert "echo -> hello, governed world" in result.stdout
    assert "transfer denied: policy_denied, action_not_allowed" in result.stdout


def test_async_governed_function(stack: Stack) -> None:
    identity, key = register(stack)
    runs: list[dict[str, Any]] = []

    async def scenario() -> None:
        async with AsyncControlPlaneClient(
            stack.api.url, executor_token=stack.token(Role.EXECUTOR)
        ) as client:

            @governed(client, key, identity=identity, action="demo.echo", resource="demo")
            async def echo(**args: Any) -> dict[str, Any]:
                runs.append(args)
                return args

            assert await echo(text="async") == {"text": "async"}

            @governed(client, key, identity=identity, action="payments.transfer", resource="acct")
            async def transfer(**args: Any) -> None:
                runs.append(args)

            with pytest.raises(Denied) as caught:
                await transfer(amount=1)
            assert caught.value.reasons == ["policy_denied", "action_not_allowed"]

    asyncio.run(scenario())
    assert runs == [{"text": "async"}]


def test_grant_key_loaded_from_the_environment(factory: StackFactory) -> None:
    """A key made by `controlplane keys generate` and given in CONTROLPLANE_GRANT_KEY signs."""
    generated = subprocess.run(
        [
            sys.executable,
            "-m",
            "controlplane",
            "keys",
            "generate",
            "--out",
            "/dev/stdout",
            "--force",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "CONTROLPLANE_KEY_PASSPHRASE": KEY_PASSPHRASE},
    )
    assert generated.returncode == 0, generated.stderr
    encrypted, kid = generated.stdout.split()
    assert encrypted.count(".") == 4  # a compact JWE, never a bare private key
    stack = factory.stack(redis=factory.redis(), GRANT_KEY=encrypted)
    grant, _, _, _ = grant_for(stack)
    assert pyjwt.get_unverified_header(grant)["kid"] == kid


def test_keys_jwks_cli_needs_no_token(stack: Stack) -> None:
    """A public route through the CLI: no token configured, no Authorization header sent."""
    env = {k: v for k, v in os.environ.items() if k != "CONTROLPLANE_ADMIN_TOKEN"}
    shown = subprocess.run(
        [sys.executable, "-m", "controlplane", "keys", "jwks", "--url", stack.api.url],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == httpx.get(f"{stack.api.url}/.well-known/jwks.json").json()
