"""JSON text in and out of the control plane, fast where it can be and exact where it must be.

orjson is several times faster than the standard library on the decision hot path, but it turns
integers beyond 64 bits into floats without a word (`100000000000000000000000` → `1e+23`), which
would alter OPA inputs and decision-log events that legally hold them. Any text with a run of 19 or
more digits therefore goes through the standard library, which keeps such integers exact.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

from controlplane.errors import InvalidInput

# 2**63 has 19 digits: a shorter run of digits is always an integer orjson holds exactly. Mapping
# every digit to "0" and everything else to " " and then searching for 19 zeros measured ~1 ns per
# byte, against ~12 for the regular expression \d{19} (which cost more than the parse itself).
_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_DIGIT_RUN = b"0" * 19


def loads(text: bytes | str) -> Any:
    """Parse JSON text (RFC 8259). Raises `InvalidInput` when it is not JSON."""
    if isinstance(text, str):
        text = text.encode()
    if text.translate(_DIGITS_AS_ZEROS).find(_LONG_DIGIT_RUN) < 0:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"body is not valid JSON: {exc}", code="invalid_json") from exc
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:
        raise InvalidInput(f"body is not valid JSON: {exc}", code="invalid_json") from exc


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON text. Integers beyond 64 bits go through the standard library."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _refuse_constant(name: str) -> Any:
    # Python's parser accepts NaN and Infinity; RFC 8259 §6 does not.
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"number {text} is out of range")
    return number
