"""The archiver inside the API: the ledger is copied to the archive and Redis trimmed, while
entries, payloads and proofs keep being served for every index, and the archive verifies offline."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

from controlplane.ledger import merkle
from controlplane.ledger.log import ENTRIES_KEY
from controlplane.ledger.notes import NoteVerifier, open_checkpoint
from controlplane.tokens.roles import Role
from tests.support.agents import authorize, claims, register, signed
from tests.support.processes import wait_until
from tests.support.stack import StackFactory

pytestmark = pytest.mark.integration


def test_trimmed_entries_stay_readable_and_provable(factory: StackFactory, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    stack = factory.stack(
        redis=factory.redis(), archive_url=str(archive), archive_interval_seconds="0.2"
    )
    identity, key = register(stack)
    answers = [authorize(stack, signed(key, claims(stack, identity))) for _ in range(5)]
    first = answers[0]["evidence"]["index"]
    with stack.client(Role.ADMIN) as admin:
        payload = admin.get(f"/v1/ledger/entries/{first}").json()["payload"]
    assert payload is not None

    def trimmed() -> bool:
        with stack.redis.client() as client:
            return client.xlen(ENTRIES_KEY) == 1 and (archive / "checkpoint").exists()

    wait_until(trimmed, timeout=15, what="the archiver to archive and trim")
    vkey = httpx.get(f"{stack.api.url}/v1/ledger/key", timeout=5).text.strip()
    verifier = NoteVerifier.from_vkey(vkey)
    note = httpx.get(f"{stack.api.url}/v1/ledger/checkpoint", timeout=5).text
    checkpoint = open_checkpoint(note, verifier, verifier.name)
    with stack.client(Role.ADMIN) as admin:
        entry = admin.get(f"/v1/ledger/entries/{first}").json()
        assert entry["payload"] == payload  # read back from the archive
        proof = httpx.get(
            f"{stack.api.url}/v1/ledger/proof/inclusion",
            params={"index": first, "size": checkpoint.size},
            timeout=5,
        ).json()
        merkle.verify_inclusion(
            merkle.leaf_hash(entry["entry"].encode()),
            first,
            checkpoint.size,
            [base64.b64decode(h) for h in proof["proof"]],
            checkpoint.root,
        )
        assert json.loads(entry["entry"])["kind"] == "cp.authorization"
        # Erasure reaches the archived copy of the payload too.
        erased = admin.delete(f"/v1/ledger/entries/{first}/payload", params={"reason": "test"})
        assert erased.json()["erased"] is True
        assert admin.get(f"/v1/ledger/entries/{first}").json()["payload"] is None
    verified = stack.cli("archive", "verify", str(archive), "--key", vkey)
    assert verified.returncode == 0, verified.stderr
