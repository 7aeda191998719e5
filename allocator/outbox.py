"""Records to Kafka in produce batches, without the loop waiting for the broker.

Handing records one by one to ``AIOKafkaProducer.send`` costs an await and some
bookkeeping per record, and the producer takes only one batch per partition
while a request is in flight, so a loop that sends blocks on the broker. Here the
records of one batch of commands go into an ``Outbox``: ``add`` appends to a
produce batch per partition (``BatchBuilder``) without awaiting; a batch that
fills up, the batches so far whenever the loop yields (``release``), and at the
end every batch, are put on a ``Shipper``, whose task of its own hands them to
the producer in the order they were put, so a partition's records keep their
order across outboxes. ``Outbox.acknowledged`` waits until the
broker has acknowledged every record of the outbox.
"""

from __future__ import annotations

import asyncio
import collections
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError
from aiokafka.producer.message_accumulator import BatchBuilder

from allocator.errors import AllocatorError
from fairq import kafkaclient
from fairq.config import Kafka
from fairq.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

PRODUCE_BATCH_BYTES = 960 * 1024  # one produce batch of a partition; Kafka takes up to 1 MB


class ProduceError(AllocatorError):
    """Records could not be produced; their commands' offsets were not committed. Its
    cause is the producer's ``KafkaError``, if one was (``fairq.kafkaclient.transient``
    tells whether asking again may pass)."""

    @classmethod
    def of(cls, what: str, cause: KafkaError) -> ProduceError:
        error = cls(f"{what}: {cause}")
        error.__cause__ = cause
        return error


def make_producer(kafka: Kafka) -> AIOKafkaProducer:
    """The producer of events (and snapshots, ``fairq.kafkaclient.producer``), whose
    produce batches are ``PRODUCE_BATCH_BYTES``."""
    return kafkaclient.producer(kafka, max_batch_size=PRODUCE_BATCH_BYTES)


class Shipper:
    """Hands produce batches to the producer in the order they are put, from a task of
    its own."""

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self.producer = producer
        self.topic = topic
        self._queue: collections.deque[tuple[Outbox, int, BatchBuilder | None]] = (
            collections.deque()
        )
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._handing = False

    @property
    def idle(self) -> bool:
        """Whether every batch put so far is in the producer's hands."""
        return not self._queue and not self._handing

    def outbox(self) -> Outbox:
        return Outbox(self)

    def put(self, outbox: Outbox, partition: int, builder: BatchBuilder | None) -> None:
        """Queue ``builder`` for ``partition``; None marks the end of ``outbox``."""
        self._queue.append((outbox, partition, builder))
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"shipper-{self.topic}")

    async def close(self) -> None:
        """Stop handing over; outboxes not handed over yet fail."""
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait([task])
        while self._queue:
            outbox, _, _ = self._queue.popleft()
            outbox.fail(ProduceError(f"the producer of {self.topic} was closed"))

    async def _run(self) -> None:
        queue = self._queue
        while True:
            while not queue:
                self._wake.clear()
                await self._wake.wait()
            outbox, partition, builder = queue.popleft()
            if builder is None:
                outbox.handed_over()
                continue
            self._handing = True
            try:
                future = await self._hand_over(builder, partition)
            except KafkaError as e:
                outbox.fail(ProduceError.of(f"queueing a batch for {self.topic}[{partition}]", e))
                continue
            finally:
                self._handing = False
            outbox.sent.append(future)

    async def _hand_over(self, builder: BatchBuilder, partition: int) -> asyncio.Future[object]:
        """Hand ``builder`` to the producer, waiting as long as the partition's batch
        before it is still being delivered.

        The producer takes one batch per partition at a time and gives a hand-over up
        after its request timeout (``KafkaTimeoutError``, the batch untouched): while
        a lost broker's partitions find new leaders (~9 s on Apache Kafka) the batch
        before it is retried, and this one waits for it. That batch's fate ends the
        wait: written, or failed with its own outbox (an idempotent producer retries
        until written; another gives up after the request timeout)."""
        while True:
            try:
                future: asyncio.Future[object] = await self.producer.send_batch(
                    builder, self.topic, partition=partition
                )
                return future
            except KafkaTimeoutError:
                logger.warning(
                    "%s[%d]: the batch before is still being delivered; waiting",
                    self.topic,
                    partition,
                )


class Outbox:
    """The records produced for one batch of commands, a produce batch per partition."""

    def __init__(self, shipper: Shipper) -> None:
        self.shipper = shipper
        self.records = 0
        self.sent: list[asyncio.Future[object]] = []
        self._open: dict[int, BatchBuilder] = {}
        self._handed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def add(self, partition: int, key: bytes | None, value: bytes) -> None:
        builder = self._open.get(partition)
        if builder is None:
            builder = self._open[partition] = self.shipper.producer.create_batch()
        if builder.append(timestamp=None, key=key, value=value) is None:
            self.shipper.put(self, partition, builder)
            builder = self._open[partition] = self.shipper.producer.create_batch()
            # A record always fits an empty batch, however large.
            builder.append(timestamp=None, key=key, value=value)
        self.records += 1

    def release(self) -> None:
        """Put the batches filled so far on the shipper, if it is idle (else they go on
        filling, so that a busy producer gets fewer, larger batches)."""
        if self.shipper.idle:
            self._put_open()

    def ship(self) -> None:
        """Put every batch on the shipper, and the end of this outbox."""
        self._put_open()
        self.shipper.put(self, -1, None)

    def _put_open(self) -> None:
        open_, self._open = self._open, {}
        for partition, builder in open_.items():
            self.shipper.put(self, partition, builder)

    async def acknowledged(self) -> None:
        """Wait until the broker acknowledged every record (call after ``ship``);
        ProduceError if one could not be produced."""
        await self._handed
        try:
            await asyncio.gather(*self.sent)
        except KafkaError as e:
            raise ProduceError.of(f"producing {self.records} records failed", e) from e

    def handed_over(self) -> None:
        if not self._handed.done():
            self._handed.set_result(None)

    def fail(self, error: ProduceError) -> None:
        if not self._handed.done():
            self._handed.set_exception(error)
