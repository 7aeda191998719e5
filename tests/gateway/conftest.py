"""An in-process gateway (aiohttp test server) on the real Redis and broker of the test."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from fairq.config import Connections
from fairq.demo import small_campaign
from gateway.app import SERVER_LIMITS, create_app
from gateway.ratelimit import DEFAULT_JOIN_BURST, DEFAULT_STATUS_BURST, Limit, RateLimitSettings
from gateway.settings import GatewaySettings
from tests.conftest import TEST_SESSION_TIMEOUT_MS, bounded
from waitingroom.guesses import NO_LIMIT

OPERATOR_KEY = "operator-key-for-tests-0123456789"
SIGNING_KEYS = {"k1": b"signing-secret-for-tests-0123456789"}
AGENT_KEY = "agent-key-for-tests-0123456789"
IDENTITY_SECRET = b"identity-secret-for-tests"  # keys identity-key and access-code hashes
# The test clients all come from 127.0.0.1, and the test gateways have the default limits
# per client. A test whose one client stands for many visitors (a storm) opts out of them
# explicitly with ``rate_limits=STORM``: each limit set to 0 (off), as an operator may.
STORM = RateLimitSettings(
    join=Limit(0.0, DEFAULT_JOIN_BURST),
    status=Limit(0.0, DEFAULT_STATUS_BURST),
    streams_per_client=0,
    code_guesses=NO_LIMIT,
)


def make_settings(connections: Connections, **overrides: Any) -> GatewaySettings:
    base: dict[str, Any] = {
        "connections": connections,
        "operator_key": OPERATOR_KEY,
        "signing_keys": SIGNING_KEYS,
        "signing_kid": "k1",
        "port": 0,
        "refresh_s": 0.05,
        "answer_wait_s": 10.0,
        "inventory_wait_s": 0.0,
        "agent_keys": {"alice": AGENT_KEY},
        "identity_secret": IDENTITY_SECRET,
    }
    return GatewaySettings(**(base | overrides))


def operator() -> dict[str, str]:
    return {"Authorization": f"Bearer {OPERATOR_KEY}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextlib.asynccontextmanager
async def gateway_client(
    connections: Connections, **overrides: Any
) -> AsyncIterator[TestClient[Any, Any]]:
    """A started in-process gateway with ``make_settings(connections, **overrides)``."""
    c: TestClient[Any, Any] = TestClient(
        TestServer(create_app(make_settings(connections, **overrides)), **SERVER_LIMITS)
    )
    await c.start_server()
    try:
        yield c
    finally:
        await bounded(c.close(), "closing the test gateway")


@pytest.fixture
async def client(connections: Connections) -> AsyncIterator[TestClient[Any, Any]]:
    async with gateway_client(connections) as c:
        yield c


@pytest.fixture
def first_day() -> dt.date:
    return dt.date.today() + dt.timedelta(days=2)


async def create_campaign(
    client: TestClient[Any, Any], first_day: dt.date, name: str = "camp", **kw: Any
) -> dict[str, Any]:
    response = await client.put(
        f"/api/admin/campaigns/{name}", json=small_campaign(first_day, **kw), headers=operator()
    )
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def create_room(
    client: TestClient[Any, Any], name: str = "room", campaign: str = "camp", **kw: Any
) -> dict[str, Any]:
    spec = {"campaign": campaign, "opens_in_s": 3600, "rate_per_s": 1000, "max_active": 1000} | kw
    response = await client.put(f"/api/admin/rooms/{name}", json=spec, headers=operator())
    assert response.status in (200, 201), await response.text()
    body: dict[str, Any] = await response.json()
    return body


@pytest.fixture
async def allocator(connections: Connections) -> AsyncIterator[None]:
    """The real allocator service, in this process, on the test's topics."""
    async with allocator_running(connections, f"alloc-{uuid.uuid4().hex[:8]}"):
        yield


@contextlib.asynccontextmanager
async def allocator_running(
    connections: Connections, group_id: str, **overrides: Any
) -> AsyncIterator[None]:
    """The real allocator service in this process, stopped (cleanly) on leaving;
    ``overrides`` are ``AllocatorSettings`` fields."""
    from allocator.service import run
    from allocator.settings import AllocatorSettings

    stop = asyncio.Event()
    settings = AllocatorSettings(
        connections=connections,
        group_id=group_id,
        tick_interval_s=0.2,
        session_timeout_ms=TEST_SESSION_TIMEOUT_MS,
        **overrides,
    )
    task = asyncio.create_task(run(settings, stop))
    try:
        yield
    finally:
        stop.set()
        await bounded(task, "stopping the test's allocator")


@pytest.fixture
async def admitter(connections: Connections) -> AsyncIterator[None]:
    """The real admitter, in this process, leading every room of the test."""
    async with admitter_running(connections):
        yield


@contextlib.asynccontextmanager
async def admitter_running(connections: Connections) -> AsyncIterator[None]:
    """The real admitter, in this process, until the block is left."""
    from waitingroom.admitter import run
    from waitingroom.settings import AdmitterSettings

    stop = asyncio.Event()
    settings = AdmitterSettings(
        connections=connections,
        tick_s=0.05,
        leader_ttl_s=1.0,
        group_id=f"admit-{id(stop)}",
        session_timeout_ms=TEST_SESSION_TIMEOUT_MS,
    )
    task = asyncio.create_task(run(settings, stop))
    try:
        yield
    finally:
        stop.set()
        await bounded(task, "stopping the fixture's service")
