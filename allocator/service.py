"""The allocator process: commands from Kafka through the pure core, events back to Kafka.

One consumer in the group ``settings.group_id`` reads ``booking-commands``. For
each assigned partition it holds one ``Allocator``, rebuilt on assignment by
replaying the partition up to the committed offset with the events thrown
away (they were produced before that offset was committed). Each batch is
applied in order; its events go to ``booking-events`` on the partition number of
their command, and the offsets are committed only after every event is
acknowledged (``acks="all"``). A crash between the two replays the batch, and
the core, being deterministic, sends the same events again; consumers drop
them by ``rev`` and command id.

Every ``snapshot_every_records`` records or ``snapshot_every_s`` of log time, after a
batch is committed, a partition's core is snapshotted to the snapshots topic with the
offset it reflects (``allocator.snapshotstore``). On assignment the newest snapshot at
or before the committed offset is loaded and only the records after it are replayed.

A ticker puts a Tick on every assigned partition each ``tick_interval_s`` so
that idle partitions' log clocks move (hold expiry, summaries).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, KafkaError
from prometheus_client import CollectorRegistry, Counter

from allocator.core import Allocator
from allocator.errors import AllocatorError, RebuildError, SnapshotError
from allocator.settings import AllocatorSettings
from allocator.snapshotstore import SnapshotStore, SnapshotStoreError
from schemas import SchemaError
from schemas.commands import Command, Tick, decode_command
from schemas.events import Event, InventoryAdded, Summary

logger = logging.getLogger(__name__)

POLL_TIMEOUT_MS = 200  # how long one fetch waits before the stop flag is looked at again
MAX_BATCH_RECORDS = 5000
REBUILD_POLL_MS = 1000


class ProduceError(AllocatorError):
    """Events could not be produced; their commands' offsets were not committed."""


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


def decode(record: ConsumerRecord[bytes, bytes]) -> Command | None:
    """The record's command, or None (logged) when it does not decode."""
    try:
        return decode_command(record.value or b"")
    except SchemaError as e:
        logger.warning(
            "skipping undecodable record %s[%d]@%d: %s",
            record.topic,
            record.partition,
            record.offset,
            e,
        )
        return None


async def rebuild(
    bootstrap: str, tp: TopicPartition, end_offset: int, start: Allocator | None = None
) -> tuple[Allocator, int]:
    """A core with the partition's records before ``end_offset`` applied, events discarded.

    Starts from ``start`` (a restored snapshot) or an empty core, and replays the
    records from its ``next_offset`` on. Returns the core and how many records were
    read. Those records must still be there: a partition whose records after the
    start were deleted raises RebuildError rather than giving a core that silently
    misses them.
    """
    core = start if start is not None else Allocator()
    if end_offset <= core.next_offset:
        return core, 0
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        log_start = (await consumer.beginning_offsets([tp]))[tp]
        log_end = (await consumer.end_offsets([tp]))[tp]
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
    except KafkaError as e:
        raise RebuildError(f"replaying {tp} up to offset {end_offset} failed: {e}") from e
    finally:
        await consumer.stop()
    core.next_offset = end_offset
    return core, count


class Partitions(ConsumerRebalanceListener):  # type: ignore[misc]
    """The cores of the partitions this process owns, kept in step with the group.

    ``lock`` is held while a batch is applied, produced and committed; a
    revocation waits for it, so the batch in hand finishes first.
    """

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        settings: AllocatorSettings,
        store: SnapshotStore,
        metrics: AllocatorMetrics,
    ) -> None:
        self.consumer = consumer
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.cores: dict[int, Allocator] = {}
        self.snapshotted: dict[int, tuple[int, int]] = {}  # partition -> (offset, now_ms)
        self.lock = asyncio.Lock()
        self.failure: tuple[TopicPartition, Exception] | None = None

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        async with self.lock:
            for tp in revoked:
                self.cores.pop(tp.partition, None)
                self.snapshotted.pop(tp.partition, None)
        logger.info("partitions revoked: %s", sorted(tp.partition for tp in revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        logger.info("partitions assigned: %s", sorted(tp.partition for tp in assigned))
        for tp in sorted(assigned):
            try:
                await self._take(tp)
            except (AllocatorError, KafkaError) as e:
                # aiokafka would only log an exception raised here; the run loop raises it.
                self.failure = (tp, e)
                return

    async def _take(self, tp: TopicPartition) -> None:
        committed = await self.consumer.committed(tp)
        start = await self._restore(tp, committed or 0)
        base = start.next_offset if start is not None else 0
        bootstrap = self.settings.connections.kafka_bootstrap
        core, count = await rebuild(bootstrap, tp, committed or 0, start)
        self.metrics.replayed_total.inc(count)
        self.cores[tp.partition] = core
        self.snapshotted[tp.partition] = (base, core.now_ms if start is not None else 0)
        # The fetcher may have handed out records of this partition while it was being
        # taken over (they were dropped for want of a core): fetch again from here.
        if committed is not None:
            self.consumer.seek(tp, committed)
        else:
            await self.consumer.seek_to_beginning(tp)
        logger.info(
            "partition %d rebuilt from a snapshot at %d and %d records, continuing at offset %s",
            tp.partition,
            base,
            count,
            committed if committed is not None else "the log start",
        )

    async def _restore(self, tp: TopicPartition, committed: int) -> Allocator | None:
        """The core of the newest usable snapshot at or before ``committed``, if any."""
        partitions = self.consumer.partitions_for_topic(tp.topic) or {tp.partition}
        await self.store.ensure_topic(max(partitions) + 1)
        if committed <= 0:
            return None
        found = await self.store.latest(tp.partition, committed)
        if found is None:
            return None
        manifest, data = found
        try:
            core = Allocator.restore(data)
        except SnapshotError as e:
            logger.warning(
                "snapshot %d@%d unusable, replaying: %s", tp.partition, manifest.offset, e
            )
            return None
        if core.next_offset != manifest.offset:
            raise RebuildError(
                f"snapshot {tp.partition}@{manifest.offset} is at {core.next_offset}"
            )
        self.metrics.restored_total.inc()
        return core

    def snapshot_due(self, partition: int, core: Allocator) -> bool:
        offset, now_ms = self.snapshotted.get(partition, (0, 0))
        every_records = self.settings.snapshot_every_records
        every_ms = self.settings.snapshot_every_s * 1000
        if every_records and core.next_offset - offset >= every_records:
            return True
        return bool(every_ms) and core.now_ms - now_ms >= every_ms and core.next_offset > offset

    def check(self) -> None:
        """Raise the error of a failed takeover, if any."""
        if self.failure is not None:
            tp, error = self.failure
            raise RebuildError(f"taking over {tp} failed: {error}") from error


def event_key(event: Event) -> bytes | None:
    if isinstance(event, Summary | InventoryAdded):
        return None
    return event.booking_id.encode()


class Worker:
    """Applies batches of command records and produces their events."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        partitions: Partitions,
        events_topic: str,
        metrics: AllocatorMetrics,
    ) -> None:
        self.consumer = consumer
        self.producer = producer
        self.partitions = partitions
        self.events_topic = events_topic
        self.metrics = metrics

    async def handle(self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        async with self.partitions.lock:
            pending: list[asyncio.Future[object]] = []
            offsets: dict[TopicPartition, int] = {}
            for tp, records in batch.items():
                core = self.partitions.cores.get(tp.partition)
                if core is None:  # revoked, or still being taken over (then fetched again)
                    continue
                for record in records:
                    if record.offset < core.next_offset:
                        continue
                    for event in self._apply(core, record):
                        pending.append(await self._send(event, tp.partition))
                    offsets[tp] = record.offset + 1
            await self._wait_for_acks(pending)
            if await self._commit(offsets):
                await self._snapshot(offsets)

    def _apply(self, core: Allocator, record: ConsumerRecord[bytes, bytes]) -> list[Event]:
        command = decode(record)
        if command is None:
            self.metrics.undecodable_total.inc()
            return []
        self.metrics.commands_total.labels(command.TYPE).inc()
        return core.apply(record.offset, record.timestamp, command)

    async def _send(self, event: Event, partition: int) -> asyncio.Future[object]:
        self.metrics.events_total.labels(event.TYPE).inc()
        try:
            future: asyncio.Future[object] = await self.producer.send(
                self.events_topic, event.pack(), key=event_key(event), partition=partition
            )
        except KafkaError as e:
            raise ProduceError(f"queueing a {event.TYPE} event failed: {e}") from e
        return future

    async def _wait_for_acks(self, pending: list[asyncio.Future[object]]) -> None:
        if not pending:
            return
        try:
            await asyncio.gather(*pending)
        except KafkaError as e:
            raise ProduceError(f"producing {len(pending)} events failed: {e}") from e

    async def _commit(self, offsets: dict[TopicPartition, int]) -> bool:
        if not offsets:
            return False
        try:
            await self.consumer.commit(offsets)
        except CommitFailedError as e:
            # The group rebalanced; whoever owns these partitions now replays from the
            # last commit and, the core being deterministic, sends the same events.
            logger.warning("commit of %s failed after a rebalance: %s", offsets, e)
            return False
        return True

    async def _snapshot(self, offsets: dict[TopicPartition, int]) -> None:
        """Snapshot the cores that are due, now that their offsets are committed."""
        parts = self.partitions
        for tp in offsets:
            core = parts.cores.get(tp.partition)
            if core is None or not parts.snapshot_due(tp.partition, core):
                continue
            data = await asyncio.to_thread(core.snapshot)  # the lock keeps the core still
            try:
                await parts.store.write(self.producer, tp.partition, core.next_offset, data)
            except SnapshotStoreError as e:
                self.metrics.snapshot_failures_total.inc()
                logger.warning("snapshot of partition %d not written: %s", tp.partition, e)
                continue
            parts.snapshotted[tp.partition] = (core.next_offset, core.now_ms)
            self.metrics.snapshots_total.inc()
            logger.info(
                "partition %d snapshotted at offset %d (%d bytes)",
                tp.partition,
                core.next_offset,
                len(data),
            )


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
    bootstrap = settings.connections.kafka_bootstrap
    topics = settings.connections.topics
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=settings.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=max(100, settings.session_timeout_ms // 3),
    )
    await producer.start()
    try:
        await consumer.start()
        try:
            store = SnapshotStore(
                bootstrap, settings.snapshots_topic, settings.snapshot_chunk_bytes
            )
            partitions = Partitions(consumer, settings, store, metrics)
            consumer.subscribe([topics.commands], listener=partitions)
            worker = Worker(consumer, producer, partitions, topics.events, metrics)
            ticker = asyncio.create_task(
                tick_until(stop, producer, topics.commands, partitions, settings.tick_interval_s)
            )
            try:
                while not stop.is_set():
                    batch = await consumer.getmany(
                        timeout_ms=POLL_TIMEOUT_MS, max_records=MAX_BATCH_RECORDS
                    )
                    partitions.check()
                    if batch:
                        await worker.handle(batch)
            finally:
                ticker.cancel()
                await asyncio.gather(ticker, return_exceptions=True)
        finally:
            await consumer.stop()
    finally:
        await producer.stop()
    logger.info("allocator stopped")
