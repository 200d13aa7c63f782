"""The demo decision input: an active agent asking to run `demo.echo`, which the default policy
allows. The README walkthrough, the `controlplane up` banner and the OpenAPI example show it."""

from __future__ import annotations

from typing import Any

DEMO_INPUT: dict[str, Any] = {
    "identity": {"id": "agent:demo", "kind": "agent", "status": "active", "attributes": {}},
    "request": {"action": "demo.echo", "resource": "demo", "args": {}},
    "context": {},
}
