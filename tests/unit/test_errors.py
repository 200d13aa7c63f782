"""One error hierarchy: each category maps to one HTTP status and one exit code."""

from __future__ import annotations

import pytest

from controlplane.cli.main import exit_code_for
from controlplane.errors import (
    HTTP_STATUS,
    ConfigurationError,
    Conflict,
    ControlPlaneError,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    RedisUnavailable,
    TooLarge,
    Unavailable,
    UnsupportedMediaType,
    category_of_status,
    http_status,
)


@pytest.mark.parametrize(
    ("error", "status", "exit_code"),
    [
        (InvalidInput("x"), 400, 2),
        (TooLarge("x"), 413, 2),
        (UnsupportedMediaType("x"), 415, 2),
        (NotAuthenticated("x"), 401, 3),
        (PermissionDenied("x"), 403, 3),
        (NotFound("x"), 404, 4),
        (Conflict("x"), 409, 5),
        (Unavailable("x"), 503, 69),
        (RedisUnavailable("x"), 503, 69),
        (ConfigurationError("x"), 500, 78),
        (ControlPlaneError("x"), 500, 1),
    ],
)
def test_categories_map_to_status_and_exit_code(
    error: ControlPlaneError, status: int, exit_code: int
) -> None:
    assert http_status(error) == status
    assert exit_code_for(error) == exit_code


def test_codes_default_per_category_and_can_be_specific() -> None:
    assert RedisUnavailable("down").code == "redis_unavailable"
    assert InvalidInput("bad", code="invalid_json").code == "invalid_json"


@pytest.mark.parametrize("category", list(HTTP_STATUS))
def test_the_sdk_reads_each_status_back_as_its_category(category: type[ControlPlaneError]) -> None:
    assert category_of_status(http_status(category("x"))) is category
