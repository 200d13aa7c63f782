"""RFC 8785 canonical JSON, and the SHA-256 digests taken over it.

Whatever another party must recompute (the `args_sha256` and `req` of a grant, later the ledger
entries) is hashed over the RFC 8785 (JCS) form. JCS works on I-JSON (RFC 7493): integers beyond
±(2^53 - 1) and non-finite numbers are refused, not rounded.

The `rfc8785` library defines the result; it costs ~65 µs for a 1.3 KB document here
(`reference/performance.md`). Documents without floats, with integers in JCS's range and with keys
inside the Basic Multilingual Plane serialize byte for byte the same with orjson's sorted keys
(~1 µs): JCS sorts keys by UTF-16 code units, which is code point order inside the BMP, and both
escape strings alike. Those documents take the fast path; everything else goes to `rfc8785`.
`tests/unit/test_canonical.py` proves the two identical on generated documents.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import orjson
import rfc8785

from controlplane.errors import InvalidInput

_MAX_SAFE_INTEGER = 2**53 - 1
_FIRST_NON_BMP = "\U00010000"
_MAX_DEPTH = 64
_PLAIN = frozenset({str, bool, type(None)})  # always exact in orjson's output


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 bytes of `value`. Raises `InvalidInput` for values JCS cannot represent."""
    if _fast_path_is_exact(value, 0):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, RecursionError) as exc:
        raise InvalidInput(
            f"not representable as canonical JSON: {exc}", code="not_canonical"
        ) from exc


def sha256_hex(value: Any) -> str:
    """Lowercase hex SHA-256 of the canonical JSON of `value` (DESIGN.md §5)."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


def _fast_path_is_exact(value: Any, depth: int) -> bool:
    """True when orjson's sorted output is exactly the RFC 8785 form of `value`.

    Exact types only (a subclass of str or int may serialize differently): anything else, floats
    and tuples included, goes to `rfc8785`. Plain loops over `type()` checks: this walk is most
    of the cost of a ledger entry (bench/README.md, "Ledger ingest").
    """
    if depth > _MAX_DEPTH:
        return False
    kind = type(value)
    if kind is list:
        return _items_exact(value, depth)
    if kind is dict:
        return _keys_exact(value) and _items_exact(value.values(), depth)
    return _scalar_exact(value, kind)


def _scalar_exact(value: Any, kind: type) -> bool:
    return kind in _PLAIN or (kind is int and -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER)


def _items_exact(items: Iterable[Any], depth: int) -> bool:
    for item in items:
        kind = type(item)
        if kind is list or kind is dict:
            if not _fast_path_is_exact(item, depth + 1):
                return False
        elif not _scalar_exact(item, kind):
            return False
    return True


def _keys_exact(mapping: dict[Any, Any]) -> bool:
    for key in mapping:
        if type(key) is not str or (not key.isascii() and max(key) >= _FIRST_NON_BMP):
            return False
    return True
