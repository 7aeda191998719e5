"""What Redis forgets: a storm of joins while Redis restarts empty or from an older copy.

Real gateway, admitter (and allocator where bookings are made), real broker, and a
redis-server of the test's own that it kills and starts again on the same port:
empty (no persistence: what development runs), or from an RDB saved earlier in the
storm (a failover to a replica that had not copied the last writes). Afterwards the
room answers joins again (no 404), no ticket number was handed out twice, the room's
settings and lottery seed are back, codes issued before still work, an identity that
holds a pair still cannot book a second one in another county, and the admitter never
has more active bookers than the cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from fairq.config import Connections, Topics
from fairq.devservices import Server, free_port, redis_server_path
from tests.gateway.conftest import (
    SIGNING_KEYS,
    STORM,
    admitter_running,
    allocator_running,
    create_campaign,
    create_room,
    gateway_client,
    operator,
)
from tests.gateway.test_callcenter import issue_codes, phone_book
from tests.gateway.test_identities import counties_apart
from tests.gateway.test_rooms import room_stats
from waitingroom import keys
from waitingroom.tickets import Signer

Client = TestClient[Any, Any]
MAX_ACTIVE = 5
RETRY_BOUND = 400  # attempts at a join answered 503 while Redis is away or restored


class OwnRedis:
    """A redis-server on a fixed port and data directory, to kill and start again."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [redis_server_path(), "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        argv += ["--protected-mode", "no"]
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

    async def ready(self) -> None:
        """Wait until the server answers (it loads its RDB first, if there is one)."""
        client = aioredis.Redis.from_url(self.url)
        try:
            for _ in range(200):
                with contextlib.suppress(aioredis.ConnectionError, aioredis.BusyLoadingError):
                    await client.ping()
                    return
                await asyncio.sleep(0.05)
            raise AssertionError("the test's redis-server did not start")
        finally:
            await client.aclose()

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    async def restart(self, *, empty: bool) -> None:
        """SIGKILL, then start again: empty, or from the last RDB ``SAVE`` wrote."""
        self.kill()
        if empty:
            (self.directory / "dump.rdb").unlink(missing_ok=True)
        self.start()
        await self.ready()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.kill()


@pytest.fixture
async def conns(own_redis: OwnRedis, kafka_srv: Server, topics: Topics) -> Connections:
    await own_redis.ready()
    return Connections(redis_url=own_redis.url, kafka_bootstrap=kafka_srv.url, topics=topics)


async def join_once(client: Client, **body: Any) -> tuple[int, dict[str, Any]]:
    client.session.cookie_jar.clear()
    response = await client.post("/api/rooms/room/join", json=body or None)
    return response.status, await response.json()


async def join_until_served(client: Client, **body: Any) -> dict[str, Any]:
    """A join, repeated as its ``Retry-After`` asks while the answer is 503."""
    for _ in range(RETRY_BOUND):
        status, answer = await join_once(client, **body)
        if status != 503:
            assert status == 200, answer
            return answer
        await asyncio.sleep(0.05)
    raise AssertionError("the room never answered joins again")


async def storm(client: Client, joins: int) -> list[dict[str, Any]]:
    """``joins`` joins at once; the answers that gave a ticket (others must be 503)."""
    answers = await asyncio.gather(*(join_once(client) for _ in range(joins)))
    refused = [(s, a) for s, a in answers if s != 200]
    assert all(s == 503 for s, _ in refused), refused
    return [a for s, a in answers if s == 200]


def numbers(answers: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """The (kind, number) of each answer's ticket."""
    signer = Signer(SIGNING_KEYS, "k1")
    now = dt.datetime.now(dt.UTC).timestamp()
    tickets = [signer.verify_ticket(a["ticket"], "room", now) for a in answers]
    return [(t.kind, t.number) for t in tickets]


async def prepare(client: Client, first_day: dt.date) -> tuple[dict[str, Any], list[str]]:
    """A campaign, codes, a room with a pre-queue of 20, opened, its admission changed."""
    await create_campaign(client, first_day)
    codes = await issue_codes(client, 3)
    await create_room(client, opens_in_s=3600, max_active=MAX_ACTIVE)
    pre = await storm(client, 20)
    assert len(pre) == 20
    opened = await client.post("/api/admin/rooms/room/open", headers=operator())
    assert opened.status == 200
    changed = await client.put(
        "/api/admin/rooms/room/admission",
        json={"rate_per_s": 7.5, "ramp_s": 30},
        headers=operator(),
    )
    assert changed.status == 200
    return await room_stats(client), codes


def settings_of(room: dict[str, Any]) -> dict[str, Any]:
    names = ("state", "lottery_seed", "prequeue_size", "opened_at", "rate_per_s", "ramp_s")
    return {k: room[k] for k in names}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("empty", [True, False], ids=["restarted_empty", "rolled_back"])
async def test_a_storm_of_joins_survives_redis_losing_writes(
    conns: Connections, own_redis: OwnRedis, first_day: dt.date, empty: bool
) -> None:
    async with gateway_client(conns, rate_limits=STORM) as client, admitter_running(conns):
        before, codes = await prepare(client, first_day)
        assert before["restored_at"] is None
        answers = await storm(client, 60)
        if not empty:  # the copy Redis comes back from: the next joins are not in it
            async with aioredis.Redis.from_url(own_redis.url) as r:
                await r.save()
        answers += await storm(client, 60)
        # Redis goes and comes back while joins keep arriving
        admitted = (await room_stats(client))["admitted"]
        arrivals = asyncio.gather(*(join_once(client) for _ in range(60)))
        await own_redis.restart(empty=empty)
        served = [a for s, a in await arrivals if s == 200]
        answers += served
        answers.append(await join_until_served(client))  # no 404: the room is back
        answers += await storm(client, 60)

        handed_out = numbers(answers)
        assert len(set(handed_out)) == len(handed_out), "a number was handed out twice"
        after = await room_stats(client)
        assert settings_of(after) == settings_of(before)
        assert after["restored_at"] is not None
        assert after["admitted"] >= admitted  # nobody is admitted twice
        coded = await join_until_served(client, access_code=codes[0])
        assert coded["state"] in ("waiting", "admitted")
        async with aioredis.Redis.from_url(own_redis.url) as r:
            assert await r.zcard(keys.room_active("room")) <= MAX_ACTIVE


@pytest.mark.timeout(120)
async def test_an_identity_holding_a_pair_cannot_book_another_after_redis_forgot(
    conns: Connections, own_redis: OwnRedis, first_day: dt.date
) -> None:
    a, b = counties_apart(3)
    async with (
        gateway_client(conns, rate_limits=STORM) as client,
        allocator_running(conns, uuid.uuid4().hex),
    ):
        await create_campaign(client, first_day, counties=3, places=2)
        [code] = await issue_codes(client, 1)
        first = await phone_book(client, code, county=a)
        assert (first[0], first[1]["state"]) == (201, "held"), first
        await own_redis.restart(empty=True)
        for _ in range(RETRY_BOUND):  # answered again once restored
            second = await phone_book(client, code, county=b)
            if second[0] != 503:
                break
            await asyncio.sleep(0.05)
        assert (second[0], second[1]["error"]["code"]) == (409, "already_booked"), second
        scraped = await (await client.get("/metrics")).text()
        assert "fairq_state_restores_total 1.0" in scraped.splitlines()  # by this gateway


@pytest.mark.timeout(60)
async def test_a_room_gone_from_redis_comes_back(conns: Connections, first_day: dt.date) -> None:
    """Only the room's key is lost (the marker stays): the gateway that knew the room
    restores it, and joins go on where they were."""
    async with gateway_client(conns, rate_limits=STORM) as client:
        await create_campaign(client, first_day)
        await create_room(client, opens_in_s=3600)
        answers = await storm(client, 20)
        async with aioredis.Redis.from_url(conns.redis_url) as r:
            await r.delete(keys.room("room"))
        answers.append(await join_until_served(client))
        handed_out = numbers(answers)
        assert len(set(handed_out)) == len(handed_out), "a number was handed out twice"
        assert (await room_stats(client))["restored_at"] is not None
