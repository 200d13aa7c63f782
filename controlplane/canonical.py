"""RFC 8785 canonical JSON, and the SHA-256 digests taken over it.

Whatever another party must recompute (the `args_sha256` and `req` of a grant, later the ledger
entries) is hashed over the RFC 8785 (JCS) form, produced by the `rfc8785` library. JCS works on
I-JSON (RFC 7493): integers beyond ±2^53 and non-finite numbers are refused, not rounded.
"""

from __future__ import annotations

import hashlib
from typing import Any

import rfc8785

from controlplane.errors import InvalidInput


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 bytes of `value`. Raises `InvalidInput` for values JCS cannot represent."""
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError) as exc:
        raise InvalidInput(
            f"not representable as canonical JSON: {exc}", code="not_canonical"
        ) from exc


def sha256_hex(value: Any) -> str:
    """Lowercase hex SHA-256 of the canonical JSON of `value` (DESIGN.md §5)."""
    return hashlib.sha256(canonical_json(value)).hexdigest()
