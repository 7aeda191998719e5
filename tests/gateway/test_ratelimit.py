"""Per-client rate limits: token buckets, settings, and 429 answers with exemptions."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from prometheus_client import CollectorRegistry

from fairq.config import ConfigError, Connections
from gateway.app import create_app
from gateway.errors import ApiError
from gateway.ratelimit import (
    LIMITED_ROUTES,
    LOADTEST_HEADER,
    MIN_GENERATION_S,
    STREAM_ROUTES,
    Exemptions,
    Limit,
    RateLimiter,
    RateLimitSettings,
    StreamCap,
    TokenBuckets,
    address_group,
)
from gateway.settings import GatewaySettings
from tests.gateway.conftest import (
    OPERATOR_KEY,
    bearer,
    create_campaign,
    create_room,
    make_settings,
    operator,
)
from waitingroom import keys
from waitingroom.codes import ALPHABET, normalise_code
from waitingroom.guesses import GuessLimit

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
            "FAIRQ_STATUS_RATE_PER_S": "0",
            "FAIRQ_STREAMS_PER_CLIENT": "7",
            "FAIRQ_CODE_GUESSES_PER_CLIENT": "5",
            "FAIRQ_CODE_GUESSES_PER_PREFIX": "0",
            "FAIRQ_CODE_GUESS_WINDOW_S": "60",
            "FAIRQ_CODE_GUESS_PREFIX_CHARS": "2",
            "FAIRQ_LOADTEST_NETWORKS": "10.1.0.0/16, 2001:db8::/32",
            "FAIRQ_LOADTEST_KEY": LOADTEST_KEY,
        }
    )
    assert (s.join, s.status.rate_per_s, s.loadtest_key) == (Limit(2.0, 4), 0.0, LOADTEST_KEY)
    assert s.streams_per_client == 7
    assert s.code_guesses == GuessLimit(per_client=5, per_prefix=0, window_s=60, prefix_chars=2)
    assert s.exempt_networks == (
        ipaddress.ip_network("10.1.0.0/16"),
        ipaddress.ip_network("2001:db8::/32"),
    )
    assert RateLimitSettings.from_env({}) == RateLimitSettings()


def test_every_limit_is_on_by_default() -> None:
    s = RateLimitSettings.from_env({})
    assert s.join.rate_per_s > 0 and s.status.rate_per_s > 0
    assert 0 < s.streams_per_client < s.status.burst  # the cap is met before the open rate
    assert s.code_guesses == GuessLimit() and s.code_guesses.per_client > 0
    assert (s.exempt_networks, s.loadtest_key) == ((), None)
    limiter = RateLimiter(s, CollectorRegistry())
    assert all(limiter.guard(method, route) is not None for method, route in LIMITED_ROUTES)
    assert all(limiter.cap_of(m, r) is not None for m, r in STREAM_ROUTES)


def test_zero_turns_each_limit_off() -> None:
    s = RateLimitSettings.from_env(
        {
            "FAIRQ_JOIN_RATE_PER_S": "0",
            "FAIRQ_STATUS_RATE_PER_S": "0",
            "FAIRQ_STREAMS_PER_CLIENT": "0",
            "FAIRQ_CODE_GUESSES_PER_CLIENT": "0",
            "FAIRQ_CODE_GUESSES_PER_PREFIX": "0",
        }
    )
    limiter = RateLimiter(s, CollectorRegistry())
    assert all(limiter.guard(method, route) is None for method, route in LIMITED_ROUTES)
    assert all(limiter.cap_of(m, r) is None for m, r in STREAM_ROUTES)
    assert (s.code_guesses.per_client, s.code_guesses.per_prefix) == (0, 0)


@pytest.mark.parametrize(
    "env",
    [
        {"FAIRQ_LOADTEST_NETWORKS": "10.1.0.0/33"},
        {"FAIRQ_LOADTEST_KEY": "short"},
        {"FAIRQ_JOIN_BURST": "0"},
        {"FAIRQ_STATUS_RATE_PER_S": "fast"},
        {"FAIRQ_JOIN_RATE_PER_S": "inf"},
        {"FAIRQ_STREAMS_PER_CLIENT": "-1"},
        {"FAIRQ_CODE_GUESSES_PER_CLIENT": "many"},
        {"FAIRQ_CODE_GUESSES_PER_PREFIX": "-5"},
        {"FAIRQ_CODE_GUESS_WINDOW_S": "0"},
        {"FAIRQ_CODE_GUESS_PREFIX_CHARS": "9"},
    ],
)
def test_malformed_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="FAIRQ_"):
        RateLimitSettings.from_env(env)


def test_an_ipv6_client_is_counted_by_its_64_and_an_ipv4_client_by_its_address() -> None:
    assert address_group("2001:db8:1:2:aaaa::1") == address_group("2001:db8:1:2:bbbb::9")
    assert address_group("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert address_group("2001:db8:1:3::1") != address_group("2001:db8:1:2::1")
    assert address_group("198.51.100.7") == "198.51.100.7"
    assert address_group("not:an:address") == "not:an:address"  # not parsed: itself


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


# -- the defaults, on gateways built from nothing but the required settings ------------------


def required_env(connections: Connections) -> dict[str, str]:
    """The variables a gateway cannot start without, for this test's Redis and broker
    (the topic prefix keeps the test's topics its own): every limit at its default."""
    return {
        "REDIS_URL": connections.redis_url,
        "KAFKA_BOOTSTRAP": connections.kafka_bootstrap,
        "FAIRQ_TOPIC_PREFIX": connections.topics.commands.removesuffix("booking-commands"),
        "FAIRQ_OPERATOR_KEY": OPERATOR_KEY,
        "FAIRQ_SIGNING_KEYS": "k1:signing-secret-for-tests-0123456789",
    }


def test_a_gateway_from_the_required_settings_has_every_default_limit(
    connections: Connections,
) -> None:
    settings = GatewaySettings.from_env(required_env(connections))
    assert settings.rate_limits == RateLimitSettings()


@asynccontextmanager
async def default_gateways(
    connections: Connections, count: int = 1, **env: str
) -> AsyncIterator[list[Client]]:
    """``count`` gateways on one Redis, from ``GatewaySettings.from_env`` with the required
    variables and ``env`` (no limit among them). No allocator runs: a campaign's
    inventory is not waited for (FAIRQ_INVENTORY_WAIT_S=0)."""
    no_wait = {"FAIRQ_INVENTORY_WAIT_S": "0"}
    settings = GatewaySettings.from_env(required_env(connections) | no_wait | env)
    async with AsyncExitStack() as stack:
        gateways = [
            await stack.enter_async_context(TestClient(TestServer(create_app(settings))))
            for _ in range(count)
        ]
        yield gateways


async def issued_codes(client: Client, count: int) -> list[str]:
    """A campaign, ``count`` access codes of it and a room taking joins."""
    await _open_room(client)
    response = await client.post(
        "/api/admin/campaigns/camp/codes",
        json={"group": "80plus", "count": count},
        headers=operator(),
    )
    assert response.status == 201, await response.text()
    codes: list[str] = (await response.json())["codes"]
    return codes


def wrong_code(like: str, i: int) -> str:
    """A well-formed code that was not issued, with the first three characters of ``like``."""
    tail = "".join(ALPHABET[(i // len(ALPHABET) ** k) % len(ALPHABET)] for k in range(9))
    code = normalise_code(like)[:3] + tail
    assert code != normalise_code(like)
    return code


async def join_with(client: Client, code: str, **headers: str) -> tuple[int, Any, Any]:
    client.session.cookie_jar.clear()
    response = await client.post(
        "/api/rooms/room/join", json={"access_code": code}, headers=headers
    )
    return response.status, response.headers, await response.json()


def _assert_too_many_attempts(answer: tuple[int, Any, Any], limit: str) -> None:
    status, headers, body = answer
    assert (status, body["error"]["code"], body["error"]["limit"]) == (
        429,
        "too_many_attempts",
        limit,
    ), body
    assert 1 <= int(headers["Retry-After"]) <= GuessLimit().window_s


async def test_by_default_a_clients_wrong_codes_are_limited_across_gateways(
    connections: Connections,
) -> None:
    per_client = GuessLimit().per_client
    async with default_gateways(connections, count=2) as (a, b):
        [code] = await issued_codes(a, 1)
        for i in range(per_client):  # spread over both gateways, each under its join rate
            status, _, body = await join_with((a, b)[i % 2], wrong_code(code, i))
            assert (status, body["error"]["code"]) == (403, "invalid_access_code")
        _assert_too_many_attempts(await join_with(a, wrong_code(code, 99)), "code_client")
        _assert_too_many_attempts(await join_with(b, code), "code_client")  # right, refused
        metrics = await (await a.get("/metrics")).text()
        assert 'fairq_gateway_rate_limited_total{limit="code_client"} 1.0' in metrics


async def test_by_default_wrong_codes_of_one_prefix_are_limited_across_clients_and_gateways(
    connections: Connections,
) -> None:
    """Many addresses (behind one proxy of ours) working one region of the code space."""
    limit = GuessLimit()
    clients_needed = -(-limit.per_prefix // limit.per_client)  # each under its own limit
    async with default_gateways(connections, count=2, FAIRQ_CLIENT_IP_HOPS="1") as (a, b):
        codes = await issued_codes(a, 40)
        code = codes[0]
        other = next(c for c in codes if normalise_code(c)[:3] != normalise_code(code)[:3])
        for i in range(limit.per_prefix):
            client = f"198.51.100.{i % clients_needed}"
            status, _, _ = await join_with(
                (a, b)[i % 2], wrong_code(code, i), **{"X-Forwarded-For": client}
            )
            assert status == 403
        newcomer = {"X-Forwarded-For": "203.0.113.1"}
        _assert_too_many_attempts(await join_with(b, code, **newcomer), "code_prefix")
        status, _, body = await join_with(a, other, **newcomer)  # another region: looked up
        assert (status, body["state"]) == (200, "prequeue")


async def test_the_loadtest_key_lifts_the_default_limits_on_joins_and_codes(
    connections: Connections,
) -> None:
    exempt = {LOADTEST_HEADER: LOADTEST_KEY}
    async with default_gateways(connections, FAIRQ_LOADTEST_KEY=LOADTEST_KEY) as (gateway,):
        [code] = await issued_codes(gateway, 1)
        burst = GuessLimit().per_client + RateLimitSettings().join.burst
        for i in range(burst):  # over both the join rate and the wrong-code limit
            status, _, body = await join_with(gateway, wrong_code(code, i), **exempt)
            assert (status, body["error"]["code"]) == (403, "invalid_access_code")
        status, _, _ = await join_with(gateway, code, **exempt)
        assert status == 200
        # the key's wrong codes were not counted; without it the join rate applies
        gateway.session.cookie_jar.clear()
        status, _, body = await join_with(gateway, wrong_code(code, 0))
        assert (status, body["error"]["code"]) == (429, "rate_limited")
        assert [k async for k in redis_keys(connections, keys.code_guesses_pattern("camp"))] == []


async def redis_keys(connections: Connections, pattern: str) -> AsyncIterator[bytes]:
    redis = aioredis.Redis.from_url(connections.redis_url)
    try:
        async for key in redis.scan_iter(match=pattern):
            yield key
    finally:
        await redis.aclose()


async def test_by_default_a_clients_open_streams_are_capped_and_the_key_lifts_the_cap(
    connections: Connections,
) -> None:
    cap = RateLimitSettings().streams_per_client
    async with default_gateways(connections, FAIRQ_LOADTEST_KEY=LOADTEST_KEY) as (gateway,):
        await _open_room(gateway)
        ticket = (await (await gateway.post("/api/rooms/room/join")).json())["ticket"]
        events = "/api/rooms/room/events"
        streams = [await gateway.get(events, params={"ticket": ticket}) for _ in range(cap)]
        try:
            assert [s.status for s in streams] == [200] * cap
            over = await gateway.get(events, params={"ticket": ticket})
            body = await over.json()
            assert (over.status, body["error"]["code"]) == (429, "too_many_streams")
            assert int(over.headers["Retry-After"]) >= 1
            # a booking's stream counts against the same cap (refused before its handler)
            booking = await gateway.get("/api/bookings/bk_x/events", params={"token": "x"})
            assert (booking.status, (await booking.json())["error"]["code"]) == (
                429,
                "too_many_streams",
            )
            exempt = {LOADTEST_HEADER: LOADTEST_KEY}
            lifted = await gateway.get(events, params={"ticket": ticket}, headers=exempt)
            streams.append(lifted)
            assert lifted.status == 200
        finally:
            for stream in streams:
                stream.close()


async def test_a_stream_holds_its_clients_place_until_its_handler_ends() -> None:
    settings = RateLimitSettings(client_ip_hops=1, loadtest_key=LOADTEST_KEY)
    refused: list[None] = []
    cap = StreamCap(1, Exemptions(settings), lambda: refused.append(None))
    entered, ended, failed = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def stream(request: web.Request) -> web.StreamResponse:
        entered.set()
        if request.query.get("fail"):
            await failed.wait()
            raise ConnectionResetError
        await ended.wait()
        return web.StreamResponse()

    def capped(request: web.Request) -> Awaitable[web.StreamResponse]:
        return cap.hold(request, stream)

    async def opened(path: str = "/events", **headers: str) -> asyncio.Future[Any]:
        """A stream from a client of 2001:db8::/64, once its handler runs."""
        entered.clear()
        forwarded = {"X-Forwarded-For": "2001:db8::1"} | headers
        task = asyncio.ensure_future(capped(make_mocked_request("GET", path, headers=forwarded)))
        await entered.wait()
        return task

    first = await opened()
    assert cap.open_streams("2001:db8::/64") == 1
    with pytest.raises(ApiError) as over:  # another address of the same /64
        forwarded = {"X-Forwarded-For": "2001:db8::2"}
        await capped(make_mocked_request("GET", "/events", headers=forwarded))
    assert (over.value.status, over.value.code, len(refused)) == (429, "too_many_streams", 1)
    exempt = await opened(**{LOADTEST_HEADER: LOADTEST_KEY})
    assert cap.open_streams("2001:db8::/64") == 2  # the exempt one is counted, not refused
    ended.set()
    await asyncio.gather(first, exempt)
    assert cap.open_streams("2001:db8::/64") == 0
    failing = await opened("/events?fail=1")
    failed.set()
    with pytest.raises(ConnectionResetError):
        await failing
    assert cap.open_streams("2001:db8::/64") == 0  # a handler that fails gives its place back
