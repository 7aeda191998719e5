"""Every Kafka client fairq makes: producers, consumers, admin and raw clients, each
with the timeouts of ``fairq.config.KafkaTimeouts`` (one place for all of them).

A broker that stops answering without closing its connections (SIGSTOP, a long GC
pause, a frozen VM) is noticed by a client only when a request to it times out; the
client then drops the connection, refreshes its metadata and finds the partition's
new leader. Every client waiting on such a broker holds up what depends on it (the
allocator's fetches and produces, the gateways' event readers and command sends, the
admitter's group, the state log), so every client gets the same bounded wait.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaClient, AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, KafkaTimeoutError

from fairq.config import Kafka

logger = logging.getLogger(__name__)


def common(kafka: Kafka) -> dict[str, Any]:
    """The options every client takes: where the cluster is, and the timeouts."""
    t = kafka.timeouts
    return {
        "bootstrap_servers": kafka.bootstrap,
        "request_timeout_ms": t.request_timeout_ms,
        "metadata_max_age_ms": t.metadata_max_age_ms,
        "retry_backoff_ms": t.retry_backoff_ms,
    }


def producer(kafka: Kafka, **options: Any) -> AIOKafkaProducer:
    """A producer whose records are acknowledged by every in-sync replica (acks=all),
    idempotent where the broker grants it (``Kafka.idempotence``: a batch retried after
    a lost answer is not written twice).

    aiokafka gives a send up after ``request_timeout_ms`` from when it was queued, but
    an idempotent producer never gives up (it retries until the broker takes the batch):
    a caller that must answer in time bounds its wait itself (``deliver``)."""
    return AIOKafkaProducer(
        **common(kafka), acks="all", enable_idempotence=kafka.idempotence, **options
    )


def consumer(kafka: Kafka, *topics: str, **options: Any) -> AIOKafkaConsumer:
    """A consumer that commits nothing unless ``options`` say otherwise."""
    return AIOKafkaConsumer(*topics, **(common(kafka) | {"enable_auto_commit": False} | options))


async def stop(consumer: AIOKafkaConsumer) -> None:
    """Stop ``consumer``; a cancellation that it lets out of a task of its own does not
    end the caller.

    ``AIOKafkaConsumer.stop`` cancels its fetch tasks and awaits them, and one that was
    sleeping out the backoff after a failed fetch (a stalled broker) ends cancelled:
    ``stop`` raises that CancelledError although nobody cancelled the caller (aiokafka
    issue #647), and a service whose loop ended so looked as if told to stop (the
    allocator exited 0 in CI in a broker stall). ``stop`` then skipped its last step,
    closing the connections, which is done here (aiokafka has no public handle on it)."""
    caller = asyncio.current_task()
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        if caller is None or caller.cancelling():
            raise
        logger.warning("a fetch task of a consumer ended cancelled while it stopped")
        await consumer._client.close()


def admin(kafka: Kafka) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**common(kafka))


def client(kafka: Kafka) -> AIOKafkaClient:
    """A bare client, for requests the others do not make (``fairq.groups``)."""
    return AIOKafkaClient(**common(kafka))


SEND_TIMEOUT_S = 10.0  # how long a caller waits for its records' acknowledgement


async def deliver(futures: list[asyncio.Future[Any]], timeout_s: float) -> None:
    """Wait until the broker acknowledged every send of ``futures``, at most ``timeout_s``.

    Raises the send's ``KafkaError``, or ``KafkaTimeoutError`` when the time is up (the
    records may be written all the same: an idempotent producer keeps retrying)."""
    try:
        async with asyncio.timeout(timeout_s):
            for future in futures:
                await future
    except TimeoutError as e:
        raise KafkaTimeoutError(f"no acknowledgement within {timeout_s:g} s") from e


def transient(error: BaseException) -> bool:
    """Whether the Kafka failure behind ``error`` (it, or the first ``KafkaError`` among
    its causes) may pass when asked again: a broker that stalled, was lost or moved a
    leader, a request or a wait that timed out; not one the broker refuses for good (a
    record too large, no authorization, an unsupported request)."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, KafkaError):
            return bool(cause.retriable) or isinstance(cause, KafkaTimeoutError)
        cause = cause.__cause__
    return False
