"""The state log on the test's own topics, for the tests of what Redis forgets."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from fairq import kafkaclient
from fairq.config import Kafka, Topics
from fairq.devservices import Server
from waitingroom.statelog import StateLog


@pytest.fixture
async def ledger(kafka_srv: Server, topics: Topics) -> AsyncIterator[StateLog]:
    kafka = Kafka(kafka_srv.url)
    producer = kafkaclient.producer(kafka)
    await producer.start()
    try:
        yield StateLog(producer, kafka, topics.state)
    finally:
        await producer.stop()
