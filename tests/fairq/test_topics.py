"""The topics fairq creates have the settings ``fairq.topics`` names, as the broker
reports them (describe-configs): kept for ever, compacted snapshots, replicas and
``min.insync.replicas``, equal partitions for the booking topics and one for the state
topic; on Tansu, on one Apache Kafka node and on a cluster of three."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from allocator.settings import snapshot_topic
from fairq.config import Kafka, Topics
from fairq.devservices import KafkaCluster, Server, kafka_cluster
from fairq.topics import (
    STATE_PARTITIONS,
    booking_topic_configs,
    ensure_topics,
    snapshot_topic_configs,
)
from tests.conftest import TEST_PARTITIONS, fresh_topics


@pytest.fixture
def kafka_cluster_of_three() -> Iterator[KafkaCluster]:
    with kafka_cluster(nodes=3) as cluster:
        yield cluster


@pytest.fixture
async def admin(kafka_srv: Server) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=kafka_srv.url)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def described(
    admin: AIOKafkaAdminClient, names: list[str]
) -> tuple[dict[str, dict[str, tuple[str, int]]], dict[str, list[int]]]:
    """Each topic's configs (value, and where it comes from: ``TOPIC_CONFIG`` when set
    on the topic), and each topic's replica count per partition."""
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    [response] = await admin.describe_configs(resources)
    configs: dict[str, dict[str, tuple[str, int]]] = {}
    for error_code, _, _, name, entries in response.resources:
        assert error_code == 0, name
        configs[name] = {entry[0]: (entry[1], entry[3]) for entry in entries}
    replicas = {
        t["topic"]: [len(p["replicas"]) for p in t["partitions"]]
        for t in await admin.describe_topics(names)
    }
    return configs, replicas


TOPIC_CONFIG = 1  # DescribeConfigs' config source: set on the topic itself
DEFAULT_CONFIG = 5  # what Tansu reports for every config


def chosen(
    configs: dict[str, tuple[str, int]], wanted: dict[str, str]
) -> dict[str, tuple[str, int] | None]:
    """The ``wanted`` keys of ``configs``; compare with ``expect(wanted, source)``."""
    return {k: configs.get(k) for k in wanted}


def expect(wanted: dict[str, str], source: int = TOPIC_CONFIG) -> dict[str, tuple[str, int]]:
    return {k: (v, source) for k, v in wanted.items()}


@pytest.mark.both_brokers
async def test_the_topics_have_the_settings_of_the_code(
    admin: AIOKafkaAdminClient, topics: Topics, broker: str
) -> None:
    snapshots = snapshot_topic(topics.commands)
    names = [topics.commands, topics.events, topics.state, snapshots]
    configs, replicas = await described(admin, names)
    source = TOPIC_CONFIG if broker == "kafka" else DEFAULT_CONFIG
    for name in (topics.commands, topics.events, topics.state):
        want = booking_topic_configs(1)
        assert chosen(configs[name], want) == expect(want, source), name
    assert replicas == {
        name: [1] * (STATE_PARTITIONS if name == topics.state else TEST_PARTITIONS)
        for name in names
    }
    want = snapshot_topic_configs(1)
    assert chosen(configs[snapshots], want) == expect(want, source)


@pytest.mark.kafka
async def test_three_replicas_with_two_in_sync_on_three_brokers(
    kafka_cluster_of_three: KafkaCluster,
) -> None:
    topics = fresh_topics()
    snapshots = snapshot_topic(topics.commands)
    names = [topics.commands, topics.events, topics.state, snapshots]
    url = kafka_cluster_of_three.url
    await ensure_topics(Kafka(url), topics, TEST_PARTITIONS, replication=3, snapshots=snapshots)
    client = AIOKafkaAdminClient(bootstrap_servers=url)
    await client.start()
    try:
        configs, replicas = await described(client, names)
    finally:
        await client.close()
    for name in (topics.commands, topics.events, topics.state):
        assert chosen(configs[name], booking_topic_configs(3)) == expect(
            {"retention.ms": "-1", "retention.bytes": "-1", "min.insync.replicas": "2"}
        ), name
    assert chosen(configs[snapshots], snapshot_topic_configs(3)) == expect(
        {"cleanup.policy": "compact", "min.insync.replicas": "2"}
    )
    assert replicas == {
        name: [3] * (STATE_PARTITIONS if name == topics.state else TEST_PARTITIONS)
        for name in names
    }
