"""Room routes in depth: the pre-queue window, the lottery audit, chance and sold-out pushes."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from fairq.config import Connections
from fairq.demo import small_campaign
from gateway.state import GATEWAY
from tests.gateway.conftest import (
    STORM,
    bearer,
    create_campaign,
    create_room,
    gateway_client,
    operator,
)
from tests.gateway.test_flow import admitted_visitor, join, request_pair
from tests.sse import sse_events
from waitingroom import keys
from waitingroom.rooms import RoomConfig, RoomStore

Client = TestClient[Any, Any]


def ticket_number(ticket: str) -> int:
    payload = ticket.split(".")[1]
    return int(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["n"])


def fisher_yates_positions(seed: str, n: int) -> list[int]:
    """The documented algorithm, written out again: 1-based position of pre ticket 1..n."""
    rng = random.Random(seed)
    order = list(range(n))
    for i in range(n - 1, 0, -1):
        j = rng.randrange(i + 1)
        order[i], order[j] = order[j], order[i]
    return [p + 1 for p in order]


async def test_join_before_the_prequeue_window_says_when_to_come_back(
    client: Client, redis: aioredis.Redis
) -> None:
    opens_at = time.time() + 600
    await RoomStore(redis).put_room(
        RoomConfig(name="early", campaign="camp", opens_at_s=opens_at, prequeue_s=60)
    )
    response = await client.post("/api/rooms/early/join")
    assert response.status == 409
    error = (await response.json())["error"]
    window = dt.datetime.fromisoformat(error["opens_prequeue_at"].replace("Z", "+00:00"))
    assert error["code"] == "too_early"
    assert window.timestamp() == pytest.approx(opens_at - 60)
    assert 500 <= int(response.headers["Retry-After"]) <= 540
    info = await (await client.get("/api/rooms/early")).json()
    assert info["opens_prequeue_at"] == error["opens_prequeue_at"]

    await RoomStore(redis).put_room(
        RoomConfig(name="early", campaign="camp", opens_at_s=opens_at, prequeue_s=3600)
    )
    await client.app[GATEWAY].rooms.reload("early")  # as the refresh loop would, soon
    joined = await client.post("/api/rooms/early/join")
    assert (joined.status, (await joined.json())["state"]) == (200, "prequeue")


@pytest.fixture
async def storm(connections: Connections) -> AsyncIterator[Client]:
    """A gateway whose one client is many visitors: no per-client limits."""
    async with gateway_client(connections, rate_limits=STORM) as c:
        yield c


async def test_audit_recomputes_the_order_given_to_the_tickets(
    storm: Client, first_day: dt.date
) -> None:
    client = storm
    await create_campaign(client, first_day)
    await create_room(client, rate_per_s=0)
    before = await client.get("/api/admin/rooms/room/audit", headers=operator())
    assert (await before.json())["positions"] is None
    tickets = [(await join(client))["ticket"] for _ in range(40)]
    await client.post("/api/admin/rooms/room/open", headers=operator())

    audit = await (await client.get("/api/admin/rooms/room/audit", headers=operator())).json()
    assert (audit["opened"], audit["prequeue_size"]) == (True, 40)
    expected = fisher_yates_positions(audit["seed"], audit["prequeue_size"])
    assert audit["positions"] == expected
    assert sorted(expected) == list(range(1, 41))  # a permutation
    for ticket in tickets:
        status = await (await client.get("/api/rooms/room/status", headers=bearer(ticket))).json()
        assert status["position"] == expected[ticket_number(ticket) - 1]

    page = await client.get(
        "/api/admin/rooms/room/audit", params={"offset": "10", "limit": "5"}, headers=operator()
    )
    assert (await page.json())["positions"] == expected[10:15]
    assert (await client.get("/api/admin/rooms/room/audit")).status == 401
    bad = await client.get(
        "/api/admin/rooms/room/audit", params={"limit": "-1"}, headers=operator()
    )
    assert bad.status == 400


async def _next_state(events: AsyncIterator[tuple[str, Any]], wanted: set[str]) -> dict[str, Any]:
    async for _, status in events:
        if status["state"] in wanted:
            return dict(status)
    raise AssertionError(f"the stream ended before a state in {wanted}")


@pytest.mark.usefixtures("allocator", "admitter")
@pytest.mark.parametrize("delivered_to", ["county-1-center-1", "county-2-center-1"])
async def test_sold_out_is_pushed_and_lifted_when_supply_is_added(
    client: Client, first_day: dt.date, delivered_to: str
) -> None:
    """County 2's center is listed with no slots yet: its empty inventory command makes
    the allocator report the county (0 pairs), so it does not keep the room from being
    sold out; a delivery to either county reopens it."""
    doc = small_campaign(first_day, counties=2, places=1)
    doc["slots"] = [s for s in doc["slots"] if s["center"] == "county-1-center-1"]
    response = await client.put("/api/admin/campaigns/camp", json=doc, headers=operator())
    assert response.status == 201, await response.text()
    await create_room(client, opens_in_s=0, max_active=1)
    holder = await admitted_visitor(client)
    assert (await request_pair(client, holder))[1]["state"] == "held"

    waiting = [(await join(client))["ticket"] for _ in range(2)]
    streams = [
        sse_events(await client.get("/api/rooms/room/events", params={"ticket": t}))
        for t in waiting
    ]
    for stream in streams:
        sold_out = await _next_state(stream, {"sold_out"})
        assert (sold_out["chance"], sold_out["position"] >= 1) == ("none", True)

    delivery = {
        "slots": [
            {"center": delivered_to, "vaccine": "comirnaty", "start": start, "capacity": 3}
            for start in (
                f"{first_day.isoformat()}T10:00",
                f"{(first_day + dt.timedelta(days=21)).isoformat()}T10:00",
            )
        ]
    }
    response = await client.post(
        "/api/admin/campaigns/camp/inventory", json=delivery, headers=operator()
    )
    assert response.status == 202, await response.text()  # the test gateway waits for no answer
    for stream in streams:
        reopened = await _next_state(stream, {"waiting", "admitted"})
        assert reopened["chance"] in ("likely", None)


async def test_admission_settings_are_set_on_creation_and_changed_live(
    client: Client, first_day: dt.date
) -> None:
    await create_campaign(client, first_day)
    created = await create_room(
        client, ramp_s=60, admission_mode="auto", pow_difficulty=10, rate_per_s=50
    )
    assert (created["ramp_s"], created["admission_mode"], created["pow_difficulty"]) == (
        60,
        "auto",
        10,
    )
    assert created["rate_now_per_s"] == 50  # not opened yet: no ramp to speak of
    response = await client.put(
        "/api/admin/rooms/room/admission",
        json={"ramp_s": 0, "admission_mode": "manual"},
        headers=operator(),
    )
    changed = await response.json()
    assert (changed["ramp_s"], changed["admission_mode"]) == (0, "manual")
    assert (changed["pow_difficulty"], changed["rate_per_s"]) == (10, 50)  # left alone
    await client.post("/api/admin/rooms/room/open", headers=operator())
    response = await client.put(
        "/api/admin/rooms/room/admission", json={"ramp_s": 600}, headers=operator()
    )
    assert 5 <= (await response.json())["rate_now_per_s"] < 6  # 10% of 50/s at the opening


@pytest.mark.parametrize(
    "body",
    [
        {"admission_mode": "fast"},
        {"admission_mode": 1},
        {"pow_difficulty": 29},
        {"pow_difficulty": -1},
        {"pow_difficulty": 1.5},
        {"ramp_s": -1},
        {"ramp_s": 86_401},
        {"ramp_s": "60"},
        {"rate_per_s": -1},
        {"max_active": 2.5},
        {"unknown": 1},
    ],
)
async def test_bad_admission_settings_are_refused_and_change_nothing(
    client: Client, first_day: dt.date, body: dict[str, Any]
) -> None:
    await create_campaign(client, first_day)
    before = await create_room(client, pow_difficulty=4)
    for method, path, extra in (
        ("PUT", "/api/admin/rooms/room/admission", {}),
        ("PUT", "/api/admin/rooms/room", {"campaign": "camp"}),
    ):
        response = await client.request(method, path, json=extra | body, headers=operator())
        assert response.status == 400, (path, await response.text())
        assert (await response.json())["error"]["code"] in ("invalid_request", "invalid_field")
    after = await (await client.get("/api/admin/rooms/room/stats", headers=operator())).json()
    settings = ("rate_per_s", "max_active", "ramp_s", "admission_mode", "pow_difficulty")
    assert {k: after[k] for k in settings} == {k: before[k] for k in settings}


@pytest.mark.usefixtures("allocator", "admitter")
async def test_auto_mode_admits_only_as_many_as_there_are_pairs(
    client: Client, first_day: dt.date, redis: aioredis.Redis
) -> None:
    await create_campaign(client, first_day, counties=1, places=2)
    await create_room(client, opens_in_s=0, admission_mode="auto")
    tickets = [(await join(client))["ticket"] for _ in range(4)]  # the lottery orders them
    for _ in range(600):  # until the admitter knows the pairs left and lets people in
        if (await room_stats(client))["admitted"] > 0:
            break
        await asyncio.sleep(0.05)
    await a_step_runs(redis)
    assert (await room_stats(client))["admitted"] == 2  # 4 waiting, 1000/s: only 2 let in
    statuses = [
        await (await client.get("/api/rooms/room/status", headers=bearer(t))).json()
        for t in tickets
    ]
    assert sorted(s["state"] for s in statuses) == ["admitted", "admitted", "waiting", "waiting"]
    first, second = (s["booking_token"] for s in statuses if s["state"] == "admitted")
    still_waiting = next(s["ticket"] for s in statuses if s["state"] == "waiting")

    for token in (first, second):
        booking_id, held = await request_pair(client, token)
        assert held["state"] == "held"
        confirmed = await client.post(f"/api/bookings/{booking_id}/confirm", headers=bearer(token))
        assert (await confirmed.json())["state"] == "confirmed"
    stream = sse_events(
        await client.get("/api/rooms/room/events", params={"ticket": still_waiting})
    )
    assert (await _next_state(stream, {"sold_out", "admitted"}))["state"] == "sold_out"
    stats = await room_stats(client)
    assert (stats["admitted"], stats["sold_out"]) == (2, True)


async def room_stats(client: Client) -> dict[str, Any]:
    response = await client.get("/api/admin/rooms/room/stats", headers=operator())
    assert response.status == 200
    stats: dict[str, Any] = await response.json()
    return stats


async def a_step_runs(redis: aioredis.Redis, timeout_s: float = 30.0) -> None:
    """Wait until the admitter has run a step that began after now (its clock passed now)."""
    now = time.time()
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        last = await redis.hget(keys.room("room"), "admit_last_s")
        if last is not None and float(last) > now:
            return
        assert asyncio.get_running_loop().time() < deadline, "no admission step ran"
        await asyncio.sleep(0.05)


async def test_joining_again_with_a_ticket_keeps_the_place(
    client: Client, first_day: dt.date, redis: aioredis.Redis
) -> None:
    """A reload, another tab (the cookie) or an app (the bearer ticket) joining again gets
    the same place and no new number; an expired ticket or another room's gets a new one."""
    await create_campaign(client, first_day)
    await create_room(client, "room")
    await create_room(client, "other")
    first = await join(client)
    assert client.session.cookie_jar.filter_cookies(client.make_url("/api/rooms/room/join"))
    again = await client.post("/api/rooms/room/join")  # the cookie comes along
    by_bearer = await client.post("/api/rooms/room/join", headers=bearer(first["ticket"]))
    for response in (again, by_bearer):
        assert response.status == 200
        body = await response.json()
        assert (body["ticket"], body["position"]) == (first["ticket"], first["position"])
    snap = await RoomStore(redis).load("room")
    assert snap is not None and (snap.prequeue_size, snap.post_count) == (1, 0)  # one number

    other = (await join(client, "other"))["ticket"]
    elsewhere = await client.post("/api/rooms/room/join", headers=bearer(other))
    assert ticket_number((await elsewhere.json())["ticket"]) == 2
    gw = client.app[GATEWAY]
    started = gw.clock()
    gw.clock = lambda: started + 8 * 86_400  # the first ticket has expired
    client.session.cookie_jar.clear()
    late = await client.post("/api/rooms/room/join", headers=bearer(first["ticket"]))
    assert ticket_number((await late.json())["ticket"]) == 3


async def test_a_join_with_an_empty_body_is_a_join_without_one(
    client: Client, first_day: dt.date
) -> None:
    """The body is optional: one that is empty or blank (a chunked request, a form that
    sends nothing) is taken as none."""
    await create_campaign(client, first_day)
    await create_room(client, "room")
    response = await client.post(
        "/api/rooms/room/join", data=b"  ", headers={"Content-Type": "application/json"}
    )
    assert response.status == 200, await response.text()
