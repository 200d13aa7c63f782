"""A whole control plane stack for tests: Redis, the API and OPA logging to it, with tokens."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from controlplane.decisions.demo import DEMO_INPUT
from controlplane.ledger.log import ENTRIES_KEY
from controlplane.stack.seed import build_unsigned, publish_and_activate, verification_key
from controlplane.tokens.roles import Role
from tests.support.processes import (
    BUNDLE_TEMPLATE,
    POLICY_DIR,
    REPO,
    ApiServer,
    OpaServer,
    Process,
    RedisServer,
    free_port,
)

DECISION_PATH = "/v1/data/governance/execution/decision"


@dataclass
class Stack:
    redis: RedisServer
    api: ApiServer
    opa: OpaServer
    admin_token: str
    _tokens: dict[Role, str] = field(default_factory=dict)

    def token(self, role: Role) -> str:
        """A token of `role` (created once per stack through the API)."""
        if role is Role.ADMIN:
            return self.admin_token
        if role not in self._tokens:
            self._tokens[role] = create_token(self.api.url, self.admin_token, role)
        return self._tokens[role]

    def client(self, role: Role | None = Role.SERVICE, **kwargs: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token(role)}"} if role else {}
        return httpx.Client(base_url=self.api.url, headers=headers, timeout=10, **kwargs)  # type: ignore[arg-type]

    def active_revision(self) -> str:
        """The policy revision the control plane has active."""
        with self.client(Role.ADMIN) as admin:
            return str(admin.get("/v1/policies").json()["active"]["revision"])

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """`controlplane ARGS...` against this stack, as an admin at a shell would run it."""
        env = {
            **os.environ,
            "CONTROLPLANE_URL": self.api.url,
            "CONTROLPLANE_ADMIN_TOKEN": self.admin_token,
        }
        return subprocess.run(
            [sys.executable, "-m", "controlplane", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=timeout,
            check=False,
        )

    def decide(self, client: httpx.Client, input_: object = DEMO_INPUT) -> httpx.Response:
        return client.post(DECISION_PATH, json={"input": input_})


def create_token(api_url: str, admin_token: str, role: Role, name: str | None = None) -> str:
    response = httpx.post(
        f"{api_url}/v1/tokens",
        json={"role": role.value, "name": name or f"test {role.value}"},
        headers={"Authorization": f"Bearer {admin_token}"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


class StackFactory:
    """Starts stacks in one working directory and stops every process it started."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.admin_token = "cp_test_admin_" + secrets.token_urlsafe(24)
        # One token for every API to present to OPA: the policies they publish carry its digest,
        # so stacks sharing a Redis (and so a policy) can all talk to their OPA.
        self.opa_client_token = "cp_test_opa_client_" + secrets.token_urlsafe(24)
        self._processes: list[Process] = []
        self._shared_redis: RedisServer | None = None

    def redis(self) -> RedisServer:
        """A Redis of its own, for tests that stop it."""
        server = RedisServer(self.workdir)
        self._track(server)
        return server

    def stack(
        self,
        *,
        redis: RedisServer | None = None,
        policy_dir: Path | None = POLICY_DIR,
        **settings: str,
    ) -> Stack:
        """API and OPA on free ports, the API seeded with `policy_dir` (published and activated,
        as an admin would) and OPA pulling it. The session's shared Redis holds the default
        policy; any other policy, and `redis=...`, get a Redis of their own, since the active
        revision is shared by everything on one Redis."""
        if redis is None and policy_dir == POLICY_DIR:
            self._shared_redis = self._shared_redis or self.redis()
            redis = self._shared_redis
        redis = redis or self.redis()
        opa_port = free_port()
        api = ApiServer(
            self.workdir,
            redis_url=redis.url,
            opa_url=f"http://127.0.0.1:{opa_port}",
            admin_token=self.admin_token,
            **{"opa_client_token": self.opa_client_token, **settings},
        )
        self._track(api)
        key = None
        if policy_dir is not None:
            publish_and_activate(
                api.url,
                self.admin_token,
                build_unsigned(policy_dir, BUNDLE_TEMPLATE),
                reason="test fixture",
                only_if_none_active=False,
            )
            key = verification_key(api.url)
        opa = self.opa(api, port=opa_port, verification_key=key)
        return Stack(redis, api, opa, self.admin_token)

    def opa(
        self,
        api: ApiServer,
        *,
        port: int | None = None,
        verification_key: dict[str, str] | None,
        polling: dict[str, int] | None = None,
    ) -> OpaServer:
        """One more OPA pulling from `api` (with its own `opa` token)."""
        port = port or free_port()
        opa_token = create_token(api.url, self.admin_token, Role.OPA, f"opa on {port}")
        opa = OpaServer(
            self.workdir,
            port=port,
            api_url=api.url,
            opa_token=opa_token,
            verification_key=verification_key,
            polling=polling,
        )
        self._track(opa)
        return opa

    def _track(self, process: Process) -> None:
        self._processes.append(process)
        process.start()

    def close(self) -> None:
        # OPA first, so that its last uploads still find the API.
        for process in sorted(self._processes, key=lambda p: not isinstance(p, OpaServer)):
            process.stop()


def stream_counts(redis: RedisServer, decision_ids: Iterable[str]) -> Counter[str]:
    """How often each of `decision_ids` appears as an OPA decision in the ledger."""
    wanted = set(decision_ids)
    return Counter(
        record["decision_id"]
        for _, record in ledger_records(redis, "opa.decision")
        if record["decision_id"] in wanted
    )


def ledger_records(redis: RedisServer, kind: str | None = None) -> list[tuple[int, dict[str, Any]]]:
    """(index, record) of every ledger entry in Redis, of `kind` if given, oldest first."""
    found: list[tuple[int, dict[str, Any]]] = []
    with redis.client() as client:
        start = "-"
        while True:
            batch = client.xrange(ENTRIES_KEY, min=start, max="+", count=1000)
            if not batch:
                return found
            for entry_id, fields in batch:
                if kind is None or fields[b"kind"] == kind.encode():
                    index = int(entry_id.decode().removeprefix("0-")) - 1
                    found.append((index, json.loads(fields[b"e"])))
            start = "(" + batch[-1][0].decode()
