"""Prometheus metrics of one allocator process, on a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

# Seconds the loop is held to start a snapshot (the fork), up to whole seconds.
PAUSE_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class AllocatorMetrics:
    """Prometheus metrics of one allocator process, on a registry of its own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.commands_total = Counter(
            "fairq_allocator_commands_total",
            "Command records applied, by type",
            ["type"],
            registry=self.registry,
        )
        self.events_total = Counter(
            "fairq_allocator_events_total",
            "Events produced, by type",
            ["type"],
            registry=self.registry,
        )
        self.sends_total = Counter(
            "fairq_allocator_sends_total",
            "Commands put on other partitions (moves to another county), by type",
            ["type"],
            registry=self.registry,
        )
        self.undecodable_total = Counter(
            "fairq_allocator_undecodable_total",
            "Command records skipped because they did not decode",
            registry=self.registry,
        )
        self.replayed_total = Counter(
            "fairq_allocator_replayed_total",
            "Records replayed to rebuild partitions on assignment",
            registry=self.registry,
        )
        self.snapshots_total = Counter(
            "fairq_allocator_snapshots_total",
            "Partition snapshots written",
            registry=self.registry,
        )
        self.snapshot_failures_total = Counter(
            "fairq_allocator_snapshot_failures_total",
            "Partition snapshots that could not be written (the log still has everything)",
            registry=self.registry,
        )
        self.restored_total = Counter(
            "fairq_allocator_restored_total",
            "Partitions taken over from a snapshot rather than from the log start",
            registry=self.registry,
        )
        self.snapshot_pause_seconds = Histogram(
            "fairq_allocator_snapshot_pause_seconds",
            "Seconds the loop was held to start a partition snapshot",
            buckets=PAUSE_BUCKETS_S,
            registry=self.registry,
        )
