"""Two allocators on the same partitions (a zombie after a rebalance) say the same things.

Each runs in its own consumer group, so both own every partition of the same
commands topic (and both put their ticks into it); each writes to an events topic
of its own so the two streams can be compared. Being a pure function of the log,
they must give the same events in the same order (one stream a prefix of the
other, as they stop at different points), and a gateway that reads both streams
mixed together, applying by ``rev``, must end where a reader of one stream ends.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import replace

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from allocator.service import run
from allocator.settings import AllocatorSettings
from fairq.config import Connections, Topics
from fairq.topics import ensure_topics
from gateway.readmodel import ReadModel, Record
from schemas.events import BookingEvent, Event
from tests.allocator.eventlogs import answers, decode_events, dedup, read_topic
from tests.allocator.test_crash_recovery import Answers, produce, storm
from tests.conftest import TEST_PARTITIONS, TEST_SESSION_TIMEOUT_MS

pytestmark = [pytest.mark.both_brokers, pytest.mark.timeout(120)]

BOOKS = 1500
STOP_TIMEOUT_S = 30.0


async def views_of(
    redis: aioredis.Redis, streams: list[list[Event]]
) -> dict[str, tuple[str, int, tuple[str, ...]]]:
    """What a gateway's read model holds after reading the streams (each a partition of
    its own) record by record, taking turns."""
    await redis.flushdb()
    model = ReadModel(redis, "events", retention_s=3600)
    longest = max(len(s) for s in streams)
    for i in range(longest):
        for partition, s in enumerate(streams):
            if i < len(s):
                await model.project(partition, i, 0, [Record(i, s[i].pack(), s[i])])
    ids = {e.booking_id for s in streams for e in s if isinstance(e, BookingEvent)}
    return {
        b: (v.state, v.rev, tuple(a.slot for a in v.appointments))
        for b, v in (await model.get_many(ids)).items()
    }


async def test_a_zombie_allocator_emits_the_same_events(
    connections: Connections, topics: Topics, redis: aioredis.Redis
) -> None:
    commands, _ = storm(random.Random(7), int(time.time() * 1000), books=BOOKS)
    command_ids = {c.command_id for _, c in commands}
    other = Topics(commands=topics.commands, events=topics.events + "-zombie")
    await ensure_topics(connections.kafka, other, partitions=TEST_PARTITIONS)
    base = AllocatorSettings(
        connections, tick_interval_s=0.1, session_timeout_ms=TEST_SESSION_TIMEOUT_MS
    )
    settings = [
        replace(base, group_id=f"live-{uuid.uuid4().hex[:8]}"),
        replace(
            base,
            group_id=f"zombie-{uuid.uuid4().hex[:8]}",
            connections=replace(connections, topics=other),
            snapshot_every_records=500,
        ),
    ]
    bootstrap = connections.kafka_bootstrap
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        await produce(producer, topics.commands, commands)
    finally:
        await producer.stop()

    stop = asyncio.Event()
    tasks = [asyncio.create_task(run(s, stop, CollectorRegistry())) for s in settings]
    followers = [Answers(bootstrap, t.events) for t in (topics, other)]
    try:
        for f in followers:
            await f.start()
            await f.reach(len(command_ids))
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), STOP_TIMEOUT_S)
        for f in followers:
            await f.consumer.stop()

    live, zombie = [
        decode_events(await read_topic(bootstrap, t.events, TEST_PARTITIONS))
        for t in (topics, other)
    ]
    for p in range(TEST_PARTITIONS):
        a, b = dedup(live[p]), dedup(zombie[p])
        n = min(len(a), len(b))
        assert n > 0
        assert a[:n] == b[:n], f"partition {p}"
    given_live, given_zombie = answers(live), answers(zombie)
    assert set(given_live) == set(given_zombie) == command_ids
    assert given_live == given_zombie
    assert all(len(found) == 1 for found in given_live.values())
    mixed = await views_of(redis, [s[p] for p in range(TEST_PARTITIONS) for s in (live, zombie)])
    # Both keep applying ticks until stopped, so one stream may hold a few more events
    # (an expiry) than the other: a reader of both sees what the one ahead says.
    ahead = [max(live[p], zombie[p], key=lambda s: len(dedup(s))) for p in range(TEST_PARTITIONS)]
    alone = await views_of(redis, ahead)
    held = [v for v in alone.values() if v[0] in ("held", "confirmed")]
    assert held and mixed == alone
