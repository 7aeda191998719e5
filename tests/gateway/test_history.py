"""The rooms' last hour, kept in Redis: one point per time bucket whichever gateways
sample, read the same from any gateway, rates from counter differences, trimmed."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from aiohttp.test_utils import TestClient

from fairq.config import Connections
from gateway.history import HISTORY, KEEP_S, History
from gateway.state import GATEWAY
from tests.gateway.conftest import create_campaign, create_room, operator
from tests.gateway.twogateways import two_gateways

Client = TestClient[Any, Any]
STEP_S = 10.0


def history_of(client: Client, now_s: float) -> History:
    """The gateway's history writer, its clock set to ``now_s``."""
    client.app[GATEWAY].clock = lambda: now_s
    history: History = client.app[HISTORY]
    return history


async def read(client: Client) -> dict[str, Any]:
    response = await client.get("/api/admin/rooms/room/history", headers=operator())
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def test_two_gateways_share_one_history(connections: Connections, first_day: dt.date) -> None:
    # a step long enough that the background samplers write no more than once
    async with two_gateways(connections, history_step_s=STEP_S) as (one, two):
        await create_campaign(one, first_day)
        await create_room(one)
        await one.post("/api/admin/rooms/room/open", headers=operator())
        start = (int(time.time() // STEP_S) + 100) * STEP_S  # a bucket nobody sampled
        # the second gateway never served the room: it finds it in Redis
        assert await history_of(two, start).sample() == 1
        assert await history_of(one, start + 1).sample() == 0  # the same bucket: taken
        for _ in range(5):
            one.session.cookie_jar.clear()  # a new visitor each time
            assert (await one.post("/api/rooms/room/join")).status == 200
        for gateway in (one, two):  # the figures now, not at the next refresh
            await gateway.app[GATEWAY].rooms.reload("room")
        assert await history_of(two, start + STEP_S).sample() == 1
        for client in (one, two):
            body = await read(client)
            assert body["t"][-2:] == [start, start + STEP_S]
            assert body["queue_depth"][-2:] == [0, 5]
            assert body["arrivals_per_s"][-1] == 5 / STEP_S
            assert body["admissions_per_s"][-1] == 0
            assert len(body["pairs_left"]) == len(body["t"])


async def test_points_older_than_the_kept_span_are_trimmed(
    client: Client, first_day: dt.date
) -> None:
    await create_campaign(client, first_day)
    await create_room(client)
    step = client.app[GATEWAY].settings.history_step_s
    start = (int(time.time() // step) + 1000) * step
    await history_of(client, start).sample()
    later = start + KEEP_S + 2 * step
    await history_of(client, later).sample()
    assert (await read(client))["t"] == [later]


async def test_the_history_of_an_unknown_room_is_a_404(client: Client) -> None:
    response = await client.get("/api/admin/rooms/nope/history", headers=operator())
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "unknown_room"
