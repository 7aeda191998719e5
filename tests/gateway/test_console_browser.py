"""The operator console in a real browser (headless Chromium): sign in, watch a room
live, steer it, and see the effect on a citizen's waiting-room page."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, Dialog, Page, expect

from fairq.config import Connections
from tests.browser import collect_problems, screenshot
from tests.gateway.conftest import OPERATOR_KEY, create_campaign, create_room, gateway_client
from tests.gateway.test_flow import admitted_visitor, request_pair

Client = TestClient[Any, Any]


@pytest.fixture
async def console_gateway(connections: Connections) -> AsyncIterator[Client]:
    """A gateway that samples its charts often, so that a test sees them drawn."""
    async with gateway_client(connections, history_step_s=0.2) as c:
        yield c


@contextlib.asynccontextmanager
async def watched_page(browser: Browser, problems: list[str]) -> AsyncIterator[Page]:
    """A page in its own context (its own cookies) whose errors go to ``problems``."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    collect_problems(page, problems)
    try:
        yield page
    finally:
        await context.close()


async def signed_in(page: Page, client: Client) -> None:
    await page.goto(str(client.make_url("/operator")))
    await page.fill("#signin-name", "Ada")
    await page.fill("#signin-key", OPERATOR_KEY)
    await page.click("#signin-button")
    await expect(page.locator("#who")).to_have_text("Signed in as Ada")


async def open_room(client: Client, first_day: dt.date) -> None:
    await create_campaign(client, first_day)
    await create_room(client, rate_per_s=5)
    response = await client.post(
        "/api/admin/rooms/room/open", headers={"Authorization": f"Bearer {OPERATOR_KEY}"}
    )
    assert response.status == 200


@contextlib.asynccontextmanager
async def citizen_and_operator(
    browser: Browser, client: Client, first_day: dt.date, problems: list[str]
) -> AsyncIterator[tuple[Page, Page]]:
    """An open room, a citizen waiting in it on the room's page, and a signed-in console."""
    await open_room(client, first_day)
    async with watched_page(browser, problems) as citizen, watched_page(browser, problems) as page:
        await citizen.goto(str(client.make_url("/rooms/room")))
        await citizen.click("#join-button")
        await expect(citizen.locator("#queue-state")).not_to_be_empty()
        await signed_in(page, client)
        yield citizen, page


def accept_dialogs(page: Page, seen: list[str]) -> None:
    async def accept(dialog: Dialog) -> None:
        seen.append(dialog.message)
        await dialog.accept()

    page.on("dialog", accept)


async def test_sign_in_wrong_key_then_right_key(browser: Browser, console_gateway: Client) -> None:
    problems: list[str] = []
    async with watched_page(browser, problems) as page:
        await page.goto(str(console_gateway.make_url("/operator")))
        await expect(page.locator("#signin-section")).to_be_visible()
        await page.click("#signin-button")
        await expect(page.locator("#signin-error")).to_have_text(
            "Give your name and the operator key."
        )
        await page.fill("#signin-name", "Ada")
        await page.fill("#signin-key", "this-is-not-the-key-at-all")
        await page.click("#signin-button")
        await expect(page.locator("#signin-error")).to_have_text("That is not the operator key.")
        assert "key" not in page.url
        await screenshot(page, "console-sign-in-wrong-key")
        await page.fill("#signin-key", OPERATOR_KEY)
        await page.click("#signin-button")
        await expect(page.locator("#console-section")).to_be_visible()
        await expect(page.locator("#no-rooms")).to_be_visible()
        await page.reload()  # the session outlives a reload; the key is not asked again
        await expect(page.locator("#who")).to_have_text("Signed in as Ada")
        await page.click("#sign-out")
        await expect(page.locator("#signin-section")).to_be_visible()
        await expect(page.locator("#notice")).to_have_text("Signed out.")
    # the wrong key's 403 is an answer the page shows, not a script error
    assert all("403" in p for p in problems), problems


async def test_queue_depth_rises_live_as_visitors_join(
    browser: Browser, console_gateway: Client, first_day: dt.date
) -> None:
    await open_room(console_gateway, first_day)
    problems: list[str] = []
    async with watched_page(browser, problems) as page:
        await signed_in(page, console_gateway)
        depth = page.locator('tr[data-room="room"] td[data-field="queue_depth"]')
        await expect(depth).to_have_text("0")
        for _ in range(3):
            console_gateway.session.cookie_jar.clear()
            assert (await console_gateway.post("/api/rooms/room/join")).status == 200
        await expect(depth).to_have_text("3")
        await expect(page.locator("#charts .uplot")).to_have_count(4)
        await screenshot(page, "console-rooms-live")
    assert not problems, problems


async def test_pausing_from_the_console_shows_paused_to_a_citizen(
    browser: Browser, console_gateway: Client, first_day: dt.date
) -> None:
    problems: list[str] = []
    async with citizen_and_operator(browser, console_gateway, first_day, problems) as (
        citizen,
        page,
    ):
        await expect(citizen.locator("#queue-eta")).to_contain_text("Estimated wait")
        dialogs: list[str] = []
        accept_dialogs(page, dialogs)
        await page.click('button[data-action="pause"]')
        await expect(page.locator("#notice")).to_have_text("Room room: pause done.")
        assert dialogs == ["Pause admission for everyone waiting in this room?"]
        await expect(citizen.locator("#queue-eta")).to_contain_text(
            "Admission is paused for the moment."
        )
        await expect(page.locator('tr[data-room="room"] td.state-paused')).to_have_text("paused")
        await expect(page.locator("#actions-body tr").first).to_contain_text("Ada")
        await screenshot(citizen, "citizen-page-paused")
        await screenshot(page, "console-room-paused")
    assert not problems, problems


async def test_bad_input_gets_a_clear_message(
    browser: Browser, console_gateway: Client, first_day: dt.date, allocator: None
) -> None:
    await open_room(console_gateway, first_day)
    problems: list[str] = []
    async with watched_page(browser, problems) as page:
        await signed_in(page, console_gateway)
        # the allocator's first inventory summary reaches the overview
        pairs_left = page.locator('tr[data-room="room"] td[data-field="pairs_left"]')
        await expect(pairs_left).not_to_have_text("0", timeout=30_000)
        await expect(page.locator("#room-section")).to_be_visible()
        await page.fill("#adm-rate", "fast")
        await page.click("#admission-button")
        await expect(page.locator("#notice")).to_have_text("'Rate (people/s)' must be a number.")
        await page.fill("#adm-rate", "-5")
        await page.click("#admission-button")
        notice = page.locator("#notice")
        await expect(notice).to_contain_text("rate_per_s")
        await expect(notice).to_have_class("error")
        text = await notice.text_content() or ""
        assert "Traceback" not in text and "internal" not in text
        await page.fill("#adm-rate", "7.5")
        await page.click("#admission-button")
        await expect(notice).to_have_text("Admission settings applied.")
        await page.click("#campaign-load")
        await expect(page.locator("#campaign-view")).to_be_visible()
        await page.fill("#codes-count", "many")
        await page.fill("#codes-group", "staff")
        await page.click("#codes-button")
        await expect(notice).to_have_text("'How many' must be a whole number of at least 1.")
        await page.fill("#codes-count", "2")
        async with page.expect_download() as download:
            await page.click("#codes-button")
        assert (await download.value).suggested_filename == "camp-staff-codes.csv"
        await expect(notice).to_have_text(
            "2 access codes issued for staff; the letters were downloaded."
        )
        await expect(page.locator("#county-body tr")).not_to_have_count(0)
        await screenshot(page, "console-campaign-and-actions")
    # the server's refusal of -5 is a 400 answer, not a script error
    assert all("400" in p for p in problems), problems


async def test_the_operator_message_reaches_a_citizen(
    browser: Browser, console_gateway: Client, first_day: dt.date
) -> None:
    problems: list[str] = []
    async with citizen_and_operator(browser, console_gateway, first_day, problems) as (
        citizen,
        page,
    ):
        await page.fill("#msg-de", "Neue Lieferungen am Donnerstag")
        await page.fill("#msg-en", "New deliveries on Thursday")
        await page.click("#message-button")
        await expect(page.locator("#notice")).to_have_text(
            "The message is shown to everyone waiting in room."
        )
        await expect(page.locator("#message-now")).to_contain_text("New deliveries on Thursday")
        await expect(citizen.locator("body")).to_contain_text("New deliveries on Thursday")
        await screenshot(citizen, "citizen-page-operator-message")
    assert not problems, problems


async def test_places_per_day_on_screen_follow_a_booking(
    browser: Browser, console_gateway: Client, first_day: dt.date, allocator: None, admitter: None
) -> None:
    """The campaign view's places per center and day come from the real allocator: a
    booking made meanwhile shows as one free place less and one held, on asking again."""
    await open_room(console_gateway, first_day)
    problems: list[str] = []
    async with watched_page(browser, problems) as page:
        await signed_in(page, console_gateway)
        pairs_left = page.locator('tr[data-room="room"] td[data-field="pairs_left"]')
        await expect(pairs_left).not_to_have_text("0", timeout=30_000)  # the allocator runs
        await page.click("#campaign-load")
        table = 'table[data-county="county-1"]'
        day = f'{table} tr[data-center="county-1-center-1"][data-day="{first_day.isoformat()}"]'
        free = page.locator(f'{day} td[data-field="free"]')
        held = page.locator(f'{day} td[data-field="held"]')
        await expect(free).to_have_text("5")
        await expect(held).to_have_text("0")
        await expect(page.locator("#daily-status")).to_have_text("Answered for every county.")

        console_gateway.session.cookie_jar.clear()
        _, answer = await request_pair(console_gateway, await admitted_visitor(console_gateway))
        assert answer["state"] == "held"
        await page.click("#daily-refresh")
        await expect(free).to_have_text("4")
        await expect(held).to_have_text("1")
        await expect(
            page.locator('table[data-county="county-2"] td[data-field="free"]').first
        ).to_have_text("5")
        await page.locator("#daily-counties").scroll_into_view_if_needed()
        await screenshot(page, "console-places-per-day")
    assert not problems, problems
