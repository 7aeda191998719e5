"""Every state of the waiting-room page, in German and English, reached through the real
system (this gateway, the real Redis, broker, allocator and admitter) in headless
Chromium: each one axe-core clean, without a script error or CSP violation, with a
next step to take, and a screenshot (``test-artifacts/screenshots/citizen-*``).

One German and one English visitor go through each state side by side. The German one
books with the keyboard alone. The English one's browser asks for German: it chooses
English with the page's switch, which is remembered.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser

from tests.gateway.conftest import bearer, create_campaign, create_room, operator
from tests.gateway.pagevisitor import Visitor, axe_installed, until
from tests.gateway.test_flow import admitted_token, booking_stream, join

pytestmark = [
    pytest.mark.usefixtures("allocator", "admitter"),
    pytest.mark.skipif(not axe_installed(), reason="axe-core is missing: run `npm ci`"),
]

Client = TestClient[Any, Any]
LANGS = ("de", "en")
# What each state says, per language (a distinct phrase of the state's own text).
SAYS = {
    "too-early": ("Die Warteschlange öffnet am", "The line opens on"),
    "prequeue": ("Ihr Platz wird dann ausgelost", "Your place is drawn then"),
    "waiting": ("Vor Ihnen sind noch 3 Personen", "4 people are ahead of you"),
    "paused": ("Der Einlass ist gerade angehalten", "Admission is paused"),
    "admitted": ("Ihre zwei Termine buchen", "Book your two appointments"),
    "held": ("Für Sie reserviert", "Held for you"),
    "confirmed": ("Gebucht", "Booked"),
    "cancelled": ("Storniert", "Cancelled"),
    "turn-passed": ("Ihre Reihe ist vorbei", "Your turn has passed"),
    "rejected": ("Keine Termine gefunden", "No appointments found"),
    "sold-out": ("Im Moment ausgebucht", "Sold out for now"),
    "waitlisted": ("Sie stehen auf der Warteliste", "You are on the waitlist"),
    "offered": ("Termine von der Warteliste", "Offered to you from the waitlist"),
}


def says(state: str, lang: str) -> str:
    return SAYS[state][LANGS.index(lang)]


async def visitors(browser: Browser, client: Client, room: str) -> dict[str, Visitor]:
    """A German and an English visitor on the room's page (both browsers ask for German)."""
    out = {lang: await Visitor.open(browser, lang, "de-DE") for lang in LANGS}
    for v in out.values():
        await v.goto(str(client.make_url(f"/rooms/{room}")))
    await out["en"].page.click("#lang-en")  # remembered for every later page of its context
    return out


async def check_all(vs: dict[str, Visitor], state: str, selector: str = "main") -> None:
    for lang, v in vs.items():
        await v.text(selector, says(state, lang))
        assert await v.page.evaluate("() => document.documentElement.lang") == lang
        await v.check(state)


async def book_by_keyboard(v: Visitor) -> None:
    """Choose the first county and ask for a pair, keyboard only."""
    await v.tab_to("county")
    await v.page.keyboard.press("ArrowDown")
    assert await v.page.eval_on_selector("#county", "e => e.value") == "county-1"
    await v.tab_to("book-button")
    await v.page.keyboard.press("Enter")


async def book_by_mouse(v: Visitor) -> None:
    await v.page.select_option("#county", "county-1")
    await v.page.click("#book-button")


async def hold_a_pair(client: Client, room: str) -> tuple[str, str]:
    """An API visitor of ``room`` holds a pair in county-1: (booking id, token)."""
    token = await admitted_token(client, (await join(client, room))["ticket"], room)
    response = await client.post(
        f"/api/rooms/{room}/bookings", json={"county": "county-1"}, headers=bearer(token)
    )
    assert response.status == 202, await response.text()
    booking_id = (await response.json())["booking_id"]
    assert (await booking_stream(client, booking_id, token))[-1]["state"] == "held"
    return booking_id, token


async def room_info(client: Client, room: str) -> dict[str, Any]:
    info: dict[str, Any] = await (await client.get(f"/api/rooms/{room}")).json()
    return info


async def test_every_state_in_german_and_english(
    client: Client, browser: Browser, first_day: dt.date
) -> None:
    await create_campaign(client, first_day, counties=2, places=4)
    await create_campaign(client, first_day, name="tiny", counties=1, places=2)
    await create_room(client, "short", opens_in_s=0, admit_window_s=10)
    await client.post("/api/admin/rooms/short/open", headers=operator())
    # The turn that passes takes the admission window (10 s): it starts first.
    short = await visitors(browser, client, "short")
    for v in short.values():
        await v.page.click("#join-button")
    await check_all(short, "admitted")

    # too early: the line opens an hour before the room, in two hours
    await create_room(client, "later", opens_in_s=7200)
    vs = await visitors(browser, client, "later")
    for v in vs.values():
        await v.page.click("#join-button")
    await check_all(vs, "too-early", "#message")
    for v in vs.values():
        await v.close()
    # a browser asking for neither language gets the room's; the room's own switches
    for room_language in ("en", "de"):
        await create_room(client, "later", language=room_language)
        french = await Visitor.open(browser, "fr", "fr-FR")
        await french.goto(str(client.make_url("/rooms/later")))
        await french.visible("#join-section")
        assert await french.page.evaluate("() => document.documentElement.lang") == room_language
        await french.close()

    # the pre-queue
    await create_room(client, "soon", opens_in_s=600)
    vs = await visitors(browser, client, "soon")
    for v in vs.values():
        await v.page.click("#join-button")
    await check_all(vs, "prequeue", "#queue-section")
    for v in vs.values():
        await v.close()

    # waiting behind three people in a room that admits nobody yet; the operator's message
    await create_room(client, "slow", opens_in_s=0, max_active=0, rate_per_s=1)
    await client.post("/api/admin/rooms/slow/open", headers=operator())
    for _ in range(3):
        await join(client, "slow")
    vs = await visitors(browser, client, "slow")
    for v in vs.values():  # the German visitor joins first, the English one behind
        await v.page.click("#join-button")
        await v.visible("#queue-section")
    message = {"de": "Heute gibt es Impfstoff für alle.", "en": "There is vaccine for all today."}
    response = await client.put("/api/admin/rooms/slow/message", json=message, headers=operator())
    assert response.status == 200
    for lang, v in vs.items():
        await v.text("#room-message", message[lang])  # pushed with the status
    await check_all(vs, "waiting", "#queue-section")
    await client.post("/api/admin/rooms/slow/pause", headers=operator())
    await check_all(vs, "paused", "#queue-section")
    for v in vs.values():
        await v.close()

    # admitted, held, confirmed, cancelled and a new place: German by keyboard alone
    await create_room(client, "main", opens_in_s=0)
    await client.post("/api/admin/rooms/main/open", headers=operator())
    vs = await visitors(browser, client, "main")
    await vs["de"].tab_to("join-button")
    await vs["de"].page.keyboard.press("Enter")
    await vs["en"].page.click("#join-button")
    await check_all(vs, "admitted", "#book-section")
    await book_by_keyboard(vs["de"])
    await book_by_mouse(vs["en"])
    await check_all(vs, "held", "#booking-section")
    for v in vs.values():  # the center's address is shown before confirming
        await v.text("#appointments", "Hauptstraße 1, 70001 Kreisstadt 1")
    await vs["de"].tab_to("confirm-button")
    await vs["de"].page.keyboard.press("Enter")
    await vs["en"].page.click("#confirm-button")
    await check_all(vs, "confirmed", "#booking-state")
    for lang, v in vs.items():
        await v.text("#booking-section", "Hauptstraße 1, 70001 Kreisstadt 1")
        href = await v.page.get_attribute("#calendar-link", "href")
        assert href is not None and f"lang={lang}" in href
        calendar = await v.page.request.get(str(client.make_url(href)))
        assert calendar.headers["content-type"].startswith("text/calendar")
        ics = await calendar.text()
        assert ics.count("BEGIN:VEVENT") == 2 and "Hauptstraße 1" in ics
        await v.page.emulate_media(media="print")
        await v.check("confirmed-print")
        await v.page.emulate_media(media="screen")
    # a phone (360 px wide) and 200 % zoom (a 1280 px window shows 640 CSS px)
    for width, height, label in ((360, 740, "360px"), (640, 360, "zoom200")):
        v = vs["de"]
        await v.page.set_viewport_size({"width": width, "height": height})
        overflow = await v.page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{label}: {overflow} px wider than the screen"
        await v.check(f"confirmed-{label}")
    await vs["de"].page.set_viewport_size({"width": 1280, "height": 720})
    await vs["de"].tab_to("cancel-button")
    await vs["de"].page.keyboard.press("Enter")  # the dialog is accepted
    await vs["en"].page.click("#cancel-button")
    await check_all(vs, "cancelled", "#booking-state")
    for v in vs.values():  # the next step: a new place, and a turn again
        await v.page.click("#next-button")
        await v.visible("#book-section")
    for v in vs.values():
        await v.close()

    # sold out: two API visitors hold the tiny campaign's two pairs while ours are at
    # the booking form
    await create_room(client, "tiny", campaign="tiny", opens_in_s=0)
    await client.post("/api/admin/rooms/tiny/open", headers=operator())
    vs = await visitors(browser, client, "tiny")
    for v in vs.values():
        await v.page.click("#join-button")
        await v.visible("#book-section")
    holders = [await hold_a_pair(client, "tiny") for _ in range(2)]

    async def sold_out() -> bool:
        return bool((await room_info(client, "tiny"))["sold_out"])

    await until(sold_out, "the tiny room is sold out")
    for v in vs.values():
        await book_by_mouse(v)
    await check_all(vs, "rejected", "#booking-section")
    reason = {"de": "Ausgebucht: In diesem Landkreis", "en": "Sold out: all appointments"}
    for lang, v in vs.items():  # the allocator's reason, in a sentence of the language
        await v.text("#booking-error", reason[lang])
    for v in vs.values():  # the next step: the waitlist (its county chosen already)
        await v.page.click("#next-button")
        await v.visible("#book-section")
        await v.page.click("#book-button")
    await check_all(vs, "waitlisted", "#booking-state")
    newcomers = await visitors(browser, client, "tiny")
    await check_all(newcomers, "sold-out", "#soldout-section")
    for v in newcomers.values():
        await v.page.click("#soldout-waitlist-button")
        await v.visible("#book-section")
        await v.page.select_option("#county", "county-1")
        await v.page.click("#book-button")
    await check_all(newcomers, "waitlisted", "#booking-state")
    for booking_id, token in holders:  # each freed pair goes to the next on the waitlist
        response = await client.post(f"/api/bookings/{booking_id}/cancel", headers=bearer(token))
        assert response.status == 200
    await check_all(vs, "offered", "#booking-state")
    for v in [*vs.values(), *newcomers.values()]:
        await v.close()

    # the turn that passed: the short room's visitors did not book within its window
    await check_all(short, "turn-passed", "#passed-section")
    for v in short.values():  # the next step: a new place, and a turn again
        await v.page.click("#passed-join-button")
        await v.visible("#book-section")
        await v.close()
