"""The whole path in separate processes: two gateways, the admitter and the allocator,
on a real Redis and a real Kafka-protocol broker.

A few hundred visitors, a third of them joining before the opening, all get admitted
and book at once for fewer pairs than there are visitors. Each gets exactly one
answer, pushed over SSE by the gateway it is connected to; the log of events shows
no slot beyond capacity, nobody with two pairs, and every pair whole.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from fairq.config import Connections
from fairq.demo import small_campaign
from tests.eventlog import audit, read_log
from tests.harness import OPERATOR_KEY, System, running_system
from tests.sse import sse_events
from waitingroom import keys

pytestmark = [pytest.mark.e2e, pytest.mark.both_brokers, pytest.mark.timeout(300)]

PRE_VISITORS = 100
POST_VISITORS = 200
COUNTIES = 2
PAIRS_PER_COUNTY = 40


@pytest.fixture
def system(connections: Connections, tmp_path: Path) -> Iterator[System]:
    with running_system(connections, tmp_path, gateways=2) as system:
        yield system


@dataclass
class Visit:
    index: int
    gateway: str
    ticket: str
    booking_id: str = ""
    streamed: list[str] = field(default_factory=list)
    final: dict[str, Any] = field(default_factory=dict)


def op() -> dict[str, str]:
    return {"Authorization": f"Bearer {OPERATOR_KEY}"}


async def join(http: aiohttp.ClientSession, index: int, gateway: str) -> Visit:
    async with http.post(f"{gateway}/api/rooms/room/join") as r:
        assert r.status == 200, await r.text()
        body = await r.json()
    return Visit(index, gateway, body["ticket"])


async def wait_admitted(http: aiohttp.ClientSession, visit: Visit) -> str:
    url = f"{visit.gateway}/api/rooms/room/events"
    async with http.get(url, params={"ticket": visit.ticket}) as r:
        assert r.status == 200
        async for _, status in sse_events(r):
            if status["state"] == "admitted":
                return str(status["booking_token"])
    raise AssertionError(f"visitor {visit.index}: status stream ended without admission")


async def book(http: aiohttp.ClientSession, visit: Visit, county: str) -> None:
    token = await wait_admitted(http, visit)
    auth = {"Authorization": f"Bearer {token}"}
    async with http.post(
        f"{visit.gateway}/api/rooms/room/bookings", json={"county": county}, headers=auth
    ) as r:
        assert r.status == 202, await r.text()
        visit.booking_id = (await r.json())["booking_id"]
    url = f"{visit.gateway}/api/bookings/{visit.booking_id}/events"
    async with http.get(url, params={"token": token}) as r:
        async for _, booking in sse_events(r):
            visit.streamed.append(booking["state"])
            visit.final = booking
            if booking["state"] == "held":
                confirm = f"{visit.gateway}/api/bookings/{visit.booking_id}/confirm"
                async with http.post(confirm, headers=auth) as c:
                    assert c.status == 200, await c.text()


async def places(redis: aioredis.Redis, visits: list[Visit]) -> list[int]:
    """The timeline place each visitor booked from (recorded with the booking)."""
    raw = [await redis.hget(keys.booking(v.booking_id), "position") for v in visits]
    assert None not in raw, "a booking without its recorded place"
    return [int(p) for p in raw if p is not None]


async def test_launch_storm_end_to_end(
    system: System, connections: Connections, redis: aioredis.Redis
) -> None:
    first_day = dt.date.today() + dt.timedelta(days=2)
    campaign = small_campaign(first_day, counties=COUNTIES, places=PAIRS_PER_COUNTY)
    counties = [c["id"] for c in campaign["counties"]]
    g0, g1 = system.gateways
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        async with http.put(f"{g0}/api/admin/campaigns/camp", json=campaign, headers=op()) as r:
            assert r.status == 201, await r.text()
            loaded = await r.json()
        assert loaded["answered"] == loaded["inventory_commands"] and loaded["refused"] == []
        room = {"campaign": "camp", "opens_in_s": 3600, "rate_per_s": 1000, "max_active": 1000}
        async with http.put(f"{g1}/api/admin/rooms/room", json=room, headers=op()) as r:
            assert r.status == 201, await r.text()

        gateways = system.gateways
        pre = await asyncio.gather(*(join(http, i, gateways[i % 2]) for i in range(PRE_VISITORS)))
        async with http.post(f"{g0}/api/admin/rooms/room/open", headers=op()) as r:
            assert r.status == 200
        post = await asyncio.gather(
            *(
                join(http, i, gateways[i % 2])
                for i in range(PRE_VISITORS, PRE_VISITORS + POST_VISITORS)
            )
        )
        visits = [*pre, *post]
        await asyncio.gather(*(book(http, v, counties[v.index % COUNTIES]) for v in visits))

        # Fair order across both gateways: every place is held once; the lottery
        # ordered the pre-queue among the first places, later joiners follow it.
        assert sorted(await places(redis, pre)) == list(range(1, PRE_VISITORS + 1))
        assert sorted(await places(redis, post)) == list(
            range(PRE_VISITORS + 1, PRE_VISITORS + POST_VISITORS + 1)
        )

        # Exactly one answer per booking request, pushed over SSE, and a final state.
        for v in visits:
            answers = [s for s in v.streamed if s in ("held", "rejected")]
            assert answers == [answers[0]] and v.streamed[-1] in ("confirmed", "rejected"), v
        finals = Counter(v.final["state"] for v in visits)
        pairs = COUNTIES * PAIRS_PER_COUNTY
        assert finals == {"confirmed": pairs, "rejected": len(visits) - pairs}
        assert {v.final["reason"] for v in visits if v.final["state"] == "rejected"} == {"sold_out"}

        # Any gateway answers for any booking afterwards. The other gateway reads the
        # events on its own and may be a moment behind, so its stream is followed to
        # the final state (a stream that stopped short would hang the test).
        for v in visits[:50]:
            other = g1 if v.gateway == g0 else g0
            token = await _token(http, v)
            async with http.get(
                f"{other}/api/bookings/{v.booking_id}", headers={"Authorization": f"Bearer {token}"}
            ) as r:
                assert r.status == 200
                assert (await r.json())["booking_id"] == v.booking_id
            seen = await _streamed(http, f"{other}/api/bookings/{v.booking_id}/events", token)
            assert seen[-1] == v.final["state"], (v, seen)

    # The log itself: no slot over capacity, one pair per identity, every pair whole.
    log = audit(await read_log(connections))
    assert not any(log.findings().values()), log.findings()
    used = log.used()
    assert sum(used.values()) == 2 * pairs
    assert all(count == PAIRS_PER_COUNTY for count in used.values())


async def _streamed(http: aiohttp.ClientSession, url: str, token: str) -> list[str]:
    async with http.get(url, params={"token": token}) as r:
        assert r.status == 200
        return [booking["state"] async for _, booking in sse_events(r)]


async def _token(http: aiohttp.ClientSession, visit: Visit) -> str:
    async with http.get(
        f"{visit.gateway}/api/rooms/room/status",
        headers={"Authorization": f"Bearer {visit.ticket}"},
    ) as r:
        return str((await r.json())["booking_token"])
