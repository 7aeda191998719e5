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
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer

from fairq.config import Connections
from fairq.demo import small_campaign
from fairq.devservices import free_port
from fairq.processes import Component, running, spawn, wait_http_ready
from schemas.events import Cancelled, Expired, Held, decode_event
from tests.conftest import TEST_SESSION_TIMEOUT_MS, topic_partitions
from tests.sse import sse_events
from waitingroom import keys

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

OPERATOR_KEY = "e2e-operator-key-0123456789abcdef"
PRE_VISITORS = 100
POST_VISITORS = 200
COUNTIES = 2
PAIRS_PER_COUNTY = 40
WINDOW = (21, 42)


@dataclass
class System:
    gateways: list[str]
    components: list[Component]


@pytest.fixture
def system(connections: Connections, tmp_path: Path) -> Iterator[System]:
    prefix = connections.topics.commands.removesuffix("booking-commands")
    env = dict(os.environ) | {
        "REDIS_URL": connections.redis_url,
        "KAFKA_BOOTSTRAP": connections.kafka_bootstrap,
        "FAIRQ_TOPIC_PREFIX": prefix,
        "FAIRQ_OPERATOR_KEY": OPERATOR_KEY,
        "FAIRQ_SIGNING_KEYS": "k1:e2e-signing-secret-0123456789",
        "FAIRQ_ALLOCATOR_GROUP": f"alloc-{uuid.uuid4().hex[:8]}",
        "FAIRQ_ADMITTER_GROUP": f"admit-{uuid.uuid4().hex[:8]}",
        "FAIRQ_TICK_INTERVAL_S": "0.2",
        "FAIRQ_ALLOCATOR_SESSION_TIMEOUT_MS": str(TEST_SESSION_TIMEOUT_MS),
        "FAIRQ_ADMITTER_SESSION_TIMEOUT_MS": str(TEST_SESSION_TIMEOUT_MS),
        "FAIRQ_REFRESH_S": "0.1",
        "FAIRQ_LOG_LEVEL": "INFO",
        # every visitor of the storm comes from this host: exempt it, as a rehearsal would
        "FAIRQ_LOADTEST_NETWORKS": "127.0.0.0/8",
    }
    ports = [free_port(), free_port()]
    components = [
        spawn("allocator", "allocator", env, tmp_path),
        spawn("admitter", "admitter", env, tmp_path),
    ]
    components += [
        spawn("gateway", f"gateway-{i}", env | {"FAIRQ_HTTP_PORT": str(port)}, tmp_path)
        for i, port in enumerate(ports)
    ]
    with running(components):
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        for component, url in zip(components[2:], urls, strict=True):
            wait_http_ready(component, f"{url}/healthz")
        yield System(urls, components)


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


async def read_events(connections: Connections) -> list[Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=connections.kafka_bootstrap)
    await consumer.start()
    try:
        topic = connections.topics.events
        tps = await topic_partitions(consumer, topic)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        events: list[Any] = []
        for tp in tps:
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                events += [decode_event(rec.value) for rec in batch.get(tp, [])]
        return events
    finally:
        await consumer.stop()


def check_log_invariants(events: list[Any], capacity: int) -> Counter[str]:
    """Replay the events: no slot over capacity, one pair per identity, every pair whole."""
    used: Counter[str] = Counter()
    holder: dict[str, str] = {}
    slots_of: dict[str, list[str]] = {}
    for e in events:
        if isinstance(e, Held):
            assert e.identity not in holder, f"{e.identity} holds two pairs"
            holder[e.identity] = e.booking_id
            d1, d2 = sorted(e.appointments, key=lambda a: a.dose)
            assert (d1.dose, d2.dose) == (1, 2)
            assert (d1.center, d1.vaccine) == (d2.center, d2.vaccine)
            gap = (dt.date.fromisoformat(d2.start[:10]) - dt.date.fromisoformat(d1.start[:10])).days
            assert WINDOW[0] <= gap <= WINDOW[1]
            slots_of[e.booking_id] = [d1.slot, d2.slot]
            for slot in slots_of[e.booking_id]:
                used[slot] += 1
                assert used[slot] <= capacity, f"slot {slot} over capacity"
        elif isinstance(e, Expired | Cancelled):
            for slot in slots_of.pop(e.booking_id, []):
                used[slot] -= 1
            holder = {k: v for k, v in holder.items() if v != e.booking_id}
    return used


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

    used = check_log_invariants(await read_events(connections), capacity=PAIRS_PER_COUNTY)
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
