"""What a Kafka failure means for a retry, and how a consumer stops on a stalled broker."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    RequestTimedOutError,
    TopicAuthorizationFailedError,
)

from allocator.errors import RebuildError
from allocator.outbox import ProduceError
from fairq import kafkaclient
from fairq.config import Topics
from fairq.devservices import Server
from tests.conftest import logged_line, paused

pytestmark = pytest.mark.timeout(60)


def caused(error: Exception, cause: BaseException) -> Exception:
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    ("error", "passing"),
    [
        (RequestTimedOutError(), True),
        (KafkaConnectionError(), True),
        (KafkaTimeoutError(), True),  # a batch expired waiting for a leader
        (MessageSizeTooLargeError(), False),
        (TopicAuthorizationFailedError(), False),
        (ProduceError.of("producing 3 records failed", RequestTimedOutError()), True),
        (ProduceError.of("producing 3 records failed", MessageSizeTooLargeError()), False),
        (ProduceError("the producer was closed"), False),
        (caused(RebuildError("replaying failed"), KafkaConnectionError()), True),
        (RebuildError("the records from 12 are gone"), False),
        (ValueError("no Kafka in it"), False),
    ],
)
def test_a_failure_is_transient_when_the_kafka_error_behind_it_may_pass(
    error: Exception, passing: bool
) -> None:
    assert kafkaclient.transient(error) is passing


async def assigned(kafka_srv: Server, topics: Topics, **options: object) -> AIOKafkaConsumer:
    """A consumer fetching partition 0 of the events topic, its position known (so that
    what it sends next are fetches), quick to time out and slow to retry."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_srv.url, request_timeout_ms=1000, retry_backoff_ms=30_000, **options
    )
    await consumer.start()
    tp = TopicPartition(topics.events, 0)
    consumer.assign([tp])
    await consumer.position(tp)
    return consumer


async def test_a_consumer_stopped_as_a_fetch_failed_does_not_cancel_its_caller(
    kafka_srv: Server, topics: Topics
) -> None:
    """aiokafka's stop lets out the cancellation of a fetch task sleeping out its backoff
    after a failed fetch; ``stop`` keeps it from ending the caller, and closes the
    connections."""
    consumer = await assigned(kafka_srv, topics)
    with (
        logged_line("aiokafka.consumer.fetcher", "Failed fetch messages") as failed,
        paused(kafka_srv),
    ):
        await failed.wait()
        await kafkaclient.stop(consumer)
    caller = asyncio.current_task()
    assert caller is not None and not caller.cancelling()
    assert not consumer._client._conns, "its connections were left open"


async def test_a_caller_cancelled_while_its_consumer_stops_is_cancelled(
    kafka_srv: Server, topics: Topics
) -> None:
    consumer = AIOKafkaConsumer(
        topics.events, bootstrap_servers=kafka_srv.url, group_id=f"stopping-{uuid.uuid4().hex}"
    )
    await consumer.start()
    while not consumer.assignment():
        await consumer.getmany(timeout_ms=100)
    with paused(kafka_srv):
        stopping = asyncio.create_task(kafkaclient.stop(consumer))
        await asyncio.sleep(0)  # it leaves the group, waiting for the broker's answer
        stopping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stopping
