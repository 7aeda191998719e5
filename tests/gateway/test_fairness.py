"""Fair order across two gateways: admission order equals ticket order, step by step.

Visitors join one room through two gateways in turn, before and after the opening.
The test drives the admission steps itself (slow rate, a cap on active bookers, time
passed in) and after each step makes both gateways read the room again, so every
observation is tied to a known cursor: each ticket's status, asked through either
gateway, must say admitted exactly when its place is within the cursor. No wall-clock
race decides anything; the gateways' own refresh is pushed out of the test's way.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from fairq.config import Connections
from gateway.state import GATEWAY
from tests.gateway.conftest import STORM, bearer, create_campaign, create_room, operator
from tests.gateway.test_flow import join
from tests.gateway.twogateways import Client, two_gateways
from waitingroom.admitter import Admitter

PRE_VISITORS = 10
POST_VISITORS = 14
RATE_PER_S = 2.0
MAX_ACTIVE = 3
ADMIT_WINDOW_S = 10  # the shortest a room takes
# time passed in between steps: three short ones (the rate, then the cap holds the
# line), then one past the admission window (the admitted who did not book lapse, and
# one second's worth of the rate comes in)
STEP_GAPS_S = (0.3, 0.4, 0.5, ADMIT_WINDOW_S + 1.0)


@pytest.fixture
async def gateways(connections: Connections) -> AsyncIterator[list[Client]]:
    # rooms read on demand; one client is every visitor (a storm): no per-client limits
    async with two_gateways(connections, refresh_s=3600.0, rate_limits=STORM) as pair:
        yield pair


async def read_room_again(gateways: list[Client]) -> None:
    for gw in gateways:
        assert await gw.app[GATEWAY].rooms.reload("room") is not None


async def status(gw: Client, ticket: str) -> dict[str, Any]:
    response = await gw.get("/api/rooms/room/status", headers=bearer(ticket))
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def places(gateways: list[Client], tickets: list[str]) -> list[int]:
    """Each ticket's place on the timeline while nobody is admitted, the same on both."""
    found = []
    for ticket in tickets:
        seen = {(s["state"], s["position"]) for s in [await status(g, ticket) for g in gateways]}
        assert len(seen) == 1 and next(iter(seen))[0] == "waiting", seen
        found.append(next(iter(seen))[1])
    return found


def inversions(first_admitted: dict[int, int]) -> int:
    """Pairs of places p < q where q was admitted in an earlier step than p."""
    order = [first_admitted[p] for p in sorted(first_admitted)]
    return sum(1 for a, b in itertools.combinations(order, 2) if b < a)


async def test_admission_order_is_ticket_order_across_two_gateways_step_by_step(
    gateways: list[Client], redis: aioredis.Redis, first_day: dt.date
) -> None:
    await create_campaign(gateways[0], first_day)
    await create_room(
        gateways[1], rate_per_s=RATE_PER_S, max_active=MAX_ACTIVE, admit_window_s=ADMIT_WINDOW_S
    )
    visitors = PRE_VISITORS + POST_VISITORS
    tickets = [(await join(gateways[i % 2]))["ticket"] for i in range(PRE_VISITORS)]
    opened = await gateways[0].post("/api/admin/rooms/room/open", headers=operator())
    assert opened.status == 200, await opened.text()
    await read_room_again(gateways)
    tickets += [(await join(gateways[i % 2]))["ticket"] for i in range(PRE_VISITORS, visitors)]
    place_of = dict(zip(tickets, await places(gateways, tickets), strict=True))
    assert sorted(place_of.values()) == list(range(1, visitors + 1))

    admitter = Admitter(redis, "test", leader_ttl_s=3600.0)
    first_admitted: dict[int, int] = {}  # place -> the step that first showed it admitted
    now, cursors, actives = time.time(), [0], []
    for step, gap in enumerate(itertools.cycle(STEP_GAPS_S), start=1):
        now += gap
        snap = (await admitter.step(now))["room"].snapshot
        cursors.append(snap.cursor)
        actives.append(snap.active)
        await read_room_again(gateways)
        for i, ticket in enumerate(tickets):  # asked through either gateway, in turn
            seen = await status(gateways[(i + step) % 2], ticket)
            place = place_of[ticket]
            if seen["state"] == "admitted":
                first_admitted.setdefault(place, step)
            expected = ("admitted", 0) if place <= snap.cursor else ("waiting", place - snap.cursor)
            assert (seen["state"], seen["position"]) == expected, (step, place, seen)
        if snap.cursor == visitors:
            break
        assert step < 100, f"the line stopped at {snap.cursor} of {visitors}"

    assert sorted(first_admitted) == list(range(1, visitors + 1))
    assert inversions(first_admitted) == 0
    admitted_by_step = [b - a for a, b in itertools.pairwise(cursors)]
    assert sum(1 for n in admitted_by_step if n) >= 5  # several admission steps
    assert 0 in admitted_by_step  # some admitted nobody: the rate or the cap held the line
    assert max(actives) == MAX_ACTIVE  # the cap was reached, never passed
