"""Reading typed settings from an environment mapping, with clear errors.

Only entry points call these (with ``os.environ``); library code takes settings
dataclasses as arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def env_str(env: Mapping[str, str], name: str, default: str | None = None) -> str:
    value = env.get(name)
    if value is None or value == "":
        if default is None:
            raise ConfigError(f"{name} is required but not set")
        return default
    return value


def env_int(env: Mapping[str, str], name: str, default: int, *, lo: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as e:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from e
    if value < lo:
        raise ConfigError(f"{name} must be at least {lo}, got {value}")
    return value


TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in TRUE_WORDS:
        return True
    if raw.lower() in FALSE_WORDS:
        return False
    raise ConfigError(f"{name} must be one of {TRUE_WORDS + FALSE_WORDS}, got {raw!r}")


def env_float(env: Mapping[str, str], name: str, default: float, *, lo: float = 0.0) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as e:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from e
    if not value >= lo:
        raise ConfigError(f"{name} must be at least {lo}, got {raw}")
    return value


@dataclass(frozen=True, slots=True)
class Topics:
    """Kafka topic names; a prefix lets tests and several deployments share a broker."""

    commands: str = "booking-commands"
    events: str = "booking-events"
    state: str = "fairq-state"  # what must outlive Redis (``schemas.state``)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Topics:
        prefix = env.get("FAIRQ_TOPIC_PREFIX", "")
        return cls(
            commands=f"{prefix}booking-commands",
            events=f"{prefix}booking-events",
            state=f"{prefix}fairq-state",
        )


@dataclass(frozen=True, slots=True)
class Connections:
    """Where Redis and the Kafka-protocol broker are; shared by every process."""

    redis_url: str
    kafka_bootstrap: str
    topics: Topics
    # Idempotent producers (no duplicate record when a send is retried): Apache Kafka
    # grants them; Tansu refuses InitProducerId, so it is off unless asked for.
    kafka_idempotence: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Connections:
        return cls(
            redis_url=env_str(env, "REDIS_URL"),
            kafka_bootstrap=env_str(env, "KAFKA_BOOTSTRAP"),
            topics=Topics.from_env(env),
            kafka_idempotence=env_bool(env, "FAIRQ_KAFKA_IDEMPOTENCE", False),
        )

    def kafka_env(self) -> dict[str, str]:
        """The broker's settings as a child process reads them (``from_env``)."""
        return {
            "KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "FAIRQ_KAFKA_IDEMPOTENCE": "true" if self.kafka_idempotence else "false",
        }
