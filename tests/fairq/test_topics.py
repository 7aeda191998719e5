"""The topics fairq creates: equal partitions for the booking topics, one for the state
topic, all kept for ever."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from fairq.config import Topics
from fairq.devservices import Server
from fairq.topics import KEEP_FOREVER, STATE_PARTITIONS
from tests.conftest import TEST_PARTITIONS


async def test_every_topic_keeps_its_records_for_ever(kafka_srv: Server, topics: Topics) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_srv.url)
    await admin.start()
    try:
        names = [topics.commands, topics.events, topics.state]
        resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        [response] = await admin.describe_configs(resources)
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    assert len(response.resources) == 3
    for error_code, _, _, name, entries in response.resources:
        configs = {entry[0]: entry[1] for entry in entries}
        assert (error_code, {k: configs.get(k) for k in KEEP_FOREVER}) == (0, KEEP_FOREVER), name
    partitions = {t["topic"]: len(t["partitions"]) for t in described}
    assert partitions == {
        topics.commands: TEST_PARTITIONS,
        topics.events: TEST_PARTITIONS,
        topics.state: STATE_PARTITIONS,
    }
