"""The operator's message to a room and the room's default language: set by the operator,
carried by the room info, the status and the status events of every gateway."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from fairq.config import Connections
from tests.gateway.conftest import create_campaign, create_room, operator
from tests.gateway.test_flow import join
from tests.gateway.twogateways import two_gateways
from tests.sse import sse_events

Client = TestClient[Any, Any]
MESSAGE = {"de": "Heute nur mit Termin.", "en": "Today by appointment only."}


async def put_message(client: Client, body: Any, room: str = "room") -> Any:
    return await client.put(f"/api/admin/rooms/{room}/message", json=body, headers=operator())


async def test_a_message_reaches_the_status_its_events_and_the_room_info(
    connections: Connections, first_day: dt.date
) -> None:
    async with two_gateways(connections) as (first, second):
        await create_campaign(first, first_day)
        # a paused line: nothing but the message changes what a waiting visitor is told
        await create_room(first, opens_in_s=0, max_active=0)
        await first.post("/api/admin/rooms/room/open", headers=operator())
        await first.post("/api/admin/rooms/room/pause", headers=operator())
        ticket = (await join(second))["ticket"]
        events = await second.get("/api/rooms/room/events", params={"ticket": ticket})
        stream = sse_events(events)
        assert (await anext(stream))[1]["message"] is None
        response = await put_message(first, MESSAGE)
        assert response.status == 200
        assert await response.json() == {"room": "room", "message": MESSAGE}
        # the other gateway learns it from its room cache and pushes it to the open page
        assert (await anext(stream))[1]["message"] == MESSAGE
        status = await second.get("/api/rooms/room/status", params={"ticket": ticket})
        assert (await status.json())["message"] == MESSAGE
        assert (await (await second.get("/api/rooms/room")).json())["message"] == MESSAGE
        only_german = await put_message(first, {"de": "Nur Deutsch."})
        assert (await only_german.json())["message"] == {"de": "Nur Deutsch.", "en": None}
        assert (await anext(stream))[1]["message"] == {"de": "Nur Deutsch.", "en": None}
        cleared = await put_message(first, {})
        assert (await cleared.json())["message"] is None
        assert (await anext(stream))[1]["message"] is None
        events.close()


@pytest.mark.parametrize(
    "body",
    [
        {"de": ""},
        {"en": "x" * 501},
        {"de": None, "en": None},
        {"fr": "Bonjour"},
        {"de": 5},
        [],
    ],
)
async def test_a_bad_message_is_refused_and_changes_nothing(
    client: Client, first_day: dt.date, body: Any
) -> None:
    await create_campaign(client, first_day)
    await create_room(client)
    assert (await put_message(client, MESSAGE)).status == 200
    response = await put_message(client, body)
    assert response.status == 400
    assert (await response.json())["error"]["code"] in ("invalid_request", "invalid_json")
    assert (await (await client.get("/api/rooms/room")).json())["message"] == MESSAGE


async def test_only_the_operator_sets_a_message_of_a_known_room(
    client: Client, first_day: dt.date
) -> None:
    await create_campaign(client, first_day)
    await create_room(client)
    anonymous = await client.put("/api/admin/rooms/room/message", json=MESSAGE)
    assert anonymous.status in (401, 403)
    unknown = await put_message(client, MESSAGE, room="nope")
    assert (unknown.status, (await unknown.json())["error"]["code"]) == (404, "unknown_room")


async def test_the_room_sets_the_pages_default_language(client: Client, first_day: dt.date) -> None:
    await create_campaign(client, first_day)
    await create_room(client)
    assert (await (await client.get("/api/rooms/room")).json())["language"] == "de"
    await create_room(client, language="en")
    info = await (await client.get("/api/rooms/room")).json()
    assert (info["language"], info["admit_window_s"]) == ("en", 600)
    other = await client.put("/api/admin/rooms/room", json={"language": "fr"}, headers=operator())
    assert other.status == 400
    assert (await (await client.get("/api/rooms/room")).json())["language"] == "en"
