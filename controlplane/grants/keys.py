"""Grant signing keys: an Ed25519 key ring shared by every replica through Redis, encrypted at rest.

Each private key is sealed with the operator's passphrase (`controlplane.sealing`), so Redis and
its append-only file never hold a usable private key, and neither does a key file given to
`CONTROLPLANE_GRANT_KEY_FILE`. The `kid` is the key's RFC 7638 JWK thumbprint.

Rotation makes a new key active and retires the old one, which stays in the JWKS until the last
grant it signed has expired (`not_after` = retirement + grant lifetime + clock skew). Replicas
re-read the ring every few seconds, so a rotation reaches all of them without a restart.
Nothing here logs key material.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import OKPKey
from nacl.signing import SigningKey as Signer
from redis.asyncio import Redis

from controlplane.clock import Clock, rfc3339
from controlplane.errors import ConfigurationError, InvalidInput, RedisUnavailable
from controlplane.jose import ed25519_signer
from controlplane.redis_client import redis_errors
from controlplane.sealing import UnsealError, seal, unseal

_RING = "cp:grant-keys"  # hash: kid -> JSON {jwe, public_jwk, created_at, retired_at, not_after}
_ACTIVE = "cp:grant-keys:active"
SIGNING_ALGORITHM = "EdDSA"
REFRESH_SECONDS = 5.0

log = logging.getLogger(__name__)

# Make `new_kid` active and retire the previous active key, atomically.
# KEYS: ring, active. ARGV: new_kid, new_entry_json, retired_at, not_after.
_ROTATE = """
local previous = redis.call('GET', KEYS[2])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[1])
if previous and previous ~= ARGV[1] then
  local raw = redis.call('HGET', KEYS[1], previous)
  if raw then
    local entry = cjson.decode(raw)
    entry['retired_at'] = ARGV[3]
    entry['not_after'] = ARGV[4]
    redis.call('HSET', KEYS[1], previous, cjson.encode(entry))
  end
end
return previous
"""


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    private: OKPKey
    signer: Signer  # the same key, for libsodium
    public_jwk: dict[str, str]
    created_at: str
    retired_at: str | None
    not_after: str | None


def generate_encrypted_key(passphrase: bytes) -> tuple[str, str]:
    """A new Ed25519 key as (kid, JWE of its private JWK): what `controlplane keys generate`
    writes for `CONTROLPLANE_GRANT_KEY_FILE`."""
    key = OKPKey.generate_key("Ed25519")
    return key.thumbprint(), _encrypt(key, passphrase)


class KeyRing:
    def __init__(
        self,
        redis: Redis,
        clock: Clock,
        *,
        passphrase: bytes,
        grant_lifetime_seconds: int,
        clock_skew_seconds: int,
    ) -> None:
        self._redis = redis
        self._clock = clock
        self._passphrase = passphrase
        self._retention = timedelta(seconds=grant_lifetime_seconds + clock_skew_seconds)
        self._keys: dict[str, SigningKey] = {}
        self._active: str | None = None
        self._loaded_at = float("-inf")
        self._pending_import: str | None = None
        self._rotate = redis.register_script(_ROTATE)

    @property
    def loaded(self) -> bool:
        return self._active is not None

    async def start(self, import_jwe: str | None = None) -> None:
        """Load the ring; import and activate `import_jwe` if it is new; create a first key if the
        ring is empty. Raises `ConfigurationError` when a key cannot be decrypted and
        `RedisUnavailable` when Redis does not answer (the ring then loads on first use)."""
        self._pending_import = import_jwe
        await self.refresh()
        if import_jwe is not None:
            key = _decrypt(import_jwe.strip(), self._passphrase)
            # Only a key the ring has never held is activated: a restart with the same file must
            # not undo a rotation made since.
            if key.thumbprint() not in self._keys:
                await self._activate(key, import_jwe.strip())
        if self._active is None:
            key = OKPKey.generate_key("Ed25519")
            entry = self._entry(key, _encrypt(key, self._passphrase))
            with redis_errors("creating the first grant signing key"):
                await self._redis.hsetnx(_RING, key.thumbprint(), json.dumps(entry))
                # Another replica may have won the race to create the first key: use theirs.
                await self._redis.set(_ACTIVE, key.thumbprint(), nx=True)
            await self.refresh()
        self._pending_import = None

    async def refresh(self) -> None:
        """Re-read the ring from Redis, decrypting only keys not seen before."""
        with redis_errors("reading the grant signing keys"):
            entries = await self._redis.hgetall(_RING)
            active = await self._redis.get(_ACTIVE)
        keys: dict[str, SigningKey] = {}
        for raw_kid, raw_entry in entries.items():
            kid = _text(raw_kid)
            entry = json.loads(raw_entry)
            known = self._keys.get(kid)
            private = known.private if known else _decrypt(entry["jwe"], self._passphrase)
            keys[kid] = SigningKey(
                kid,
                private,
                known.signer if known else ed25519_signer(private),
                entry["public_jwk"],
                entry["created_at"],
                entry.get("retired_at"),
                entry.get("not_after"),
            )
        self._keys = keys
        self._active = _text(active) if active is not None and _text(active) in keys else None
        self._loaded_at = self._clock.monotonic()

    async def active(self) -> SigningKey:
        """The key that signs new grants (the ring is re-read every few seconds).

        Raises `RedisUnavailable` only when no key was ever loaded: once loaded, a failed re-read
        keeps the ring as it was, since keys change rarely and grants must not wait on Redis.
        """
        await self._fresh()
        if self._active is None:
            raise ConfigurationError("no active grant signing key")
        return self._keys[self._active]

    async def _fresh(self) -> None:
        if self._clock.monotonic() - self._loaded_at <= REFRESH_SECONDS:
            return
        if self._active is None:
            await self.start(self._pending_import)
            return
        try:
            await self.refresh()
        except RedisUnavailable as exc:
            log.warning("keeping the grant signing keys loaded before: %s", exc.detail)
            self._loaded_at = self._clock.monotonic()

    @staticmethod
    def generate() -> OKPKey:
        """A new key for `rotate`: generated first, so that its record can name it."""
        return OKPKey.generate_key("Ed25519")

    async def rotate(self, key: OKPKey) -> SigningKey:
        """Make `key` (from `generate`) active and retire the previous one."""
        await self._activate(key, _encrypt(key, self._passphrase))
        return await self.active()

    async def jwks(self) -> dict[str, Any]:
        """The public keys that may have signed an unexpired grant (RFC 7517 §5)."""
        await self._fresh()
        now = self._clock.now()
        keys = [
            key.public_jwk
            for key in sorted(self._keys.values(), key=lambda k: k.created_at, reverse=True)
            if key.not_after is None or datetime.fromisoformat(key.not_after) > now
        ]
        return {"keys": keys}

    async def _activate(self, key: OKPKey, encrypted: str) -> None:
        now = self._clock.now()
        entry = self._entry(key, encrypted)
        with redis_errors("rotating the grant signing key"):
            await self._rotate(
                keys=[_RING, _ACTIVE],
                args=[
                    key.thumbprint(),
                    json.dumps(entry),
                    rfc3339(now),
                    rfc3339(now + self._retention),
                ],
            )
        await self.refresh()

    def _entry(self, key: OKPKey, encrypted: str) -> dict[str, Any]:
        public = {
            **key.as_dict(private=False),
            "kid": key.thumbprint(),
            "alg": SIGNING_ALGORITHM,
            "use": "sig",
        }
        return {
            "jwe": encrypted,
            "public_jwk": public,
            "created_at": rfc3339(self._clock.now()),
            "retired_at": None,
            "not_after": None,
        }


def _encrypt(key: OKPKey, passphrase: bytes) -> str:
    return seal(key.as_dict(private=True), passphrase)


def _decrypt(encrypted: str, passphrase: bytes) -> OKPKey:
    try:
        key = OKPKey.import_key(unseal(encrypted, passphrase))
    except (UnsealError, JoseError, ValueError) as exc:
        raise ConfigurationError(
            "a grant signing key cannot be decrypted: wrong CONTROLPLANE_KEY_PASSPHRASE, "
            "or not a key written by `controlplane keys generate`"
        ) from exc
    if not key.is_private or key.as_dict(private=False).get("crv") != "Ed25519":
        raise InvalidInput("a grant signing key must be a private Ed25519 JWK", code="invalid_key")
    return key


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
