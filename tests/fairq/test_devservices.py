import signal
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from fairq.config import Topics
from fairq.devservices import DevServiceError, Server, kafka_cluster
from tests.conftest import TEST_PARTITIONS


async def test_redis_server_answers(redis: aioredis.Redis) -> None:
    assert await redis.ping() is True
    await redis.set("k", "v")
    assert await redis.get("k") == b"v"


@pytest.mark.both_brokers
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


def test_missing_kafka_jars_are_named(tmp_path: Path) -> None:
    with pytest.raises(DevServiceError, match="make kafka-libs"), kafka_cluster(libs=tmp_path):
        pass


@pytest.mark.kafka
def test_a_kafka_cluster_stops_every_node_cleanly() -> None:
    with kafka_cluster(nodes=1) as cluster:
        [node] = cluster.nodes
        assert node.url == cluster.url and node.process.poll() is None
    # the JVM's answer to SIGTERM once its shutdown hooks ran; not -SIGKILL (the fallback)
    assert node.process.returncode == 128 + signal.SIGTERM
