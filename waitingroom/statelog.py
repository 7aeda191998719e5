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

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from fairq import kafkaclient
from fairq.config import Kafka
from schemas.errors import SchemaError
from schemas.state import RestoreStarted, StateRecord, decode_state
from waitingroom.errors import StateNotAccepted, StateUnavailable

logger = logging.getLogger(__name__)

PARTITION = 0  # the state topic has one partition (fairq.topics.STATE_PARTITIONS)
READ_BATCH = 5000
READ_WAIT_S = 30.0  # how long a restorer waits for its own record to come back


class StateLog:
    """Writes to and reads from the state topic; the producer is the caller's."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        kafka: Kafka,
        topic: str,
        send_timeout_s: float = kafkaclient.SEND_TIMEOUT_S,
    ) -> None:
        self._producer = producer
        self._kafka = kafka
        self.topic = topic
        self._send_timeout_s = send_timeout_s

    async def write(self, *records: StateRecord) -> None:
        """Send ``records`` in order and wait until the broker has all of them, at most
        the send timeout."""
        try:
            futures = [
                await self._producer.send(self.topic, r.pack(), partition=PARTITION)
                for r in records
            ]
            await kafkaclient.deliver(futures, self._send_timeout_s)
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
        consumer = kafkaclient.consumer(self._kafka)
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
            await kafkaclient.stop(consumer)
