"""The booking path through one in-process gateway, the real admitter and the real allocator."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.gateway.conftest import bearer, create_campaign, create_room, operator
from tests.sse import sse_events

pytestmark = pytest.mark.usefixtures("allocator", "admitter")

Client = TestClient[Any, Any]


async def join(client: Client, room: str = "room", **body: Any) -> dict[str, Any]:
    """A new visitor's join: without the ticket cookie of an earlier one (with it, the
    join gives that ticket's place back)."""
    client.session.cookie_jar.clear()
    response = await client.post(f"/api/rooms/{room}/join", json=body or None)
    assert response.status == 200, await response.text()
    data: dict[str, Any] = await response.json()
    return data


async def admitted_token(client: Client, ticket: str, room: str = "room") -> str:
    """Follow the status stream until admission; returns the booking token."""
    response = await client.get(f"/api/rooms/{room}/events", params={"ticket": ticket})
    assert response.status == 200
    async for _, status in sse_events(response):
        if status["state"] == "admitted":
            return str(status["booking_token"])
    raise AssertionError("the status stream ended before admission")


async def booking_stream(client: Client, booking_id: str, token: str) -> list[dict[str, Any]]:
    """Every booking event until the first answer (held/rejected) or a final state."""
    seen: list[dict[str, Any]] = []
    response = await client.get(f"/api/bookings/{booking_id}/events", params={"token": token})
    async for _, view in sse_events(response):
        seen.append(view)
        if view["state"] != "pending":
            break
    response.close()
    return seen


async def request_pair(client: Client, token: str, **wish: Any) -> tuple[str, dict[str, Any]]:
    body = {"county": "county-1"} | wish
    response = await client.post("/api/rooms/room/bookings", json=body, headers=bearer(token))
    assert response.status == 202, await response.text()
    booking_id = (await response.json())["booking_id"]
    answer = (await booking_stream(client, booking_id, token))[-1]
    return booking_id, answer


async def admitted_visitor(client: Client) -> str:
    return await admitted_token(client, (await join(client))["ticket"])


async def test_hold_confirm_and_sold_out(client: Client, first_day: dt.date) -> None:
    await create_campaign(client, first_day, counties=1, places=2)
    await create_room(client, opens_in_s=0)
    tokens = [await admitted_visitor(client) for _ in range(3)]

    booking_id, held = await request_pair(client, tokens[0])
    assert held["state"] == "held"
    doses = {a["dose"]: a for a in held["appointments"]}
    assert doses[1]["center"] == doses[2]["center"] == "county-1-center-1"
    assert doses[1]["start"].startswith(first_day.isoformat())
    assert doses[2]["start"].startswith((first_day + dt.timedelta(days=21)).isoformat())
    assert held["hold_expires_at"] is not None

    response = await client.post(f"/api/bookings/{booking_id}/confirm", headers=bearer(tokens[0]))
    assert response.status == 200
    assert (await response.json())["state"] == "confirmed"
    again = await client.post(f"/api/bookings/{booking_id}/confirm", headers=bearer(tokens[0]))
    assert again.status == 409

    assert (await request_pair(client, tokens[1]))[1]["state"] == "held"
    _, rejected = await request_pair(client, tokens[2])
    assert (rejected["state"], rejected["reason"]) == ("rejected", "sold_out")


async def test_cancel_gives_both_slots_back(client: Client, first_day: dt.date) -> None:
    await create_campaign(client, first_day, counties=1, places=1)
    await create_room(client, opens_in_s=0)
    first, second = await admitted_visitor(client), await admitted_visitor(client)
    booking_id, held = await request_pair(client, first)
    assert held["state"] == "held"
    assert (await request_pair(client, second))[1]["reason"] == "sold_out"

    response = await client.post(f"/api/bookings/{booking_id}/cancel", headers=bearer(first))
    assert (response.status, (await response.json())["state"]) == (200, "cancelled")
    third = await admitted_visitor(client)
    _, rebooked = await request_pair(client, third)
    assert rebooked["state"] == "held"
    assert [a["start"] for a in rebooked["appointments"]] == [
        a["start"] for a in held["appointments"]
    ]


async def test_one_booking_per_token_and_any_lookup(client: Client, first_day: dt.date) -> None:
    await create_campaign(client, first_day, counties=2, places=3)
    await create_room(client, opens_in_s=0)
    token = await admitted_visitor(client)
    booking_id, held = await request_pair(client, token, county="county-2")
    assert held["appointments"][0]["center"] == "county-2-center-1"
    again = await client.post(
        "/api/rooms/room/bookings", json={"county": "county-2"}, headers=bearer(token)
    )
    assert again.status == 409
    assert (await again.json())["error"]["booking_id"] == booking_id
    looked_up = await client.get(f"/api/bookings/{booking_id}", headers=bearer(token))
    assert (await looked_up.json())["state"] == "held"


async def test_access_code_gives_one_place_and_one_pair(client: Client, first_day: dt.date) -> None:
    await create_campaign(client, first_day, counties=1, places=3)
    await create_room(client, opens_in_s=0)
    response = await client.post(
        "/api/admin/campaigns/camp/codes", json={"group": "80plus", "count": 2}, headers=operator()
    )
    assert response.status == 201
    code = (await response.json())["codes"][0]
    first, second = await join(client, access_code=code), await join(client, access_code=code)
    plain = await join(client)
    first_status = await client.get("/api/rooms/room/status", headers=bearer(first["ticket"]))
    second_status = await client.get("/api/rooms/room/status", headers=bearer(second["ticket"]))
    assert (await first_status.json())["position"] == (await second_status.json())["position"]
    assert plain["ticket"] != first["ticket"]

    token = await admitted_token(client, first["ticket"])
    assert (await request_pair(client, token))[1]["state"] == "held"
    # The same code in a second room of the campaign is the same person: no second pair.
    await create_room(client, "room2")
    await client.post("/api/admin/rooms/room2/open", headers=operator())
    other = await admitted_token(
        client, (await join(client, "room2", access_code=code))["ticket"], "room2"
    )
    response = await client.post(
        "/api/rooms/room2/bookings", json={"county": "county-1"}, headers=bearer(other)
    )
    assert (response.status, (await response.json())["error"]["code"]) == (409, "already_booked")


async def test_prequeue_then_opening(client: Client, first_day: dt.date) -> None:
    await create_campaign(client, first_day, counties=1, places=1)
    await create_room(client, opens_in_s=3600, rate_per_s=1000)
    early = [await join(client) for _ in range(5)]
    assert {e["state"] for e in early} == {"prequeue"}
    assert all(e["position"] is None and e["eta_s"] > 3000 for e in early)
    response = await client.post("/api/admin/rooms/room/open", headers=operator())
    stats = await response.json()
    assert (stats["prequeue_size"], stats["lottery_seed"] is not None) == (5, True)
    for e in early:
        await admitted_token(client, e["ticket"])
    late = await join(client)
    assert late["state"] in ("waiting", "admitted")
    stats = await (await client.get("/api/admin/rooms/room/stats", headers=operator())).json()
    assert stats["joined"] == 6 and stats["admitted"] >= 5
