"""The consumer-group member every fairq service reads Kafka with."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer

AIOKAFKA_FETCH_MAX_WAIT_MS = 500  # aiokafka's default


def group_member(
    bootstrap: str,
    group_id: str,
    session_timeout_ms: int,
    *topics: str,
    fetch_max_wait_ms: int = AIOKAFKA_FETCH_MAX_WAIT_MS,
) -> AIOKafkaConsumer:
    """A member of ``group_id`` (subscribed to ``topics``, if given) that commits its
    offsets by hand, starts a partition new to the group at its earliest offset and
    heartbeats three times per ``session_timeout_ms`` (the time after which the group
    gives a silent member's partitions to another). ``fetch_max_wait_ms``: how long
    the broker may hold a fetch that found nothing new (Tansu holds it that long even
    when records arrive meanwhile: it is a latency floor for a consumer on a hot path)."""
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=max(100, session_timeout_ms // 3),
        fetch_max_wait_ms=fetch_max_wait_ms,
    )
