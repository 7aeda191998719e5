"""Snapshots dumped by a forked child and written in the background."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from allocator.core import Allocator
from allocator.metrics import AllocatorMetrics
from allocator.settings import snapshot_topic
from allocator.snapshotstore import SnapshotStore
from allocator.snapshotter import (
    SNAPSHOT_BYTES_PER_RECORD,
    Cadence,
    Dump,
    DumpError,
    Snapshotter,
)
from fairq.config import Connections, Topics
from tests.allocator import T0_MS, add, book, slot
from tests.conftest import TEST_PARTITIONS

pytestmark = pytest.mark.timeout(60)


def stocked(books: int) -> Allocator:
    core = Allocator()
    core.apply(
        0, T0_MS, add("add-1", "north", "c1", [slot(d, h, 2) for d in range(40) for h in (9, 10)])
    )
    for n in range(books):
        core.apply(1 + n, T0_MS, book(f"b{n}", f"k{n}", f"person-{n}", "north"))
    return core


class Broken(Allocator):
    def snapshot(self) -> bytes:
        raise RuntimeError("no dump today")


async def snapshotter(
    connections: Connections, topics: Topics, producer: AIOKafkaProducer, cadence: Cadence
) -> Snapshotter:
    """A snapshotter writing to the test's snapshots topic, with metrics of its own."""
    store = SnapshotStore(connections.kafka, snapshot_topic(topics.commands), 4096)
    await store.ensure_topic(TEST_PARTITIONS)
    return Snapshotter(store, producer, cadence, AllocatorMetrics(CollectorRegistry()))


def test_a_snapshot_is_due_by_records_or_log_time_stretched_for_a_large_state() -> None:
    cadence = Cadence(every_records=100, every_ms=60_000)
    assert not cadence.due(0, 10**9, 0)  # nothing new
    assert cadence.due(100, 0, 0)
    assert not cadence.due(99, 59_999, 0)
    assert cadence.due(1, 60_000, 0)
    large = 100 * SNAPSHOT_BYTES_PER_RECORD * 3  # three times the size that stretches
    assert not cadence.due(299, 179_999, large)
    assert cadence.due(300, 0, large)
    assert cadence.due(1, 180_000, large)
    assert not Cadence(0, 0).due(10**9, 10**9, 0)


async def test_the_dump_is_the_state_at_the_fork_whatever_happens_after() -> None:
    core = stocked(10)
    expected = core.snapshot()
    job = Dump.start(core)
    for n in range(10, 20):  # the loop goes on at once
        core.apply(1 + n, T0_MS, book(f"b{n}", f"k{n}", f"person-{n}", "north"))
    assert await job.result() == expected
    assert core.snapshot() != expected


async def test_a_child_that_cannot_dump_is_an_error_not_a_snapshot() -> None:
    job = Dump.start(Broken())
    with pytest.raises(DumpError, match="status 1"):
        await job.result()


async def test_snapshots_are_written_in_the_background_and_read_back(
    connections: Connections, topics: Topics, producer: AIOKafkaProducer
) -> None:
    snapshots = await snapshotter(connections, topics, producer, Cadence(5, 0))
    metrics = snapshots.metrics
    core = stocked(6)
    snapshots.taken_over(1, 0, 0, 0)
    assert snapshots.due(1, core)
    expected = core.snapshot()
    pause_s = snapshots.take(1, core)
    assert 0 <= pause_s < 5
    assert not snapshots.due(1, core)  # one at a time, and this one covers it
    core.apply(core.next_offset, T0_MS, book("late", "k-late", "late", "north"))
    await snapshots.close()
    found = await SnapshotStore(connections.kafka, snapshot_topic(topics.commands), 4096).latest(
        1, 100
    )
    assert found is not None
    assert (found[0].offset, found[1]) == (7, expected)
    assert metrics.registry.get_sample_value("fairq_allocator_snapshots_total") == 1
    assert metrics.registry.get_sample_value("fairq_allocator_snapshot_pause_seconds_count") == 1


async def test_a_failed_dump_is_counted_and_tried_again_later(
    connections: Connections, topics: Topics, producer: AIOKafkaProducer
) -> None:
    snapshots = await snapshotter(connections, topics, producer, Cadence(1, 0))
    store, metrics = snapshots.store, snapshots.metrics
    core = Broken()
    core.apply(0, T0_MS, book("b0", "k0", "p0", "north"))
    snapshots.taken_over(2, 0, 0, 0)
    assert snapshots.due(2, core)
    snapshots.take(2, core)
    assert not snapshots.due(2, core)
    await snapshots.close()
    assert metrics.registry.get_sample_value("fairq_allocator_snapshot_failures_total") == 1
    assert await store.latest(2, 100) is None
    assert snapshots.due(2, core)  # without waiting for more records
