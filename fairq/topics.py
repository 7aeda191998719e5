"""The Kafka topics fairq needs and their settings, written here once.

Two booking topics (commands and events, equally many partitions, kept for ever), the
state topic (one partition, kept for ever) and the allocator's snapshots topic
(compacted, one partition per commands partition).
Every topic gets ``replication`` replicas and ``min.insync.replicas`` derived from it,
so an acknowledged record (the producers send with ``acks=all``) survives the loss of
one broker once there are three. ``tests/fairq/test_topics.py`` reads these settings
back from a real Apache Kafka with describe-configs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import NewTopic
from aiokafka.errors import KafkaError

from fairq import kafkaclient
from fairq.config import Kafka, Topics

logger = logging.getLogger(__name__)

DEFAULT_PARTITIONS = 8
# The state topic (``schemas.state``) has one partition: one total order of the
# records that must outlive Redis, read whole by ``waitingroom.durable.Restorer``.
STATE_PARTITIONS = 1
# Kept for ever: the allocator's state is a replay of the commands, and the booking read
# model (lookups, appointment exports, identity claims: ``gateway.readmodel``) is
# rebuilt from the whole events topic when Redis loses it, while a dose 2 may be
# months after the booking. A broker's default retention (7 days) would silently drop
# bookings from both.
KEEP_FOREVER = {"retention.ms": "-1", "retention.bytes": "-1"}
# Snapshots: the newest manifest per partition and its chunks are kept, older ones go.
COMPACTED = {"cleanup.policy": "compact"}
TOPIC_ALREADY_EXISTS = 36


class TopicError(RuntimeError):
    """A topic could not be created."""


def min_insync_replicas(replication: int) -> int:
    """Replicas that must have a record before ``acks=all`` is answered: 2 of 3 (one
    broker may be lost without refusing writes or losing an acknowledged one), 1 of 1
    or 2 (a single broker: a test or a laptop)."""
    return min(2, max(1, replication - 1))


def booking_topic_configs(replication: int) -> dict[str, str]:
    return KEEP_FOREVER | {"min.insync.replicas": str(min_insync_replicas(replication))}


def snapshot_topic_configs(replication: int) -> dict[str, str]:
    return COMPACTED | {"min.insync.replicas": str(min_insync_replicas(replication))}


async def create_topics(kafka: Kafka, new: Sequence[NewTopic]) -> None:
    """Create ``new`` topics; existing ones are left as they are. Raises ``TopicError``."""
    admin = kafkaclient.admin(kafka)
    try:
        await admin.start()
        response = await admin.create_topics(list(new))
    except KafkaError as e:
        raise TopicError(f"creating topics on {kafka.bootstrap} failed: {e}") from e
    finally:
        await admin.close()
    for name, code, message in response.topic_errors:
        if code not in (0, TOPIC_ALREADY_EXISTS):
            raise TopicError(f"creating topic {name} failed: {code} {message}")
        logger.info("topic %s %s", name, "exists" if code else "created")


async def ensure_topics(
    kafka: Kafka,
    topics: Topics,
    partitions: int = DEFAULT_PARTITIONS,
    replication: int = 1,
    snapshots: str | None = None,
) -> None:
    """Create the topics of ``topic_specs`` on ``kafka``; existing ones are left as
    they are."""
    await create_topics(kafka, topic_specs(topics, partitions, replication, snapshots))


def topic_specs(
    topics: Topics, partitions: int, replication: int, snapshots: str | None = None
) -> list[NewTopic]:
    """``topics.commands`` and ``topics.events`` with the same partition count,
    ``topics.state`` with one (``STATE_PARTITIONS``), and the ``snapshots`` topic (when
    named) with as many as the commands, each with ``replication`` replicas.

    Events go to the partition number of the command that caused them, so the two
    topics must have equally many partitions; all but the snapshots are kept for ever
    (``KEEP_FOREVER``). ``tests/deploy/test_drift.py`` holds the deployment files'
    topic settings to these.
    """
    configs = booking_topic_configs(replication)
    new = [
        NewTopic(t, partitions, replication, topic_configs=configs)
        for t in (topics.commands, topics.events)
    ]
    new.append(NewTopic(topics.state, STATE_PARTITIONS, replication, topic_configs=configs))
    if snapshots is not None:
        compacted = snapshot_topic_configs(replication)
        new.append(NewTopic(snapshots, partitions, replication, topic_configs=compacted))
    return new


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    """The partition numbers of ``topic`` as the cluster reports them now (none while it
    does not exist yet); ``consumer`` is started.

    Not ``consumer.topics()`` and then ``partitions_for_topic``: ``topics()`` fetches
    into a throwaway copy of the metadata, and a consumer that has neither subscribed
    nor been assigned holds the metadata of no topic on Apache Kafka (Tansu answers its
    first request with every topic), so a gateway waited there for ever.
    """
    cluster = await consumer._client.fetch_all_metadata()
    return set(cluster.partitions_for_topic(topic) or ())
