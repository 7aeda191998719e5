"""Per-client rate limits: token buckets, settings, and 429 answers with exemptions."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from fairq.config import ConfigError, Connections
from gateway.app import create_app
from gateway.ratelimit import (
    LOADTEST_HEADER,
    MIN_GENERATION_S,
    Limit,
    RateLimitSettings,
    TokenBuckets,
)
from tests.gateway.conftest import bearer, create_campaign, create_room, make_settings

Client = TestClient[Any, Any]
LOADTEST_KEY = "loadtest-key-for-tests-0123456789"


def test_bucket_grants_the_burst_then_refills_at_the_rate() -> None:
    bucket = TokenBuckets(Limit(rate_per_s=2.0, burst=2), max_keys=10)
    assert [bucket.take("a", 0.0) for _ in range(2)] == [0.0, 0.0]
    assert bucket.take("a", 0.0) == pytest.approx(0.5)
    assert bucket.take("a", 0.25) == pytest.approx(0.25)  # half a token back, not enough
    assert bucket.take("a", 0.5) == 0.0
    assert bucket.take("b", 0.5) == 0.0  # another client has its own bucket


def test_table_is_bounded_and_forgets_the_least_recent_client() -> None:
    bucket = TokenBuckets(Limit(rate_per_s=0.001, burst=1), max_keys=2)
    assert bucket.take("a", 0.0) == 0.0
    assert bucket.take("b", 0.0) == 0.0
    assert bucket.take("a", 0.0) > 0  # a is now the most recent; b the least
    assert bucket.take("c", 0.0) == 0.0  # evicts b
    assert len(bucket) == 2
    assert bucket.take("a", 0.0) > 0  # a was kept
    assert bucket.take("b", 0.0) == 0.0  # b was forgotten: a full bucket again


def test_a_client_over_its_limit_stays_limited_when_its_bucket_changes_generation() -> None:
    bucket = TokenBuckets(Limit(rate_per_s=0.001, burst=2), max_keys=4)  # generations of 2
    assert [bucket.take("a", 0.0) for _ in range(2)] == [0.0, 0.0]
    assert bucket.take("a", 0.0) > 0
    assert bucket.take("b", 0.0) == 0.0  # young is full: a and b are now the old generation
    assert bucket.take("c", 0.0) == 0.0
    assert bucket.take("a", 0.0) > 0  # found in the old generation, still empty
    assert bucket.take("a", 0.0) > 0  # and back in the young one
    assert len(bucket) <= 4


def test_the_table_never_holds_more_than_max_keys() -> None:
    bucket = TokenBuckets(Limit(rate_per_s=1.0, burst=1), max_keys=10)
    for i in range(1000):
        bucket.take(f"client-{i % 37}", i * 0.001)
        assert len(bucket) <= 10


def test_idle_clients_are_forgotten_after_a_generation_with_full_buckets() -> None:
    limit = Limit(rate_per_s=1.0, burst=5)
    bucket = TokenBuckets(limit, max_keys=1000)
    for i in range(100):
        assert bucket.take(f"client-{i}", 0.0) == 0.0
    assert len(bucket) == 100
    later = MIN_GENERATION_S  # a generation later: all of them moved to the old one
    assert bucket.take("active", later) == 0.0
    assert len(bucket) == 101
    assert bucket.take("active", 2 * later) == 0.0  # and one more: the idle ones are gone
    assert len(bucket) == 1
    # every forgotten bucket had refilled long before: nobody got more than the limit
    assert limit.burst / limit.rate_per_s <= MIN_GENERATION_S


def test_a_slow_refill_keeps_buckets_until_they_are_full() -> None:
    # A bucket takes 1,000 s to refill: a generation lasts that long, not MIN_GENERATION_S.
    bucket = TokenBuckets(Limit(rate_per_s=0.001, burst=1), max_keys=1000)
    assert bucket.take("a", 0.0) == 0.0
    assert bucket.take("b", 2 * MIN_GENERATION_S) == 0.0
    assert bucket.take("a", 3 * MIN_GENERATION_S) > 0  # still remembered, still limited
    assert bucket.take("a", 1000.0) == 0.0  # refilled


def test_settings_from_env() -> None:
    s = RateLimitSettings.from_env(
        {
            "FAIRQ_JOIN_RATE_PER_S": "2",
            "FAIRQ_JOIN_BURST": "4",
            "FAIRQ_LOADTEST_NETWORKS": "10.1.0.0/16, 2001:db8::/32",
            "FAIRQ_LOADTEST_KEY": LOADTEST_KEY,
        }
    )
    assert (s.join, s.status.rate_per_s, s.loadtest_key) == (Limit(2.0, 4), 0.0, LOADTEST_KEY)
    assert s.exempt_networks == (
        ipaddress.ip_network("10.1.0.0/16"),
        ipaddress.ip_network("2001:db8::/32"),
    )
    assert RateLimitSettings.from_env({}) == RateLimitSettings()


@pytest.mark.parametrize(
    "env",
    [
        {"FAIRQ_LOADTEST_NETWORKS": "10.1.0.0/33"},
        {"FAIRQ_LOADTEST_KEY": "short"},
        {"FAIRQ_JOIN_BURST": "0"},
        {"FAIRQ_STATUS_RATE_PER_S": "fast"},
    ],
)
def test_malformed_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        RateLimitSettings.from_env(env)


@pytest.fixture
def limited_client(
    connections: Connections,
) -> Callable[..., Any]:
    @asynccontextmanager
    async def make(**limits: Any) -> AsyncIterator[Client]:
        base: dict[str, Any] = {
            "join": Limit(0.01, 2),
            "status": Limit(0.01, 3),
            "loadtest_key": LOADTEST_KEY,
        }
        settings = make_settings(connections, rate_limits=RateLimitSettings(**(base | limits)))
        async with TestClient(TestServer(create_app(settings))) as c:
            yield c

    return make


async def _open_room(client: Client) -> None:
    await create_campaign(client, dt.date.today() + dt.timedelta(days=2))
    await create_room(client)


def _assert_limited(status: int, headers: Any, body: dict[str, Any], limit: str) -> None:
    assert status == 429
    assert 1 <= int(headers["Retry-After"]) <= 100
    assert body["error"]["code"] == "rate_limited"
    assert body["error"]["limit"] == limit
    assert 0 < body["error"]["retry_after_s"] <= 100


async def test_join_and_status_answer_429_with_retry_after(
    limited_client: Callable[..., Any],
) -> None:
    async with limited_client() as client:
        await _open_room(client)
        joins = [await client.post("/api/rooms/room/join") for _ in range(3)]
        assert [r.status for r in joins[:2]] == [200, 200]
        _assert_limited(joins[2].status, joins[2].headers, await joins[2].json(), "join")

        ticket = (await joins[0].json())["ticket"]
        checks = [
            await client.get("/api/rooms/room/status", headers=bearer(ticket)) for _ in range(3)
        ]
        assert [r.status for r in checks] == [200, 200, 200]
        over = await client.get("/api/rooms/room/events", params={"ticket": ticket})
        _assert_limited(over.status, over.headers, await over.json(), "status")
        info = await client.get("/api/rooms/room")  # not a limited route
        assert info.status == 200
        metrics = await (await client.get("/metrics")).text()
        assert 'fairq_gateway_rate_limited_total{limit="join"} 1.0' in metrics


async def test_loadtest_key_exempts_and_a_wrong_key_does_not(
    limited_client: Callable[..., Any],
) -> None:
    async with limited_client() as client:
        await _open_room(client)
        exempt = {LOADTEST_HEADER: LOADTEST_KEY}
        statuses = [(await client.post("/api/rooms/room/join", headers=exempt)).status]
        statuses += [(await client.post("/api/rooms/room/join", headers=exempt)).status]
        statuses += [(await client.post("/api/rooms/room/join", headers=exempt)).status]
        assert statuses == [200, 200, 200]
        wrong = {LOADTEST_HEADER: LOADTEST_KEY[:-1] + "x"}
        assert (await client.post("/api/rooms/room/join", headers=wrong)).status == 429


@pytest.mark.parametrize(("network", "exempt"), [("127.0.0.0/8", True), ("10.0.0.0/8", False)])
async def test_network_exemption(
    limited_client: Callable[..., Any], network: str, exempt: bool
) -> None:
    async with limited_client(exempt_networks=(ipaddress.ip_network(network),)) as client:
        await _open_room(client)
        statuses = [(await client.post("/api/rooms/room/join")).status for _ in range(4)]
        assert statuses == ([200] * 4 if exempt else [200, 200, 429, 429])


async def test_forwarded_address_keys_the_limit_when_configured(
    limited_client: Callable[..., Any],
) -> None:
    async with limited_client(client_ip_hops=1) as client:
        await _open_room(client)

        def via(ip: str) -> dict[str, str]:
            return {"X-Forwarded-For": f"203.0.113.9, {ip}"}

        first = [(await client.post("/api/rooms/room/join", headers=via("198.51.100.1"))).status]
        first += [(await client.post("/api/rooms/room/join", headers=via("198.51.100.1"))).status]
        first += [(await client.post("/api/rooms/room/join", headers=via("198.51.100.1"))).status]
        other = await client.post("/api/rooms/room/join", headers=via("198.51.100.2"))
        assert (first, other.status) == ([200, 200, 429], 200)
