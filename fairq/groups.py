"""The consumer-group member every fairq service reads Kafka with, and how a restarted
member takes its dead predecessor's place at once."""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaClient, AIOKafkaConsumer
from aiokafka.client import CoordinationType
from aiokafka.errors import KafkaError
from aiokafka.protocol.admin import DescribeGroupsRequest
from aiokafka.protocol.group import LeaveGroupRequest

from fairq import kafkaclient
from fairq.config import Kafka

logger = logging.getLogger(__name__)

MEMBER_ID_SUFFIX = 37  # a member id is the client id, "-" and a UUID (36 characters)

AIOKAFKA_FETCH_MAX_WAIT_MS = 500  # aiokafka's default
JOIN_MARGIN_MS = 500  # a held join is answered this long before the client gives it up


def group_member(
    kafka: Kafka,
    group_id: str,
    session_timeout_ms: int,
    *topics: str,
    client_id: str | None = None,
    fetch_max_wait_ms: int = AIOKAFKA_FETCH_MAX_WAIT_MS,
) -> AIOKafkaConsumer:
    """A member of ``group_id`` (subscribed to ``topics``, if given) that commits its
    offsets by hand, starts a partition new to the group at its earliest offset and
    heartbeats three times per ``session_timeout_ms`` (the time after which the group
    gives a silent member's partitions to another). The broker makes its member id
    from ``client_id`` (aiokafka's own by default). ``fetch_max_wait_ms``: how long
    the broker may hold a fetch that found nothing new (Tansu holds it that long even
    when records arrive meanwhile: it is a latency floor for a consumer on a hot path).

    aiokafka waits for a JoinGroup's answer no longer than for any request, and a
    broker holds a join: Apache Kafka until every member has joined, at most the
    rebalance timeout; Tansu holds a new group's first join half a session, whatever the
    rebalance timeout. A join given up drops the connection and starts over (and on
    Tansu is held again, for ever), so the member's requests may wait ``join_wait_ms``
    and the rebalance timeout ends ``JOIN_MARGIN_MS`` before that."""
    extra = {} if client_id is None else {"client_id": client_id}
    request_ms = join_wait_ms(kafka, session_timeout_ms)
    return kafkaclient.consumer(
        kafka,
        *topics,
        group_id=group_id,
        auto_offset_reset="earliest",
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=max(100, session_timeout_ms // 3),
        request_timeout_ms=request_ms,
        rebalance_timeout_ms=request_ms - JOIN_MARGIN_MS,
        fetch_max_wait_ms=fetch_max_wait_ms,
        **extra,
    )


def join_wait_ms(kafka: Kafka, session_timeout_ms: int) -> int:
    """A group member's request timeout: the clients' (``KafkaTimeouts``), or longer
    than Tansu holds a new group's first join (half a session): 3.5 s with the
    allocator's 6 s session, 5.5 s with the admitter's 10 s."""
    return max(kafka.timeouts.request_timeout_ms, session_timeout_ms // 2 + JOIN_MARGIN_MS)


async def evict_predecessors(kafka: Kafka, group_id: str, client_id: str) -> list[str]:
    """Remove from ``group_id`` the members whose ids were made from ``client_id``: the
    earlier lives of a process that keeps its client id across restarts. Returns the
    member ids removed.

    A member killed without leaving stays in its group until its session times out,
    and the group's next rebalance waits for it: measured on Tansu, a restarted member
    got its partitions 18 s after the kill with a 10 s session. Removed at once, the
    group is empty and the restart's join is a new group's first (held half a session
    on Tansu). Should the predecessor still be alive after all, it is only made to
    rejoin, as after a missed heartbeat: the single-writer design already copes with a
    stale member (its commits are refused, its events are repeats).

    Kafka's static membership (``group_instance_id``) is meant for this, but Tansu held
    every join of a static member for 6 s or more (``loadtest.bench_recovery``).
    """
    client = kafkaclient.client(kafka)
    evicted: list[str] = []
    try:
        await client.bootstrap()
        coordinator = await client.coordinator_lookup(CoordinationType.GROUP, group_id)
        for member_id in await _members(client, coordinator, group_id):
            if member_id[:-MEMBER_ID_SUFFIX] != client_id:
                continue
            left = await client.send(coordinator, LeaveGroupRequest(group_id, member_id))
            if left.error_code:
                logger.warning(
                    "removing %s from %s: error %d", member_id, group_id, left.error_code
                )
                continue
            evicted.append(member_id)
            logger.info("removed predecessor %s from group %s", member_id, group_id)
    except KafkaError as e:
        logger.warning(
            "could not remove the predecessors of %s from %s: %s", client_id, group_id, e
        )
    finally:
        await client.close()
    return evicted


async def _members(client: AIOKafkaClient, coordinator: int, group_id: str) -> list[str]:
    description = await client.send(coordinator, DescribeGroupsRequest([group_id]))
    return [member[0] for group in description.groups for member in group[5]]


async def group_members(kafka: Kafka, group_id: str) -> list[str]:
    """The member ids of ``group_id``, as its coordinator knows them."""
    client = kafkaclient.client(kafka)
    try:
        await client.bootstrap()
        coordinator = await client.coordinator_lookup(CoordinationType.GROUP, group_id)
        return await _members(client, coordinator, group_id)
    finally:
        await client.close()
