"""The connection settings every process reads: the broker's idempotence flag and the
Kafka clients' timeouts."""

from __future__ import annotations

import pytest

from fairq.config import ConfigError, Connections, KafkaTimeouts

ENV = {"REDIS_URL": "redis://127.0.0.1:1/0", "KAFKA_BOOTSTRAP": "127.0.0.1:2"}


@pytest.mark.parametrize(
    ("raw", "expected"), [(None, False), ("true", True), ("1", True), ("off", False)]
)
def test_idempotence_is_off_unless_asked_for(raw: str | None, expected: bool) -> None:
    env = ENV | ({} if raw is None else {"FAIRQ_KAFKA_IDEMPOTENCE": raw})
    connections = Connections.from_env(env)
    assert connections.kafka_idempotence is expected
    # what a parent hands a child process reads back the same
    assert Connections.from_env(ENV | connections.kafka_env()) == connections


def test_a_bad_idempotence_flag_is_named() -> None:
    with pytest.raises(ConfigError, match="FAIRQ_KAFKA_IDEMPOTENCE"):
        Connections.from_env(ENV | {"FAIRQ_KAFKA_IDEMPOTENCE": "maybe"})


def test_every_kafka_client_timeout_reaches_a_child_process() -> None:
    env = ENV | {
        "FAIRQ_KAFKA_REQUEST_TIMEOUT_MS": "4000",
        "FAIRQ_KAFKA_METADATA_MAX_AGE_MS": "7000",
        "FAIRQ_KAFKA_RETRY_BACKOFF_MS": "50",
    }
    connections = Connections.from_env(env)
    assert connections.kafka.timeouts == KafkaTimeouts(4000, 7000, 50)
    assert Connections.from_env(ENV | connections.kafka_env()) == connections
    assert Connections.from_env(ENV).kafka.timeouts == KafkaTimeouts()


@pytest.mark.parametrize("raw", ["soon", "999"])
def test_a_bad_request_timeout_is_named(raw: str) -> None:
    with pytest.raises(ConfigError, match="FAIRQ_KAFKA_REQUEST_TIMEOUT_MS"):
        Connections.from_env(ENV | {"FAIRQ_KAFKA_REQUEST_TIMEOUT_MS": raw})
