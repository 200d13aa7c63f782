"""Deny reason codes: the one list of the stable snake_case codes of DESIGN.md §5.

A deny always names exactly one reason from this list (the first step that failed). Clients,
policies and dashboards switch on these strings, so they are never renamed; `docs/reasons.md`
describes each one.
"""

from __future__ import annotations

from enum import StrEnum


class DenyReason(StrEnum):
    # OPA could not give a usable answer (decisions/opa_client.py).
    OPA_UNREACHABLE = "opa_unreachable"
    OPA_TIMEOUT = "opa_timeout"
    OPA_ERROR = "opa_error"
    OPA_UNDEFINED = "opa_undefined"
    OPA_MALFORMED_RESULT = "opa_malformed_result"
    OPA_NOT_READY = "opa_not_ready"
    # The policy answered, and said no, or the policy itself is not acceptable.
    POLICY_DENIED = "policy_denied"
    POLICY_NOT_ACTIVE = "policy_not_active"
    POLICY_STALE = "policy_stale"
    POLICY_REVOKED = "policy_revoked"
    # The signed execution request failed verification (issue #3).
    REQUEST_MALFORMED = "request_malformed"
    REQUEST_TYPE_INVALID = "request_type_invalid"
    ALGORITHM_NOT_ALLOWED = "algorithm_not_allowed"
    IDENTITY_UNKNOWN = "identity_unknown"
    IDENTITY_SUSPENDED = "identity_suspended"
    IDENTITY_REVOKED = "identity_revoked"
    KEY_UNKNOWN = "key_unknown"
    KEY_REVOKED = "key_revoked"
    SIGNATURE_INVALID = "signature_invalid"
    AUDIENCE_INVALID = "audience_invalid"
    REQUEST_NOT_YET_VALID = "request_not_yet_valid"
    REQUEST_EXPIRED = "request_expired"
    REQUEST_LIFETIME_TOO_LONG = "request_lifetime_too_long"
    REQUEST_REPLAYED = "request_replayed"
    PARENT_INVALID = "parent_invalid"
    # A component the control plane needs is down.
    REDIS_UNAVAILABLE = "redis_unavailable"
    EVIDENCE_UNAVAILABLE = "evidence_unavailable"
