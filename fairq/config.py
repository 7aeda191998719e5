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


# How long any fairq Kafka client waits for one broker's answer before it gives the
# request up, drops the connection and asks the cluster again where the partition's
# leader is. A broker that is stopped (SIGSTOP, a long GC pause, a frozen VM) keeps its
# connections open, so nothing else ends such a wait: with aiokafka's 40 s default a
# stopped broker of three held answers up 21-31 s although the other two had elected
# new leaders after ~9 s (``loadtest.bench_faults --fault broker_node_pause``). Above a
# fetch's longest wait on the broker; a group member's join may wait longer
# (``fairq.groups.join_wait_ms``); below the election's ~9 s.
KAFKA_REQUEST_TIMEOUT_MS = 3_000
# How often a client refreshes its metadata (leaders, partitions) although nothing
# failed (aiokafka's default). A failed request refreshes it at once; a periodic
# refresh asks a random broker, and one asking a stopped broker held up for a request
# timeout whatever waited on the metadata (seen in the allocator's log with 5 s).
KAFKA_METADATA_MAX_AGE_MS = 300_000
KAFKA_RETRY_BACKOFF_MS = 100  # between retries of a failed request (aiokafka's default)


@dataclass(frozen=True, slots=True)
class KafkaTimeouts:
    """The timeouts every Kafka client of fairq gets (``fairq.kafkaclient``)."""

    request_timeout_ms: int = KAFKA_REQUEST_TIMEOUT_MS
    metadata_max_age_ms: int = KAFKA_METADATA_MAX_AGE_MS
    retry_backoff_ms: int = KAFKA_RETRY_BACKOFF_MS

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> KafkaTimeouts:
        return cls(
            request_timeout_ms=env_int(
                env, "FAIRQ_KAFKA_REQUEST_TIMEOUT_MS", KAFKA_REQUEST_TIMEOUT_MS, lo=1000
            ),
            metadata_max_age_ms=env_int(
                env, "FAIRQ_KAFKA_METADATA_MAX_AGE_MS", KAFKA_METADATA_MAX_AGE_MS, lo=1000
            ),
            retry_backoff_ms=env_int(
                env, "FAIRQ_KAFKA_RETRY_BACKOFF_MS", KAFKA_RETRY_BACKOFF_MS, lo=10
            ),
        )

    def env(self) -> dict[str, str]:
        """These settings as a child process reads them (``from_env``)."""
        return {
            "FAIRQ_KAFKA_REQUEST_TIMEOUT_MS": str(self.request_timeout_ms),
            "FAIRQ_KAFKA_METADATA_MAX_AGE_MS": str(self.metadata_max_age_ms),
            "FAIRQ_KAFKA_RETRY_BACKOFF_MS": str(self.retry_backoff_ms),
        }


@dataclass(frozen=True, slots=True)
class Kafka:
    """What a Kafka client of fairq is made from (``fairq.kafkaclient``)."""

    bootstrap: str
    # Idempotent producers (no duplicate record when a send is retried): Apache Kafka
    # grants them; Tansu refuses InitProducerId, so it is off unless asked for.
    idempotence: bool = False
    timeouts: KafkaTimeouts = KafkaTimeouts()


@dataclass(frozen=True, slots=True)
class Connections:
    """Where Redis and the Kafka-protocol broker are; shared by every process."""

    redis_url: str
    kafka_bootstrap: str
    topics: Topics
    kafka_idempotence: bool = False  # see ``Kafka.idempotence``
    kafka_timeouts: KafkaTimeouts = KafkaTimeouts()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Connections:
        return cls(
            redis_url=env_str(env, "REDIS_URL"),
            kafka_bootstrap=env_str(env, "KAFKA_BOOTSTRAP"),
            topics=Topics.from_env(env),
            kafka_idempotence=env_bool(env, "FAIRQ_KAFKA_IDEMPOTENCE", False),
            kafka_timeouts=KafkaTimeouts.from_env(env),
        )

    @property
    def kafka(self) -> Kafka:
        return Kafka(self.kafka_bootstrap, self.kafka_idempotence, self.kafka_timeouts)

    def kafka_env(self) -> dict[str, str]:
        """The broker's settings as a child process reads them (``from_env``)."""
        return {
            "KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "FAIRQ_KAFKA_IDEMPOTENCE": "true" if self.kafka_idempotence else "false",
        } | self.kafka_timeouts.env()
