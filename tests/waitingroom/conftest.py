"""The state log on the test's own topics, for the tests of what Redis forgets."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from fairq.config import Topics
from fairq.devservices import Server
from waitingroom.statelog import StateLog, make_producer


@pytest.fixture
async def ledger(kafka_srv: Server, topics: Topics) -> AsyncIterator[StateLog]:
    producer = make_producer(kafka_srv.url)
    await producer.start()
    try:
        yield StateLog(producer, kafka_srv.url, topics.state)
    finally:
        await producer.stop()
