"""Produce batches handed over by the shipper's own task, against a real broker."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer

from allocator.outbox import ProduceError, Shipper
from fairq.config import Connections, Topics
from tests.allocator.eventlogs import read_topic
from tests.conftest import TEST_PARTITIONS

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def small_batches(connections: Connections) -> AsyncIterator[AIOKafkaProducer]:
    """A producer whose batches fill up after a few records."""
    p = AIOKafkaProducer(
        bootstrap_servers=connections.kafka_bootstrap,
        acks="all",
        enable_idempotence=False,
        max_batch_size=512,
    )
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


async def test_records_keep_their_order_per_partition_across_batches_and_outboxes(
    small_batches: AIOKafkaProducer, connections: Connections, topics: Topics
) -> None:
    shipper = Shipper(small_batches, topics.events)
    sent: dict[int, list[bytes]] = {p: [] for p in range(TEST_PARTITIONS)}
    outboxes = []
    try:
        for n in range(3):
            outbox = shipper.outbox()
            for i in range(120):
                partition, value = i % 3, f"{n}-{i}-".encode() + b"x" * 40
                outbox.add(partition, f"k{i}".encode(), value)
                sent[partition].append(value)
                if i % 25 == 0:
                    outbox.release()
            outbox.ship()
            outboxes.append(outbox)
        for outbox in outboxes:
            await outbox.acknowledged()
    finally:
        await shipper.close()
    assert all(len(o.sent) > 3 for o in outboxes)  # batches filled up along the way
    got = await read_topic(connections.kafka_bootstrap, topics.events, TEST_PARTITIONS)
    assert {p: [r.value for r in rs] for p, rs in got.items()} == sent


async def test_a_batch_the_producer_refuses_fails_its_outbox(
    connections: Connections, topics: Topics
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=connections.kafka_bootstrap)
    await producer.start()
    await producer.stop()
    shipper = Shipper(producer, topics.events)
    outbox = shipper.outbox()
    outbox.add(0, None, b"lost")
    outbox.ship()
    try:
        with pytest.raises(ProduceError):
            await outbox.acknowledged()
    finally:
        await shipper.close()


async def test_outboxes_not_handed_over_fail_when_the_shipper_closes(
    small_batches: AIOKafkaProducer, topics: Topics
) -> None:
    shipper = Shipper(small_batches, topics.events)
    outbox = shipper.outbox()
    outbox.add(1, None, b"never")
    outbox.ship()
    await shipper.close()  # before its task got to run
    with pytest.raises(ProduceError, match="closed"):
        await outbox.acknowledged()
