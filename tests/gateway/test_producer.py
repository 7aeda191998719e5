"""The gateway's producer on Apache Kafka is idempotent (``Connections.kafka_idempotence``):
a send whose answer does not come in time is retried under the same producer id and
sequence, so it is in the log once; the gateway waits for it no longer than its send
timeout all the same (then answers 503, in doubt)."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import NewTopic

from fairq.config import Kafka, KafkaTimeouts
from fairq.topics import create_topics
from gateway.producer import CommandNotAccepted, CommandProducer, make_producer
from schemas.commands import Tick
from tests.conftest import logged_line, own_broker, paused

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(90)]

REQUEST_TIMEOUT_MS = 1000  # a produce request not answered within this is sent again
SEND_TIMEOUT_S = 2.0


async def test_a_send_retried_after_a_lost_answer_is_written_once() -> None:
    with own_broker("kafka") as server:
        topic = f"t{uuid.uuid4().hex[:10]}-idempotence"
        kafka = Kafka(server.url, True, KafkaTimeouts(request_timeout_ms=REQUEST_TIMEOUT_MS))
        await create_topics(kafka, [NewTopic(topic, 1, 1)])
        producer = make_producer(kafka)
        # aiokafka's sender logs a produce request that failed (and is retried: idempotent)
        retried = logged_line("aiokafka.producer.sender", "Got error produce response")
        await producer.start()
        try:
            with retried as retries:
                await producer.send_and_wait(topic, b"first")  # producer id and metadata
                with paused(server):  # the request is taken, its answer does not come
                    sent = await producer.send(topic, b"second")
                    await retries.wait()  # timed out: sent again, same sequence
                await sent
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=server.url, enable_auto_commit=False)
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            end = (await consumer.end_offsets([tp]))[tp]
            batch = await consumer.getmany(tp, timeout_ms=5000)
        finally:
            await consumer.stop()
    assert [r.value for r in batch.get(tp, [])] == [b"first", b"second"]
    assert end == 2


async def test_an_idempotent_send_the_broker_does_not_answer_is_given_up_in_doubt() -> None:
    """An idempotent producer never gives a send up by itself (aiokafka retries it until
    the broker takes it): without the gateway's own bound, a stopped broker of a
    cluster would hold the request until it came back (``fairq.kafkaclient.deliver``)."""
    with own_broker("kafka") as server:
        topic = f"t{uuid.uuid4().hex[:10]}-bounded"
        kafka = Kafka(server.url, True, KafkaTimeouts(request_timeout_ms=REQUEST_TIMEOUT_MS))
        await create_topics(kafka, [NewTopic(topic, 1, 1)])
        producer = make_producer(kafka)
        await producer.start()
        try:
            commands = CommandProducer(producer, topic, SEND_TIMEOUT_S)
            await commands.send("ulm", Tick("t0"))  # producer id and metadata
            with paused(server), pytest.raises(CommandNotAccepted) as refused:
                await commands.send("ulm", Tick("t1"))
            assert refused.value.maybe_in_log
        finally:
            await producer.stop()
