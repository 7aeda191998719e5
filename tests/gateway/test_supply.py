"""Operators shape supply over HTTP: priority reserves and removing slots, end to end."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient

from fairq.demo import DEMO_TIMEZONE
from tests.gateway.conftest import create_campaign, create_room, operator
from tests.gateway.test_callcenter import issue_codes, phone_book
from tests.gateway.test_flow import admitted_visitor, request_pair

pytestmark = pytest.mark.usefixtures("allocator", "admitter")

Client = TestClient[Any, Any]
CENTER = "county-1-center-1"


def nine_am(day: dt.date) -> str:
    """The start of the small campaign's slot on ``day``, with its UTC offset."""
    return dt.datetime.combine(day, dt.time(9), ZoneInfo(DEMO_TIMEZONE)).isoformat()


def reserve(first_day: dt.date, **overrides: Any) -> dict[str, Any]:
    return {
        "center": CENTER,
        "from": first_day.isoformat(),
        "to": (first_day + dt.timedelta(days=21)).isoformat(),
        "group": "80plus",
        "share_pct": 50,
        "mode": "over_and_above",
        "release_at": "2099-01-01T00:00:00Z",
    } | overrides


async def test_a_reserve_keeps_places_for_its_group(client: Client, first_day: dt.date) -> None:
    await create_campaign(client, first_day, counties=1, places=4)
    await create_room(client, opens_in_s=0)
    visitors = [await admitted_visitor(client) for _ in range(3)]
    response = await client.post(
        "/api/admin/campaigns/camp/reserves", json=reserve(first_day), headers=operator()
    )
    assert response.status == 200, await response.text()
    body = await response.json()
    assert (body["days"], body["answered"], body["refused"]) == (22, 22, [])
    assert body["places_reserved"] == 4  # half of the 4 places on each of the two slot days

    held = [(await request_pair(client, v))[1] for v in visitors]
    assert [v["state"] for v in held] == ["held", "held", "rejected"]
    assert held[2]["reason"] == "reserved_for_priority_group"
    [code] = await issue_codes(client, 1)  # issued for the group 80plus
    status, priority = await phone_book(client, code)
    assert (status, priority["state"]) == (201, "held")


async def test_a_second_group_reserves_on_the_same_days_up_to_100_pct(
    client: Client, first_day: dt.date
) -> None:
    await create_campaign(client, first_day, counties=1, places=4)
    await create_room(client, opens_in_s=0)
    visitors = [await admitted_visitor(client) for _ in range(2)]
    url = "/api/admin/campaigns/camp/reserves"
    first = await client.post(url, json=reserve(first_day), headers=operator())
    assert (await first.json())["places_reserved"] == 4
    medical = reserve(first_day, group="medical", share_pct=25, mode="minimum_guarantee")
    second = await client.post(url, json=medical, headers=operator())
    assert second.status == 200, await second.text()
    body = await second.json()
    assert (body["group"], body["answered"], body["refused"]) == ("medical", 22, [])
    assert body["places_reserved"] == 2  # 1 of the 4 places on each of the two slot days

    too_much = await client.post(url, json=reserve(first_day, group="staff"), headers=operator())
    assert too_much.status == 200, await too_much.text()
    body = await too_much.json()
    assert (body["answered"], body["places_reserved"]) == (22, 0)
    assert {r["reason"] for r in body["refused"]} == {"reserve_shares_over_100"}
    assert len(body["refused"]) == 22

    held = [(await request_pair(client, v))[1] for v in visitors]
    assert [v["state"] for v in held] == ["held", "rejected"]  # 1 open place per slot
    assert held[1]["reason"] == "reserved_for_priority_group"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"center": "nowhere"}, "unknown_center"),
        ({"mode": "first_come"}, "invalid_request"),
        ({"share_pct": 101}, "invalid_request"),
        ({"release_at": "2099-01-01T00:00:00"}, "invalid_request"),
        ({"to": "2000-01-01"}, "invalid_request"),
        ({"group": 7}, "invalid_request"),
        ({"colour": "red"}, "invalid_request"),
    ],
)
async def test_bad_reserves_are_refused(
    client: Client, first_day: dt.date, change: dict[str, Any], field: str
) -> None:
    await create_campaign(client, first_day, counties=1, places=4)
    response = await client.post(
        "/api/admin/campaigns/camp/reserves", json=reserve(first_day, **change), headers=operator()
    )
    assert response.status == 400
    assert (await response.json())["error"]["code"] == field


async def test_remove_slots_all_or_none(client: Client, first_day: dt.date) -> None:
    await create_campaign(client, first_day, counties=2, places=1)
    await create_room(client, opens_in_s=0)
    first, second = await admitted_visitor(client), await admitted_visitor(client)
    await request_pair(client, first)  # county-1's only pair

    def removal(center: str, *days: dt.date) -> dict[str, Any]:
        return {"center": center, "vaccine": "comirnaty", "starts": [nine_am(d) for d in days]}

    url = "/api/admin/campaigns/camp/inventory/remove"
    in_use = await client.post(url, json=removal(CENTER, first_day), headers=operator())
    assert (in_use.status, (await in_use.json())["error"]["code"]) == (409, "slot_in_use")
    unknown = await client.post(
        url, json=removal("county-2-center-1", first_day, dt.date(2099, 1, 1)), headers=operator()
    )
    assert (unknown.status, (await unknown.json())["error"]["code"]) == (409, "unknown_slot")
    dose2 = first_day + dt.timedelta(days=21)
    removed = await client.post(
        url, json=removal("county-2-center-1", first_day, dose2), headers=operator()
    )
    assert removed.status == 200, await removed.text()
    assert (await removed.json())["slots_removed"] == 2
    _, nothing = await request_pair(client, second, county="county-2")  # admitted before sold out
    assert (nothing["state"], nothing["reason"]) == ("rejected", "sold_out")

    bad = await client.post(
        url, json={"center": CENTER, "vaccine": "comirnaty", "starts": ["noon"]}, headers=operator()
    )
    assert bad.status == 400
