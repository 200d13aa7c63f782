"""A whole control plane stack for tests: Redis, the API and OPA logging to it, with tokens."""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from controlplane.decisions.demo import DEMO_INPUT
from controlplane.ledger.evidence import STREAM_KEY
from controlplane.tokens.roles import Role
from tests.support.processes import (
    POLICY_DIR,
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
        """API and OPA on free ports, with the session's shared Redis unless one is given."""
        if redis is None:
            self._shared_redis = self._shared_redis or self.redis()
            redis = self._shared_redis
        opa_port = free_port()
        api = ApiServer(
            self.workdir,
            redis_url=redis.url,
            opa_url=f"http://127.0.0.1:{opa_port}",
            admin_token=self.admin_token,
            **settings,
        )
        self._track(api)
        opa_token = create_token(api.url, self.admin_token, Role.OPA, f"opa on {opa_port}")
        opa = OpaServer(
            self.workdir, port=opa_port, api_url=api.url, opa_token=opa_token, policy_dir=policy_dir
        )
        self._track(opa)
        return Stack(redis, api, opa, self.admin_token)

    def _track(self, process: Process) -> None:
        self._processes.append(process)
        process.start()

    def close(self) -> None:
        # OPA first, so that its last uploads still find the API.
        for process in sorted(self._processes, key=lambda p: not isinstance(p, OpaServer)):
            process.stop()


def stream_counts(redis: RedisServer, decision_ids: Iterable[str]) -> Counter[str]:
    """How often each of `decision_ids` appears as an OPA decision in the evidence stream."""
    wanted = set(decision_ids)
    counts: Counter[str] = Counter()
    with redis.client() as client:
        start = "-"
        while True:
            batch = client.xrange(STREAM_KEY, min=start, max="+", count=1000)
            if not batch:
                return counts
            for _entry_id, fields in batch:
                if fields[b"kind"] != b"opa.decision":
                    continue
                decision_id = fields[b"decision_id"].decode()
                if decision_id in wanted:
                    counts[decision_id] += 1
            start = "(" + batch[-1][0].decode()
