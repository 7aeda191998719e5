"""Allocator settings, read from the environment at the entry point only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fairq.config import Connections, env_float, env_int, env_str


@dataclass(frozen=True, slots=True)
class AllocatorSettings:
    connections: Connections
    group_id: str = "fairq-allocator"
    tick_interval_s: float = 0.5  # how often a Tick record is put on each assigned partition
    # How long the group waits for a silent member before its partitions move on (failover
    # time after a crash). Apache Kafka refuses values below group.min.session.timeout.ms.
    session_timeout_ms: int = 10_000

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AllocatorSettings:
        return cls(
            connections=Connections.from_env(env),
            group_id=env_str(env, "FAIRQ_ALLOCATOR_GROUP", "fairq-allocator"),
            tick_interval_s=env_float(env, "FAIRQ_TICK_INTERVAL_S", 0.5, lo=0.01),
            session_timeout_ms=env_int(env, "FAIRQ_ALLOCATOR_SESSION_TIMEOUT_MS", 10_000, lo=1000),
        )
