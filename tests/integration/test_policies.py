"""Signed bundles, revisions and the OPA fleet, against real OPA processes (issue #4).

Each test gets a stack with a Redis of its own, since the active revision is shared by everything
on one Redis. What OPA did is read from OPA itself (`GET /v1/status` on OPA, with the control
plane's token), not only from the control plane.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from controlplane.policies.signing import BundleSigner, generate_key
from controlplane.sealing import unseal
from controlplane.stack.seed import build_unsigned
from controlplane.tokens.roles import Role
from tests.support.bundles import targz, untar
from tests.support.processes import BUNDLE_TEMPLATE, KEY_PASSPHRASE, POLICY_DIR, wait_until
from tests.support.stack import DEMO_INPUT, Stack, StackFactory, ledger_records

pytestmark = pytest.mark.integration


@pytest.fixture
def own(factory: StackFactory) -> Stack:
    """A stack on a Redis of its own, with a 1 s grace period after activations."""
    return factory.stack(redis=factory.redis(), POLICY_GRACE_SECONDS="1")


def opa_status(stack: Stack, factory: StackFactory) -> dict[str, Any]:
    """OPA's own view of its bundle (OPA's status API)."""
    response = httpx.get(
        f"{stack.opa.url}/v1/status",
        headers={"Authorization": f"Bearer {factory.opa_client_token}"},
        timeout=5,
    )
    response.raise_for_status()
    return dict(response.json()["result"]["bundles"]["governance"])


def variant(tmp_path: Path, name: str, edit: Callable[[Path], None] | None = None) -> bytes:
    """The default policy with a distinct revision (its metadata names the variant)."""
    folder = tmp_path / name
    shutil.copytree(POLICY_DIR, folder)
    (folder / "governance" / f"variant_{name}.rego").write_text(
        f"package governance.variant_{name}\n\nname := {json.dumps(name)}\n"
    )
    if edit:
        edit(folder)
    return build_unsigned(folder, BUNDLE_TEMPLATE)


def publish(stack: Stack, data: bytes, role: Role = Role.ADMIN) -> httpx.Response:
    with stack.client(role) as client:
        return client.post(
            "/v1/policies", content=data, headers={"Content-Type": "application/gzip"}
        )


def activate(stack: Stack, revision: str, reason: str = "test") -> httpx.Response:
    with stack.client(Role.ADMIN) as admin:
        return admin.post(f"/v1/policies/{revision}/activate", json={"reason": reason})


def active_revision(stack: Stack) -> str:
    return stack.active_revision()


def wait_for_opa(
    stack: Stack, factory: StackFactory, check: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def done() -> bool:
        seen.update(opa_status(stack, factory))
        return check(seen)

    wait_until(done, timeout=15, what=what, interval=0.1)
    return seen


def decide(stack: Stack) -> dict[str, Any]:
    with stack.client() as client:
        return dict(stack.decide(client, DEMO_INPUT).json())


def test_opa_activates_the_signed_bundle_it_was_configured_for(
    own: Stack, factory: StackFactory
) -> None:
    revision = active_revision(own)
    status = opa_status(own, factory)
    assert status["active_revision"] == revision
    assert "code" not in status
    key = httpx.get(f"{own.api.url}/v1/policies/verification-key").json()
    assert key["algorithm"] == "ES256"
    assert key["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")
    # OPA was configured from that document and nothing else.
    assert own.opa.config["keys"] == {
        key["keyid"]: {
            "algorithm": "ES256",
            "key": key["public_key_pem"],
            "scope": key["scope"],
        }
    }
    assert own.opa.config["bundles"]["governance"]["signing"] == {
        "keyid": key["keyid"],
        "scope": key["scope"],
    }
    assert decide(own)["result"] == {"allow": True, "reasons": []}


def _rewrite(data: bytes, change: Callable[[dict[str, bytes]], None]) -> bytes:
    files = untar(data)
    change(files)
    return targz(files)


def _stack_signer(stack: Stack, scope: str) -> BundleSigner:
    """The control plane's own bundle key, as an attacker with Redis and the passphrase has it."""
    from controlplane.policies.keys import _unseal  # noqa: PLC0415 (test of storage tampering)

    with stack.redis.client() as client:
        stored = json.loads(client.get("cp:bundle-key"))
    assert unseal(stored["sealed"], KEY_PASSPHRASE.encode())
    return BundleSigner(_unseal(stored["sealed"], KEY_PASSPHRASE.encode()), stored["keyid"], scope)


def _modify_rego(files: dict[str, bytes]) -> None:
    name = next(n for n in files if n.endswith("decision.rego"))
    files[name] += b"\nallow_everything := true\n"


def _modify_data(files: dict[str, bytes]) -> None:
    files["system/controlplane/data.json"] = b'{"opa_client_sha256": []}'


def _remove_signatures(files: dict[str, bytes]) -> None:
    del files[".signatures.json"]


TAMPERINGS = {
    "modified rego file": (_modify_rego, "digest mismatch"),
    "modified data.json": (_modify_data, "digest mismatch"),
    "removed .signatures.json": (_remove_signatures, "bundle missing .signatures.json"),
}


@pytest.mark.parametrize(
    "case",
    [*TAMPERINGS, "signed by another key", "signature scope differs"],
)
def test_opa_refuses_an_altered_bundle_and_keeps_the_previous_revision(
    own: Stack, factory: StackFactory, tmp_path: Path, case: str
) -> None:
    before = active_revision(own)
    published = publish(own, variant(tmp_path, "tampered"))
    assert published.status_code == 201, published.text
    revision = published.json()["revision"]
    key = f"cp:policy:bundle:{revision}"
    with own.redis.client() as client:
        signed = client.get(key)
        if case in TAMPERINGS:
            altered = _rewrite(signed, TAMPERINGS[case][0])
            expected = TAMPERINGS[case][1]
        else:
            signer = (
                BundleSigner(generate_key(), _stack_signer(own, "x").keyid, "governance")
                if case == "signed by another key"
                else _stack_signer(own, "another scope")
            )
            expected = "failed to verify" if case == "signed by another key" else "scope mismatch"

            def resign(files: dict[str, bytes]) -> None:
                del files[".signatures.json"]
                files[".signatures.json"] = signer.signatures_json(files)

            altered = _rewrite(signed, resign)
        client.set(key, altered)
    assert activate(own, revision).status_code == 200
    status = wait_for_opa(
        own, factory, lambda s: s.get("code") == "bundle_error", "OPA to refuse the bundle"
    )
    assert status["active_revision"] == before
    errors = " ".join([status.get("message", ""), *map(str, status.get("errors", []))])
    assert expected in errors, errors
    # The control plane sees the same through OPA's status reports.
    with own.client(Role.SRE) as sre:
        fleet = sre.get("/v1/fleet").json()
    (instance,) = [
        i for i in fleet["instances"] if i["labels"]["instance"].endswith(str(own.opa.port))
    ]
    assert instance["bundles"]["governance"]["code"] == "bundle_error"
    assert instance["current"] is False
    # After the grace period, decisions from the previous revision are stale.
    time.sleep(1.2)
    assert decide(own)["reason"] == "policy_stale"


def test_activate_rollback_revoke(own: Stack, factory: StackFactory, tmp_path: Path) -> None:
    first = active_revision(own)
    second = publish(own, variant(tmp_path, "second")).json()["revision"]
    assert activate(own, second, "ship it").json()["revision"] == second
    wait_for_opa(own, factory, lambda s: s["active_revision"] == second, "the new revision")
    assert decide(own)["result"]["allow"] is True

    with own.client(Role.ADMIN) as admin:
        rolled = admin.post("/v1/policies/rollback", json={"reason": "bad release"})
        assert rolled.status_code == 200 and rolled.json()["revision"] == first
        wait_for_opa(own, factory, lambda s: s["active_revision"] == first, "the rollback")

        revoked = admin.post(f"/v1/policies/{first}/revoke", json={"reason": "leaks data"})
        assert revoked.json()["status"] == "revoked"
        assert revoked.json()["revoked"]["reason"] == "leaks data"
        # OPA still runs the revoked revision: its decisions are denied, and it is not ready.
        time.sleep(0.3)
        assert decide(own)["reason"] == "policy_revoked"
        assert httpx.get(f"{own.api.url}/readyz").status_code == 503
        # Never served again, never activated again.
        bundle = admin.get("/v1/bundles/governance")
        assert bundle.status_code == 404
        assert activate(own, first).status_code == 409
        assert activate(own, first).json()["reason"] == "policy_revoked"

        assert activate(own, second, "recover").status_code == 200
        wait_for_opa(own, factory, lambda s: s["active_revision"] == second, "the recovery")
        assert decide(own)["result"]["allow"] is True
        wait_until(
            lambda: httpx.get(f"{own.api.url}/readyz").status_code == 200,
            timeout=5,
            what="ready again",
        )
        listing = admin.get("/v1/policies").json()
    statuses = {meta["revision"]: meta["status"] for meta in listing["revisions"]}
    assert statuses == {first: "revoked", second: "active"}
    kinds = _evidence_kinds(own)
    assert kinds.count("cp.admin.policy.activate") >= 3
    assert "cp.admin.policy.rollback" in kinds and "cp.admin.policy.revoke" in kinds


def _evidence_kinds(stack: Stack) -> list[str]:
    return [record["kind"] for _, record in ledger_records(stack.redis)]


def test_nothing_active_denies_with_policy_not_active(own: Stack) -> None:
    revision = active_revision(own)
    with own.client(Role.ADMIN) as admin:
        admin.post(f"/v1/policies/{revision}/revoke", json={"reason": "test"})
    time.sleep(0.3)
    first = decide(own)["reason"]
    assert first == "policy_revoked"  # OPA still runs it
    with own.redis.client() as client:
        client.hdel("cp:policy:revoked", revision)  # as if OPA ran a revision that is not revoked
        client.incr("cp:policy:generation")
    time.sleep(0.3)
    assert decide(own)["reason"] == "policy_not_active"


def test_bundle_service_etag_304_and_long_poll(own: Stack) -> None:
    headers = {"Authorization": f"Bearer {own.token(Role.OPA)}"}
    url = f"{own.api.url}/v1/bundles/governance"
    first = httpx.get(url, headers=headers)
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert etag == f'"{active_revision(own)}"'
    assert first.headers["content-type"] == "application/gzip"
    again = httpx.get(url, headers={**headers, "If-None-Match": etag})
    assert again.status_code == 304 and again.headers["etag"] == etag
    started = time.monotonic()
    waited = httpx.get(
        url,
        headers={**headers, "If-None-Match": etag, "Prefer": "modes=snapshot,delta;wait=1"},
        timeout=10,
    )
    assert waited.status_code == 304
    assert 0.9 <= time.monotonic() - started < 3
    assert waited.headers["content-type"] == "application/vnd.openpolicyagent.bundles"
    assert httpx.get(f"{own.api.url}/v1/bundles/other", headers=headers).status_code == 404


def test_opa_long_polls_and_picks_up_an_activation_at_once(
    own: Stack, factory: StackFactory, tmp_path: Path
) -> None:
    """OPA stays in long-poll mode (our answers carry the bundle media type): an activation
    reaches it well before its periodic delay (1-5 s) could, and between changes it keeps
    one request open instead of polling."""
    time.sleep(1.0)
    metric = 'controlplane_http_requests_total{method="GET",route="/v1/bundles/{name:path}"'

    def requests_so_far() -> float:
        text = httpx.get(f"{own.api.url}/metrics").text
        return sum(
            float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(metric)
        )

    before = requests_so_far()
    time.sleep(3.0)
    assert requests_so_far() - before <= 1  # a long poll, not periodic polling
    revision = publish(own, variant(tmp_path, "fast")).json()["revision"]
    started = time.monotonic()
    activate(own, revision)
    wait_for_opa(own, factory, lambda s: s["active_revision"] == revision, "the activation")
    assert time.monotonic() - started < 1.0


def test_opa_api_is_locked(own: Stack, factory: StackFactory) -> None:
    decision = f"{own.opa.url}/v1/data/governance/execution/decision"
    assert httpx.post(decision, json={"input": DEMO_INPUT}).status_code == 401
    wrong = {"Authorization": "Bearer not-the-control-plane"}
    assert httpx.post(decision, json={"input": DEMO_INPUT}, headers=wrong).status_code == 401
    assert httpx.get(f"{own.opa.url}/health").status_code == 200
    ours = {"Authorization": f"Bearer {factory.opa_client_token}"}
    assert httpx.post(decision, json={"input": DEMO_INPUT}, headers=ours).status_code == 200
    # Nobody, not even the control plane's token, can change policy or data through OPA.
    for headers in ({}, ours):
        assert (
            httpx.put(
                f"{own.opa.url}/v1/policies/evil",
                content=b"package governance.execution\ndecision := {}",
                headers=headers,
            ).status_code
            == 401
        )
        assert (
            httpx.put(f"{own.opa.url}/v1/data/governance", json={}, headers=headers).status_code
            == 401
        )
        assert httpx.delete(f"{own.opa.url}/v1/policies/x", headers=headers).status_code == 401
    assert decide(own)["result"] == {"allow": True, "reasons": []}


def _syntax_error(folder: Path) -> None:
    (folder / "governance" / "broken.rego").write_text("package governance.broken\n\nallow if {\n")


@pytest.mark.parametrize(
    ("case", "status", "reason"),
    [
        ("rego syntax error", 422, "policy_invalid"),
        ("not a tar", 400, "bundle_invalid"),
        ("over the size limit", 413, "too_large"),
        ("overlapping roots", 422, "overlapping_roots"),
        ("no system.authz", 422, "bundle_invalid"),
    ],
)
def test_bad_uploads_are_refused_and_nothing_is_stored(
    own: Stack, tmp_path: Path, case: str, status: int, reason: str
) -> None:
    if case == "rego syntax error":
        data = variant(tmp_path, "broken", _syntax_error)
    elif case == "not a tar":
        data = gzip.compress(b"this is not a tar archive")
    elif case == "over the size limit":
        data = b"\x1f\x8b" + b"\0" * (9 * 1024 * 1024)
    elif case == "overlapping roots":
        folder = tmp_path / "roots"
        shutil.copytree(POLICY_DIR, folder)
        manifest = {"roots": ["governance", "governance/x", "system"], "metadata": {}}
        data = _rewrite(
            build_unsigned(folder, BUNDLE_TEMPLATE),
            lambda f: f.update({".manifest": json.dumps(manifest).encode()}),
        )
    else:
        data = variant(tmp_path, "open", lambda f: shutil.rmtree(f / "system"))
    with own.client(Role.ADMIN) as admin:
        before = admin.get("/v1/policies").json()["revisions"]
        response = publish(own, data)
        after = admin.get("/v1/policies").json()["revisions"]
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["reason"] == reason, response.json()
    assert after == before


def test_publishing_is_idempotent_and_needs_the_right_role(own: Stack, tmp_path: Path) -> None:
    data = variant(tmp_path, "twice")
    first = publish(own, data, Role.POLICY_AUTHOR)
    assert first.status_code == 201
    again = publish(own, data, Role.POLICY_AUTHOR)
    assert again.status_code == 200
    assert again.json()["revision"] == first.json()["revision"]
    assert first.json()["published_by"].startswith("policy-author:")
    with own.client(Role.POLICY_AUTHOR) as author:
        denied = author.post(
            f"/v1/policies/{first.json()['revision']}/activate", json={"reason": "x"}
        )
    assert denied.status_code == 403
    with own.client(Role.ADMIN) as admin:
        missing = admin.post(f"/v1/policies/{first.json()['revision']}/activate", json={})
    assert missing.status_code == 422  # a reason is required


def test_readiness_follows_the_policy_state(own: Stack, factory: StackFactory) -> None:
    ready = httpx.get(f"{own.api.url}/readyz").json()
    assert ready["checks"]["policy"]["ok"] is True
    assert "active revision" in ready["checks"]["policy"]["detail"]


def test_key_rotation_keeps_revisions_and_running_opas(own: Stack, factory: StackFactory) -> None:
    revision = active_revision(own)
    old = httpx.get(f"{own.api.url}/v1/policies/verification-key").json()
    with own.client(Role.ADMIN) as admin:
        rotated = admin.post(
            "/v1/policies/verification-key/rotate", json={"reason": "yearly rotation"}
        )
    assert rotated.status_code == 200, rotated.text
    new = httpx.get(f"{own.api.url}/v1/policies/verification-key").json()
    assert new["keyid"] != old["keyid"] and rotated.json()["current"] == new
    assert rotated.json()["resigned"] == [revision]
    # The running OPA, configured with the old key, keeps its revision without an error.
    time.sleep(1.0)
    status = opa_status(own, factory)
    assert status["active_revision"] == revision and "code" not in status
    # An OPA configured with the new key verifies the re-signed bundle of the same revision.
    fresh = factory.opa(own.api, verification_key=new)
    response = httpx.get(
        f"{fresh.url}/v1/status",
        headers={"Authorization": f"Bearer {factory.opa_client_token}"},
    )
    assert response.json()["result"]["bundles"]["governance"]["active_revision"] == revision
    assert "cp.admin.policy.key_rotate" in _evidence_kinds(own)


def test_policy_cli_from_folder_to_fleet(own: Stack, tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return own.cli("policy", *args)

    tested = cli("test", "rego")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    first, second = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    for out in (first, second):
        built = cli("build", "rego", "--out", str(out))
        assert built.returncode == 0, built.stderr
    assert first.read_bytes() == second.read_bytes()  # reproducible

    folder = tmp_path / "policy"
    shutil.copytree(POLICY_DIR, folder)
    (folder / "governance" / "cli.rego").write_text('package governance.cli\n\nname := "cli"\n')
    published = cli("publish", str(folder))
    assert published.returncode == 0, published.stderr
    revision = json.loads(published.stdout)["revision"]
    activated = cli("activate", revision, "--reason", "from the CLI")
    assert activated.returncode == 0, activated.stderr
    listed = cli("list")
    assert revision[:16] in listed.stdout and "active" in listed.stdout

    def reported() -> bool:
        status = cli("status")
        return (
            status.returncode == 0 and revision[:16] in status.stdout and " yes " in status.stdout
        )

    wait_until(reported, timeout=15, what="the fleet to report the new revision")
    unknown = cli("activate", "f" * 64, "--reason", "typo")
    assert unknown.returncode == 4 and "no published revision" in unknown.stderr
    no_reason = cli("rollback")
    assert no_reason.returncode != 0


def test_a_long_poll_ends_promptly_when_the_api_stops(factory: StackFactory) -> None:
    stack = factory.stack(redis=factory.redis())
    headers = {
        "Authorization": f"Bearer {stack.token(Role.OPA)}",
        "If-None-Match": f'"{stack.active_revision()}"',
        "Prefer": "modes=snapshot,delta;wait=60",
    }
    answers: list[httpx.Response] = []
    poll = threading.Thread(
        target=lambda: answers.append(
            httpx.get(f"{stack.api.url}/v1/bundles/governance", headers=headers, timeout=90)
        )
    )
    poll.start()
    time.sleep(1.0)
    stopped = time.monotonic()
    stack.api.stop()
    poll.join(timeout=10)
    assert time.monotonic() - stopped < 3
    assert answers and answers[0].status_code == 304
