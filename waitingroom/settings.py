"""Admitter settings, read from the environment at the entry point only."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from fairq.config import ConfigError, Connections, env_float, env_int, env_str
from fairq.health import HealthSettings
from fairq.tasks import DEFAULT_DRAIN_S

CONSUMER_GROUP = "fairq-admitter"


def default_instance_id() -> str:
    """Unique per process: host, pid and a random suffix (a restarted pid differs)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


SESSION_TIMEOUT_MS = 10_000


@dataclass(frozen=True, slots=True)
class AdmitterSettings:
    connections: Connections
    tick_s: float = 0.1  # how often each room is admitted (and the lead renewed)
    leader_ttl_s: float = 3.0  # a silent leader is replaced after this long
    instance_id: str = field(default_factory=default_instance_id)
    group_id: str = CONSUMER_GROUP  # Kafka consumer group for booking events
    # how long the group waits for a silent admitter's heartbeat before handing its
    # partitions of the events topic to another (a new group's first join waits half)
    session_timeout_ms: int = SESSION_TIMEOUT_MS
    health: HealthSettings = field(default_factory=HealthSettings)
    shutdown_drain_s: float = DEFAULT_DRAIN_S  # told to stop, it ends within this

    def __post_init__(self) -> None:
        if not self.tick_s > 0:
            raise ConfigError(f"the admission tick must be positive, got {self.tick_s}")
        if not self.leader_ttl_s >= 3 * self.tick_s:
            raise ConfigError(
                f"the leader lease ({self.leader_ttl_s}s) must be at least three ticks"
                f" ({self.tick_s}s each), or a live leader loses it between renewals"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AdmitterSettings:
        return cls(
            connections=Connections.from_env(env),
            tick_s=env_float(env, "FAIRQ_ADMIT_TICK_S", 0.1, lo=0.001),
            leader_ttl_s=env_float(env, "FAIRQ_LEADER_TTL_S", 3.0, lo=0.01),
            instance_id=env_str(env, "FAIRQ_INSTANCE_ID", default_instance_id()),
            group_id=env_str(env, "FAIRQ_ADMITTER_GROUP", CONSUMER_GROUP),
            session_timeout_ms=env_int(
                env, "FAIRQ_ADMITTER_SESSION_TIMEOUT_MS", SESSION_TIMEOUT_MS, lo=1000
            ),
            health=HealthSettings.from_env(env),
            shutdown_drain_s=env_float(env, "FAIRQ_SHUTDOWN_DRAIN_S", DEFAULT_DRAIN_S),
        )
