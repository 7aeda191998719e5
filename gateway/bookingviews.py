"""What a gateway holds of ``booking-events``: streams, pending answers and summaries.

Every gateway reads the events topic (no consumer group) from the offset the booking
read model reflects (``gateway.readmodel``), projects what it reads into that model,
then answers the commands it waits for and pushes changes to the streams it holds.
The bookings themselves are in the read model, not here: a gateway's memory holds
what is live, whatever the season's history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord
from redis.exceptions import RedisError

from fairq import kafkaclient
from fairq.config import Kafka
from fairq.tasks import stopped_within
from fairq.topics import partitions_of
from gateway.readmodel import BookingView, ReadModel, Record, Start, Tally
from schemas import SchemaError
from schemas.events import (
    BookingEvent,
    CountySummary,
    Event,
    Summary,
    decode_event,
)

logger = logging.getLogger(__name__)

POLL_MS = 200  # how long one fetch waits before the stop flag is looked at again
# How long the broker may hold a fetch of events that found nothing new: Tansu holds it
# that long even when an event arrives meanwhile, so it is this hop's share of
# click-to-held (with the allocator's FAIRQ_ALLOCATOR_FETCH_MAX_WAIT_MS, see there).
FETCH_MAX_WAIT_MS = 25
CHECK_S = 1.0  # how often the reader looks whether the read model lost what it read
REDIS_RETRY_S = 0.5  # the pause before a batch Redis did not take is read again


@dataclass(slots=True)
class BookingViews:
    """The read model, waiting streams, pending command answers and summaries of one gateway."""

    model: ReadModel
    summaries: dict[str, dict[str, CountySummary]] = field(default_factory=dict)
    pairs_left: dict[str, int] = field(default_factory=dict)  # per campaign, all counties
    seen: Counter[str] = field(default_factory=Counter)  # events read, by type
    # booking events applied (a duplicate or replay not counted), by campaign and type:
    # the console's holds, confirmations and expiries, the same on every gateway (the
    # read model's, as of this gateway's last projection)
    tally: Tally = field(default_factory=dict)
    _watchers: dict[str, set[asyncio.Queue[BookingView]]] = field(default_factory=dict)
    _answers: dict[str, asyncio.Future[Event]] = field(default_factory=dict)

    async def get(self, booking_id: str) -> BookingView | None:
        return await self.model.get(booking_id)

    def begin(self, start: Start) -> None:
        """Take the summaries and tally the read model held where reading starts."""
        self.tally = start.tally
        for campaign, counties in start.summaries.items():
            self._summarise(campaign, counties)

    def apply(self, event: Event) -> None:
        """What a read event changes in memory (its booking change is in the read model)."""
        self.seen[event.TYPE] += 1
        if isinstance(event, Summary):
            self._summarise(event.campaign, event.counties)
            return
        self._answer(event.command_id, event)

    def _summarise(self, campaign: str, counties: dict[str, CountySummary]) -> None:
        held = self.summaries.setdefault(campaign, {})
        held.update(counties)
        self.pairs_left[campaign] = sum(c.pairs_left for c in held.values())

    async def notify(self, events: list[Event]) -> None:
        """Push the current view of each watched booking these events changed."""
        watched = {
            e.booking_id
            for e in events
            if isinstance(e, BookingEvent) and e.booking_id in self._watchers
        }
        if not watched:
            return
        for booking_id, view in (await self.model.get_many(watched)).items():
            for queue in self._watchers.get(booking_id, ()):
                queue.put_nowait(view)

    def _answer(self, command_id: str, event: Event) -> None:
        future = self._answers.pop(command_id, None)
        if future is not None and not future.done():
            future.set_result(event)

    @contextlib.contextmanager
    def watch(self, booking_id: str) -> Iterator[asyncio.Queue[BookingView]]:
        """A queue that receives the view after every change of that booking."""
        queue: asyncio.Queue[BookingView] = asyncio.Queue()
        self._watchers.setdefault(booking_id, set()).add(queue)
        try:
            yield queue
        finally:
            watchers = self._watchers.get(booking_id)
            if watchers is not None:
                watchers.discard(queue)
                if not watchers:
                    del self._watchers[booking_id]

    @contextlib.contextmanager
    def expect(self, command_ids: list[str]) -> Iterator[dict[str, asyncio.Future[Event]]]:
        """Futures resolved by the answers to these commands (register before producing)."""
        loop = asyncio.get_running_loop()
        futures = {cid: loop.create_future() for cid in command_ids}
        self._answers.update(futures)
        try:
            yield futures
        finally:
            for cid in command_ids:
                self._answers.pop(cid, None)

    @property
    def streams(self) -> int:
        return sum(len(w) for w in self._watchers.values())


async def consume_events(
    kafka: Kafka, topic: str, views: BookingViews, caught_up: asyncio.Event, stop: asyncio.Event
) -> None:
    """Read the events topic from the read model's offsets into ``views`` until ``stop``.

    ``caught_up`` is set once the reader has reached the end the topic had at start.
    """
    consumer = kafkaclient.consumer(kafka, fetch_max_wait_ms=FETCH_MAX_WAIT_MS)
    await consumer.start()
    try:
        partitions = await _wait_for_partitions(consumer, topic)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        start = await views.model.start()
        views.begin(start)
        firsts = await consumer.beginning_offsets(tps)
        parts = {tp: _Partition.at(firsts[tp], start.offsets.get(tp.partition)) for tp in tps}
        for tp, part in parts.items():
            consumer.seek(tp, part.position)
        targets = await consumer.end_offsets(tps)
        logger.info(
            "reading %s from the read model's offsets: %d records behind",
            topic,
            sum(max(0, targets[tp] - parts[tp].position) for tp in tps),
        )
        checked = asyncio.get_running_loop().time()
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=POLL_MS, max_records=5000)
            try:
                for tp, records in batch.items():
                    await _project(consumer, views, tp, records, parts[tp])
                if asyncio.get_running_loop().time() - checked >= CHECK_S:
                    await _check(consumer, views.model, parts)
                    checked = asyncio.get_running_loop().time()
            except RedisError as e:
                # Read again from what the read model has: a batch half applied is
                # applied once (its stored offsets), and its answers and stream changes
                # wait until Redis has them. Giving up here would leave every view as
                # it stands until the gateway restarts.
                logger.warning("the read model is unreachable (%s); reading again", e)
                for tp, part in parts.items():
                    consumer.seek(tp, part.position)
                await stopped_within(stop, REDIS_RETRY_S)
                continue
            if not caught_up.is_set() and await _reached(consumer, targets):
                caught_up.set()
                logger.info("booking views caught up")
    finally:
        await kafkaclient.stop(consumer)


@dataclass(slots=True)
class _Partition:
    """Where this gateway reads one partition."""

    first: int  # the partition's first offset (those before it are deleted)
    position: int  # the offset the next records are read from
    high: int  # records before it were read once already (answered, summaries taken)

    @classmethod
    def at(cls, first: int, projected: int | None) -> _Partition:
        position = max(first, projected or 0)
        return cls(first, position, position)


async def _check(
    consumer: AIOKafkaConsumer, model: ReadModel, parts: dict[TopicPartition, _Partition]
) -> None:
    """Read again what the read model lost, on partitions that get no new records too
    (a new record would find the gap: ``_project``)."""
    offsets = await model.offsets()
    for tp, part in parts.items():
        projected = max(part.first, offsets.get(tp.partition, 0))
        if projected < part.position:
            _read_again(consumer, tp, part, projected)


def _read_again(
    consumer: AIOKafkaConsumer, tp: TopicPartition, part: _Partition, projected: int
) -> None:
    logger.warning(
        "the read model of %s lacks offsets %d to %d (Redis lost them): reading them again",
        tp,
        projected,
        part.position - 1,
    )
    consumer.seek(tp, projected)
    part.position = projected


async def _project(
    consumer: AIOKafkaConsumer,
    views: BookingViews,
    tp: TopicPartition,
    records: list[ConsumerRecord[bytes, bytes]],
    part: _Partition,
) -> None:
    """Apply one partition's records to the read model, then to memory (answers, streams):
    an answer is given only once the read model has it, so any gateway's lookup after
    it sees it. Records read again to repair the read model change nothing in memory
    (their summaries are older than those taken)."""
    read = [Record(r.offset, r.value or b"", _decode(r.value, r.offset)) for r in records]
    projected = await views.model.project(tp.partition, part.position, part.first, read)
    if projected.gap is not None:
        _read_again(consumer, tp, part, projected.gap)
        return
    part.position = records[-1].offset + 1
    views.tally = projected.tally
    events = [r.event for r in read if r.event is not None and r.offset >= part.high]
    part.high = max(part.high, part.position)
    for event in events:
        views.apply(event)
    await views.notify(events)


async def _reached(consumer: AIOKafkaConsumer, targets: dict[TopicPartition, int]) -> bool:
    for tp, end in targets.items():
        if await consumer.position(tp) < end:
            return False
    return True


async def _wait_for_partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    while True:  # the gateway does not serve until this returns (see app._wait_caught_up)
        partitions = await partitions_of(consumer, topic)
        if partitions:
            return partitions
        logger.warning("topic %s has no partitions yet; waiting for it", topic)
        await asyncio.sleep(0.5)


def _decode(value: bytes | None, offset: int) -> Event | None:
    if value is None:
        return None
    try:
        return decode_event(value)
    except SchemaError as e:
        logger.error("skipping undecodable event at offset %d: %s", offset, e)
        return None
