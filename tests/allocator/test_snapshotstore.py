"""Snapshots on the compacted topic of a real broker: chunks, manifests, torn writes."""

from __future__ import annotations

import os

import pytest
from aiokafka import AIOKafkaProducer

from allocator.settings import snapshot_topic
from allocator.snapshotstore import Manifest, SnapshotStore
from fairq.config import Connections, Topics
from tests.conftest import TEST_PARTITIONS

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def store(connections: Connections, topics: Topics) -> SnapshotStore:
    s = SnapshotStore(connections.kafka, snapshot_topic(topics.commands), 1024)
    await s.ensure_topic(TEST_PARTITIONS)
    await s.ensure_topic(TEST_PARTITIONS)  # a second call is harmless
    return s


def test_the_snapshot_topic_follows_the_commands_topic() -> None:
    assert snapshot_topic("t1-booking-commands") == "t1-allocator-snapshots"
    assert snapshot_topic("booking-commands") == "allocator-snapshots"
    assert snapshot_topic("orders") == "orders.allocator-snapshots"


@pytest.mark.both_brokers
async def test_the_newest_snapshot_at_or_before_an_offset_comes_back_whole(
    store: SnapshotStore, producer: AIOKafkaProducer, connections: Connections, topics: Topics
) -> None:
    older, newer = os.urandom(2500), os.urandom(5000)
    first = await store.write(producer, 2, 10, older)
    assert first.chunks == 3
    await store.write(producer, 2, 30, newer)
    await store.write(producer, 1, 5, b"other partition")

    reader = SnapshotStore(connections.kafka, snapshot_topic(topics.commands), 1024)
    found = await reader.latest(2, 100)
    assert found is not None and found[0].offset == 30 and found[1] == newer
    # The chunks of the older snapshot were tombstoned once the newer one was complete.
    assert await reader.latest(2, 29) is None
    assert await reader.latest(3, 100) is None
    other = await reader.latest(1, 5)
    assert other is not None and other[1] == b"other partition"


@pytest.mark.both_brokers
async def test_a_torn_snapshot_is_skipped_for_the_previous_one(
    store: SnapshotStore, producer: AIOKafkaProducer
) -> None:
    good = os.urandom(3000)
    await store.write(producer, 0, 7, good)
    # A writer died after its chunks and before its manifest: only chunks of offset 9.
    torn = Manifest(9, 2, 2048, "0" * 64)
    for key in torn.chunk_keys(0):
        await producer.send_and_wait(store.topic, b"x" * 1024, key=key, partition=0)
    # A manifest whose chunks do not match its digest.
    bad = Manifest(8, 1, 4, "f" * 64)
    await producer.send_and_wait(store.topic, b"abcd", key=bad.chunk_keys(0)[0], partition=0)
    await producer.send_and_wait(store.topic, bad.pack(), key=b"0", partition=0)
    found = await store.latest(0, 100)
    assert found is not None and (found[0].offset, found[1]) == (7, good)


def test_manifests_that_do_not_parse_are_ignored() -> None:
    assert Manifest.unpack(b"\xc1") is None
    assert Manifest.unpack(Manifest(1, 1, 1, "a").pack()) == Manifest(1, 1, 1, "a")
    assert Manifest.unpack(b"\x81\xa1v\x02") is None
