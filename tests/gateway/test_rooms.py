"""Room routes in depth: the pre-queue window, the lottery audit, chance and sold-out pushes."""

from __future__ import annotations

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

from gateway.state import GATEWAY
from tests.gateway.conftest import bearer, create_campaign, create_room, operator
from tests.gateway.test_flow import admitted_visitor, join, request_pair
from tests.sse import sse_events
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


async def test_audit_recomputes_the_order_given_to_the_tickets(
    client: Client, first_day: dt.date
) -> None:
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
async def test_sold_out_is_pushed_and_lifted_when_supply_is_added(
    client: Client, first_day: dt.date
) -> None:
    await create_campaign(client, first_day, counties=1, places=1)
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
            {"center": "county-1-center-1", "vaccine": "comirnaty", "start": start, "capacity": 3}
            for start in (
                f"{first_day.isoformat()}T10:00",
                f"{(first_day + dt.timedelta(days=21)).isoformat()}T10:00",
            )
        ]
    }
    response = await client.post(
        "/api/admin/campaigns/camp/inventory", json=delivery, headers=operator()
    )
    assert response.status == 200, await response.text()
    for stream in streams:
        reopened = await _next_state(stream, {"waiting", "admitted"})
        assert reopened["chance"] in ("likely", None)
