"""Publishing a policy: from an author's upload to a signed, stored, immutable revision.

The control plane is the only signer. An upload (a bundle from `controlplane policy build`, signed
or not) is opened with limits, its `.signatures.json` ignored and its `.manifest` kept for
`roots` and `metadata`; the files are checked by OPA itself (`opa check --bundle`: syntax, roots,
conflicts) so that a policy OPA would refuse is refused here with OPA's message, before anything is
stored. The control plane then adds the one file it owns, `system/controlplane/data.json`: the
SHA-256 of the token it presents to OPA, which `system.authz` admits (OPA runs with
`--authentication=token --authorization=basic`). It builds the bundle with its content-derived
revision, signs it with the bundle key, checks its own signature as OPA will, and stores it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controlplane.errors import ConfigurationError, InvalidEntity
from controlplane.ledger.evidence import EvidenceLog
from controlplane.policies import bundle
from controlplane.policies.keys import BundleKey
from controlplane.policies.revisions import PolicyStore
from controlplane.policies.signing import generate_key, keyid_of, verify_bundle

RESERVED_DATA = "system/controlplane/data.json"
DEFAULT_ROOTS = ["governance", "system"]
_AUTHZ_PACKAGE = re.compile(rb"^\s*package\s+system\.authz\s*$", re.MULTILINE)
OPA_CHECK_TIMEOUT_SECONDS = 60
MAX_OPA_MESSAGE = 4000


@dataclass(frozen=True, slots=True)
class PublishLimits:
    max_bundle_bytes: int  # compressed upload
    max_unpacked_bytes: int
    max_files: int = 1000


class PolicyPublisher:
    def __init__(
        self,
        store: PolicyStore,
        key: BundleKey,
        *,
        opa_bin: Path | None,
        opa_client_token_sha256: list[str],
        limits: PublishLimits,
    ) -> None:
        self._store = store
        self._key = key
        self._opa_bin = opa_bin
        self._token_hashes = opa_client_token_sha256
        self._limits = limits

    async def publish_upload(self, data: bytes, *, actor: str) -> tuple[dict[str, Any], bool]:
        """Publish an uploaded bundle (tar.gz). Returns (revision metadata, created)."""
        opened = self._open(data)
        manifest = opened.manifest or {}
        roots = manifest.get("roots", DEFAULT_ROOTS)
        metadata = manifest.get("metadata", {})
        if not isinstance(metadata, dict):
            raise InvalidEntity(
                "the manifest's metadata must be a JSON object", code="bundle_invalid"
            )
        return await self.publish_files(opened.files, roots=roots, metadata=metadata, actor=actor)

    async def publish_files(
        self,
        files: Mapping[str, bytes],
        *,
        roots: list[str],
        metadata: dict[str, Any],
        actor: str,
    ) -> tuple[dict[str, Any], bool]:
        """Check, complete, build, sign and store the policy `files`."""
        content = {
            name: data
            for name, data in files.items()
            if name not in (".manifest", ".signatures.json")
        }
        if RESERVED_DATA in content:
            raise InvalidEntity(
                f"{RESERVED_DATA} is written by the control plane; remove it from the bundle",
                code="bundle_invalid",
            )
        if not any(
            _AUTHZ_PACKAGE.search(data) for n, data in content.items() if n.endswith(".rego")
        ):
            raise InvalidEntity(
                "the bundle has no `package system.authz`: OPA runs with --authorization=basic "
                "and would refuse every request (copy rego/system/ from the default policy)",
                code="bundle_invalid",
            )
        content[RESERVED_DATA] = (
            json.dumps({"opa_client_sha256": sorted(self._token_hashes)}, sort_keys=True) + "\n"
        ).encode()
        signer = await self._key.signer()
        built = bundle.build(content, roots=list(roots), metadata=metadata, signer=signer)
        if len(built.data) > self._limits.max_bundle_bytes:
            raise InvalidEntity(
                f"the signed bundle is {len(built.data)} bytes, over the limit of "
                f"{self._limits.max_bundle_bytes}",
                code="too_large",
            )
        await self._opa_check(built.files)
        key = await self._key.verification_key()
        verify_bundle(
            {n: d for n, d in built.files.items() if n != ".signatures.json"},
            built.files.get(".signatures.json"),
            public_pem=key.public_key_pem,
            keyid=key.keyid,
            scope=key.scope,
        )
        meta = {
            "digest": built.digest,
            "size": len(built.data),
            "roots": list(roots),
            "metadata": metadata,
            "files": sorted(n for n in built.files if n not in (".manifest", ".signatures.json")),
        }
        return await self._store.publish(built.revision, built.data, meta, actor=actor)

    async def rotate_key(self, *, actor: str, reason: str, evidence: EvidenceLog) -> dict[str, Any]:
        """Sign with a new bundle key from now on, and re-sign every stored revision that is not
        revoked with it. Revisions derive from content, not signatures, so each keeps its id and
        ETag: running OPAs see 304 and keep what they have (docs/policies.md)."""
        private = generate_key()
        async with evidence.change(
            "cp.admin.policy.key_rotate",
            actor=actor,
            reason=reason,
            previous_keyid=(await self._key.verification_key()).keyid,
            keyid=keyid_of(private.public_key()),
        ):
            previous, new = await self._key.rotate(private)
            resigned = await self._resign_all()
        return {"previous": previous.as_json(), "current": new.as_json(), "resigned": resigned}

    async def _resign_all(self) -> list[str]:
        """Re-sign every stored revision that is not revoked with the current key."""
        signer = await self._key.signer()
        resigned = []
        for meta in await self._store.revisions():
            if meta["status"] == "revoked":
                continue
            revision = meta["revision"]
            data = await self._store.bundle(revision)
            if data is None:
                continue
            opened = self._open(data)
            manifest = opened.manifest or {}
            built = bundle.build(
                {n: d for n, d in opened.files.items() if n != ".manifest"},
                roots=list(manifest.get("roots", DEFAULT_ROOTS)),
                metadata=dict(manifest.get("metadata", {})),
                signer=signer,
            )
            if built.revision != revision:
                raise ConfigurationError(f"re-signing {revision} changed its revision")
            await self._store.replace_bundle(revision, built.data, built.digest)
            resigned.append(revision)
        return resigned

    def _open(self, data: bytes) -> bundle.ReadBundle:
        return bundle.read(
            data,
            max_bytes=self._limits.max_unpacked_bytes,
            max_files=self._limits.max_files,
            max_file_bytes=self._limits.max_unpacked_bytes,
        )

    async def _opa_check(self, files: Mapping[str, bytes]) -> None:
        """`opa check --bundle` on the files: what OPA would refuse to activate."""
        if self._opa_bin is None or not self._opa_bin.is_file():
            raise ConfigurationError(
                "publishing needs the OPA binary to check policies; set CONTROLPLANE_OPA_BIN"
            )
        with tempfile.TemporaryDirectory(prefix="controlplane-policy-") as tmp:
            root = Path(tmp)
            for name, data in files.items():
                if name == ".signatures.json":
                    continue
                target = root / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            process = await asyncio.create_subprocess_exec(
                str(self._opa_bin),
                "check",
                "--bundle",
                str(root),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            try:
                output, _ = await asyncio.wait_for(process.communicate(), OPA_CHECK_TIMEOUT_SECONDS)
            except TimeoutError:
                process.kill()
                await process.wait()
                raise InvalidEntity("opa check took too long", code="policy_invalid") from None
        if process.returncode != 0:
            message = output.decode(errors="replace").replace(str(root) + "/", "")
            raise InvalidEntity(
                "OPA refuses this policy:\n" + message.strip()[:MAX_OPA_MESSAGE],
                code="policy_invalid",
            )


def token_sha256(token: str) -> str:
    """The digest of the token the control plane presents to OPA, as `system.authz` checks it."""
    return hashlib.sha256(token.encode()).hexdigest()
