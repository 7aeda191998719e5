"""Creating the Kafka topics fairq needs."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from fairq.config import Topics

logger = logging.getLogger(__name__)

DEFAULT_PARTITIONS = 8
# The state topic (``schemas.state``) has one partition: one total order of the
# records that must outlive Redis, read whole by ``waitingroom.durable.Restorer``.
STATE_PARTITIONS = 1
# Kept for ever: the allocator's state is a replay of the commands, and every gateway
# rebuilds its booking views (lookups, appointment exports, identity claims) from the
# whole events topic, while a dose 2 may be months after the booking. A broker's
# default retention (7 days) would silently drop bookings from both.
KEEP_FOREVER = {"retention.ms": "-1", "retention.bytes": "-1"}
TOPIC_ALREADY_EXISTS = 36


class TopicError(RuntimeError):
    """A topic could not be created."""


async def ensure_topics(
    bootstrap: str, topics: Topics, partitions: int = DEFAULT_PARTITIONS, replication: int = 1
) -> None:
    """Create ``topics.commands`` and ``topics.events`` with the same partition count,
    and ``topics.state`` with one (``STATE_PARTITIONS``).

    Events go to the partition number of the command that caused them, so the two
    topics must have equally many partitions; all three are kept for ever
    (``KEEP_FOREVER``). Existing topics are left as they are.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        new = [
            NewTopic(
                t,
                num_partitions=partitions,
                replication_factor=replication,
                topic_configs=KEEP_FOREVER,
            )
            for t in (topics.commands, topics.events)
        ]
        new.append(
            NewTopic(
                topics.state,
                num_partitions=STATE_PARTITIONS,
                replication_factor=replication,
                topic_configs=KEEP_FOREVER,
            )
        )
        try:
            response = await admin.create_topics(new)
        except KafkaError as e:
            raise TopicError(f"creating topics on {bootstrap} failed: {e}") from e
        for name, code, message in response.topic_errors:
            if code not in (0, TOPIC_ALREADY_EXISTS):
                raise TopicError(f"creating topic {name} failed: {code} {message}")
            logger.info("topic %s %s", name, "exists" if code else "created")
    finally:
        await admin.close()
