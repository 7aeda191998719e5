"""The calendar file of a booking: RFC 5545 structure, UTC starts, escaping and folding,
and the route that serves it to the page and to apps."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.calendarfile import calendar_file, escape_text, fold
from tests.gateway.conftest import bearer, create_campaign, create_room
from tests.gateway.test_flow import admitted_visitor, request_pair

Client = TestClient[Any, Any]
NOW = dt.datetime(2026, 12, 7, 6, 0, tzinfo=dt.UTC)


def unfold(text: str) -> list[str]:
    """The content lines of an iCalendar text, each physical line checked (3.1)."""
    assert text.endswith("\r\n")
    physical = text[:-2].split("\r\n")
    for line in physical:
        assert "\n" not in line and "\r" not in line
        assert len(line.encode("utf-8")) <= 75, line
    lines: list[str] = []
    for line in physical:
        if line.startswith(" "):
            lines[-1] += line[1:]
        else:
            lines.append(line)
    return lines


def events(lines: list[str]) -> list[dict[str, str]]:
    """The VEVENTs' properties; the BEGIN/END nesting checked."""
    assert lines[0] == "BEGIN:VCALENDAR" and lines[-1] == "END:VCALENDAR"
    out: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for line in lines[1:-1]:
        if line == "BEGIN:VEVENT":
            assert current is None
            current = {}
        elif line == "END:VEVENT":
            assert current is not None
            out.append(current)
            current = None
        else:
            name, _, value = line.partition(":")
            if current is not None:
                current[name] = value
    assert current is None
    return out


def test_text_is_escaped_and_long_lines_folded_between_characters() -> None:
    assert escape_text("a\\b;c,d\ne") == "a\\\\b\\;c\\,d\\ne"
    line = "LOCATION:" + "Straße " * 30
    folded = fold(line)
    assert all(len(part.encode()) <= 75 for part in folded.split("\r\n"))
    assert folded.replace("\r\n ", "") == line  # unfolding gives the line back whole


def test_two_events_with_utc_starts_and_the_address() -> None:
    campaign = {
        "title": "Impfkampagne; Test",
        "vaccines": [{"id": "comirnaty", "name": "Comirnaty (BioNTech/Pfizer)"}],
        "centers": [
            {"id": "c1", "name": "Impfzentrum Messe", "address": "Messepiazza 1, 70629 Stuttgart"}
        ],
    }
    appointments = [
        {"dose": d, "center": "c1", "center_name": "Impfzentrum Messe", "vaccine": "comirnaty"}
        | {"start": start}
        for d, start in ((2, "2027-01-12T09:15:00+01:00"), (1, "2026-12-22T09:15:00+01:00"))
    ]
    text = calendar_file("bk_abc", appointments, campaign, "de", NOW)
    lines = unfold(text)
    assert {"VERSION:2.0", "METHOD:PUBLISH"} <= set(lines)
    assert any(line.startswith("PRODID:") for line in lines)
    first, second = events(lines)
    assert (first["UID"], second["UID"]) == ("bk_abc-dose-1@fairq", "bk_abc-dose-2@fairq")
    assert (first["DTSTART"], second["DTSTART"]) == ("20261222T081500Z", "20270112T081500Z")
    assert first["DTSTAMP"] == "20261207T060000Z"
    assert first["LOCATION"] == "Impfzentrum Messe\\, Messepiazza 1\\, 70629 Stuttgart"
    assert first["SUMMARY"] == "Impftermin 1. Dosis: Comirnaty (BioNTech/Pfizer)"
    assert "Impfkampagne\\; Test" in first["DESCRIPTION"] and "bk_abc" in first["DESCRIPTION"]
    english = events(unfold(calendar_file("bk_abc", appointments, campaign, "en", NOW)))
    assert english[0]["SUMMARY"] == "Vaccination\\, dose 1: Comirnaty (BioNTech/Pfizer)"


@pytest.mark.usefixtures("allocator", "admitter")
async def test_the_route_serves_confirmed_appointments(client: Client, first_day: dt.date) -> None:
    await create_campaign(client, first_day, counties=1, places=2)
    await create_room(client, opens_in_s=0)
    token = await admitted_visitor(client)
    booking_id, held = await request_pair(client, token)
    url = f"/api/bookings/{booking_id}/calendar.ics"
    early = await client.get(url, headers=bearer(token))
    assert (early.status, (await early.json())["error"]["code"]) == (409, "not_confirmed")
    confirm = await client.post(f"/api/bookings/{booking_id}/confirm", headers=bearer(token))
    assert confirm.status == 200
    response = await client.get(url, params={"token": token, "lang": "en"})  # a download link
    assert response.status == 200
    assert response.content_type == "text/calendar"
    assert f'filename="{booking_id}.ics"' in response.headers["Content-Disposition"]
    found = events(unfold(await response.text()))
    starts = sorted(
        dt.datetime.fromisoformat(a["start"]).astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        for a in held["appointments"]
    )
    assert [e["DTSTART"] for e in found] == starts
    assert all("Hauptstraße 1\\, 70001 Kreisstadt 1" in e["LOCATION"] for e in found)
    assert found[0]["SUMMARY"].startswith("Vaccination\\, dose 1")
    bad = await client.get(url, params={"token": token, "lang": "fr"})
    assert (bad.status, (await bad.json())["error"]["code"]) == (400, "invalid_request")
    stranger = await admitted_visitor(client)
    other = await client.get(url, headers=bearer(stranger))
    assert (other.status, (await other.json())["error"]["code"]) == (403, "not_your_booking")
