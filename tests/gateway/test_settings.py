"""The gateway's settings from the environment: the console's settings, with clear errors."""

from __future__ import annotations

import pytest

from allocator.settings import DEFAULT_GROUP
from fairq.config import ConfigError
from gateway.settings import GatewaySettings

BASE = {
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "KAFKA_BOOTSTRAP": "127.0.0.1:9092",
    "FAIRQ_SIGNING_KEYS": "k1:signing-secret-0123456789",
    "FAIRQ_OPERATOR_KEY": "operator-key-0123456789",
}


def test_console_defaults() -> None:
    settings = GatewaySettings.from_env(BASE)
    assert settings.console_session_s == 8 * 3600
    assert settings.trust_forwarded_proto is False
    assert settings.history_step_s == 5.0
    assert settings.allocator_group == DEFAULT_GROUP


def test_console_settings_are_read() -> None:
    settings = GatewaySettings.from_env(
        BASE
        | {
            "FAIRQ_CONSOLE_SESSION_S": "600",
            "FAIRQ_TRUST_FORWARDED_PROTO": "true",
            "FAIRQ_HISTORY_STEP_S": "2.5",
            "FAIRQ_ALLOCATOR_GROUP": "alloc-eu",
        }
    )
    assert settings.console_session_s == 600
    assert settings.trust_forwarded_proto is True
    assert settings.history_step_s == 2.5
    assert settings.allocator_group == "alloc-eu"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FAIRQ_TRUST_FORWARDED_PROTO", "maybe"),
        ("FAIRQ_CONSOLE_SESSION_S", "10"),
        ("FAIRQ_HISTORY_STEP_S", "0"),
    ],
)
def test_bad_console_settings_are_named(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        GatewaySettings.from_env(BASE | {name: value})


def test_a_worker_serves_on_its_own_port_from_the_first_given() -> None:
    assert GatewaySettings.from_env(BASE).worker is None
    assert GatewaySettings.from_env(BASE | {"FAIRQ_WORKER_PORTS_FROM": "9100"}).worker_port == 0
    worker = GatewaySettings.from_env(
        BASE | {"FAIRQ_GATEWAY_WORKER": "2", "FAIRQ_WORKER_PORTS_FROM": "9100"}
    )
    assert (worker.worker, worker.worker_port) == (2, 9101)
    first = GatewaySettings.from_env(BASE | {"FAIRQ_GATEWAY_WORKER": "1"})
    assert (first.worker, first.worker_port) == (1, 0)  # 0: a free port, logged


@pytest.mark.parametrize(
    "env,message",
    [
        ({"FAIRQ_GATEWAY_WORKER": "0"}, "FAIRQ_GATEWAY_WORKER must be at least 1"),
        ({"FAIRQ_WORKER_PORTS_FROM": "x"}, "FAIRQ_WORKER_PORTS_FROM must be an integer"),
    ],
)
def test_bad_worker_settings_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        GatewaySettings.from_env(BASE | env)
