"""Seeding a control plane with a policy through its API: build the folder, publish, activate.

`controlplane up` does this on a fresh state with `rego/`, so that `make run` reaches `/readyz`
unaided; the test fixtures do it for every stack. It is exactly what a policy author and an admin
do with `controlplane policy build`, `publish` and `activate`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from controlplane.policies import bundle


def build_unsigned(policy_dir: Path, template_dir: Path) -> bytes:
    """The bundle of `policy_dir`, with the roots and metadata of `template_dir/.manifest`."""
    template = bundle.read_manifest_template(template_dir)
    built = bundle.build(
        bundle.collect(policy_dir),
        roots=template["roots"],
        metadata=template.get("metadata", {}),
        signer=None,
    )
    return built.data


def publish_and_activate(
    api_url: str, admin_token: str, data: bytes, *, reason: str, only_if_none_active: bool
) -> dict[str, Any]:
    """Publish the bundle `data` and activate it. Returns the activation, or the active one when
    `only_if_none_active` and something is active already."""
    headers = {"Authorization": f"Bearer {admin_token}"}
    with httpx.Client(base_url=api_url, headers=headers, timeout=60) as client:
        if only_if_none_active:
            listing = client.get("/v1/policies")
            listing.raise_for_status()
            if listing.json()["active"] is not None:
                return dict(listing.json()["active"])
        published = client.post(
            "/v1/policies", content=data, headers={"Content-Type": "application/gzip"}
        )
        if published.status_code not in (200, 201):
            raise RuntimeError(f"publishing failed: {published.status_code} {published.text}")
        revision = published.json()["revision"]
        activated = client.post(f"/v1/policies/{revision}/activate", json={"reason": reason})
        if activated.status_code != 200:
            raise RuntimeError(f"activation failed: {activated.status_code} {activated.text}")
        return dict(activated.json())


def verification_key(api_url: str) -> dict[str, str]:
    response = httpx.get(f"{api_url.rstrip('/')}/v1/policies/verification-key", timeout=10)
    response.raise_for_status()
    return dict(response.json())
