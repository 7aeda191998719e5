"""The waiting-room page for those who do not see it as the states test does: what it
says to a screen reader, and how often (the hold's time left is announced at a few
marks — 10, 5, 2 and 1 minutes, 30 seconds — not every second as it is shown; with
Playwright's fake clock ten minutes of countdown pass in seconds without a sleep), and
its dark theme's contrast. Real system, headless Chromium."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser

from tests.gateway.conftest import create_campaign, create_room
from tests.gateway.pagevisitor import Visitor, axe_installed
from tests.gateway.test_page_states import book_by_mouse

pytestmark = pytest.mark.usefixtures("allocator", "admitter")

Client = TestClient[Any, Any]
HOLD_S = 600  # the test campaign's hold


async def test_the_hold_countdown_is_announced_at_its_marks_only(
    client: Client, browser: Browser, first_day: dt.date
) -> None:
    await create_campaign(client, first_day)
    await create_room(client, opens_in_s=0)
    v = await Visitor.open(browser, "en", "en-GB")
    try:
        await v.page.clock.install()  # time flows as usual until the test moves it
        await v.goto(str(client.make_url("/rooms/room")))
        await v.page.click("#join-button")
        await v.text("main", "Book your two appointments")
        await book_by_mouse(v)
        await v.text("#booking-section", "Held for you")
        announce = v.page.locator("#announce")
        countdown = v.page.locator("#hold-countdown")
        said: list[str] = []
        shown: set[str] = set()
        for _ in range(HOLD_S):
            await v.page.clock.run_for(1000)
            shown.add(await countdown.inner_text())
            text = await announce.inner_text()
            if not said or text != said[-1]:
                said.append(text)
        assert len(shown) > HOLD_S // 2  # shown every second
        marks = [
            "Held for you for another 5 minutes.",
            "Held for you for another 2 minutes.",
            "Held for you for another minute.",
            "Held for you for another 30 seconds.",
        ]
        assert said[-len(marks) :] == marks, said  # and only these said while it ran down
        assert len(said) <= len(marks) + 1, said  # what was said at the hold, then the marks
        assert not v.problems, v.problems
    finally:
        await v.close()


@pytest.mark.skipif(not axe_installed(), reason="axe-core is missing: run `npm ci`")
async def test_the_page_in_dark_mode_is_axe_clean(
    client: Client, browser: Browser, first_day: dt.date
) -> None:
    """The page has colours of its own for a dark system theme: its contrast is checked
    too (the states test runs in light mode)."""
    await create_campaign(client, first_day)
    await create_room(client, opens_in_s=0)
    v = await Visitor.open(browser, "dark-de", "de-DE", color_scheme="dark")
    try:
        await v.goto(str(client.make_url("/rooms/room")))
        await v.check("join")
        await v.page.click("#join-button")
        await v.text("main", "Ihre zwei Termine buchen")
        await v.check("admitted")
        await book_by_mouse(v)
        await v.text("#booking-section", "Für Sie reserviert")
        await v.check("held")
    finally:
        await v.close()
