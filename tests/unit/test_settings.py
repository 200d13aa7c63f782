"""Settings are validated at start, with a message naming the environment variable."""

from __future__ import annotations

import pytest

from controlplane.config import load_settings
from controlplane.errors import ConfigurationError


def test_defaults_match_the_design() -> None:
    settings = load_settings()
    assert (settings.host, settings.port, settings.opa_port, settings.redis_port) == (
        "127.0.0.1",
        8080,
        8181,
        6379,
    )
    assert settings.opa_decision_timeout_seconds == 1.0
    assert settings.public_url == "http://127.0.0.1:8080"
    assert settings.decision_roots == ("governance",)


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTROLPLANE_OPA_DECISION_TIMEOUT_SECONDS", "0.25")
    monkeypatch.setenv("CONTROLPLANE_DECISION_ROOTS", '["governance", "/teams/payments/"]')
    settings = load_settings()
    assert settings.opa_decision_timeout_seconds == 0.25
    assert settings.decision_roots == ("governance", "teams/payments")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CONTROLPLANE_OPA_DECISION_TIMEOUT_SECONDS", "0"),
        ("CONTROLPLANE_OPA_DECISION_TIMEOUT_SECONDS", "11"),
        ("CONTROLPLANE_PORT", "70000"),
        ("CONTROLPLANE_MAX_BODY_BYTES", "10"),
        ("CONTROLPLANE_DECISION_ROOTS", '["system"]'),
        ("CONTROLPLANE_DECISION_ROOTS", "[]"),
        ("CONTROLPLANE_LOG_LEVEL", "loud"),
    ],
)
def test_out_of_bounds_values_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert name in caught.value.detail


def test_unknown_settings_are_refused() -> None:
    with pytest.raises(ConfigurationError):
        load_settings(no_such_setting=1)
