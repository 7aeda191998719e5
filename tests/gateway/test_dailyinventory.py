"""Inventory per county, center and day over HTTP, asked of the real allocator."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from fairq.config import Connections
from fairq.demo import SMALL_DOSE_INTERVAL_DAYS
from tests.gateway.conftest import create_campaign, create_room, gateway_client, operator
from tests.gateway.test_flow import admitted_visitor, request_pair

Client = TestClient[Any, Any]
DAILY = "/api/admin/campaigns/camp/inventory/daily"


def row(center: str, day: dt.date, capacity: int, free: int, **booked: int) -> dict[str, Any]:
    figures = {"held": 0, "confirmed": 0, "reserved": 0} | booked
    return {"center": center, "day": day.isoformat(), "capacity": capacity, "free": free} | figures


async def daily(client: Client, query: str = "") -> dict[str, Any]:
    response = await client.get(DAILY + query, headers=operator())
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


@pytest.mark.usefixtures("allocator", "admitter")
async def test_places_per_center_and_day_follow_a_hold_and_a_confirmation(
    client: Client, first_day: dt.date
) -> None:
    await create_campaign(client, first_day, counties=2, places=4)
    await create_room(client, opens_in_s=0)
    dose2_day = first_day + dt.timedelta(days=SMALL_DOSE_INTERVAL_DAYS)
    center = "county-1-center-1"

    body = await daily(client)
    assert (body["asked"], body["answered"], body["missing"]) == (2, 2, [])
    assert body["counties"]["county-1"]["reason"] is None
    assert body["counties"]["county-1"]["centers"] == [
        row(center, first_day, 4, 4),
        row(center, dose2_day, 4, 4),
    ]
    assert body["counties"]["county-2"]["centers"][0]["center"] == "county-2-center-1"

    token = await admitted_visitor(client)
    booking_id, held = await request_pair(client, token)
    assert held["state"] == "held"
    body = await daily(client, "?county=county-1")
    assert list(body["counties"]) == ["county-1"]
    assert body["counties"]["county-1"]["centers"] == [
        row(center, first_day, 4, 3, held=1),
        row(center, dose2_day, 4, 3, held=1),
    ]
    confirmed = await client.post(
        f"/api/bookings/{booking_id}/confirm", headers={"Authorization": f"Bearer {token}"}
    )
    assert confirmed.status == 200
    centers = (await daily(client, "?county=county-1"))["counties"]["county-1"]["centers"]
    assert centers[0] == row(center, first_day, 4, 3, confirmed=1)
    untouched = (await daily(client, "?county=county-2"))["counties"]["county-2"]["centers"]
    assert [r["free"] for r in untouched] == [4, 4]


async def test_without_an_answer_in_time_the_counties_are_missing(
    connections: Connections, first_day: dt.date
) -> None:
    """No allocator runs: the questions are on the log, and the answer says what is missing."""
    async with gateway_client(connections, answer_wait_s=0.0) as client:
        await create_campaign(client, first_day, counties=2)
        response = await client.get(DAILY, headers=operator())
        assert response.status == 202
        body = await response.json()
        assert (body["asked"], body["answered"]) == (2, 0)
        assert (body["missing"], body["counties"]) == (["county-1", "county-2"], {})


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/admin/campaigns/nope/inventory/daily", 404, "unknown_campaign"),
        (DAILY + "?county=county-9", 400, "unknown_county"),
        (DAILY + "?county=", 400, "unknown_county"),
    ],
)
async def test_an_unknown_campaign_or_county_is_a_clear_error(
    client: Client, first_day: dt.date, path: str, status: int, code: str
) -> None:
    await create_campaign(client, first_day)
    response = await client.get(path, headers=operator())
    assert response.status == status
    assert (await response.json())["error"]["code"] == code


async def test_it_is_for_operators(client: Client, first_day: dt.date) -> None:
    await create_campaign(client, first_day)
    assert (await client.get(DAILY)).status == 401
    wrong = {"Authorization": "Bearer not-the-operator-key-at-all"}
    assert (await client.get(DAILY, headers=wrong)).status == 403
