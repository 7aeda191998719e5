import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from fairq.config import Topics
from fairq.devservices import Server
from tests.conftest import TEST_PARTITIONS


async def test_redis_server_answers(redis: aioredis.Redis) -> None:
    assert await redis.ping() is True
    await redis.set("k", "v")
    assert await redis.get("k") == b"v"


async def test_topics_have_partitions_and_carry_records(kafka_srv: Server, topics: Topics) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_srv.url, acks="all")
    await producer.start()
    try:
        assert await producer.partitions_for(topics.commands) == set(range(TEST_PARTITIONS))
        assert await producer.partitions_for(topics.events) == set(range(TEST_PARTITIONS))
        meta = await producer.send_and_wait(topics.commands, b"hello", partition=2)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_srv.url, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tp = TopicPartition(topics.commands, 2)
        consumer.assign([tp])
        record = await consumer.getone()
    finally:
        await consumer.stop()
    assert (record.offset, record.value) == (meta.offset, b"hello")
