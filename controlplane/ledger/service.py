"""The ledger as the API uses it: its Ed25519 log key, and a `Ledger` started once per process.

The log key signs checkpoints (C2SP tlog-checkpoint, key name = the origin). Like the grant and
bundle keys it is sealed with the key passphrase (`controlplane.sealing`): given as
`CONTROLPLANE_LEDGER_KEY(_FILE)` (from `controlplane keys generate --ledger`), or else created on
first start and kept sealed in Redis beside the log. Production should give it as a file: a Redis
that loses its data would otherwise lose the key too, and the new key would be visible to every
auditor as a change of log identity.

The `Ledger` is started on first use rather than at process start, so that the API serves (and
says why it is not ready) while Redis is unreachable; a Redis that is reachable but does not
fsync every write stops the start (`ConfigurationError`), unless configured to warn.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

from joserfc.errors import JoseError
from joserfc.jwk import OKPKey
from nacl.signing import SigningKey
from redis.asyncio import Redis

from controlplane.clock import Clock
from controlplane.errors import ConfigurationError
from controlplane.ledger.log import ArchivedEntries, Ledger
from controlplane.ledger.notes import NoteSigner
from controlplane.redis_client import redis_errors
from controlplane.sealing import UnsealError, seal, unseal

KEY_KEY = "{cp:ledger}:key"  # the sealed log key, when none is configured


def generate_sealed_ledger_key(passphrase: bytes) -> str:
    """A new Ed25519 log key, sealed: what `controlplane keys generate --ledger` writes."""
    return seal(OKPKey.generate_key("Ed25519").as_dict(private=True), passphrase)


class LedgerService:
    def __init__(
        self,
        redis: Redis,
        clock: Clock,
        *,
        passphrase: bytes,
        origin: str,
        sealed_key: str | None,
        require_fsync_always: bool,
        state_path: Path | None,
        dedupe_seconds: int = 3600,
        archive: ArchivedEntries | None = None,
    ) -> None:
        self._redis = redis
        self._clock = clock
        self._passphrase = passphrase
        self._origin = origin
        self._sealed_key = sealed_key
        self._require_fsync_always = require_fsync_always
        self._state_path = state_path
        self._dedupe_seconds = dedupe_seconds
        self._archive = archive
        self._ledger: Ledger | None = None
        self._signer: NoteSigner | None = None
        self._lock = asyncio.Lock()

    @property
    def origin(self) -> str:
        return self._origin

    async def ledger(self) -> Ledger:
        """The started ledger. Raises `RedisUnavailable` or `ConfigurationError`."""
        if self._ledger is not None:
            return self._ledger
        async with self._lock:
            if self._ledger is None:
                signer = await self.signer()
                ledger = Ledger(
                    self._redis,
                    signer,
                    self._origin,
                    self._clock,
                    require_fsync_always=self._require_fsync_always,
                    state_path=self._state_path,
                    dedupe_seconds=self._dedupe_seconds,
                    archive=self._archive,
                )
                await ledger.start()
                self._ledger = ledger
        return self._ledger

    async def signer(self) -> NoteSigner:
        if self._signer is None:
            sealed = self._sealed_key
            if sealed is None:
                candidate = generate_sealed_ledger_key(self._passphrase)
                with redis_errors("loading the ledger key"):
                    await self._redis.set(KEY_KEY, candidate, nx=True)
                    stored = await self._redis.get(KEY_KEY)
                sealed = stored.decode() if isinstance(stored, bytes) else str(stored)
            self._signer = NoteSigner(self._origin, _unseal(sealed, self._passphrase))
        return self._signer

    async def vkey(self) -> str:
        """The C2SP verifier key of the log: `<origin>+<key id>+<public key>`."""
        return (await self.signer()).vkey()


def _unseal(sealed: str, passphrase: bytes) -> SigningKey:
    try:
        private = OKPKey.import_key(unseal(sealed, passphrase)).as_dict(private=True)
    except (UnsealError, JoseError, ValueError) as exc:
        raise ConfigurationError(
            "the ledger key cannot be decrypted: wrong CONTROLPLANE_KEY_PASSPHRASE, or not a key "
            "written by `controlplane keys generate --ledger`"
        ) from exc
    if private.get("crv") != "Ed25519" or "d" not in private:
        raise ConfigurationError("the ledger key must be a private Ed25519 key")
    return SigningKey(base64.urlsafe_b64decode(str(private["d"]) + "=="))
