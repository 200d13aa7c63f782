"""What counts as a usable OPA result, the deny value of each path, and which paths are served."""

from __future__ import annotations

import pytest

from controlplane.decisions.service import (
    EXECUTION_DECISION_PATH,
    DecisionService,
    ResultShape,
    shape_for,
)
from controlplane.errors import InvalidInput
from controlplane.observability.metrics import Metrics
from controlplane.reasons import DenyReason


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ({"allow": True, "reasons": []}, True),
        ({"allow": False, "reasons": ["a", "b"], "obligations": {"log": True}}, True),
        ({"allow": 1, "reasons": []}, False),
        ({"allow": "true", "reasons": []}, False),
        ({"allow": True}, False),
        ({"allow": True, "reasons": "none"}, False),
        ({"allow": True, "reasons": [None]}, False),
        ({"allow": True, "reasons": [], "obligations": ["x"]}, False),
        (True, False),
        (None, False),
    ],
)
def test_decision_shape(value: object, ok: bool) -> None:
    assert ResultShape.DECISION.conforms(value) is ok


@pytest.mark.parametrize(
    ("value", "ok"), [(True, True), (False, True), (1, False), ("true", False), (None, False)]
)
def test_boolean_shape(value: object, ok: bool) -> None:
    assert ResultShape.BOOLEAN.conforms(value) is ok


def test_deny_values_name_the_reason() -> None:
    assert shape_for(EXECUTION_DECISION_PATH).deny_value(DenyReason.OPA_TIMEOUT) == {
        "allow": False,
        "reasons": ["opa_timeout"],
    }
    assert shape_for("governance/other").deny_value(DenyReason.OPA_TIMEOUT) is False


def test_allow_needs_literal_true() -> None:
    assert ResultShape.DECISION.allows({"allow": True, "reasons": []})
    assert not ResultShape.DECISION.allows({"allow": False, "reasons": []})
    assert ResultShape.BOOLEAN.allows(True) and not ResultShape.BOOLEAN.allows(False)


class _AnyRevision:
    def check(self, revision: str | None) -> DenyReason | None:
        return None


@pytest.fixture
def service() -> DecisionService:
    return DecisionService(
        None,  # type: ignore[arg-type]
        Metrics(),
        ("governance", "teams/payments"),
        _AnyRevision(),
        "governance",
    )


@pytest.mark.parametrize(
    "path",
    ["governance", "governance/execution/decision", "/governance/x/", "teams/payments/allow"],
)
def test_paths_under_roots(service: DecisionService, path: str) -> None:
    assert service.check_path(path) == path.strip("/")


@pytest.mark.parametrize(
    "path",
    [
        "",
        "system/authz",
        "teams/other",
        "teams",
        "governance//x",
        "governance/a-b",
        "governance/../system",
        "governance/1x",
        "/".join(["governance"] * 40),
    ],
)
def test_paths_outside_roots(service: DecisionService, path: str) -> None:
    with pytest.raises(InvalidInput):
        service.check_path(path)


@pytest.mark.parametrize(
    ("body", "sent"), [(b"", b"{}"), (b"  ", b"{}"), (b'{"input": 1}', b'{"input": 1}')]
)
def test_bodies(body: bytes, sent: bytes) -> None:
    assert DecisionService.check_body(body) == sent


@pytest.mark.parametrize("body", [b"[]", b"1", b'"x"', b"{"])
def test_bodies_that_are_not_objects(body: bytes) -> None:
    with pytest.raises(InvalidInput):
        DecisionService.check_body(body)
