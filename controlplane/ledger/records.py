"""Ledger entries from evidence records, with personal data committed rather than logged.

An entry is the RFC 8785 canonical JSON of a versioned record (DESIGN.md §5). Fields that may hold
personal data (an OPA decision's `input`, an execution request with its `args`, an identity's
`attributes`) are replaced in the
entry by a salted commitment, `{"commitment": "sha256:<hex>"}`, where the digest is
SHA-256(domain ‖ salt ‖ canonical JSON of the value) with a fresh 32-byte salt. The value and its
salt are kept beside the entry (the payload), not in it. An auditor with the payload checks it
against the commitment; erasing the payload (a deletion request) leaves the entry, its leaf hash
and every proof unchanged, and without the salt the commitment reveals nothing about the value,
even for guessable values.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from controlplane import jsontext
from controlplane.canonical import canonical_json
from controlplane.errors import InvalidEntity

# Top-level record fields that may hold personal data.
PERSONAL_FIELDS = ("input", "request", "attributes")
SALT_BYTES = 32
COMMITMENT_PREFIX = "sha256:"
# Domain separation: these digests can never be confused with any other SHA-256 in the system.
_DOMAIN = b"controlplane.ledger.payload/v1\x00"


class PayloadError(InvalidEntity):
    default_code = "payload_invalid"


@dataclass(frozen=True, slots=True)
class CommittedRecord:
    """`entry`: the bytes the log hashes. `payloads`: per committed field, `{"salt", "value"}`
    (salt in standard base64), to be stored beside the entry and erasable."""

    entry: bytes
    payloads: dict[str, dict[str, Any]]
    payload: bytes | None  # the RFC 8785 JSON of `payloads`, or None when nothing is committed


def commitment(salt: bytes, value: Any) -> str:
    return _commitment(salt, canonical_json(value))


def _commitment(salt: bytes, canonical_value: bytes) -> str:
    return COMMITMENT_PREFIX + hashlib.sha256(_DOMAIN + salt + canonical_value).hexdigest()


def commit_record(
    record: Mapping[str, Any],
    *,
    fields: Iterable[str] = PERSONAL_FIELDS,
    salt: Callable[[int], bytes] = os.urandom,
) -> CommittedRecord:
    """The entry of `record` with each present field of `fields` (not None) committed."""
    committed: dict[str, Any] = dict(record)
    payloads: dict[str, dict[str, Any]] = {}
    parts: dict[str, bytes] = {}
    for name in fields:
        value = record.get(name)
        if value is None:
            continue
        fresh = salt(SALT_BYTES)
        canonical_value = canonical_json(value)
        committed[name] = {"commitment": _commitment(fresh, canonical_value)}
        encoded_salt = base64.b64encode(fresh).decode("ascii")
        payloads[name] = {"salt": encoded_salt, "value": value}
        # The payload's RFC 8785 form, assembled from the value's, which is already computed
        # (the value is most of an OPA event): members sorted, "salt" < "value", no spaces.
        parts[name] = b'{"salt":"%s","value":%s}' % (encoded_salt.encode(), canonical_value)
    payload = None
    if parts:
        members = b",".join(canonical_json(name) + b":" + parts[name] for name in sorted(parts))
        payload = b"{" + members + b"}"
    return CommittedRecord(canonical_json(committed), payloads, payload)


def open_record(entry: bytes, payloads: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The record of `entry` with every payload given put back, each checked against its
    commitment. Fields whose payload was erased keep their commitment. Raises `PayloadError`."""
    record = _json_object(entry)
    for name, payload in payloads.items():
        held = record.get(name)
        if not isinstance(held, dict) or set(held) != {"commitment"}:
            raise PayloadError(f"the entry commits no field {name!r}")
        try:
            salt = base64.b64decode(str(payload["salt"]), validate=True)
        except (KeyError, ValueError) as exc:
            raise PayloadError(f"the payload of {name!r} has no valid salt") from exc
        if len(salt) != SALT_BYTES or "value" not in payload:
            raise PayloadError(f"the payload of {name!r} is incomplete")
        if not hmac.compare_digest(commitment(salt, payload["value"]), str(held["commitment"])):
            raise PayloadError(f"the payload of {name!r} does not match its commitment")
        record[name] = payload["value"]
    return record


def _json_object(entry: bytes) -> dict[str, Any]:
    value = jsontext.loads(entry)
    if not isinstance(value, dict):
        raise PayloadError("a ledger entry is a JSON object")
    return value
