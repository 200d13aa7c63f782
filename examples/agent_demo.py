"""An agent that tries one allowed and one denied action through the control plane.

Run it against `make run` (in another terminal):

    .venv/bin/python examples/agent_demo.py

It registers a fresh agent identity with a new Ed25519 key (an admin step, done here with the
admin token so that the demo is self-contained), creates an executor token, and then calls two
governed functions: `echo` runs (the default policy allows `demo.echo` for active agents), and
`transfer` is denied before it can run.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import httpx

from controlplane.client import AgentKey, ControlPlaneClient, Denied, governed

URL = os.environ.get("CONTROLPLANE_URL", "http://127.0.0.1:8080")


def admin_token() -> str:
    token = os.environ.get("CONTROLPLANE_ADMIN_TOKEN")
    if token:
        return token
    kept = Path(os.environ.get("CONTROLPLANE_STATE_DIR", ".controlplane")) / "admin.token"
    if kept.is_file():
        return kept.read_text().strip()
    sys.exit("set CONTROLPLANE_ADMIN_TOKEN or run `make run` in this directory first")


def main() -> None:
    admin = httpx.Client(base_url=URL, headers={"Authorization": f"Bearer {admin_token()}"})
    agent = f"agent:demo-{secrets.token_hex(4)}"
    key = AgentKey.generate()
    admin.post(
        "/v1/identities", json={"id": agent, "kind": "agent", "keys": [key.public_jwk()]}
    ).raise_for_status()
    executor_token = admin.post(
        "/v1/tokens", json={"role": "executor", "name": f"{agent} runner"}
    ).json()["token"]
    print(f"registered {agent} with key {key.kid}")

    with ControlPlaneClient(URL, executor_token=executor_token) as client:

        @governed(client, key, identity=agent, action="demo.echo", resource="demo")
        def echo(*, message: str) -> str:
            return message

        @governed(client, key, identity=agent, action="payments.transfer", resource="account:42")
        def transfer(*, amount: int) -> None:
            raise AssertionError("never runs: the policy denies it")

        print("echo ->", echo(message="hello, governed world"))
        try:
            transfer(amount=100)
        except Denied as denied:
            print("transfer denied:", ", ".join(denied.reasons))


if __name__ == "__main__":
    main()
