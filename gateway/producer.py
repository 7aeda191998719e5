"""Putting commands on ``booking-commands``: keyed by county, accepted once the broker has them."""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from schemas.wire import Message

logger = logging.getLogger(__name__)


class CommandNotAccepted(RuntimeError):
    """The broker did not acknowledge a command; the caller should answer 503."""


class CommandProducer:
    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    async def send(self, county: str, *messages: Message) -> None:
        """Send commands keyed by county and wait until all are acknowledged (acks=all)."""
        try:
            futures = [
                await self._producer.send(self._topic, m.pack(), key=county.encode())
                for m in messages
            ]
            for future in futures:
                await future
        except KafkaError as e:
            raise CommandNotAccepted(f"the broker did not accept the command: {e}") from e


def make_producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=2,
        request_timeout_ms=10_000,
    )
