"""The one error hierarchy of the control plane.

Every error the control plane raises on purpose is a `ControlPlaneError`. Each subclass is a
category (bad input, not authenticated, unavailable, ...); each instance carries a stable
snake_case `code` that clients can switch on. The API maps categories to RFC 9457 problem+json in
`api/problems.py` and the CLI maps them to exit codes in `cli/main.py`; domain code never chooses an
HTTP status or an exit code itself. `HTTP_STATUS` is the one table of categories and statuses: the
API answers with it and the SDK reads answers back with it.
"""

from __future__ import annotations

from typing import ClassVar


class ControlPlaneError(Exception):
    """Root of all deliberate errors. `code` is stable; `detail` is for humans."""

    default_code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code or self.default_code


class InvalidInput(ControlPlaneError):
    """The caller sent something malformed: bad JSON, a wrong field, a path outside the roots."""

    default_code = "invalid_input"
    title = "Invalid input"


class InvalidEntity(InvalidInput):
    """Well-formed input whose content is not acceptable (an identity id, a JWK, attributes)."""

    default_code = "invalid_entity"
    title = "Unprocessable content"


class UnsupportedMediaType(InvalidInput):
    """The body is not in a content type this endpoint accepts."""

    default_code = "unsupported_media_type"
    title = "Unsupported media type"


class TooLarge(InvalidInput):
    """A body, a decompressed body or a list went over its configured limit."""

    default_code = "too_large"
    title = "Payload too large"


class NotAuthenticated(ControlPlaneError):
    """No credential, or one that is not valid."""

    default_code = "not_authenticated"
    title = "Not authenticated"


class PermissionDenied(ControlPlaneError):
    """A valid credential whose role may not do this."""

    default_code = "permission_denied"
    title = "Permission denied"


class NotFound(ControlPlaneError):
    """The named thing does not exist."""

    default_code = "not_found"
    title = "Not found"


class Conflict(ControlPlaneError):
    """The request conflicts with the current state (already done, already exists)."""

    default_code = "conflict"
    title = "Conflict"


class Unavailable(ControlPlaneError):
    """A component the request needs (Redis, OPA) cannot be reached now; retrying may succeed."""

    default_code = "unavailable"
    title = "Service unavailable"


class RedisUnavailable(Unavailable):
    """Redis did not answer, so nothing that depends on it can be checked or stored."""

    default_code = "redis_unavailable"
    title = "Redis unavailable"


class ConfigurationError(ControlPlaneError):
    """The control plane cannot start as configured (bad setting, missing binary, port in use)."""

    default_code = "configuration_error"
    title = "Configuration error"


# The HTTP status of each category, most specific first: the first class in an error's MRO found
# here gives the status (RFC 9457 problem+json in `api/problems.py`), and the SDK maps a status back
# to its category (`client`). Anything else is a 500.
HTTP_STATUS: dict[type[ControlPlaneError], int] = {
    InvalidEntity: 422,
    UnsupportedMediaType: 415,
    TooLarge: 413,
    InvalidInput: 400,
    NotAuthenticated: 401,
    PermissionDenied: 403,
    NotFound: 404,
    Conflict: 409,
    Unavailable: 503,
}


def http_status(error: ControlPlaneError) -> int:
    """The HTTP status of `error`'s category (500 for the root itself)."""
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500


def category_of_status(status: int) -> type[ControlPlaneError]:
    """The category an answer's HTTP status stands for (the root for any other status)."""
    for cls, code in HTTP_STATUS.items():
        if code == status:
            return cls
    return ControlPlaneError
