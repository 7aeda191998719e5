"""The state log: writing ``schemas.state`` records, and reading them back whole.

A record is written before the operation it describes is acknowledged (acks=all):
an operator's answer, a code shown, a claim relied on, a number handed out under a
ceiling. A send that fails or times out raises ``StateNotAccepted`` (the caller
answers 503), but the record may be in the log all the same: every record is safe to
find there without its operation (a room setting an operator is told failed and will
send again, a ceiling never used, codes never shown, a claim of a booking never
placed, which ``gateway.identities`` lets lapse).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from schemas.errors import SchemaError
from schemas.state import RestoreStarted, StateRecord, decode_state
from waitingroom.errors import StateNotAccepted, StateUnavailable

logger = logging.getLogger(__name__)

PARTITION = 0  # the state topic has one partition (fairq.topics.STATE_PARTITIONS)
READ_BATCH = 5000
READ_WAIT_S = 30.0  # how long a restorer waits for its own record to come back


def make_producer(bootstrap: str, *, idempotence: bool = False) -> AIOKafkaProducer:
    """A producer for a process that writes only state records (the admitter): acks=all,
    idempotent where the broker grants it (``Connections.kafka_idempotence``; Tansu
    does not, see DESIGN.md's broker facts); each record is awaited alone."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=idempotence,
        request_timeout_ms=10_000,
    )


class StateLog:
    """Writes to and reads from the state topic; the producer is the caller's."""

    def __init__(self, producer: AIOKafkaProducer, bootstrap: str, topic: str) -> None:
        self._producer = producer
        self._bootstrap = bootstrap
        self.topic = topic

    async def write(self, *records: StateRecord) -> None:
        """Send ``records`` in order and wait until the broker has all of them."""
        try:
            futures = [
                await self._producer.send(self.topic, r.pack(), partition=PARTITION)
                for r in records
            ]
            for future in futures:
                await future
        except KafkaError as e:
            raise StateNotAccepted(f"the broker did not accept the state record: {e}") from e

    async def read_through(self, own: RestoreStarted) -> AsyncIterator[StateRecord]:
        """Write ``own``, then yield every record from the first up to it (excluded).

        The end is the reader's own record, not the end offset the broker reports when
        reading begins: every record acknowledged before ``own`` was written stands
        before it in the one partition, whereas Tansu was seen to report an end offset
        that left out a record it had acknowledged some 100 ms earlier.
        """
        await self.write(own)
        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            tp = TopicPartition(self.topic, PARTITION)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            async with asyncio.timeout(READ_WAIT_S):
                while True:
                    batch = await consumer.getmany(tp, timeout_ms=200, max_records=READ_BATCH)
                    for record in batch.get(tp, []):
                        if record.value is None:
                            continue
                        try:
                            decoded = decode_state(record.value)
                        except SchemaError as e:
                            logger.error(
                                "skipping undecodable state record %d: %s", record.offset, e
                            )
                            continue
                        if decoded == own:
                            return
                        yield decoded
        except TimeoutError as e:
            raise StateUnavailable(
                f"the state log did not give back its record in {READ_WAIT_S}s"
            ) from e
        except KafkaError as e:
            raise StateUnavailable(f"the state log cannot be read: {e}") from e
        finally:
            await consumer.stop()
