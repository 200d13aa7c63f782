"""Ledger entries with personal data committed: golden vector, tampering, erasure."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
import rfc8785

from controlplane.ledger import merkle
from controlplane.ledger.records import PayloadError, commit_record, open_record

RECORD: dict[str, Any] = {
    "v": 1,
    "kind": "opa.decision",
    "time": "2026-11-26T12:00:00Z",
    "decision_id": "d-1",
    "input": {"identity": {"id": "agent:a"}, "request": {"args": {"amount": 5, "note": "é"}}},
    "result": {"allow": True, "reasons": []},
}
SALT = bytes(range(32))
GOLDEN_ENTRY = (
    b'{"decision_id":"d-1","input":{"commitment":"sha256:'
    b'5bdbd4bd666f35dfea81ffd192cf6a3754b9e1ae20a12c087d7945280d0ce7cf"},"kind":"opa.decision",'
    b'"result":{"allow":true,"reasons":[]},"time":"2026-11-26T12:00:00Z","v":1}'
)
GOLDEN_LEAF = "9f5226466a5944c0607604083bc33bd7c6a51cf10823d7da4845d7d90a213f76"


def committed() -> Any:
    return commit_record(RECORD, salt=lambda n: SALT[:n])


def test_golden_entry_and_leaf_hash() -> None:
    result = committed()
    assert result.entry == GOLDEN_ENTRY
    assert merkle.leaf_hash(result.entry).hex() == GOLDEN_LEAF
    # Independently: the commitment is SHA-256(domain || salt || RFC 8785 of the value).
    digest = hashlib.sha256(
        b"controlplane.ledger.payload/v1\x00" + SALT + rfc8785.dumps(RECORD["input"])
    ).hexdigest()
    assert f"sha256:{digest}".encode() in result.entry
    assert result.payloads == {
        "input": {"salt": base64.b64encode(SALT).decode(), "value": RECORD["input"]}
    }


def test_the_entry_holds_no_personal_data() -> None:
    entry = committed().entry
    assert b"agent:a" not in entry and b"amount" not in entry


def test_payloads_open_back_to_the_record() -> None:
    result = committed()
    assert open_record(result.entry, result.payloads) == RECORD


def test_erasing_a_payload_keeps_the_entry_and_its_proofs() -> None:
    entries = [commit_record({**RECORD, "decision_id": f"d-{n}"}).entry for n in range(7)]
    leaves = [merkle.leaf_hash(e) for e in entries]
    root = merkle.root(leaves)
    proof = merkle.inclusion_proof(3, 7, merkle.subtree_from_leaves(leaves))
    # The payload of entry 3 is erased: the entry is untouched, so the proof still holds.
    opened = open_record(entries[3], {})
    assert set(opened["input"]) == {"commitment"}
    merkle.verify_inclusion(merkle.leaf_hash(entries[3]), 3, 7, proof, root)


def test_salts_are_fresh() -> None:
    assert commit_record(RECORD).entry != commit_record(RECORD).entry


@pytest.mark.parametrize(
    "payloads",
    [
        {"input": {"salt": base64.b64encode(SALT).decode(), "value": {"identity": "other"}}},
        {"input": {"salt": base64.b64encode(bytes(32)).decode(), "value": RECORD["input"]}},
        {"input": {"salt": "not base64!", "value": RECORD["input"]}},
        {"input": {"salt": base64.b64encode(SALT[:16]).decode(), "value": RECORD["input"]}},
        {"input": {"salt": base64.b64encode(SALT).decode()}},
        {"result": {"salt": base64.b64encode(SALT).decode(), "value": RECORD["result"]}},
    ],
)
def test_a_payload_that_does_not_match_is_refused(payloads: dict[str, Any]) -> None:
    with pytest.raises(PayloadError):
        open_record(committed().entry, payloads)


def test_records_without_personal_fields_are_left_as_they_are() -> None:
    record = {"v": 1, "kind": "cp.consume", "time": "2026-11-26T12:00:00Z", "jti": "j"}
    result = commit_record(record)
    assert result.entry == rfc8785.dumps(record)
    assert result.payloads == {}


def test_the_assembled_payload_is_the_rfc8785_form_of_the_payloads() -> None:
    record = {**RECORD, "attributes": {"é": 1, "\U0001f600": [True, None]}}
    committed = commit_record(record)
    assert committed.payload == rfc8785.dumps(committed.payloads)
    assert commit_record({"v": 1, "kind": "cp.test"}).payload is None
