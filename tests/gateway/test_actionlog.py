"""Every operator action is recorded (who, when, what, before and after) by one door
on every ``/api/admin/`` route, and listed by ``GET /api/admin/audit``."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.frontdoor import FRONT_DOOR, Access, label_of
from gateway.operators import API_KEY_WHO
from gateway.sessions import CSRF_HEADER, SAFE_METHODS
from tests.gateway.conftest import create_campaign, create_room, operator
from tests.gateway.test_console import open_room_and_sign_in, with_cookie

Client = TestClient[Any, Any]


async def actions(client: Client) -> list[dict[str, Any]]:
    response = await client.get("/api/admin/audit", headers=operator())
    assert response.status == 200
    found: list[dict[str, Any]] = (await response.json())["actions"]
    return found


async def test_a_pause_is_recorded_with_who_before_and_after(
    client: Client, first_day: dt.date
) -> None:
    value, csrf = await open_room_and_sign_in(client, first_day)
    response = await client.post(
        "/api/admin/rooms/room/pause", headers=with_cookie(value, **{CSRF_HEADER: csrf})
    )
    assert response.status == 200
    newest = (await actions(client))[0]
    assert newest["who"] == "Ada"
    assert newest["action"] == "POST /api/admin/rooms/{room}/pause"
    assert newest["target"] == {"room": "room"}
    assert newest["status"] == 200
    assert newest["before"]["state"] == "open"
    assert newest["after"]["state"] == "paused"
    assert dt.datetime.fromisoformat(newest["at"]) <= dt.datetime.now(dt.UTC)


async def test_a_refused_change_is_recorded_and_changes_nothing(
    client: Client, first_day: dt.date
) -> None:
    await create_campaign(client, first_day)
    await create_room(client, rate_per_s=5)
    response = await client.put(
        "/api/admin/rooms/room/admission", json={"rate_per_s": -1}, headers=operator()
    )
    assert response.status == 400
    newest = (await actions(client))[0]
    assert newest["who"] == API_KEY_WHO
    assert newest["status"] == 400
    assert newest["error"] == "invalid_request"
    assert newest["request"] == {"rate_per_s": -1}
    assert newest["before"] == newest["after"]
    assert newest["after"]["rate_per_s"] == 5


async def test_reads_are_not_recorded(client: Client, first_day: dt.date) -> None:
    await create_campaign(client, first_day)
    before = len(await actions(client))
    await client.get("/api/admin/campaigns/camp", headers=operator())
    assert len(await actions(client)) == before


def _sample_path(canonical: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", canonical)


async def test_every_changing_operator_route_is_recorded(client: Client) -> None:
    """Whatever module added it: each non-read /api/admin/ route, called with a body it
    refuses, leaves one entry (so a new route cannot skip the record)."""
    app: web.Application = client.app
    calls = [
        (route.method, label_of(route))
        for route, plan in app[FRONT_DOOR].plans().items()
        if plan.access is Access.OPERATOR and route.method not in SAFE_METHODS
    ]
    assert len(calls) >= 10, calls
    for method, canonical in calls:
        await client.request(method, _sample_path(canonical), data=b"{", headers=operator())
    recorded = [(a["action"], a["status"]) for a in await actions(client)]
    assert sorted(a for a, _ in recorded) == sorted(f"{m} {c}" for m, c in calls)
    assert all(status >= 400 for _, status in recorded)


async def test_an_unauthenticated_attempt_is_not_recorded(client: Client) -> None:
    response = await client.post("/api/admin/rooms/room/pause")
    assert response.status == 401
    assert await actions(client) == []


async def test_the_list_pages_and_refuses_bad_paging(client: Client, first_day: dt.date) -> None:
    await create_campaign(client, first_day)
    for rate in (1, 2, 3):
        await create_room(client, rate_per_s=rate)
    page = await client.get("/api/admin/audit?offset=1&limit=1", headers=operator())
    entries = (await page.json())["actions"]
    assert [e["request"]["rate_per_s"] for e in entries] == [2]
    bad = await client.get("/api/admin/audit?limit=-1", headers=operator())
    assert bad.status == 400
