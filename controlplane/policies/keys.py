"""The bundle signing key: one ECDSA P-256 key (ES256, what OPA verifies) shared through Redis.

Separate from the grant keys (another algorithm, another audience: OPA, not executors), but kept
the same way: sealed with the operator's passphrase (`controlplane.sealing`), generated on first
start or imported from `CONTROLPLANE_BUNDLE_KEY(_FILE)`. OPA takes one `signing.keyid` per bundle,
so the key id is part of every OPA's configuration; rotating it is an operation on the fleet, not
only on this key (docs/policies.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.errors import JoseError
from joserfc.jwk import ECKey
from redis.asyncio import Redis

from controlplane.clock import Clock, rfc3339
from controlplane.errors import ConfigurationError
from controlplane.policies.signing import BundleSigner, generate_key, keyid_of, public_pem
from controlplane.redis_client import redis_errors
from controlplane.sealing import UnsealError, seal, unseal

_KEY = "cp:bundle-key"  # string: JSON {sealed, keyid, public_key_pem, created_at}
ALGORITHM = "ES256"


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """What an OPA needs in `keys` and `bundles.<name>.signing` (DESIGN.md §4)."""

    keyid: str
    scope: str
    public_key_pem: str

    def as_json(self) -> dict[str, str]:
        return {
            "keyid": self.keyid,
            "algorithm": ALGORITHM,
            "scope": self.scope,
            "public_key_pem": self.public_key_pem,
        }


def generate_sealed_key(passphrase: bytes) -> tuple[str, str]:
    """A new P-256 key as (keyid, sealed JWE): what `controlplane keys generate --bundle` writes."""
    key = generate_key()
    return keyid_of(key.public_key()), _seal(key, passphrase)


class BundleKey:
    """The one bundle signing key, read from Redis on each use (one GET: publishing and key
    lookups are rare) so that a rotation by any replica is seen by all; unsealed once per key."""

    def __init__(self, redis: Redis, clock: Clock, *, passphrase: bytes, scope: str) -> None:
        self._redis = redis
        self._clock = clock
        self._passphrase = passphrase
        self._scope = scope
        self._signers: dict[str, BundleSigner] = {}

    async def load(self, import_sealed: str | None = None) -> VerificationKey:
        """Load the key, creating it (or storing `import_sealed`) if Redis has none yet. When
        several replicas start at once, the first to store a key wins and the others use it."""
        with redis_errors("loading the bundle signing key"):
            present = await self._redis.exists(_KEY)
        if present and import_sealed is None:
            return self._verification(await self._stored())
        candidate = self._entry(
            _unseal(import_sealed, self._passphrase) if import_sealed else generate_key(),
            import_sealed,
        )
        with redis_errors("loading the bundle signing key"):
            await self._redis.set(_KEY, json.dumps(candidate), nx=True)
        stored = await self._stored()
        if import_sealed is not None and stored["keyid"] != candidate["keyid"]:
            raise ConfigurationError(
                f"CONTROLPLANE_BUNDLE_KEY holds key {candidate['keyid']} but the control plane "
                f"already signs with {stored['keyid']}; to change keys, rotate (docs/policies.md)"
            )
        return self._verification(stored)

    async def rotate(
        self, private: ec.EllipticCurvePrivateKey
    ) -> tuple[VerificationKey, VerificationKey]:
        """Make `private` (from `signing.generate_key`) the signing key. Returns (previous, new)."""
        previous = await self._stored()
        entry = self._entry(private, None)
        with redis_errors("rotating the bundle signing key"):
            await self._redis.set(_KEY, json.dumps(entry))
        return self._verification(previous), self._verification(entry)

    async def signer(self) -> BundleSigner:
        stored = await self._stored()
        keyid = stored["keyid"]
        if keyid not in self._signers:
            private = _unseal(stored["sealed"], self._passphrase)
            self._signers[keyid] = BundleSigner(private, keyid, self._scope)
        return self._signers[keyid]

    async def verification_key(self) -> VerificationKey:
        return self._verification(await self._stored())

    async def _stored(self) -> dict[str, str]:
        with redis_errors("reading the bundle signing key"):
            raw = await self._redis.get(_KEY)
        if raw is None:
            raise ConfigurationError(
                "no bundle signing key yet: the control plane creates one at start"
            )
        return dict(json.loads(raw))

    def _entry(self, private: ec.EllipticCurvePrivateKey, sealed: str | None) -> dict[str, str]:
        return {
            "sealed": sealed.strip() if sealed else _seal(private, self._passphrase),
            "keyid": keyid_of(private.public_key()),
            "public_key_pem": public_pem(private.public_key()),
            "created_at": rfc3339(self._clock.now()),
        }

    def _verification(self, stored: dict[str, str]) -> VerificationKey:
        return VerificationKey(stored["keyid"], self._scope, stored["public_key_pem"])


def _seal(key: ec.EllipticCurvePrivateKey, passphrase: bytes) -> str:
    return seal(ECKey.import_key(key).as_dict(private=True), passphrase)


def _unseal(sealed: str, passphrase: bytes) -> ec.EllipticCurvePrivateKey:
    try:
        jwk = ECKey.import_key(unseal(sealed, passphrase))
    except (UnsealError, JoseError, ValueError) as exc:
        raise ConfigurationError(
            "the bundle signing key cannot be decrypted: wrong CONTROLPLANE_KEY_PASSPHRASE, "
            "or not a key written by `controlplane keys generate --bundle`"
        ) from exc
    private = jwk.private_key
    if not isinstance(private, ec.EllipticCurvePrivateKey) or private.curve.name != "secp256r1":
        raise ConfigurationError("the bundle signing key must be a private P-256 key")
    return private
