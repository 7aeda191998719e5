"""Booking changes over HTTP: moving a pair, time-of-day wishes and the waitlist.

Real gateway, admitter and allocator on the test's Redis and broker.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient
from aiokafka.partitioner import DefaultPartitioner

from fairq.config import Connections
from gateway.bookings import booking_id_for
from gateway.state import GATEWAY
from schemas.commands import Book
from tests.conftest import TEST_PARTITIONS
from tests.gateway.conftest import bearer, create_campaign, create_room, operator
from tests.gateway.test_callcenter import issue_codes, phone_book
from tests.gateway.test_flow import (
    admitted_token,
    admitted_visitor,
    booking_stream,
    join,
    request_pair,
)
from tests.gateway.test_identities import claims, commands_on_log
from tests.sse import sse_events
from waitingroom import keys

pytestmark = pytest.mark.usefixtures("allocator", "admitter")

Client = TestClient[Any, Any]


def centers(view: dict[str, Any]) -> set[str]:
    return {a["center"] for a in view["appointments"]}


async def next_change(client: Client, booking_id: str, token: str, state: str) -> dict[str, Any]:
    """Follow the booking's stream until it is in ``state``."""
    response = await client.get(f"/api/bookings/{booking_id}/events", params={"token": token})
    async for _, view in sse_events(response):
        if view["state"] == state:
            response.close()
            return dict(view)
    raise AssertionError(f"the booking stream ended before {state}")


async def test_move_keeps_reference_and_state(client: Client, first_day: dt.date) -> None:
    await create_campaign(client, first_day, counties=1, centers_per_county=2, places=1)
    await create_room(client, opens_in_s=0)
    token = await admitted_visitor(client)
    booking_id, held = await request_pair(client, token)
    assert centers(held) == {"county-1-center-1"}
    confirmed = await client.post(f"/api/bookings/{booking_id}/confirm", headers=bearer(token))
    assert confirmed.status == 200

    moved = await client.post(
        f"/api/bookings/{booking_id}/move",
        json={"center": "county-1-center-2"},
        headers=bearer(token),
    )
    assert moved.status == 200, await moved.text()
    body = await moved.json()
    assert (body["booking_id"], body["state"], body["moves"]) == (booking_id, "confirmed", 1)
    assert centers(body) == {"county-1-center-2"}
    # The old pair went back to the pool: the next visitor gets it.
    _, other = await request_pair(client, await admitted_visitor(client))
    assert (other["state"], centers(other)) == ("held", {"county-1-center-1"})


async def test_move_without_a_pair_changes_nothing(client: Client, first_day: dt.date) -> None:
    await create_campaign(client, first_day, counties=2, places=1)
    await create_room(client, opens_in_s=0)
    token = await admitted_visitor(client)
    booking_id, held = await request_pair(client, token)

    nowhere = await client.post(
        f"/api/bookings/{booking_id}/move", json={"earliest": "2099-01-01"}, headers=bearer(token)
    )
    assert nowhere.status == 409
    error = (await nowhere.json())["error"]
    assert error["code"] in ("sold_out", "no_pair_in_window")
    assert error["booking"]["appointments"] == held["appointments"]
    for body, code in [
        ({"county": "county-1", "center": "county-2-center-1"}, "center_not_in_county"),
        ({"county": "atlantis"}, "unknown_county"),
        ({"center": "atlantis-center"}, "unknown_center"),
        ({"county": 7}, "invalid_request"),
    ]:
        bad = await client.post(
            f"/api/bookings/{booking_id}/move", json=body, headers=bearer(token)
        )
        assert (bad.status, (await bad.json())["error"]["code"]) == (400, code), body
    after = await client.get(f"/api/bookings/{booking_id}", headers=bearer(token))
    assert (await after.json())["appointments"] == held["appointments"]


async def test_time_of_day_is_a_strict_wish(client: Client, first_day: dt.date) -> None:
    await create_campaign(client, first_day, counties=1, places=2)  # slots at 09:00
    await create_room(client, opens_in_s=0)
    _, evening = await request_pair(client, await admitted_visitor(client), time_of_day="evening")
    assert (evening["state"], evening["reason"]) == ("rejected", "no_pair_at_time_of_day")
    _, morning = await request_pair(client, await admitted_visitor(client), time_of_day="morning")
    assert morning["state"] == "held"
    token = await admitted_visitor(client)
    bad = await client.post(
        "/api/rooms/room/bookings",
        json={"county": "county-1", "time_of_day": "night"},
        headers=bearer(token),
    )
    assert (bad.status, (await bad.json())["error"]["code"]) == (400, "invalid_request")


async def test_waitlisted_booking_gets_the_freed_pair(client: Client, first_day: dt.date) -> None:
    await create_campaign(client, first_day, counties=1, places=1)
    await create_room(client, opens_in_s=0)
    first, second = await admitted_visitor(client), await admitted_visitor(client)
    first_id, _ = await request_pair(client, first)  # the room is sold out from here
    second_id, waiting = await request_pair(client, second, waitlist=True)
    assert (waiting["state"], waiting["appointments"]) == ("waitlisted", [])

    cancelled = await client.post(f"/api/bookings/{first_id}/cancel", headers=bearer(first))
    assert cancelled.status == 200
    offered = await next_change(client, second_id, second, "held")
    assert offered["offered"] is True
    assert centers(offered) == {"county-1-center-1"}
    confirmed = await client.post(f"/api/bookings/{second_id}/confirm", headers=bearer(second))
    assert (await confirmed.json())["state"] == "confirmed"


async def test_a_waitlisted_booking_can_be_cancelled(client: Client, first_day: dt.date) -> None:
    await create_campaign(client, first_day, counties=1, places=1)
    await create_room(client, opens_in_s=0)
    first, second = await admitted_visitor(client), await admitted_visitor(client)
    first_id, _ = await request_pair(client, first)
    second_id, waiting = await request_pair(client, second, waitlist=True)
    assert waiting["state"] == "waitlisted"

    left = await client.post(f"/api/bookings/{second_id}/cancel", headers=bearer(second))
    assert (left.status, (await left.json())["state"]) == (200, "cancelled"), await left.text()
    # Its place on the waitlist is gone: the pair freed next goes back to the pool.
    assert (await client.post(f"/api/bookings/{first_id}/cancel", headers=bearer(first))).ok
    _, third = await request_pair(client, await admitted_visitor(client))
    assert third["state"] == "held"
    after = await client.get(f"/api/bookings/{second_id}", headers=bearer(second))
    assert (await after.json())["state"] == "cancelled"
    again = await client.post(f"/api/bookings/{second_id}/cancel", headers=bearer(second))
    assert (again.status, (await again.json())["error"]["code"]) == (409, "not_cancellable")


async def wait_sold_out(client: Client, ticket: str) -> dict[str, Any]:
    response = await client.get("/api/rooms/room/events", params={"ticket": ticket})
    async for _, status in sse_events(response):
        if status["state"] == "sold_out":
            response.close()
            return dict(status)
    raise AssertionError("the room never said sold out")


async def test_room_waitlist_while_sold_out(client: Client, first_day: dt.date) -> None:
    await create_campaign(client, first_day, counties=1, places=1)
    await create_room(client, opens_in_s=0, rate_per_s=1000, max_active=1)
    booker = await admitted_visitor(client)
    waiting = (await join(client))["ticket"]  # behind the booker, who is the one active
    early = await client.post(
        "/api/rooms/room/waitlist", json={"county": "county-1"}, headers=bearer(waiting)
    )
    assert (early.status, (await early.json())["error"]["code"]) == (409, "not_sold_out")

    await request_pair(client, booker)  # takes the only pair
    sold_out = await wait_sold_out(client, waiting)
    assert sold_out["waitlist"] == "/api/rooms/room/waitlist"
    joined = await client.post(
        "/api/rooms/room/waitlist", json={"county": "county-1"}, headers=bearer(waiting)
    )
    assert joined.status == 202, await joined.text()
    body = await joined.json()
    booking_id, token = body["booking_id"], body["booking_token"]
    assert (await booking_stream(client, booking_id, token))[-1]["state"] == "waitlisted"
    again = await client.post(
        "/api/rooms/room/waitlist", json={"county": "county-1"}, headers=bearer(waiting)
    )
    assert (again.status, (await again.json())["error"]["code"]) == (409, "already_waiting")
    # The waitlist's token reads its booking but makes no booking of its own.
    sneaky = await client.post(
        "/api/rooms/room/bookings", json={"county": "county-1"}, headers=bearer(token)
    )
    assert sneaky.status in (401, 409)

    start = dt.datetime.combine(first_day, dt.time(10, 0)).isoformat(timespec="minutes")
    dose2 = dt.datetime.combine(first_day + dt.timedelta(days=21), dt.time(10, 0)).isoformat(
        timespec="minutes"
    )
    slots = [
        {"center": "county-1-center-1", "vaccine": "comirnaty", "start": s, "capacity": 1}
        for s in (start, dose2)
    ]
    added = await client.post(
        "/api/admin/campaigns/camp/inventory", json={"slots": slots}, headers=operator()
    )
    assert added.status == 202, await added.text()  # the test gateway waits for no answer
    offered = await next_change(client, booking_id, token, "held")
    assert offered["offered"] is True
    assert offered["appointments"][0]["start"].startswith(f"{first_day.isoformat()}T10:00")


def partition_of(county: str) -> int:
    """The partition a county's commands go to (the gateway producer's partitioner)."""
    return int(DefaultPartitioner()(county.encode(), ALL_PARTITIONS, ALL_PARTITIONS))


ALL_PARTITIONS = list(range(TEST_PARTITIONS))


async def test_a_booking_moves_to_a_county_of_another_partition(
    client: Client, first_day: dt.date
) -> None:
    assert partition_of("county-1") != partition_of("county-2")  # else this tests nothing new
    await create_campaign(client, first_day, counties=2, places=1)
    await create_room(client, opens_in_s=0)
    token = await admitted_visitor(client)
    booking_id, held = await request_pair(client, token)
    assert centers(held) == {"county-1-center-1"}

    moved = await client.post(
        f"/api/bookings/{booking_id}/move",
        json={"center": "county-2-center-1"},  # the county follows from the center
        headers=bearer(token),
    )
    assert moved.status == 200, await moved.text()
    body = await moved.json()
    assert (body["booking_id"], body["state"], body["moves"]) == (booking_id, "held", 1)
    assert centers(body) == {"county-2-center-1"}
    assert body["hold_expires_at"] == held["hold_expires_at"]
    # its commands now go to the new county's partition
    confirmed = await client.post(f"/api/bookings/{booking_id}/confirm", headers=bearer(token))
    assert confirmed.status == 200, await confirmed.text()
    back = await client.post(
        f"/api/bookings/{booking_id}/move", json={"county": "county-1"}, headers=bearer(token)
    )
    assert back.status == 200, await back.text()
    body = await back.json()
    assert (body["state"], body["moves"], centers(body)) == ("confirmed", 2, {"county-1-center-1"})
    # the pair in county 2 is free again: the next visitor gets it
    _, other = await request_pair(client, await admitted_visitor(client), county="county-2")
    assert (other["state"], centers(other)) == ("held", {"county-2-center-1"})


async def test_a_code_holding_a_pair_cannot_wait_for_another(
    client: Client, first_day: dt.date
) -> None:
    await create_campaign(client, first_day, counties=2, places=1)
    await create_room(client, opens_in_s=0, max_active=2)
    issued = await client.post(
        "/api/admin/campaigns/camp/codes", json={"group": "80plus", "count": 1}, headers=operator()
    )
    [code] = (await issued.json())["codes"]
    ticket = (await join(client, access_code=code))["ticket"]
    token = await admitted_token(client, ticket)
    assert (await request_pair(client, token))[1]["state"] == "held"
    other = await admitted_visitor(client)
    assert (await request_pair(client, other, county="county-2"))[1]["state"] == "held"
    plain = (await join(client))["ticket"]  # not admitted: the two bookers are active
    await wait_sold_out(client, plain)

    # County 2 is another county (here: another partition): the code's claim refuses it.
    refused = await client.post(
        "/api/rooms/room/waitlist", json={"county": "county-2"}, headers=bearer(ticket)
    )
    assert (refused.status, (await refused.json())["error"]["code"]) == (409, "already_booked")
    joined = await client.post(
        "/api/rooms/room/waitlist", json={"county": "county-2"}, headers=bearer(plain)
    )
    assert joined.status == 202, await joined.text()


async def test_a_lapsed_turn_makes_no_booking(
    client: Client, first_day: dt.date, redis: aioredis.Redis
) -> None:
    """An admitted visitor who lets the turn pass loses the place to the next in line,
    and a token issued afterwards books nothing: the cap holds (one active booker)."""
    await create_campaign(client, first_day, counties=1, places=2)
    await create_room(client, opens_in_s=0, rate_per_s=1000, max_active=1)
    first = (await join(client))["ticket"]
    await admitted_token(client, first)
    second = (await join(client))["ticket"]
    active = keys.room_active("room")
    [place] = await redis.zrange(active, 0, -1)
    assert isinstance(place, bytes)
    await redis.zadd(active, {place: 0})  # the first visitor's turn has passed
    booker = await admitted_token(client, second)  # the admitter gave the place on
    await request_pair(client, booker)

    status = await client.get("/api/rooms/room/status", headers=bearer(first))
    late_token = (await status.json())["booking_token"]  # the status still says admitted
    late = await client.post(
        "/api/rooms/room/bookings", json={"county": "county-1"}, headers=bearer(late_token)
    )
    assert (late.status, (await late.json())["error"]["code"]) == (409, "admission_lapsed")
    stats = await client.get("/api/admin/rooms/room/stats", headers=operator())
    assert (await stats.json())["active"] == 1
    # Joining again with the passed ticket gives a new place, at the back of the line.
    rejoined = await client.post("/api/rooms/room/join", headers=bearer(first))
    assert (await rejoined.json())["ticket"] != first
    active_again = await client.post("/api/rooms/room/join", headers=bearer(second))
    assert (await active_again.json())["ticket"] == second  # booking: the turn is kept


async def test_a_booking_may_name_only_a_center(client: Client, first_day: dt.date) -> None:
    """Online and on the phone: the center's county is the booking's."""
    await create_campaign(client, first_day, counties=2, places=2)
    await create_room(client, opens_in_s=0)
    token = await admitted_visitor(client)
    response = await client.post(
        "/api/rooms/room/bookings", json={"center": "county-2-center-1"}, headers=bearer(token)
    )
    assert response.status == 202, await response.text()
    booking_id = (await response.json())["booking_id"]
    held = (await booking_stream(client, booking_id, token))[-1]
    assert (held["state"], centers(held)) == ("held", {"county-2-center-1"})
    [code] = await issue_codes(client, 1)
    status, phoned = await phone_book(client, code, county=None, center="county-2-center-1")
    assert (status, centers(phoned)) == (201, {"county-2-center-1"})


async def test_a_token_admitted_in_one_room_books_nothing_in_another(
    client: Client, first_day: dt.date, redis: aioredis.Redis, connections: Connections
) -> None:
    """A real booking token (not a forged one) of room A on room B's bookings: 403
    ``wrong_room``; no booking record, no claim, no used token, nothing on the log, the
    admitted place in A untouched, and the token still books in A."""
    await create_campaign(client, first_day, counties=1, places=2)
    await create_room(client, "room", opens_in_s=0)
    await create_room(client, "room2", opens_in_s=0)
    token = await admitted_visitor(client)  # admitted in "room"
    gw = client.app[GATEWAY]
    verified = gw.signer.verify_booking_token(token, gw.clock())
    assert verified.room == "room"
    place = str(verified.position)
    deadline_s = await redis.zscore(keys.room_active("room"), place)
    claims_before = await claims(redis)

    response = await client.post(
        "/api/rooms/room2/bookings", json={"county": "county-1"}, headers=bearer(token)
    )
    assert response.status == 403, await response.text()
    assert (await response.json())["error"]["code"] == "wrong_room"
    booking_id = booking_id_for(verified)
    assert await redis.exists(keys.booking(booking_id), keys.token_booking(verified.token_id)) == 0
    assert await claims(redis) == claims_before
    assert await redis.zscore(keys.room_active("room"), place) == deadline_s
    assert await redis.zscore(keys.room_active("room2"), place) is None
    assert not [c for _, c in await commands_on_log(connections) if isinstance(c, Book)]

    booked_id, held = await request_pair(client, token)  # in its own room
    assert (booked_id, held["state"]) == (booking_id, "held")
