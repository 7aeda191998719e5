"""Fixtures shared by the allocator's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer

from fairq.config import Connections
from tests.allocator import Log


@pytest.fixture
async def producer(connections: Connections) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(
        bootstrap_servers=connections.kafka_bootstrap, acks="all", enable_idempotence=False
    )
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


@pytest.fixture
def log() -> Log:
    """A fresh allocator fed with consecutive offsets; time moves only when told."""
    return Log()
