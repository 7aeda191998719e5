"""The allocator service against a real broker: answers, partitions, restart, expiry."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import os
import signal
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.producer.message_accumulator import BatchBuilder
from prometheus_client import CollectorRegistry

from allocator import service as service_module
from allocator.core import Allocator
from allocator.errors import RebuildError
from allocator.metrics import AllocatorMetrics
from allocator.outbox import Shipper, make_producer
from allocator.service import Partitions, Worker, rebuild, run
from allocator.settings import AllocatorSettings
from allocator.snapshotstore import SnapshotStore
from allocator.snapshotter import Cadence, Snapshotter
from fairq.config import ConfigError, Connections, Topics
from fairq.devservices import Server, free_port
from fairq.health import HealthSettings
from fairq.tasks import DEFAULT_DRAIN_S, cancel_and_wait
from schemas.commands import Command, Move, Tick, decode_command
from schemas.events import (
    Confirmed,
    Event,
    Expired,
    Failed,
    Held,
    Moved,
    Rejected,
    Summary,
    decode_event,
)
from tests.allocator import add, book, cancel, confirm, slot
from tests.allocator.eventlogs import committed_offsets, read_topic
from tests.conftest import (
    TEST_PARTITIONS,
    TEST_SESSION_TIMEOUT_MS,
    logged_line,
    metrics_text,
    readiness_follows,
    until_status,
)

pytestmark = pytest.mark.timeout(90)

ANSWER_WAIT_S = 45.0

Sent = dict[str, int]  # command id -> partition of its record


class Service:
    """One allocator service instance running as a task."""

    def __init__(self, settings: AllocatorSettings) -> None:
        self.stop = asyncio.Event()
        self.registry = CollectorRegistry()
        self.task = asyncio.create_task(run(settings, self.stop, self.registry))

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, ANSWER_WAIT_S)

    def count(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def settings(connections: Connections) -> AllocatorSettings:
    return AllocatorSettings(
        connections=connections,
        group_id=f"alloc-{uuid.uuid4().hex[:8]}",
        tick_interval_s=0.1,
        session_timeout_ms=TEST_SESSION_TIMEOUT_MS,
    )


Produce = Callable[[list[tuple[str, Command]]], Awaitable[Sent]]


@pytest.fixture
def produce(producer: AIOKafkaProducer, topics: Topics) -> Produce:
    async def send(commands: list[tuple[str, Command]]) -> Sent:
        """Put (county key, command) records on the commands topic, in order."""
        sent: Sent = {}
        for county, command in commands:
            meta = await producer.send_and_wait(
                topics.commands, command.pack(), key=county.encode()
            )
            sent[command.command_id] = meta.partition
        return sent

    return send


class EventLog:
    """Reads the events topic from the start, remembering every event and its partition."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
        self.tps = [TopicPartition(topic, p) for p in range(TEST_PARTITIONS)]
        self.events: list[tuple[int, Event]] = []

    async def start(self) -> None:
        await self.consumer.start()
        self.consumer.assign(self.tps)
        await self.consumer.seek_to_beginning(*self.tps)

    async def close(self) -> None:
        await self.consumer.stop()

    def answers(self) -> dict[str, list[tuple[int, Event]]]:
        out: dict[str, list[tuple[int, Event]]] = defaultdict(list)
        for partition, event in self.events:
            if not isinstance(event, Summary | Expired):
                out[event.command_id].append((partition, event))
        return out

    async def _read(self) -> None:
        batch = await self.consumer.getmany(timeout_ms=500)
        for tp, records in batch.items():
            self.events += [(tp.partition, decode_event(r.value or b"")) for r in records]

    async def wait_for(self, done: Callable[[], bool]) -> None:
        async def loop() -> None:
            while not done():
                await self._read()

        await asyncio.wait_for(loop(), ANSWER_WAIT_S)

    async def wait_for_answers(self, command_ids: Iterable[str]) -> None:
        wanted = set(command_ids)
        await self.wait_for(lambda: wanted <= set(self.answers()))

    async def read_to_end(self) -> None:
        ends = await self.consumer.end_offsets(self.tps)

        async def at_end() -> bool:
            positions = [await self.consumer.position(tp) for tp in self.tps]
            return all(pos >= ends[tp] for pos, tp in zip(positions, self.tps, strict=True))

        async def loop() -> None:
            while not await at_end():
                await self._read()

        await asyncio.wait_for(loop(), ANSWER_WAIT_S)


@pytest.fixture
async def events(connections: Connections, topics: Topics) -> AsyncIterator[EventLog]:
    log = EventLog(connections.kafka_bootstrap, topics.events)
    await log.start()
    try:
        yield log
    finally:
        await log.close()


def inventory(county: str, center: str) -> tuple[str, Command]:
    slots = [slot(d, h, 2) for d in range(0, 40) for h in (9, 10)]
    return county, add(f"add-{center}", county, center, slots, campaign="launch")


def booking(n: int, county: str, identity: str | None = None) -> tuple[str, Command]:
    return county, book(
        f"book-{n}", f"bk-{n}", identity or f"person-{n}", county, campaign="launch"
    )


def assert_one_answer_each(log: EventLog, sent: Sent) -> None:
    answers = log.answers()
    assert set(answers) == set(sent)
    for command_id, partition in sent.items():
        assert [p for p, _ in answers[command_id]] == [partition], command_id


async def test_every_command_is_answered_once_on_its_partition_and_after_a_restart(
    settings: AllocatorSettings,
    produce: Produce,
    events: EventLog,
    producer: AIOKafkaProducer,
    topics: Topics,
) -> None:
    counties = ["north", "south", "east", "west", "alpine", "coast"]
    first = [inventory(c, f"{c}-center") for c in counties]
    first += [booking(n, counties[n % len(counties)]) for n in range(30)]
    sent = await produce(first)
    garbage = await producer.send_and_wait(topics.commands, b"\x81\xa1v\x09", key=b"north")

    service = Service(settings)
    await events.wait_for_answers(sent)
    await service.close()
    assert service.count("fairq_allocator_undecodable_total") == 1
    assert service.count("fairq_allocator_commands_total", type="book") == 30
    assert service.count("fairq_allocator_events_total", type="held") == 30
    await events.read_to_end()
    assert_one_answer_each(events, sent)
    answers = events.answers()
    assert all(isinstance(answers[f"book-{n}"][0][1], Held) for n in range(30))
    assert garbage.partition in set(sent.values())

    more = [
        booking(100, "north", identity="person-0"),  # booked before the restart
        ("south", confirm("confirm-1", "bk-1", "launch")),  # a hold made before the restart
        ("east", cancel("cancel-2", "bk-2", "launch")),
        booking(101, "west"),
    ]
    sent_more = await produce(more)
    service = Service(settings)
    await events.wait_for_answers(sent_more)
    await service.close()
    assert service.count("fairq_allocator_commands_total", type="book") == 2
    await events.read_to_end()
    assert_one_answer_each(events, sent | sent_more)
    latest = {cid: found[0][1] for cid, found in events.answers().items()}
    rejected = latest["book-100"]
    assert isinstance(rejected, Rejected) and rejected.reason == "already_booked"
    assert latest["confirm-1"].TYPE == "confirmed"
    assert latest["cancel-2"].TYPE == "cancelled"
    assert isinstance(latest["book-101"], Held)
    assert not any(isinstance(e, Failed) for e in latest.values())


async def test_a_restart_loads_the_latest_snapshot_and_replays_only_what_follows(
    settings: AllocatorSettings, produce: Produce, events: EventLog
) -> None:
    every = 5
    snapshotting = dataclasses.replace(settings, snapshot_every_records=every)
    counties = ["north", "south", "east", "west"]
    first = [inventory(c, f"{c}-center") for c in counties]
    first += [booking(n, counties[n % len(counties)]) for n in range(24)]
    sent = await produce(first)
    service = Service(snapshotting)
    await events.wait_for_answers(sent)
    await service.close()
    assert service.count("fairq_allocator_snapshots_total") >= 1

    more = [booking(100, "north", identity="person-0"), booking(101, "south")]
    sent_more = await produce(more)
    service = Service(snapshotting)
    await events.wait_for_answers(sent_more)
    await service.close()
    assert service.count("fairq_allocator_restored_total") >= 1
    # Only the records after each partition's snapshot were replayed, not the 28 before.
    assert service.count("fairq_allocator_replayed_total") < every * TEST_PARTITIONS
    await events.read_to_end()
    assert_one_answer_each(events, sent | sent_more)
    latest = {cid: found[0][1] for cid, found in events.answers().items()}
    rejected = latest["book-100"]
    assert isinstance(rejected, Rejected) and rejected.reason == "already_booked"
    assert isinstance(latest["book-101"], Held)


async def test_a_member_joining_while_batches_are_in_flight_loses_no_answer(
    settings: AllocatorSettings,
    produce: Produce,
    events: EventLog,
    producer: AIOKafkaProducer,
    topics: Topics,
) -> None:
    counties = ["north", "south", "east", "west", "alpine", "coast"]
    stock = [inventory(c, f"{c}-center") for c in counties]
    sent = await produce(stock)
    first = Service(settings)
    second: Service | None = None
    try:
        for wave in range(16):  # books keep coming while the group rebalances
            books = [booking(n, counties[n % 6]) for n in range(wave * 400, (wave + 1) * 400)]
            futures = [
                await producer.send(topics.commands, command.pack(), key=county.encode())
                for county, command in books
            ]
            sent |= {
                c.command_id: (await f).partition for (_, c), f in zip(books, futures, strict=True)
            }
            if wave == 2:
                second = Service(settings)
            await asyncio.sleep(0.25)
        await events.wait_for_answers(sent)
    finally:
        await first.close()
        if second is not None:
            await second.close()
    assert second is not None and second.count("fairq_allocator_commands_total", type="book") > 0
    await events.read_to_end()
    answers = events.answers()
    assert set(answers) == set(sent)
    for command_id, found in answers.items():
        # A commit refused in the rebalance makes the new owner answer again: the same.
        assert {p for p, _ in found} == {sent[command_id]}, command_id
        assert all(e == found[0][1] for _, e in found), command_id
    committed = await committed_offsets(
        settings.connections.kafka_bootstrap, settings.group_id, topics.commands, TEST_PARTITIONS
    )
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.connections.kafka_bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topics.commands, p) for p in range(TEST_PARTITIONS)]
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    # Everything answered was committed (ticks after the last commit aside).
    assert all(committed[tp.partition] > 0 for tp in tps)
    assert all(ends[tp] - committed[tp.partition] < 100 for tp in tps)


async def test_a_batch_a_stalled_broker_did_not_take_is_applied_again_from_the_last_commit(
    settings: AllocatorSettings,
    produce: Produce,
    events: EventLog,
    kafka_srv: Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The broker stops answering (SIGSTOP) as the allocator hands it a batch of events,
    and a producer that is not idempotent gives the batch up after its request timeout:
    the allocator goes back to its last commit instead of exiting (by itself, or by a
    takeover when the group rebalanced meanwhile), and every command is
    answered, each answer the same however often it was written (CI saw the process exit
    on Tansu in the broker_pause fault). On Tansu alone: Apache Kafka grants idempotent
    producers, which retry until the broker takes the batch, and there one that is not
    may hold a batch for a node it counts as not ready until the broker answers again, so
    the failure awaited here comes only sometimes."""
    sent = await produce([inventory("north", "c1")] + [booking(n, "north") for n in range(3)])
    service = Service(settings)
    stopped = asyncio.Event()
    hand_over = Shipper._hand_over

    async def stop_the_broker_first(
        shipper: Shipper, builder: BatchBuilder, partition: int
    ) -> asyncio.Future[object]:
        if not stopped.is_set():
            stopped.set()
            os.kill(kafka_srv.process.pid, signal.SIGSTOP)
        return await hand_over(shipper, builder, partition)

    try:
        await events.wait_for_answers(sent)
        monkeypatch.setattr(Shipper, "_hand_over", stop_the_broker_first)
        with logged_line("allocator.service", "applied again from the last commit") as failed:
            # The next batch handed over (this Book's, or a Tick's) meets a stopped broker.
            more = asyncio.ensure_future(produce([booking(3, "north")]))
            await asyncio.wait_for(failed.wait(), ANSWER_WAIT_S)
        os.kill(kafka_srv.process.pid, signal.SIGCONT)
        sent |= await more
        await events.wait_for_answers(sent)
        assert not service.task.done(), "the allocator ended"
    finally:
        os.kill(kafka_srv.process.pid, signal.SIGCONT)
        await service.close()
    assert service.count("fairq_allocator_failed_batches_total") >= 1
    answers = events.answers()
    for command_id, found in answers.items():
        assert {p for p, _ in found} == {sent[command_id]}, command_id
        assert all(e == found[0][1] for _, e in found), command_id
    assert isinstance(answers["book-3"][0][1], Held)


@contextlib.asynccontextmanager
async def built_by_hand(
    settings: AllocatorSettings, tp: TopicPartition
) -> AsyncIterator[tuple[AIOKafkaConsumer, AIOKafkaProducer, Partitions, AllocatorMetrics]]:
    """A consumer assigned ``tp``, a producer, and a service's Partitions over them."""
    bootstrap = settings.connections.kafka_bootstrap
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=settings.group_id, enable_auto_commit=False
    )
    producer = make_producer(settings.connections.kafka)
    await consumer.start()
    await producer.start()
    try:
        consumer.assign([tp])
        store = SnapshotStore(settings.connections.kafka, settings.snapshots_topic, 4096)
        metrics = AllocatorMetrics(CollectorRegistry())
        snapshots = Snapshotter(store, producer, Cadence(0, 0), metrics)
        parts = Partitions(consumer, settings, store, snapshots, metrics, asyncio.Event())
        yield consumer, producer, parts, metrics
    finally:
        await producer.stop()
        await consumer.stop()


async def test_records_fetched_before_a_takeover_are_fetched_again_not_applied(
    settings: AllocatorSettings, produce: Produce, events: EventLog, topics: Topics
) -> None:
    sent = await produce([inventory("north", "c1")] + [booking(n, "north") for n in range(6)])
    partition = next(iter(set(sent.values())))
    tp = TopicPartition(topics.commands, partition)
    async with built_by_hand(settings, tp) as (consumer, producer, parts, metrics):
        consumer.seek(tp, 3)  # a fetch from before the takeover, ahead of the core
        batch = await consumer.getmany(tp, timeout_ms=5000)
        assert [r.offset for r in batch[tp]][:1] == [3]
        parts.cores[partition], parts.installed[partition] = Allocator(), 2
        worker = Worker(consumer, producer, parts, topics, metrics)

        await worker.handle(batch, epoch=1)  # fetched at takeover 1, the core came with 2
        assert parts.cores[partition].next_offset == 0
        assert await consumer.position(tp) == 0  # from where the core is, all again
        batch = await consumer.getmany(tp, timeout_ms=5000)
        await worker.handle(batch, epoch=2)
        await parts.settle()
        await worker.close()
    assert parts.cores[partition].next_offset == 7
    await events.wait_for_answers(sent)
    assert_one_answer_each(events, sent)


async def test_each_owned_partitions_lag_behind_the_commands_topic_is_exported(
    settings: AllocatorSettings, produce: Produce, topics: Topics
) -> None:
    sent = await produce([inventory("north", "c1")] + [booking(n, "north") for n in range(6)])
    partition = next(iter(set(sent.values())))
    tp = TopicPartition(topics.commands, partition)
    async with built_by_hand(settings, tp) as (consumer, producer, parts, metrics):
        metrics.watch_lag(parts.lags)

        def lag() -> float | None:
            labels = {"partition": str(partition)}
            return metrics.registry.get_sample_value("fairq_allocator_lag_records", labels)

        consumer.seek(tp, 0)
        batch = await consumer.getmany(tp, timeout_ms=5000)
        assert lag() is None  # not owned yet: no core
        parts.cores[partition], parts.installed[partition] = Allocator(), 1
        assert lag() == len(sent)  # fetched, none applied
        worker = Worker(consumer, producer, parts, topics, metrics)
        while True:
            await worker.handle(batch, epoch=1)
            if parts.cores[partition].next_offset == len(sent):
                break
            batch = await consumer.getmany(tp, timeout_ms=5000)
        await parts.settle()
        await worker.close()
        assert lag() == 0
        await parts.on_partitions_revoked([tp])
        assert lag() is None  # a revoked partition leaves the export


async def test_a_takeover_freezes_the_state_and_a_revocation_lets_it_be_collected(
    settings: AllocatorSettings, topics: Topics
) -> None:
    tp = TopicPartition(topics.commands, 0)
    async with built_by_hand(settings, tp) as (_, _, parts, _):
        gc.unfreeze()
        try:
            await parts.on_partitions_assigned([tp])
            parts.check()
            assert 0 in parts.cores
            assert gc.get_freeze_count() > 0
            await parts.on_partitions_revoked([tp])
            assert parts.cores == {}
            assert gc.get_freeze_count() == 0
        finally:
            gc.unfreeze()


async def test_a_takeover_the_broker_stalls_is_tried_again_until_it_is_done(
    settings: AllocatorSettings,
    produce: Produce,
    topics: Topics,
    kafka_srv: Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The broker stops answering as a partition's log is replayed on assignment: the
    takeover is tried again once it answers, rather than failing the process."""
    sent = await produce([inventory("north", "c1")] + [booking(n, "north") for n in range(3)])
    tp = TopicPartition(topics.commands, next(iter(set(sent.values()))))
    replay = service_module.rebuild

    async def stop_the_broker_first(*args: Any, **kwargs: Any) -> tuple[Allocator, int]:
        if not stalled.is_set():
            stalled.set()
            os.kill(kafka_srv.process.pid, signal.SIGSTOP)
        return await replay(*args, **kwargs)

    stalled = asyncio.Event()
    monkeypatch.setattr(service_module, "rebuild", stop_the_broker_first)
    async with built_by_hand(settings, tp) as (consumer, _, parts, _):
        await consumer.commit({tp: len(sent)})
        try:
            with logged_line("allocator.service", f"taking {tp} over failed") as failed:
                taking = asyncio.create_task(parts.on_partitions_assigned([tp]))
                retrying = asyncio.create_task(failed.wait())
                await asyncio.wait({taking, retrying}, return_when=asyncio.FIRST_COMPLETED)
                await cancel_and_wait([retrying])
        finally:
            os.kill(kafka_srv.process.pid, signal.SIGCONT)
        await taking
        parts.check()
        assert parts.cores[tp.partition].next_offset == len(sent)


async def test_a_booking_moves_to_a_county_of_another_partition_and_a_restart_sends_nothing_again(
    settings: AllocatorSettings, produce: Produce, events: EventLog, connections: Connections
) -> None:
    counties = ["north", "south", "east", "west", "alpine", "coast"]
    sent = await produce([inventory(c, f"{c}-center") for c in counties])
    home = sent["add-north-center"]
    away = next(c for c in counties if sent[f"add-{c}-center"] != home)
    sent |= await produce([booking(1, "north")])
    service = Service(settings)
    await events.wait_for_answers(sent)
    move = Move("move-1", "bk-1", "launch", county=away)
    sent |= await produce([("north", move)])
    await events.wait_for_answers(["move-1"])
    await service.close()
    ((partition, moved),) = events.answers()["move-1"]
    assert partition == home  # answered by the booking's old county, once the new one had a pair
    assert isinstance(moved, Moved) and (moved.county, moved.rev) == (away, 2)
    assert {a.center for a in moved.appointments} == {f"{away}-center"}
    assert service.count("fairq_allocator_sends_total", type="transfer_in") == 1
    assert service.count("fairq_allocator_sends_total", type="transfer_answer") == 1

    sent |= await produce([(away, confirm("confirm-1", "bk-1", "launch"))])
    service = Service(settings)  # rebuilt from the log, transfers included
    await events.wait_for_answers(["confirm-1"])
    await service.close()
    ((partition, confirmed),) = events.answers()["confirm-1"]
    assert partition == sent["confirm-1"] != home
    assert isinstance(confirmed, Confirmed) and confirmed.rev == 3
    assert service.count("fairq_allocator_sends_total", type="transfer_in") == 0
    records = await read_topic(
        connections.kafka_bootstrap, settings.connections.topics.commands, TEST_PARTITIONS
    )
    types = [decode_command(r.value or b"").TYPE for rs in records.values() for r in rs]
    transfers = [t for t in types if t.startswith("transfer")]
    assert sorted(transfers) == ["transfer_answer", "transfer_in"]
    await events.read_to_end()
    assert_one_answer_each(events, sent)


async def test_a_hold_expires_on_ticks(
    settings: AllocatorSettings, produce: Produce, events: EventLog
) -> None:
    sent = await produce([inventory("north", "c1")])
    sent |= await produce(
        [("north", book("b1", "k1", "alice", "north", hold_s=1, campaign="launch"))]
    )
    service = Service(settings)
    try:
        await events.wait_for(
            lambda: any(isinstance(e, Expired) and e.booking_id == "k1" for _, e in events.events)
        )
    finally:
        await service.close()
    held = next(e for _, e in events.events if isinstance(e, Held))
    expired = next(e for _, e in events.events if isinstance(e, Expired))
    assert (expired.command_id, expired.rev) == ("b1", 2)
    assert expired.at_ms >= held.hold_expires_at_ms
    assert {p for p, _ in events.events} == {sent["b1"]}
    assert any(isinstance(e, Summary) for _, e in events.events)


async def test_rebuild_refuses_an_offset_past_the_log_end(
    connections: Connections, topics: Topics
) -> None:
    tp = TopicPartition(topics.commands, 0)
    with pytest.raises(RebuildError):
        await rebuild(connections.kafka, tp, 5, end_wait_s=0.0)


async def test_rebuild_waits_for_the_log_end_to_reach_the_committed_offset(
    connections: Connections, topics: Topics, producer: AIOKafkaProducer
) -> None:
    """A partition's new leader may report an end before the committed offset until its
    followers have fetched (``allocator.service._end_reaching``): a takeover asks again
    instead of failing."""
    tp = TopicPartition(topics.commands, 0)
    # rebuild logs that the partition ends before the offset
    with logged_line("allocator.service", "asking again") as asked:
        rebuilding = asyncio.create_task(rebuild(connections.kafka, tp, 2))
        seen = asyncio.create_task(asked.wait())
        # the partition is empty: it ends before offset 2 (a failure ends the wait too)
        await asyncio.wait([rebuilding, seen], return_when=asyncio.FIRST_COMPLETED)
        await cancel_and_wait([seen])
        assert not rebuilding.done(), rebuilding.exception()
        for i in range(2):
            await producer.send_and_wait(tp.topic, Tick(f"t{i}").pack(), partition=0)
        core, count = await rebuilding
    assert (core.next_offset, count) == (2, 2)


def test_settings_from_env() -> None:
    env = {"REDIS_URL": "redis://r", "KAFKA_BOOTSTRAP": "k:9092"}
    default = AllocatorSettings.from_env(env)
    assert (default.group_id, default.tick_interval_s) == ("fairq-allocator", 0.5)
    tuned = AllocatorSettings.from_env(
        env
        | {
            "FAIRQ_ALLOCATOR_GROUP": "g2",
            "FAIRQ_TICK_INTERVAL_S": "0.25",
            "FAIRQ_ALLOCATOR_SESSION_TIMEOUT_MS": "6000",
            "FAIRQ_ALLOCATOR_FETCH_MAX_WAIT_MS": "100",
        }
    )
    assert (tuned.group_id, tuned.tick_interval_s, tuned.session_timeout_ms) == ("g2", 0.25, 6000)
    assert (default.fetch_max_wait_ms, tuned.fetch_max_wait_ms) == (25, 100)
    assert tuned.connections.kafka_bootstrap == "k:9092"
    assert default.snapshots_topic == "allocator-snapshots"
    snap = AllocatorSettings.from_env(
        env
        | {
            "FAIRQ_TOPIC_PREFIX": "x-",
            "FAIRQ_SNAPSHOT_EVERY_RECORDS": "10",
            "FAIRQ_SNAPSHOT_EVERY_S": "2.5",
            "FAIRQ_SNAPSHOT_CHUNK_BYTES": "4096",
        }
    )
    assert (snap.snapshot_every_records, snap.snapshot_every_s) == (10, 2.5)
    assert (snap.snapshot_chunk_bytes, snap.snapshots_topic) == (4096, "x-allocator-snapshots")
    with pytest.raises(ConfigError):
        AllocatorSettings.from_env(env | {"FAIRQ_TICK_INTERVAL_S": "soon"})


async def test_health_port_liveness_readiness_and_metrics(
    settings: AllocatorSettings, kafka_srv: Server
) -> None:
    """Ready once its partitions are rebuilt; /readyz 503 (and /livez still 200) while
    the broker is paused, 200 again after; /metrics is the allocator's own."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    service = Service(dataclasses.replace(settings, health=HealthSettings(port=port)))
    try:
        ready = await until_status(f"{base}/readyz", 200)
        assert ready["checks"] == {"broker": "ok", "state": "ok"}
        await readiness_follows(base, kafka_srv, "broker")
        text = await metrics_text(f"{base}/metrics")
        assert "# TYPE fairq_allocator_commands_total counter" in text
    finally:
        await service.close()


def test_health_and_drain_settings_from_env() -> None:
    env = {"REDIS_URL": "redis://r", "KAFKA_BOOTSTRAP": "k:9092"}
    default = AllocatorSettings.from_env(env)
    assert (default.health, default.instance, default.shutdown_drain_s) == (
        HealthSettings(),
        "",
        DEFAULT_DRAIN_S,
    )
    tuned = AllocatorSettings.from_env(
        env
        | {
            "FAIRQ_HEALTH_PORT": "9101",
            "FAIRQ_ALLOCATOR_INSTANCE": "alloc-0",
            "FAIRQ_SHUTDOWN_DRAIN_S": "2",
        }
    )
    assert (tuned.health.port, tuned.instance, tuned.shutdown_drain_s) == (9101, "alloc-0", 2.0)
    with pytest.raises(ConfigError, match="FAIRQ_HEALTH_PORT"):
        AllocatorSettings.from_env(env | {"FAIRQ_HEALTH_PORT": "http"})
