"""Allocator settings, read from the environment at the entry point only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from fairq.config import Connections, env_float, env_int, env_str
from fairq.health import HealthSettings
from fairq.tasks import DEFAULT_DRAIN_S

COMMANDS_SUFFIX = "booking-commands"
SNAPSHOTS_SUFFIX = "allocator-snapshots"
DEFAULT_GROUP = "fairq-allocator"  # the consumer group of the allocators
SESSION_TIMEOUT_MS = 6_000


def snapshot_topic(commands_topic: str) -> str:
    """The snapshots topic that goes with a commands topic.

    ``<prefix>booking-commands`` → ``<prefix>allocator-snapshots`` (so
    ``FAIRQ_TOPIC_PREFIX`` applies to it as to the other topics); a commands topic
    named otherwise gets ``.allocator-snapshots`` appended.
    """
    if commands_topic.endswith(COMMANDS_SUFFIX):
        return commands_topic.removesuffix(COMMANDS_SUFFIX) + SNAPSHOTS_SUFFIX
    return f"{commands_topic}.{SNAPSHOTS_SUFFIX}"


@dataclass(frozen=True, slots=True)
class AllocatorSettings:
    connections: Connections
    group_id: str = DEFAULT_GROUP
    tick_interval_s: float = 0.5  # how often a Tick record is put on each assigned partition
    # How long the group waits for a silent member before its partitions move on (failover
    # time after a crash), and (Tansu) half of it, how long a new group's first join is
    # held. Apache Kafka refuses values below group.min.session.timeout.ms (6 s by default).
    session_timeout_ms: int = SESSION_TIMEOUT_MS
    # A name this allocator keeps across restarts (``fairq up``: "allocator"; a pod's name):
    # a restart first removes its dead predecessor of that name from the group rather
    # than wait a session for the broker to notice (``fairq.groups.evict_predecessors``).
    # Empty: no such removal. Two live allocators must never share one.
    instance: str = ""
    health: HealthSettings = field(default_factory=HealthSettings)
    shutdown_drain_s: float = DEFAULT_DRAIN_S  # told to stop, it ends within this
    # A partition's state is snapshotted after this many records (0: never by count) or
    # this much log time (0: never by time) since its last snapshot, whichever comes first.
    snapshot_every_records: int = 100_000
    snapshot_every_s: float = 60.0
    snapshot_chunk_bytes: int = 512 * 1024  # each snapshot record's size, below Kafka's 1 MB
    # How long the broker may hold a fetch of commands that found nothing new. Tansu holds
    # an empty fetch this long even when a Book arrives meanwhile, so it bounds the
    # allocator's hop of click-to-held: aiokafka's 500 ms gave p50 99 ms / p99 282 ms
    # (python -m loadtest.bench_click_to_held --rounds 100, idle), 25 ms here and in the
    # gateway's event reader p50 18.5 / p99 38 ms, for 40 empty fetches a second when idle.
    fetch_max_wait_ms: int = 25

    @property
    def snapshots_topic(self) -> str:
        return snapshot_topic(self.connections.topics.commands)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AllocatorSettings:
        return cls(
            connections=Connections.from_env(env),
            group_id=env_str(env, "FAIRQ_ALLOCATOR_GROUP", DEFAULT_GROUP),
            tick_interval_s=env_float(env, "FAIRQ_TICK_INTERVAL_S", 0.5, lo=0.01),
            session_timeout_ms=env_int(
                env, "FAIRQ_ALLOCATOR_SESSION_TIMEOUT_MS", SESSION_TIMEOUT_MS, lo=1000
            ),
            instance=env_str(env, "FAIRQ_ALLOCATOR_INSTANCE", ""),
            health=HealthSettings.from_env(env),
            shutdown_drain_s=env_float(env, "FAIRQ_SHUTDOWN_DRAIN_S", DEFAULT_DRAIN_S),
            snapshot_every_records=env_int(env, "FAIRQ_SNAPSHOT_EVERY_RECORDS", 100_000),
            snapshot_every_s=env_float(env, "FAIRQ_SNAPSHOT_EVERY_S", 60.0),
            snapshot_chunk_bytes=env_int(env, "FAIRQ_SNAPSHOT_CHUNK_BYTES", 512 * 1024, lo=1024),
            fetch_max_wait_ms=env_int(env, "FAIRQ_ALLOCATOR_FETCH_MAX_WAIT_MS", 25, lo=1),
        )
