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
    def __init__(self, redis: Redis, clock: Clock, *, passphrase: bytes, scope: str) -> None:
        self._redis = redis
        self._clock = clock
        self._passphrase = passphrase
        self._scope = scope
        self._signer: BundleSigner | None = None
        self._verification: VerificationKey | None = None

    async def load(self, import_sealed: str | None = None) -> VerificationKey:
        """Load the key, creating it (or storing `import_sealed`) if Redis has none yet. When
        several replicas start at once, the first to store a key wins and the others use it."""
        if self._verification is not None:
            return self._verification
        if import_sealed is not None:
            private = _unseal(import_sealed, self._passphrase)
            sealed = import_sealed.strip()
        else:
            private = generate_key()
            sealed = _seal(private, self._passphrase)
        candidate = {
            "sealed": sealed,
            "keyid": keyid_of(private.public_key()),
            "public_key_pem": public_pem(private.public_key()),
            "created_at": rfc3339(self._clock.now()),
        }
        with redis_errors("loading the bundle signing key"):
            await self._redis.set(_KEY, json.dumps(candidate), nx=True)
            stored = json.loads(await self._redis.get(_KEY) or b"{}")
        if import_sealed is not None and stored["keyid"] != candidate["keyid"]:
            raise ConfigurationError(
                f"CONTROLPLANE_BUNDLE_KEY holds key {candidate['keyid']} but the control plane "
                f"already signs with {stored['keyid']}: rotate the fleet first (docs/policies.md)"
            )
        key = _unseal(stored["sealed"], self._passphrase)
        self._signer = BundleSigner(key, stored["keyid"], self._scope)
        self._verification = VerificationKey(stored["keyid"], self._scope, stored["public_key_pem"])
        return self._verification

    async def signer(self) -> BundleSigner:
        await self.load()
        if self._signer is None:
            raise ConfigurationError("the bundle signing key is not loaded")
        return self._signer

    async def verification_key(self) -> VerificationKey:
        return await self.load()


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
