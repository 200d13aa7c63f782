"""The ledger's read API against a real stack: checkpoints, the verifier key, entries, proofs.

Nothing writes to the ledger through the API yet (issue #5 wires the writers); the test appends
with a `Ledger` of its own on the stack's Redis, with the key the API created there.
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
from pathlib import Path

import httpx
import pytest
from nacl.signing import SigningKey

from controlplane.clock import SystemClock
from controlplane.ledger import merkle
from controlplane.ledger.notes import NoteSigner, NoteVerifier, open_checkpoint
from controlplane.ledger.service import LedgerService
from controlplane.redis_client import connect
from controlplane.tokens.roles import Role
from tests.support.processes import KEY_PASSPHRASE
from tests.support.stack import Stack, StackFactory

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ledger_stack(factory: StackFactory) -> Stack:
    return factory.stack(redis=factory.redis())


def append(stack: Stack, entries: list[bytes]) -> None:
    async def run() -> None:
        redis = connect(stack.redis.url, timeout_seconds=5)
        try:
            service = LedgerService(
                redis,
                SystemClock(),
                passphrase=KEY_PASSPHRASE.encode(),
                origin=origin(stack),
                sealed_key=None,
                require_fsync_always=True,
                state_path=None,
            )
            ledger = await service.ledger()
            await ledger.append([("test.entry", None, entry) for entry in entries])
        finally:
            await redis.aclose()

    asyncio.run(run())


def origin(stack: Stack) -> str:
    return stack.api.url.removeprefix("http://") + "/ledger"


def b64(text: str) -> bytes:
    return base64.b64decode(text)


def test_checkpoints_proofs_and_entries(ledger_stack: Stack) -> None:
    stack = ledger_stack
    api = stack.api.url
    assert httpx.get(f"{api}/v1/ledger/checkpoint").status_code in (200, 404)
    vkey = httpx.get(f"{api}/v1/ledger/key").text.strip()
    verifier = NoteVerifier.from_vkey(vkey)
    assert vkey.startswith(origin(stack) + "+")

    auditor = stack.client(Role.AUDITOR)  # its token's creation is itself a ledger entry
    # The stack's own records (policy, tokens) come first.
    base = open_checkpoint(
        httpx.get(f"{api}/v1/ledger/checkpoint").text, verifier, origin(stack)
    ).size
    earlier = [auditor.get(f"/v1/ledger/entries/{i}").json()["entry"].encode() for i in range(base)]
    first = [f'{{"n":{n},"v":1}}'.encode() for n in range(5)]
    append(stack, first)
    old = open_checkpoint(httpx.get(f"{api}/v1/ledger/checkpoint").text, verifier, origin(stack))
    second = [f'{{"n":{n},"v":1}}'.encode() for n in range(5, 13)]
    append(stack, second)
    note = httpx.get(f"{api}/v1/ledger/checkpoint").text
    new = open_checkpoint(note, verifier, origin(stack))
    assert (old.size, new.size) == (base + 5, base + 13)
    assert new.root == merkle.root([merkle.leaf_hash(e) for e in earlier + first + second])

    for index in (0, base + 4, base + 12):
        proof = httpx.get(
            f"{api}/v1/ledger/proof/inclusion", params={"index": index, "size": new.size}
        ).json()
        merkle.verify_inclusion(
            b64(proof["leaf_hash"]), index, new.size, [b64(h) for h in proof["proof"]], new.root
        )
    consistency = httpx.get(
        f"{api}/v1/ledger/proof/consistency", params={"from": old.size, "to": new.size}
    ).json()
    merkle.verify_consistency(
        old.size, new.size, old.root, new.root, [b64(h) for h in consistency["proof"]]
    )

    entry = auditor.get(f"/v1/ledger/entries/{base + 7}").json()
    auditor.close()
    assert entry["entry"] == second[2].decode()
    assert b64(entry["leaf_hash"]) == merkle.leaf_hash(second[2])


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/v1/ledger/proof/inclusion", {"index": 0, "size": 10**6}, 404),
        ("/v1/ledger/proof/inclusion", {"index": 5, "size": 5}, 400),
        ("/v1/ledger/proof/inclusion", {"index": -1, "size": 5}, 422),
        ("/v1/ledger/proof/consistency", {"from": 3, "to": 2}, 400),
        ("/v1/ledger/proof/consistency", {"from": 0, "to": 2}, 422),
    ],
)
def test_bad_proof_requests_are_problems(
    ledger_stack: Stack, path: str, params: dict[str, int], status: int
) -> None:
    append(ledger_stack, [b'{"n":"x"}'])
    response = httpx.get(f"{ledger_stack.api.url}{path}", params=params)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_receipts_from_the_cli_verify_offline(ledger_stack: Stack, tmp_path: Path) -> None:
    append(ledger_stack, [f'{{"receipt":{n}}}'.encode() for n in range(4)])

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return ledger_stack.cli("ledger", *args)

    checkpoint = cli("checkpoint")
    assert checkpoint.returncode == 0, checkpoint.stderr
    size = int(checkpoint.stdout.splitlines()[1])
    vkey = httpx.get(f"{ledger_stack.api.url}/v1/ledger/key").text.strip()
    receipt = tmp_path / "receipt.txt"
    made = cli("proof", str(size - 2), "--out", str(receipt))
    assert made.returncode == 0, made.stderr
    assert receipt.read_text().startswith("c2sp.org/tlog-proof@v1\n")
    verified = cli("verify-receipt", str(receipt), "--key", vkey)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.strip() == '{"receipt":2}'
    # Offline: the server is not asked. Any change to the receipt is refused.
    text = receipt.read_text()
    index_line = next(line for line in text.splitlines() if line.startswith("index "))
    for tampered in (
        text.replace(index_line, f"index {size - 1}"),
        text.replace(
            base64.b64encode(b'{"receipt":2}').decode(), base64.b64encode(b'{"receipt":9}').decode()
        ),
        text.replace(f"\n{size}\n", f"\n{size + 1}\n"),
    ):
        receipt.write_text(tampered)
        refused = cli("verify-receipt", str(receipt), "--key", vkey)
        assert refused.returncode != 0, tampered
    other = NoteSigner(origin(ledger_stack), SigningKey.generate()).vkey()
    receipt.write_text(text)
    assert cli("verify-receipt", str(receipt), "--key", other).returncode != 0
