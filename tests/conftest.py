"""Shared fixtures: a real redis-server and a real broker on free ports.

The servers start once per test session; each test gets an emptied Redis
database and its own, freshly created topics (a unique prefix), so tests do not
see each other's data.

Two brokers: Tansu (the default, small and quick) and Apache Kafka (one KRaft node
from Maven's jars, ``fairq.devservices.kafka_cluster``). A test marked
``both_brokers`` runs once on each (its ``broker`` parameter, ids ``tansu`` and
``kafka``); a test on Apache Kafka carries the ``kafka`` marker, so
``-m "not kafka"`` leaves that tier out. One Apache Kafka node serves the whole session.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any, Literal

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from playwright.async_api import Browser
from prometheus_client import CONTENT_TYPE_LATEST

from allocator.settings import snapshot_topic
from fairq.config import ConfigError, Connections, Kafka, Topics
from fairq.devservices import (
    KafkaCluster,
    Server,
    free_port,
    kafka_broker,
    kafka_cluster,
    redis_server,
)
from fairq.topics import ensure_topics, partitions_of
from gateway.workers import check_port_free
from tests.browser import chromium

TEST_PARTITIONS = 4
# Consumer-group session timeout of the tests' allocators and admitters. Tansu holds
# a new group's first join for half of it (10 s by default: 5 s of waiting, at the
# start or the stop, of every test with a service), and a member that dies is replaced
# after it. Apache Kafka refuses less than 6 s by default: the tests' nodes allow 0.5 s
# (``fairq.devservices.kafka_properties``).
TEST_SESSION_TIMEOUT_MS = 2000


@pytest.fixture(scope="session")
def redis_srv() -> Iterator[Server]:
    with redis_server() as server:
        yield server


Broker = Literal["tansu", "kafka"]
BOTH_BROKERS = [
    pytest.param("tansu", id="tansu"),
    pytest.param("kafka", id="kafka", marks=pytest.mark.kafka),
]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test marked ``both_brokers`` runs on Tansu and on Apache Kafka (when it uses a
    broker: the ``broker`` fixture, directly or through ``kafka_srv``)."""
    if metafunc.definition.get_closest_marker("both_brokers") and "broker" in metafunc.fixturenames:
        metafunc.parametrize("broker", BOTH_BROKERS)


@pytest.fixture
def broker(request: pytest.FixtureRequest) -> Broker:
    """The broker of a test not parametrised over both: Apache Kafka when it is marked
    ``kafka``, else Tansu."""
    return "kafka" if request.node.get_closest_marker("kafka") else "tansu"


@pytest.fixture(scope="session")
def tansu_srv() -> Iterator[Server]:
    with kafka_broker() as server:
        yield server


@pytest.fixture(scope="session")
def apache_kafka() -> Iterator[KafkaCluster]:
    """One Apache Kafka node for every Kafka-tier test of the session."""
    with kafka_cluster(nodes=1) as cluster:
        yield cluster


@pytest.fixture
def kafka_srv(broker: Broker, request: pytest.FixtureRequest) -> Server:
    """The session's broker of this test's kind."""
    if broker == "kafka":
        cluster: KafkaCluster = request.getfixturevalue("apache_kafka")
        return cluster.nodes[0]
    server: Server = request.getfixturevalue("tansu_srv")
    return server


@contextlib.contextmanager
def own_broker(broker: Broker) -> Iterator[Server]:
    """A broker of ``broker``'s kind for one test alone (one that pauses or kills it)."""
    if broker == "kafka":
        with kafka_cluster(nodes=1) as cluster:
            yield cluster.nodes[0]
    else:
        with kafka_broker() as server:
            yield server


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless Chromium (Debian's), see ``tests.browser``."""
    async with chromium() as b:
        yield b


@pytest.fixture
async def redis(redis_srv: Server) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_srv.url)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()


def fresh_topics() -> Topics:
    """Topic names of a prefix of their own (``FAIRQ_TOPIC_PREFIX``), not created yet."""
    return Topics.from_env({"FAIRQ_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:10]}-"})


@pytest.fixture
async def topics(kafka_srv: Server) -> Topics:
    t = fresh_topics()
    snapshots = snapshot_topic(t.commands)
    await ensure_topics(Kafka(kafka_srv.url), t, partitions=TEST_PARTITIONS, snapshots=snapshots)
    return t


@pytest.fixture
def connections(
    redis_srv: Server, kafka_srv: Server, topics: Topics, redis: aioredis.Redis, broker: Broker
) -> Connections:
    """Everything a fairq process needs to connect, for this test alone; idempotent
    producers where the broker grants them (Apache Kafka)."""
    return Connections(
        redis_url=redis_srv.url,
        kafka_bootstrap=kafka_srv.url,
        topics=topics,
        kafka_idempotence=broker == "kafka",
    )


class _Logged(logging.Handler):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()


@contextlib.contextmanager
def logged_line(logger: str, text: str) -> Iterator[asyncio.Event]:
    """An event set once ``logger`` (or a logger under it) logs a line containing
    ``text``, for a test to await what it cannot see otherwise (a retry, a wait)."""
    handler = _Logged(text)
    target = logging.getLogger(logger)
    target.addHandler(handler)
    try:
        yield handler.seen
    finally:
        target.removeHandler(handler)


@contextlib.contextmanager
def paused(server: Server) -> Iterator[None]:
    """The server's process stopped (SIGSTOP) while inside: like a hung broker or Redis,
    it keeps its connections and what they received, and goes on from there on leaving."""
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.process.pid, signal.SIGCONT)


async def bounded(step: Awaitable[object], what: str, timeout_s: float = 30.0) -> None:
    """Await a teardown step; if it hangs, fail with every task's stack instead of hanging."""
    try:
        await asyncio.wait_for(step, timeout_s)
    except TimeoutError:
        stacks = io.StringIO()
        for task in asyncio.all_tasks():
            print(task, file=stacks)
            task.print_stack(file=stacks)
        pytest.fail(f"{what} did not finish within {timeout_s}s; tasks:\n{stacks.getvalue()}")


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of ``topic``, in order (the consumer is started)."""
    partitions = await partitions_of(consumer, topic)
    assert partitions, f"the topic {topic} has no partitions"
    return [TopicPartition(topic, p) for p in sorted(partitions)]


async def until_status(url: str, status: int) -> dict[str, Any]:
    """Ask ``url`` until it answers ``status`` (the per-test timeout bounds the wait);
    its JSON body."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(url) as response:
                    if response.status == status:
                        body: dict[str, Any] = await response.json()
                        return body
            await asyncio.sleep(0.05)


async def readiness_follows(base: str, server: Server, check: str) -> None:
    """With ``server`` paused, the service at ``base`` is not ready (its ``check``
    failing) yet live; ready again once the server is resumed."""
    with paused(server):
        not_ready = await until_status(f"{base}/readyz", 503)
        assert not_ready["error"]["code"] == "not_ready"
        failing = {name for name, why in not_ready["checks"].items() if why != "ok"}
        assert failing == {check}, not_ready
        await until_status(f"{base}/livez", 200)
    await until_status(f"{base}/readyz", 200)


async def metrics_text(url: str) -> str:
    """The Prometheus text format at ``url`` (its content type checked)."""
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
        return await response.text()


def consecutive_free_ports(count: int) -> int:
    """The first of ``count`` consecutive ports free now (``fairq up``'s gateways, the
    own ports of a gateway's workers)."""
    while True:
        first = free_port()
        try:
            for port in range(first + 1, first + count):
                check_port_free("127.0.0.1", port, shared=False)
        except ConfigError:
            continue
        return first
