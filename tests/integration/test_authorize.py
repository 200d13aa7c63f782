"""POST /v1/authorize: every deny reason provoked for real, the allow, and what was recorded."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from joserfc import jws
from joserfc.jwk import ECKey, RSAKey

from controlplane.client import AgentKey
from controlplane.jose import sign_compact
from controlplane.tokens.roles import Role
from tests.support.agents import (
    authorize,
    b64,
    claims,
    hs256_with_public_key,
    register,
    signed,
    unsigned,
)
from tests.support.stack import Stack, StackFactory, ledger_records

pytestmark = pytest.mark.integration


def denied(answer: dict[str, Any], reason: str) -> None:
    assert answer["decision"] == "deny", answer
    assert answer["reasons"][0] == reason, answer
    assert "grant" not in answer


def test_allowed_request_gets_a_grant(stack: Stack) -> None:
    identity, key = register(stack)
    answer = authorize(stack, signed(key, claims(stack, identity)))
    assert answer["decision"] == "allow", answer
    assert answer["reasons"] == []
    assert isinstance(answer["decision_id"], str)
    assert answer["grant"].count(".") == 2
    assert set(answer["evidence"]) == {"index", "checkpoint"}


def test_both_names_of_the_algorithm_are_accepted(stack: Stack) -> None:
    identity, key = register(stack)
    assert (
        authorize(stack, signed(key, claims(stack, identity), alg="Ed25519"))["decision"] == "allow"
    )


@pytest.mark.parametrize(
    "change",
    [
        {"action": None},
        {"args": "not an object"},
        {"args": {"n": 2**60}},  # beyond RFC 8785's integers: no canonical form, no hash
        {"jti": "short"},
        {"iss": "robot:x"},
        {"exp": "tomorrow"},
        {"context": {"parent": 42}},
        {"executor": "nobody"},
    ],
)
def test_request_malformed(stack: Stack, change: dict[str, Any]) -> None:
    identity, key = register(stack)
    body = claims(stack, identity)
    body.update(change)
    denied(
        authorize(stack, signed(key, {k: v for k, v in body.items() if v is not None})),
        "request_malformed",
    )


def test_request_malformed_payload_not_an_object(stack: Stack) -> None:
    _, key = register(stack)
    token = sign_compact(
        {"alg": "Ed25519", "kid": key.kid, "typ": "exec-request+jwt"}, b"[1,2]", key.private
    )
    denied(authorize(stack, token), "request_malformed")


def test_request_type_invalid(stack: Stack) -> None:
    identity, key = register(stack)
    denied(
        authorize(stack, signed(key, claims(stack, identity), typ="JWT")), "request_type_invalid"
    )


def test_algorithm_none_is_refused(stack: Stack) -> None:
    identity, key = register(stack)
    denied(authorize(stack, unsigned(key, claims(stack, identity))), "algorithm_not_allowed")


def test_hs256_with_the_public_key_as_secret_is_refused(stack: Stack) -> None:
    identity, key = register(stack)
    denied(
        authorize(stack, hs256_with_public_key(key, claims(stack, identity))),
        "algorithm_not_allowed",
    )


@pytest.mark.parametrize(
    ("alg", "make"),
    [("RS256", lambda: RSAKey.generate_key(2048)), ("ES256", lambda: ECKey.generate_key("P-256"))],
)
def test_rsa_and_ecdsa_are_refused(stack: Stack, alg: str, make: Any) -> None:
    identity, key = register(stack)
    other = make()
    header = {"alg": alg, "kid": key.kid, "typ": "exec-request+jwt"}
    token = jws.serialize_compact(
        header, json.dumps(claims(stack, identity)).encode(), other, algorithms=[alg]
    )
    denied(authorize(stack, token), "algorithm_not_allowed")


def test_identity_unknown(stack: Stack) -> None:
    key = AgentKey.generate()
    denied(
        authorize(stack, signed(key, claims(stack, "agent:nobody-knows-me"))), "identity_unknown"
    )


@pytest.mark.parametrize(
    ("action", "reason"), [("suspend", "identity_suspended"), ("revoke", "identity_revoked")]
)
def test_identity_suspended_and_revoked(stack: Stack, action: str, reason: str) -> None:
    identity, key = register(stack)
    with stack.client(Role.ADMIN) as admin:
        assert (
            admin.post(f"/v1/identities/{identity}/{action}", json={"reason": "test"}).status_code
            == 200
        )
    # Takes effect from the very next request: nothing is cached.
    denied(authorize(stack, signed(key, claims(stack, identity))), reason)


def test_suspended_then_reactivated_is_allowed_again(stack: Stack) -> None:
    identity, key = register(stack)
    with stack.client(Role.ADMIN) as admin:
        admin.post(f"/v1/identities/{identity}/suspend")
        denied(authorize(stack, signed(key, claims(stack, identity))), "identity_suspended")
        admin.post(f"/v1/identities/{identity}/reactivate")
    assert authorize(stack, signed(key, claims(stack, identity)))["decision"] == "allow"


def test_key_unknown(stack: Stack) -> None:
    identity, _ = register(stack)
    stranger = AgentKey.generate()
    denied(authorize(stack, signed(stranger, claims(stack, identity))), "key_unknown")


def test_key_revoked(stack: Stack) -> None:
    identity, key = register(stack)
    with stack.client(Role.ADMIN) as admin:
        assert admin.post(f"/v1/identities/{identity}/keys/{key.kid}/revoke").status_code == 200
    denied(authorize(stack, signed(key, claims(stack, identity))), "key_revoked")


def test_signature_invalid(stack: Stack) -> None:
    identity, key = register(stack)
    impostor = AgentKey(AgentKey.generate().private, key.kid)  # right kid, wrong key
    denied(authorize(stack, signed(impostor, claims(stack, identity))), "signature_invalid")


def test_one_changed_byte_breaks_the_signature(stack: Stack) -> None:
    identity, key = register(stack)
    token = signed(key, claims(stack, identity, args={"amount": 100}))
    header, _, signature = token.split(".")
    tampered = json.loads(jws.extract_compact(token.encode()).payload)
    tampered["args"]["amount"] = 900
    forged = f"{header}.{b64(json.dumps(tampered).encode())}.{signature}"
    denied(authorize(stack, forged), "signature_invalid")


def test_audience_invalid(stack: Stack) -> None:
    identity, key = register(stack)
    denied(
        authorize(stack, signed(key, claims(stack, identity, aud="http://elsewhere.example"))),
        "audience_invalid",
    )


def test_request_not_yet_valid(stack: Stack) -> None:
    identity, key = register(stack)
    later = int(time.time()) + 60  # beyond the 5 s skew
    denied(
        authorize(stack, signed(key, claims(stack, identity, iat=later, exp=later + 30))),
        "request_not_yet_valid",
    )


def test_request_expired(stack: Stack) -> None:
    identity, key = register(stack)
    earlier = int(time.time()) - 120
    denied(
        authorize(stack, signed(key, claims(stack, identity, iat=earlier, exp=earlier + 30))),
        "request_expired",
    )


def test_request_lifetime_too_long(stack: Stack) -> None:
    identity, key = register(stack)
    now = int(time.time())
    denied(
        authorize(stack, signed(key, claims(stack, identity, iat=now, exp=now + 3600))),
        "request_lifetime_too_long",
    )


def test_request_replayed(stack: Stack) -> None:
    identity, key = register(stack)
    token = signed(key, claims(stack, identity))
    assert authorize(stack, token)["decision"] == "allow"
    denied(authorize(stack, token), "request_replayed")


def test_parent_invalid_when_unknown_or_unrelated(stack: Stack) -> None:
    identity, key = register(stack)
    other, other_key = register(stack)
    denied(
        authorize(stack, signed(key, claims(stack, identity, context={"parent": "no-such-grant"}))),
        "parent_invalid",
    )
    foreign = authorize(stack, signed(other_key, claims(stack, other)))
    foreign_jti = _claims_of(foreign["grant"])["jti"]
    denied(
        authorize(stack, signed(key, claims(stack, identity, context={"parent": foreign_jti}))),
        "parent_invalid",
    )


def test_child_of_own_grant_is_allowed_and_linked(stack: Stack) -> None:
    identity, key = register(stack)
    parent = _claims_of(authorize(stack, signed(key, claims(stack, identity)))["grant"])["jti"]
    child = authorize(
        stack, signed(key, claims(stack, identity, context={"parent": parent, "workflow": "w1"}))
    )
    assert child["decision"] == "allow"
    child_jti = _claims_of(child["grant"])["jti"]
    assert _claims_of(child["grant"])["parent"] == parent
    with stack.client(Role.AUDITOR) as auditor:
        lineage = auditor.get(f"/v1/grants/{parent}").json()
    assert lineage["children"] == [child_jti]


def test_policy_denied_carries_the_policys_reasons(stack: Stack) -> None:
    identity, key = register(stack)
    answer = authorize(stack, signed(key, claims(stack, identity, action="payments.transfer")))
    assert answer["decision"] == "deny"
    assert answer["reasons"] == ["policy_denied", "action_not_allowed"]
    assert isinstance(answer["decision_id"], str)


def test_opa_sees_the_registry_not_the_request(stack: Stack) -> None:
    """A service identity is not allowed demo.echo: the kind comes from the registry."""
    identity, key = register(stack, "service")
    answer = authorize(stack, signed(key, claims(stack, identity)))
    assert answer["reasons"] == ["policy_denied", "action_not_allowed"]


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"not a jws", "application/jwt", 400),
        (b"a.b", "application/jwt", 400),
        (b"{}", "application/json", 415),
        (b"x" * (70 * 1024), "application/jwt", 413),
    ],
)
def test_bodies_that_are_not_requests_are_problems(
    stack: Stack, content: bytes, content_type: str, status: int
) -> None:
    response = httpx.post(
        f"{stack.api.url}/v1/authorize", content=content, headers={"Content-Type": content_type}
    )
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"


def test_every_answer_is_recorded(stack: Stack) -> None:
    identity, key = register(stack)
    allow = authorize(stack, signed(key, claims(stack, identity)))
    deny = authorize(stack, signed(key, claims(stack, identity, action="payments.transfer")))
    records = _records(stack, "cp.authorization")
    by_decision = {r["decision_id"]: r for r in records if r.get("identity") == identity}
    assert by_decision[allow["decision_id"]]["decision"] == "allow"
    assert by_decision[allow["decision_id"]]["grant"]["jti"] == _claims_of(allow["grant"])["jti"]
    assert by_decision[deny["decision_id"]]["reasons"] == ["policy_denied", "action_not_allowed"]


def test_opa_down_is_a_deny(factory: StackFactory) -> None:
    stack = factory.stack()
    identity, key = register(stack)
    stack.opa.kill()
    denied(authorize(stack, signed(key, claims(stack, identity))), "opa_unreachable")


def test_redis_down_is_a_deny(factory: StackFactory) -> None:
    stack = factory.stack(redis=factory.redis())
    identity, key = register(stack)
    stack.redis.kill()
    try:
        denied(authorize(stack, signed(key, claims(stack, identity))), "redis_unavailable")
    finally:
        stack.redis.start()


def test_evidence_unavailable_when_only_the_record_cannot_be_stored(factory: StackFactory) -> None:
    """The replay reservation works, the decision is an allow, but the ledger's append Function
    is gone, so the record cannot be appended: no grant."""
    stack = factory.stack(redis=factory.redis())
    identity, key = register(stack)
    with stack.redis.client() as client:
        client.function_delete("cpledger")
    answer = authorize(stack, signed(key, claims(stack, identity)))
    denied(answer, "evidence_unavailable")
    assert isinstance(answer["decision_id"], str)  # OPA did decide
    assert answer["evidence"] is None


def _claims_of(grant: str) -> dict[str, Any]:
    return dict(json.loads(jws.extract_compact(grant.encode()).payload))


def _records(stack: Stack, kind: str) -> list[dict[str, Any]]:
    """The records of `kind`, newest first."""
    return [record for _, record in reversed(ledger_records(stack.redis, kind))]
