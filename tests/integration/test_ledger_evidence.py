"""Every answer and change of the control plane is a ledger entry, provable with public keys:
authorize (allow and deny), `/v1/data`, consumption, outcome-free admin changes, erasure, the
entries of one decision, reconciliation, and the fail-closed answers when only the append fails."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import pytest
from joserfc import jws

from controlplane.ledger import merkle
from controlplane.ledger.log import AWAITING_KEY, LIBRARY
from controlplane.ledger.notes import NoteVerifier, open_checkpoint
from controlplane.ledger.records import open_record
from controlplane.tokens.roles import Role
from tests.support.agents import authorize, claims, register, signed
from tests.support.processes import wait_until
from tests.support.stack import Stack, StackFactory, ledger_records

pytestmark = pytest.mark.integration


def proven_entry(stack: Stack, evidence: dict[str, Any]) -> dict[str, Any]:
    """The record at `evidence["index"]`, after checking, with the log's public key only, that
    the checkpoint is signed and that the entry is in the tree it commits to."""
    public = httpx.get(f"{stack.api.url}/v1/ledger/key", timeout=5).text.strip()
    verifier = NoteVerifier.from_vkey(public)
    checkpoint = open_checkpoint(evidence["checkpoint"], verifier, verifier.name)
    index = evidence["index"]
    assert index < checkpoint.size
    with stack.client(Role.AUDITOR) as auditor:
        entry = auditor.get(f"/v1/ledger/entries/{index}").json()
    proof = httpx.get(
        f"{stack.api.url}/v1/ledger/proof/inclusion",
        params={"index": index, "size": checkpoint.size},
        timeout=5,
    ).json()
    leaf = merkle.leaf_hash(entry["entry"].encode())
    merkle.verify_inclusion(
        leaf,
        index,
        checkpoint.size,
        [base64.b64decode(h) for h in proof["proof"]],
        checkpoint.root,
    )
    return dict(json.loads(entry["entry"]))


def grant_claims(grant: str) -> dict[str, Any]:
    return dict(json.loads(jws.extract_compact(grant.encode()).payload))


def test_an_allow_is_recorded_before_its_grant_which_names_the_record(stack: Stack) -> None:
    identity, key = register(stack)
    request = claims(stack, identity, args={"message": "personal words"})
    answer = authorize(stack, signed(key, request))
    assert answer["decision"] == "allow", answer
    record = proven_entry(stack, answer["evidence"])
    granted = grant_claims(answer["grant"])
    assert granted["ledger"] == {
        "origin": NoteVerifier.from_vkey(
            httpx.get(f"{stack.api.url}/v1/ledger/key", timeout=5).text.strip()
        ).name,
        "index": answer["evidence"]["index"],
    }
    assert record["kind"] == "cp.authorization" and record["decision"] == "allow"
    assert record["decision_id"] == answer["decision_id"]
    # The record carries every claim of the grant but the one that names the record.
    assert record["grant"] == {**granted, "ledger": None}
    # The request (with its args) is committed, not logged; its payload opens the commitment.
    assert set(record["request"]) == {"commitment"}
    with stack.client(Role.AUDITOR) as auditor:
        entry = auditor.get(f"/v1/ledger/entries/{answer['evidence']['index']}").json()
    assert "personal words" not in entry["entry"]
    opened = open_record(entry["entry"].encode(), entry["payload"])
    assert opened["request"]["args"] == {"message": "personal words"}


def test_a_deny_is_recorded_with_its_reasons(stack: Stack) -> None:
    identity, key = register(stack)
    answer = authorize(stack, signed(key, claims(stack, identity, action="payments.transfer")))
    assert answer["decision"] == "deny"
    record = proven_entry(stack, answer["evidence"])
    assert (record["kind"], record["decision"]) == ("cp.authorization", "deny")
    assert record["reasons"] == answer["reasons"]


def test_a_data_api_decision_is_recorded_with_the_asserting_service(stack: Stack) -> None:
    with stack.client(Role.SERVICE) as client:
        answer = stack.decide(client).json()
    decision_id = answer["decision_id"]
    with stack.client(Role.AUDITOR) as auditor:
        wait_until(
            lambda: len(auditor.get(f"/v1/ledger/decisions/{decision_id}").json()["indexes"]) == 2,
            timeout=15,
            what="the cp.decision and OPA's opa.decision entries",
        )
        indexes = auditor.get(f"/v1/ledger/decisions/{decision_id}").json()["indexes"]
        records = [
            json.loads(auditor.get(f"/v1/ledger/entries/{i}").json()["entry"]) for i in indexes
        ]
    kinds = sorted(r["kind"] for r in records)
    assert kinds == ["cp.decision", "opa.decision"]
    ours = next(r for r in records if r["kind"] == "cp.decision")
    assert ours["service"]["role"] == "service"
    assert ours["result"] == answer["result"] and ours["path"] == "governance/execution/decision"
    assert set(ours["input"]) == {"commitment"}
    # OPA's decision arrived, so the reconciler no longer waits for it.
    with stack.redis.client() as client:
        assert client.zscore(AWAITING_KEY, decision_id) is None


def test_unknown_decision_is_404(stack: Stack) -> None:
    with stack.client(Role.AUDITOR) as auditor:
        response = auditor.get("/v1/ledger/decisions/no-such-decision")
    assert response.status_code == 404 and response.json()["reason"] == "decision_unknown"


def test_when_only_the_append_fails_data_and_consume_fail_closed(factory: StackFactory) -> None:
    stack = factory.stack(redis=factory.redis())
    identity, key = register(stack)
    granted = authorize(stack, signed(key, claims(stack, identity)))
    jti = grant_claims(granted["grant"])["jti"]
    for role in (Role.SERVICE, Role.EXECUTOR):
        stack.token(role)  # created (and recorded) while the ledger still appends
    with stack.redis.client() as client:
        client.function_delete("cpledger")
    try:
        with stack.client(Role.SERVICE) as service:
            answer = stack.decide(service).json()
        assert answer["reason"] == "evidence_unavailable"
        assert answer["result"] == {"allow": False, "reasons": ["evidence_unavailable"]}
        with stack.client(Role.EXECUTOR) as executor:
            refused = executor.post(f"/v1/grants/{jti}/consume")
        assert refused.status_code == 503 and refused.json()["reason"] == "evidence_unavailable"
    finally:
        with stack.redis.client() as client:
            client.function_load(LIBRARY, replace=True)
    # The consumption was taken back: once the ledger appends again, it succeeds, once.
    with stack.client(Role.EXECUTOR) as executor:
        consumed = executor.post(f"/v1/grants/{jti}/consume")
        assert consumed.status_code == 200, consumed.text
        assert executor.post(f"/v1/grants/{jti}/consume").status_code == 409
    assert proven_entry(stack, consumed.json()["evidence"])["kind"] == "cp.consume"


def test_admin_changes_are_recorded_and_a_refused_one_is_marked_aborted(stack: Stack) -> None:
    name = f"agent:ledger-{time.monotonic_ns()}"
    with stack.client(Role.ADMIN) as admin:
        created = admin.post(
            "/v1/identities", json={"id": name, "kind": "agent", "attributes": {"email": "a@b"}}
        )
        assert created.status_code == 201, created.text
        missing = admin.post("/v1/identities/agent:nobody-at-all/suspend", json={"reason": "x"})
        assert missing.status_code == 404
    records = [r for _, r in ledger_records(stack.redis)]
    create = next(
        r for r in records if r["kind"] == "cp.admin.identity.create" and r["identity"] == name
    )
    assert set(create["attributes"]) == {"commitment"}  # personal data: committed
    indexed = ledger_records(stack.redis)
    suspend_index = max(
        i
        for i, r in indexed
        if r["kind"] == "cp.admin.identity.suspend" and r["identity"] == "agent:nobody-at-all"
    )
    aborted = [r for _, r in indexed if r["kind"] == "cp.admin.aborted"]
    assert {"aborts": suspend_index, "code": "identity_not_found"}.items() <= next(
        r for r in aborted if r["aborts"] == suspend_index
    ).items()


def test_erasing_a_payload_keeps_the_entry_and_its_proof(stack: Stack) -> None:
    identity, key = register(stack)
    answer = authorize(stack, signed(key, claims(stack, identity)))
    index = answer["evidence"]["index"]
    with stack.client(Role.ADMIN) as admin:
        before = admin.get(f"/v1/ledger/entries/{index}").json()
        erased = admin.delete(f"/v1/ledger/entries/{index}/payload", params={"reason": "GDPR"})
        assert erased.json() == {"index": index, "erased": True}
        after = admin.get(f"/v1/ledger/entries/{index}").json()
        assert (
            admin.delete(f"/v1/ledger/entries/{index}/payload", params={"reason": "x"}).json()[
                "erased"
            ]
            is False
        )
    assert before["payload"] is not None and after["payload"] is None
    assert after["entry"] == before["entry"] and after["leaf_hash"] == before["leaf_hash"]
    proven_entry(stack, answer["evidence"])  # still proven against the same checkpoint
    assert any(
        r["kind"] == "cp.admin.ledger.erase" and r["index"] == index
        for _, r in ledger_records(stack.redis)
    )


def test_reconcile_reports_decisions_opa_never_logged(factory: StackFactory) -> None:
    stack = factory.stack(redis=factory.redis())
    with stack.redis.client() as client:
        # A decision seen an hour ago whose opa.decision entry never came (OPA lost it).
        client.zadd(AWAITING_KEY, {"lost-by-opa": time.time() - 3600})
    with stack.client(Role.AUDITOR) as auditor:
        report = auditor.get("/v1/ledger/reconcile").json()
    assert report["missing"] == 1
    assert [d["decision_id"] for d in report["missing_decisions"]] == ["lost-by-opa"]
    assert isinstance(report["opa_dropped"], dict)
    metrics = httpx.get(f"{stack.api.url}/metrics", timeout=5).text
    assert "controlplane_ledger_missing_decisions 1.0" in metrics
    result = stack.cli("ledger", "reconcile")
    assert result.returncode == 5, result.stderr
    assert "lost-by-opa" in result.stdout
