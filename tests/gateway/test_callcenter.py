"""Call-center agents book, look up, confirm and cancel for callers, on the same inventory."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.gateway.conftest import AGENT_KEY, bearer, create_campaign, create_room, operator
from tests.gateway.test_flow import admitted_token, join, request_pair

pytestmark = pytest.mark.usefixtures("allocator", "admitter")

Client = TestClient[Any, Any]
AGENT = bearer(AGENT_KEY)


async def issue_codes(client: Client, count: int) -> list[str]:
    response = await client.post(
        "/api/admin/campaigns/camp/codes",
        json={"group": "80plus", "count": count},
        headers=operator(),
    )
    assert response.status == 201
    codes: list[str] = (await response.json())["codes"]
    return codes


async def phone_book(client: Client, code: str, **wish: Any) -> tuple[int, dict[str, Any]]:
    body = {"access_code": code, "county": "county-1"} | wish
    response = await client.post(
        "/api/callcenter/campaigns/camp/bookings", json=body, headers=AGENT
    )
    return response.status, await response.json()


async def test_agent_books_confirms_and_cancels(client: Client, first_day: dt.date) -> None:
    await create_campaign(client, first_day, counties=1, places=1)
    [code] = await issue_codes(client, 1)
    status, held = await phone_book(client, code)
    assert (status, held["state"]) == (201, "held")
    booking_id = held["booking_id"]

    looked_up = await client.get(f"/api/callcenter/bookings/{booking_id}", headers=AGENT)
    assert (await looked_up.json())["appointments"] == held["appointments"]
    confirmed = await client.post(f"/api/callcenter/bookings/{booking_id}/confirm", headers=AGENT)
    assert (await confirmed.json())["state"] == "confirmed"

    # The only pair is taken: a second caller hears "sold out" at once.
    [other] = await issue_codes(client, 1)
    assert (await phone_book(client, other))[1]["reason"] == "sold_out"
    cancelled = await client.post(f"/api/callcenter/bookings/{booking_id}/cancel", headers=AGENT)
    assert (await cancelled.json())["state"] == "cancelled"
    assert (await phone_book(client, other))[1]["state"] == "held"


async def booked_online(client: Client, first_day: dt.date) -> tuple[str, str]:
    """(access code, booking reference) of a person who holds a pair booked online in
    an open room of a one-county campaign."""
    await create_campaign(client, first_day, counties=1, places=3)
    await create_room(client, opens_in_s=0)
    [code] = await issue_codes(client, 1)
    token = await admitted_token(client, (await join(client, access_code=code))["ticket"])
    online_id, held = await request_pair(client, token)
    assert held["state"] == "held"
    return code, online_id


async def test_a_code_is_one_person_online_and_on_the_phone(
    client: Client, first_day: dt.date
) -> None:
    code, online_id = await booked_online(client, first_day)
    status, refused = await phone_book(client, code)
    # Refused by the gateway's identity claim; the agent hears which booking it is.
    assert (status, refused["error"]["code"]) == (409, "already_booked")
    assert refused["error"]["booking_id"] == online_id
    # The online reference works on the phone.
    looked_up = await client.get(f"/api/callcenter/bookings/{online_id}", headers=AGENT)
    assert (await looked_up.json())["state"] == "held"


async def test_agents_need_a_key_and_a_valid_code(client: Client, first_day: dt.date) -> None:
    await create_campaign(client, first_day, counties=1, places=1)
    path = "/api/callcenter/campaigns/camp/bookings"
    body = {"access_code": "NOPE-NOPE-NOPE", "county": "county-1"}
    anonymous = await client.post(path, json=body)
    wrong_key = await client.post(path, json=body, headers=bearer("not-an-agent-key-at-all"))
    bad_code = await client.post(path, json=body, headers=AGENT)
    unknown = await client.post("/api/callcenter/campaigns/nope/bookings", json=body, headers=AGENT)
    got = [
        (r.status, (await r.json())["error"]["code"])
        for r in (anonymous, wrong_key, bad_code, unknown)
    ]
    assert got == [
        (401, "unauthorized"),
        (403, "forbidden"),
        (403, "invalid_access_code"),
        (404, "unknown_campaign"),
    ]


async def test_appointment_and_letter_exports(client: Client, first_day: dt.date) -> None:
    await create_campaign(client, first_day, counties=2, places=2)
    response = await client.post(
        "/api/admin/campaigns/camp/codes?format=csv",
        json={"group": "80plus", "count": 2},
        headers=operator(),
    )
    assert response.status == 201 and response.content_type == "text/csv"
    header, *letters = (await response.text()).splitlines()
    assert header == "code,group,campaign,letter" and len(letters) == 2
    codes = [line.split(",")[0] for line in letters]
    assert all(code in line.split(",", 3)[3] for code, line in zip(codes, letters, strict=True))

    ids = []
    for code, county in zip(codes, ("county-1", "county-2"), strict=True):
        _, held = await phone_book(client, code, county=county)
        await client.post(f"/api/callcenter/bookings/{held['booking_id']}/confirm", headers=AGENT)
        ids.append(held["booking_id"])
    export = await client.get(
        "/api/admin/campaigns/camp/appointments.csv",
        params={"center": "county-1-center-1", "day": first_day.isoformat()},
        headers=operator(),
    )
    rows = (await export.text()).splitlines()
    assert rows[0] == "center,center_name,day,start,dose,vaccine,booking_id"
    assert len(rows) == 2 and rows[1].startswith("county-1-center-1,") and ids[0] in rows[1]
    everything = await client.get("/api/admin/campaigns/camp/appointments.csv", headers=operator())
    assert len((await everything.text()).splitlines()) == 1 + 4  # two pairs, two doses each


async def test_agent_moves_a_booking_made_online(client: Client, first_day: dt.date) -> None:
    await create_campaign(client, first_day, counties=1, centers_per_county=2, places=1)
    await create_room(client, opens_in_s=0)
    [code] = await issue_codes(client, 1)
    token = await admitted_token(client, (await join(client, access_code=code))["ticket"])
    booking_id, held = await request_pair(client, token, center="county-1-center-1")
    assert held["state"] == "held"

    moved = await client.post(
        f"/api/callcenter/bookings/{booking_id}/move",
        json={"center": "county-1-center-2"},
        headers=AGENT,
    )
    assert moved.status == 200, await moved.text()
    body = await moved.json()
    assert (body["state"], body["moves"]) == ("held", 1)
    assert {a["center"] for a in body["appointments"]} == {"county-1-center-2"}
    online = await client.get(f"/api/bookings/{booking_id}", headers=bearer(token))
    assert (await online.json())["appointments"] == body["appointments"]
    refused = await client.post(
        f"/api/callcenter/bookings/{booking_id}/move", json={}, headers=bearer("not-an-agent")
    )
    assert refused.status == 403
