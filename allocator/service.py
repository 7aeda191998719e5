"""The allocator process: commands from Kafka through the pure core, events back to Kafka.

One consumer in the group ``settings.group_id`` reads ``booking-commands``. For
each assigned partition it holds one ``Allocator``, rebuilt on assignment by
replaying the partition up to the committed offset with the events thrown
away (they were produced before that offset was committed). Each batch is
applied in order; its events go to ``booking-events`` on the partition number of
their command, and the offsets are committed only after every event is
acknowledged (``acks="all"``). A crash between the two replays the batch, and
the core, being deterministic, sends the same events again; consumers drop
them by ``rev`` and command id. Events the broker did not take for a passing reason
(it stalled or was lost) are handled the same way without a crash: the process goes
back to its last commit (``Partitions.rewind``).

The loop is pipelined one batch deep: a batch's events are handed to the producer
in one produce batch per partition (``Outbox``), and while the broker acknowledges
them and the offsets are committed, the next batch is fetched and applied. Its
own events are handed over before the previous batch's commit is waited for, and
commits stay in order; nothing is committed before its events are acknowledged.

Every ``snapshot_every_records`` records or ``snapshot_every_s`` of log time (longer
for a large state), a partition's core is snapshotted to the snapshots topic with
the offset it reflects, dumped by a forked child and written in the background
(``allocator.snapshotter``, ``allocator.snapshotstore``). On assignment the newest
snapshot at or before the committed offset is loaded and only the records after it
are replayed.

A ticker puts a Tick on every assigned partition each ``tick_interval_s`` so
that idle partitions' log clocks move (hold expiry, summaries).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import logging
import time
import uuid
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, KafkaError
from prometheus_client import CollectorRegistry

from allocator.core import Allocator
from allocator.errors import AllocatorError, RebuildError, SnapshotError
from allocator.metrics import AllocatorMetrics
from allocator.outbox import Outbox, ProduceError, Shipper, make_producer
from allocator.settings import AllocatorSettings
from allocator.snapshotstore import SnapshotStore
from allocator.snapshotter import Cadence, Snapshotter
from fairq import kafkaclient
from fairq.config import Kafka, Topics
from fairq.groups import evict_predecessors, group_member
from fairq.health import NotReady, broker_reachable, serving
from fairq.tasks import cancel_and_wait
from schemas import SchemaError
from schemas.commands import Command, Tick, Transfer, decode_command
from schemas.events import Event

logger = logging.getLogger(__name__)

POLL_TIMEOUT_MS = 200  # how long one fetch waits before the stop flag is looked at again
MAX_BATCH_RECORDS = 5000
YIELD_EVERY_RECORDS = 100  # records applied between two yields to the event loop
IN_FLIGHT_BATCHES = 2  # batches handed over whose acknowledgements and commit are awaited
REBUILD_POLL_MS = 1000
# How long a takeover waits for the partition's end to reach the committed offset (a
# new leader's, after a broker was lost, ``_end_reaching``), and how often it asks.
REBUILD_END_WAIT_S = 30.0
REBUILD_END_POLL_S = 0.2
RETAKE_RETRY_S = 1.0  # between two tries of a takeover (``Partitions._take_until_done``)


class Counts:
    """Commands and events of one batch by type, added to the metrics once per batch."""

    def __init__(self) -> None:
        self.commands: collections.Counter[str] = collections.Counter()
        self.events: collections.Counter[str] = collections.Counter()
        self.sends: collections.Counter[str] = collections.Counter()  # to other partitions
        self.undecodable = 0

    def publish(self, metrics: AllocatorMetrics) -> None:
        for type_, n in self.commands.items():
            metrics.commands_total.labels(type_).inc(n)
        for type_, n in self.events.items():
            metrics.events_total.labels(type_).inc(n)
        for type_, n in self.sends.items():
            metrics.sends_total.labels(type_).inc(n)
        if self.undecodable:
            metrics.undecodable_total.inc(self.undecodable)


def decode(record: ConsumerRecord[bytes, bytes]) -> Command | None:
    """The record's command, or None (logged) when it does not decode."""
    try:
        return decode_command(record.value or b"")
    except SchemaError as e:
        skipping(record, e)
        return None


def skipping(record: ConsumerRecord[bytes, bytes], error: SchemaError) -> None:
    """Log a record that is no command (its SchemaError names the field at fault)."""
    logger.warning(
        "skipping undecodable record %s[%d]@%d: %s",
        record.topic,
        record.partition,
        record.offset,
        error,
    )


async def rebuild(
    kafka: Kafka,
    tp: TopicPartition,
    end_offset: int,
    start: Allocator | None = None,
    end_wait_s: float = REBUILD_END_WAIT_S,
) -> tuple[Allocator, int]:
    """A core with the partition's records before ``end_offset`` applied, events discarded.

    Starts from ``start`` (a restored snapshot) or an empty core, and replays the
    records from its ``next_offset`` on. Returns the core and how many records were
    read. Those records must still be there: a partition whose records after the
    start were deleted raises RebuildError rather than giving a core that silently
    misses them; so does one that ends before ``end_offset`` after ``end_wait_s``.
    """
    core = start if start is not None else Allocator()
    if end_offset <= core.next_offset:
        return core, 0
    consumer = kafkaclient.consumer(kafka, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([tp])
        log_start = (await consumer.beginning_offsets([tp]))[tp]
        log_end = await _end_reaching(consumer, tp, end_offset, end_wait_s)
        if log_start > core.next_offset:
            raise RebuildError(
                f"{tp} starts at {log_start}: the records from {core.next_offset} are gone"
            )
        if log_end < end_offset:
            raise RebuildError(f"{tp} ends at {log_end}, before the committed {end_offset}")
        consumer.seek(tp, core.next_offset)
        count = 0
        while await consumer.position(tp) < end_offset:
            batch = await consumer.getmany(tp, timeout_ms=REBUILD_POLL_MS)
            for record in batch.get(tp, []):
                if record.offset >= end_offset:
                    break
                count += 1
                command = decode(record)
                if command is not None:
                    core.apply(record.offset, record.timestamp, command)
                    core.sends.clear()  # sent before the commit, like the events
    except KafkaError as e:
        raise RebuildError(f"replaying {tp} up to offset {end_offset} failed: {e}") from e
    finally:
        await kafkaclient.stop(consumer)
    core.next_offset = end_offset
    return core, count


async def _end_reaching(
    consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int, wait_s: float
) -> int:
    """``tp``'s end offset, asked again (at most ``wait_s``) while it is before ``offset``.

    A partition's new leader reports as its end the high watermark, which it advances
    once its in-sync followers have fetched: after a broker was lost it was seen 8
    records before the offset the allocator had committed reading from the previous
    leader, 21 s into a 30 s stop of that leader (``broker_node_pause``)."""
    deadline = time.monotonic() + wait_s
    while True:
        end: int = (await consumer.end_offsets([tp]))[tp]
        if end >= offset or time.monotonic() >= deadline:
            return end
        logger.warning("%s ends at %d, before the committed %d; asking again", tp, end, offset)
        await asyncio.sleep(REBUILD_END_POLL_S)


class Partitions(ConsumerRebalanceListener):  # type: ignore[misc]
    """The cores of the partitions this process owns, kept in step with the group.

    ``lock`` is held while a batch is applied and handed to the producer;
    ``in_flight`` holds, oldest first, the tasks that wait for the acknowledgements
    of the batches handed over and then commit their offsets, each after the one
    before it. A revocation takes the lock and waits for all of them, so the
    batches in hand are produced and committed first.
    """

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        settings: AllocatorSettings,
        store: SnapshotStore,
        snapshots: Snapshotter,
        metrics: AllocatorMetrics,
        stop: asyncio.Event,
    ) -> None:
        self.consumer = consumer
        self.stop = stop  # the process is told to stop: a takeover is no longer tried
        self.settings = settings
        self.store = store
        self.snapshots = snapshots
        self.metrics = metrics
        self.cores: dict[int, Allocator] = {}
        # Takeovers so far, and the one that installed each core: a batch fetched before
        # a partition's core was installed holds records from before its seek.
        self.epoch = 0
        self.installed: dict[int, int] = {}
        self.lock = asyncio.Lock()
        self.in_flight: collections.deque[asyncio.Task[None]] = collections.deque()
        self.failure: AllocatorError | KafkaError | None = None
        self.joined = False  # a first assignment was taken over

    async def loaded(self) -> None:
        """Raise NotReady unless the group has assigned this process its partitions and
        each of them is rebuilt (the readiness of an allocator)."""
        if self.failure is not None:
            raise NotReady(f"failed: {self.failure}")
        if not self.joined:
            raise NotReady("waiting for the group to assign partitions")
        missing = {tp.partition for tp in self.consumer.assignment()} - set(self.cores)
        if missing:
            raise NotReady(f"partitions {sorted(missing)} are being taken over")

    async def settle(self, keep: int = 0) -> None:
        """Wait until at most ``keep`` batches handed over are not yet acknowledged and
        committed. Raises ProduceError if a batch's events could not be produced."""
        while len(self.in_flight) > keep:
            await self.in_flight.popleft()

    async def drain(self) -> AllocatorError | KafkaError | None:
        """Wait for every batch handed over; the first failure, if one failed (the
        batches after it fail with it, committing nothing), unless it may pass
        (``transient``: a stalled or lost broker): that one is only logged, for whoever
        owns the partitions next (this process after a rewind, or another, or a restart)
        applies the batches since the last commit again."""
        failure = None
        while self.in_flight:
            try:
                await self.in_flight.popleft()
            except (AllocatorError, KafkaError) as e:
                failure = failure or e
        if failure is not None and kafkaclient.transient(failure):
            self._passed(failure)
            return None
        return failure

    def _passed(self, failure: AllocatorError | KafkaError) -> None:
        self.metrics.failed_batches_total.inc()
        logger.warning("%s; applied again from the last commit", failure)

    async def reap(self) -> None:
        """Forget the batches done; raises the error of one that failed."""
        while self.in_flight and self.in_flight[0].done():
            await self.in_flight.popleft()

    async def abandon(self) -> None:
        """Stop waiting for the batches in flight (the process is failing, or going
        back to its last commit)."""
        tasks, self.in_flight = list(self.in_flight), collections.deque()
        await cancel_and_wait(tasks)

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        async with self.lock:
            failure = await self.drain()
            if failure is not None:
                # aiokafka would only log an exception raised here; the run loop raises it.
                self.failure = failure
            self._drop(tp.partition for tp in revoked)
        logger.info("partitions revoked: %s", sorted(tp.partition for tp in revoked))

    def _drop(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self.cores.pop(partition, None)
            self.installed.pop(partition, None)
            self.snapshots.forget(partition)
        # The frozen state of the cores dropped (and whatever else was frozen with them)
        # must be collectable again; the next takeover freezes what is kept.
        gc.unfreeze()

    async def rewind(self, failure: ProduceError) -> None:
        """Go back to the last commit after the events of a batch could not be produced
        for a passing reason (``transient``: a stalled or lost broker), as a restart
        would, without leaving the group: every owned partition is taken over again,
        and the batches since the commit are applied again and their events sent again,
        the same ones (the core is deterministic; consumers drop repetitions), whether
        or not the broker wrote the first ones.

        An idempotent producer never gets here for a stalled broker (it retries until
        the broker takes the batch); one that is not (on Tansu) gives a batch up after
        the request timeout."""
        self._passed(failure)
        topic = self.settings.connections.topics.commands
        async with self.lock:
            # Those after the failed batch cannot commit (each commits after the one
            # before it); any before it are applied again all the same.
            await self.abandon()
            owned = sorted(self.cores)
            self._drop(owned)
            for partition in owned:
                await self._take_until_done(TopicPartition(topic, partition))
        logger.info("partitions %s went back to the last commit", owned)

    async def _take_until_done(self, tp: TopicPartition) -> None:
        """Take ``tp`` over, trying again after a failure that may pass (a broker that
        stalled or was lost: ``transient``) until it succeeds or the process is told to
        stop, as a restart would; raises any other failure."""
        while not self.stop.is_set():
            try:
                await self._take(tp)
                return
            except (AllocatorError, KafkaError) as e:
                if not kafkaclient.transient(e):
                    raise
                logger.warning("taking %s over failed, trying again: %s", tp, e)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), RETAKE_RETRY_S)

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        logger.info("partitions assigned: %s", sorted(tp.partition for tp in assigned))
        for tp in sorted(assigned):
            try:
                await self._take_until_done(tp)
            except (AllocatorError, KafkaError) as e:
                failure = RebuildError(f"taking over {tp} failed: {e}")
                failure.__cause__ = e
                self.failure = failure
                return
        self.joined = True

    async def _take(self, tp: TopicPartition) -> None:
        committed = await self.consumer.committed(tp)
        start, size = await self._restore(tp, committed or 0)
        base = start.next_offset if start is not None else 0
        core, count = await rebuild(self.settings.connections.kafka, tp, committed or 0, start)
        self.metrics.replayed_total.inc(count)
        # The fetcher may have handed out records of this partition while it was being
        # taken over (they were dropped for want of a core): fetch again from here.
        if committed is not None:
            self.consumer.seek(tp, committed)
        else:
            await self.consumer.seek_to_beginning(tp)
        self.epoch += 1
        self.installed[tp.partition] = self.epoch
        self.cores[tp.partition] = core
        # The rebuilt state lives as long as the partition: keep the collector from
        # scanning it again on every collection (about a fifth of the core's time).
        gc.freeze()
        now_ms = start.now_ms if start is not None else 0
        self.snapshots.taken_over(tp.partition, base, now_ms, size)
        logger.info(
            "partition %d rebuilt from a snapshot at %d and %d records, continuing at offset %s",
            tp.partition,
            base,
            count,
            committed if committed is not None else "the log start",
        )

    async def _restore(self, tp: TopicPartition, committed: int) -> tuple[Allocator | None, int]:
        """The core of the newest usable snapshot at or before ``committed``, if any,
        and the snapshot's size in bytes."""
        partitions = self.consumer.partitions_for_topic(tp.topic) or {tp.partition}
        await self.store.ensure_topic(max(partitions) + 1)
        if committed <= 0:
            return None, 0
        found = await self.store.latest(tp.partition, committed)
        if found is None:
            return None, 0
        manifest, data = found
        try:
            core = Allocator.restore(data)
        except SnapshotError as e:
            logger.warning(
                "snapshot %d@%d unusable, replaying: %s", tp.partition, manifest.offset, e
            )
            return None, 0
        if core.next_offset != manifest.offset:
            raise RebuildError(
                f"snapshot {tp.partition}@{manifest.offset} is at {core.next_offset}"
            )
        self.metrics.restored_total.inc()
        return core, len(data)

    def lags(self) -> dict[int, int]:
        """Records of each owned partition not applied yet, by the end offset the fetcher
        last saw (no broker round trip); partitions still being taken over are left out."""
        topic = self.settings.connections.topics.commands
        lags = {}
        for partition, core in list(self.cores.items()):
            end = self.consumer.highwater(TopicPartition(topic, partition))
            if end is not None:
                lags[partition] = end - core.next_offset
        return lags

    def check(self) -> None:
        """Raise the error of a failed takeover, or of a batch that failed in a revocation."""
        if self.failure is not None:
            raise self.failure


def event_key(event: Event) -> bytes | None:
    """The record key of an event: its booking id, or none for events of no booking."""
    booking_id: str | None = getattr(event, "booking_id", None)
    return booking_id.encode() if booking_id is not None else None


class Worker:
    """Applies batches of command records and produces their events."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        partitions: Partitions,
        topics: Topics,
        metrics: AllocatorMetrics,
    ) -> None:
        self.consumer = consumer
        self.shipper = Shipper(producer, topics.events)
        self.commands_topic = topics.commands
        self.partitions = partitions
        self.metrics = metrics

    async def handle(
        self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]], epoch: int
    ) -> None:
        """Apply ``batch``, fetched at takeover ``epoch``, and hand its events to the
        producer; acknowledgements and the commit are waited for by a task, which the
        next batch (or a revocation) awaits."""
        parts = self.partitions
        async with parts.lock:
            outbox = self.shipper.outbox()
            offsets: dict[TopicPartition, int] = {}
            counts = Counts()
            for tp, records in batch.items():
                core = parts.cores.get(tp.partition)
                if core is None:  # revoked, or still being taken over (then fetched again)
                    continue
                if parts.installed[tp.partition] > epoch:
                    # Fetched before the takeover's seek: not necessarily where the core
                    # is. Fetch again from there.
                    self.consumer.seek(tp, core.next_offset)
                    continue
                end = await self._apply(core, tp.partition, records, outbox, counts)
                if core.sends:
                    await self._forward(core.sends, outbox, counts)
                if end is not None:
                    offsets[tp] = end
            outbox.ship()
            for tp in offsets:
                core = parts.cores[tp.partition]
                if parts.snapshots.due(tp.partition, core):
                    parts.snapshots.take(tp.partition, core)
            await parts.settle(keep=IN_FLIGHT_BATCHES - 1)
            before = parts.in_flight[-1] if parts.in_flight else None
            parts.in_flight.append(
                asyncio.create_task(self._finish(before, outbox, offsets, counts))
            )

    @staticmethod
    async def _apply(
        core: Allocator,
        partition: int,
        records: list[ConsumerRecord[bytes, bytes]],
        outbox: Outbox,
        counts: Counts,
    ) -> int | None:
        """Apply the records not applied yet, their events into ``outbox``.

        Every ``YIELD_EVERY_RECORDS`` records the events so far are released to the
        shipper (if it is idle) and the loop yields, so that they go out, the previous
        batches' acknowledgements and commits come in, and heartbeats and fetches go on
        while the batch is applied. Returns the offset after the last record applied, None
        if there was none.
        """
        end = None
        commands, events = counts.commands, counts.events
        apply, add = core.apply, outbox.add  # looked up once per batch, not per record
        until_yield = YIELD_EVERY_RECORDS
        for record in records:
            until_yield -= 1
            if not until_yield:
                until_yield = YIELD_EVERY_RECORDS
                outbox.release()
                await asyncio.sleep(0)
            offset = record.offset
            if offset < core.next_offset:
                continue
            end = offset + 1
            try:  # decode() inlined: a call less per record
                command = decode_command(record.value or b"")
            except SchemaError as e:
                skipping(record, e)
                counts.undecodable += 1
                continue
            commands[command.TYPE] += 1
            for event in apply(offset, record.timestamp, command):
                events[event.TYPE] += 1
                add(partition, event_key(event), event.pack())
        return end

    async def _forward(self, sends: list[Transfer], outbox: Outbox, counts: Counts) -> None:
        """Put the commands a core made for other partitions (moves to another county) on
        the commands topic, keyed by their county; the batch's offsets are committed only
        once the broker has them too, so a crash before that sends them again (and the
        receiving partition drops the repetition)."""
        producer = self.shipper.producer
        try:
            for message in sends:
                value, key = message.pack(), message.county.encode()
                outbox.sent.append(await producer.send(self.commands_topic, value, key=key))
                counts.sends[message.TYPE] += 1
        except KafkaError as e:
            raise ProduceError.of(f"sending {len(sends)} commands to other partitions", e) from e
        finally:
            sends.clear()

    async def _finish(
        self,
        before: asyncio.Task[None] | None,
        outbox: Outbox,
        offsets: dict[TopicPartition, int],
        counts: Counts,
    ) -> None:
        """Wait for the events' acknowledgements, then commit after ``before`` did."""
        await outbox.acknowledged()
        if before is not None:
            await before
        counts.publish(self.metrics)
        await self._commit(offsets)

    async def close(self) -> None:
        await self.shipper.close()

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except CommitFailedError as e:
            # The group rebalanced; whoever owns these partitions now replays from the
            # last commit and, the core being deterministic, sends the same events.
            logger.warning("commit of %s failed after a rebalance: %s", offsets, e)


async def tick(producer: AIOKafkaProducer, topic: str, partitions: Partitions) -> None:
    """Put one Tick on every partition this process owns."""
    sends = [
        producer.send_and_wait(topic, Tick(f"tick-{uuid.uuid4().hex}").pack(), partition=p)
        for p in sorted(partitions.cores)
    ]
    try:
        await asyncio.gather(*sends)
    except KafkaError as e:
        logger.warning("producing ticks failed, trying again next interval: %s", e)


async def tick_until(
    stop: asyncio.Event,
    producer: AIOKafkaProducer,
    topic: str,
    partitions: Partitions,
    interval_s: float,
) -> None:
    while True:
        try:
            await asyncio.wait_for(stop.wait(), interval_s)
        except TimeoutError:
            await tick(producer, topic, partitions)
        else:
            return


async def run(
    settings: AllocatorSettings, stop: asyncio.Event, registry: CollectorRegistry | None = None
) -> None:
    """Allocate until ``stop`` is set; then finish the batch in hand, commit and leave."""
    metrics = AllocatorMetrics(registry)
    kafka = settings.connections.kafka
    topics = settings.connections.topics
    producer = make_producer(kafka)
    snapshot_producer = make_producer(kafka)  # not held up
    client_id = f"{settings.group_id}-{settings.instance}" if settings.instance else None
    consumer = group_member(
        kafka,
        settings.group_id,
        settings.session_timeout_ms,
        client_id=client_id,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
    )
    store = SnapshotStore(kafka, settings.snapshots_topic, settings.snapshot_chunk_bytes)
    cadence = Cadence(settings.snapshot_every_records, settings.snapshot_every_s * 1000)
    snapshots = Snapshotter(store, snapshot_producer, cadence, metrics)
    async with contextlib.AsyncExitStack() as stack:  # stopped in the reverse order
        await producer.start()
        stack.push_async_callback(producer.stop)
        await snapshot_producer.start()
        stack.push_async_callback(snapshot_producer.stop)
        stack.push_async_callback(snapshots.close)
        partitions = Partitions(consumer, settings, store, snapshots, metrics, stop)
        metrics.watch_lag(partitions.lags)
        checks = {"broker": lambda: broker_reachable(producer.client), "state": partitions.loaded}
        await stack.enter_async_context(
            serving(settings.health, "allocator", checks, metrics.registry)
        )
        if client_id is not None:
            await evict_predecessors(kafka, settings.group_id, client_id)
        await consumer.start()
        stack.push_async_callback(kafkaclient.stop, consumer)
        consumer.subscribe([topics.commands], listener=partitions)
        worker = Worker(consumer, producer, partitions, topics, metrics)
        stack.push_async_callback(worker.close)
        await _loop(stop, consumer, partitions, worker, producer, settings)
    logger.info("allocator stopped")


async def _loop(
    stop: asyncio.Event,
    consumer: AIOKafkaConsumer,
    partitions: Partitions,
    worker: Worker,
    producer: AIOKafkaProducer,
    settings: AllocatorSettings,
) -> None:
    topic = settings.connections.topics.commands
    ticker = asyncio.create_task(
        tick_until(stop, producer, topic, partitions, settings.tick_interval_s)
    )
    try:
        while not stop.is_set():
            batch = await consumer.getmany(
                timeout_ms=POLL_TIMEOUT_MS, max_records=MAX_BATCH_RECORDS
            )
            epoch = partitions.epoch  # no await since the fetch: the takeovers before it
            partitions.check()
            try:
                if batch:
                    await worker.handle(batch, epoch)
                await partitions.reap()  # learn of a failed batch even when idle
            except ProduceError as e:
                if not kafkaclient.transient(e):
                    raise
                await partitions.rewind(e)
        async with partitions.lock:
            if (failure := await partitions.drain()) is not None:
                raise failure
    finally:
        await partitions.abandon()
        await cancel_and_wait([ticker])
