"""Prometheus metrics of one allocator process, on a registry of its own."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

# Seconds the loop is held to start a snapshot (the fork), up to whole seconds.
PAUSE_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class LagCollector:
    """Each owned partition's lag behind the commands topic, read at scrape time.

    Read when scraped rather than set per batch, so a stalled loop still shows its lag
    growing (the fetcher keeps learning the end offset) and a revoked partition drops
    out of the export by itself. ``lags`` must be cheap: no broker round trip.
    """

    def __init__(self, lags: Callable[[], Mapping[int, int]]) -> None:
        self._lags = lags

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "fairq_allocator_lag_records",
            "Command records of an owned partition not applied yet (last known end offset"
            " minus the next offset to apply)",
            labels=["partition"],
        )
        for partition, lag in sorted(self._lags().items()):
            family.add_metric([str(partition)], lag)
        yield family


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
        self.failed_batches_total = Counter(
            "fairq_allocator_failed_batches_total",
            "Batches whose events the broker did not take for a passing reason (it stalled"
            " or was lost); the batches since the last commit were applied again",
            registry=self.registry,
        )
        self.snapshot_pause_seconds = Histogram(
            "fairq_allocator_snapshot_pause_seconds",
            "Seconds the loop was held to start a partition snapshot",
            buckets=PAUSE_BUCKETS_S,
            registry=self.registry,
        )

    def watch_lag(self, lags: Callable[[], Mapping[int, int]]) -> None:
        """Export ``lags()`` (records behind, by partition) as ``fairq_allocator_lag_records``."""
        self.registry.register(LagCollector(lags))
