"""Putting commands on ``booking-commands``: keyed by county, accepted once the broker has them."""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from fairq import kafkaclient
from fairq.config import Kafka
from schemas.message import Message

logger = logging.getLogger(__name__)

DEFAULT_SEND_TIMEOUT_S = kafkaclient.SEND_TIMEOUT_S


class CommandNotAccepted(RuntimeError):
    """The broker did not acknowledge a command; the caller answers 503.

    ``maybe_in_log`` says whether a command was handed to the producer before the
    failure. Such a command may be in the log all the same (a broker that was stopped
    or slow writes what it had received, and answers too late), so the caller must
    treat it as possibly accepted: keep what it claimed for it and send it again with
    the same ids. False only when nothing left the gateway.
    """

    def __init__(self, message: str, *, maybe_in_log: bool) -> None:
        super().__init__(message)
        self.maybe_in_log = maybe_in_log


class CommandProducer:
    def __init__(
        self, producer: AIOKafkaProducer, topic: str, send_timeout_s: float = DEFAULT_SEND_TIMEOUT_S
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._send_timeout_s = send_timeout_s

    async def send(self, county: str, *messages: Message) -> None:
        """Send commands keyed by county and wait until all are acknowledged (acks=all),
        at most the send timeout."""
        futures = []
        try:
            key = county.encode()
            for m in messages:  # queued in the producer once ``send`` returns its future
                futures.append(await self._producer.send(self._topic, m.pack(), key=key))
            await kafkaclient.deliver(futures, self._send_timeout_s)
        except KafkaError as e:
            raise CommandNotAccepted(
                f"the broker did not accept the command: {e!r}", maybe_in_log=bool(futures)
            ) from e


def make_producer(kafka: Kafka) -> AIOKafkaProducer:
    """The gateway's producer (``fairq.kafkaclient.producer``), with no linger: the
    batches form while a request is in flight, and a linger only waits alone."""
    return kafkaclient.producer(kafka, linger_ms=0)
