"""The call-center screen in a real browser (headless Chromium) with the real allocator
and admitter: an agent signs in, books for a caller with their access code, confirms,
moves and cancels; looks up bookings (an online one too); and reads every refusal in
plain words on the screen."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, Page, expect

from fairq.config import Connections
from fairq.devservices import Server
from tests.browser import screenshot
from tests.conftest import paused
from tests.gateway.conftest import AGENT_KEY, create_campaign, create_room, gateway_client, operator
from tests.gateway.pagevisitor import AXE, AXE_TAGS, RUN_AXE
from tests.gateway.test_callcenter import booked_online, issue_codes
from tests.gateway.test_console_browser import accept_dialogs, watched_page

Client = TestClient[Any, Any]
SEND_TIMEOUT_S = 0.5


@contextlib.asynccontextmanager
async def agent_page(browser: Browser, problems: list[str]) -> AsyncIterator[Page]:
    """The console tests' page (its own context, its errors in ``problems``), with
    axe-core (injected past the page's CSP) in every document it opens."""
    async with watched_page(browser, problems) as page:
        await page.context.add_init_script(path=str(AXE))
        yield page


async def shown(page: Page, name: str) -> None:
    """A screenshot of the screen, which has no accessibility violation (WCAG 2.1 AA)."""
    await screenshot(page, name)
    violations = await page.evaluate(RUN_AXE, AXE_TAGS)
    assert not violations, f"{name}: {violations}"


async def signed_in(page: Page, client: Client) -> None:
    await page.goto(str(client.make_url("/callcenter")))
    await page.fill("#signin-key", AGENT_KEY)
    await page.click("#signin-button")
    await expect(page.locator("#who")).to_have_text("Signed in as alice")


async def book(page: Page, code: str, county: str = "county-1") -> None:
    await page.fill("#book-code", code)
    await page.select_option("#book-county", county)
    await page.click("#book-button")


def no_stack_trace(text: str | None) -> None:
    assert text and "Traceback" not in text and "internal" not in text.lower(), text


@pytest.mark.usefixtures("allocator")
async def test_an_agent_books_confirms_moves_and_cancels_for_a_caller(
    browser: Browser, client: Client, first_day: dt.date
) -> None:
    await create_campaign(client, first_day, counties=2, places=2)
    await create_room(client)
    [code] = await issue_codes(client, 1)
    problems: list[str] = []
    async with agent_page(browser, problems) as page:
        await page.goto(str(client.make_url("/callcenter")))
        await expect(page.locator("#signin-section")).to_be_visible()
        await shown(page, "callcenter-sign-in")
        await signed_in(page, client)
        await expect(page.locator("#book-campaign")).to_have_value("camp")
        await expect(page.locator("#book-time option")).to_have_text(
            [
                "Any time",
                "Morning (before 12:00)",
                "Afternoon (12:00 to 16:59)",
                "Evening (from 17:00)",
            ]
        )
        await book(page, code)
        notice, words = page.locator("#notice"), page.locator("#booking-words")
        await expect(notice).to_have_text(
            "Booked: read the reference and the appointments to the caller, then confirm"
            " with their identity key."
        )
        await expect(words).to_contain_text("Held for the caller until")
        rows = page.locator("#booking-body tr")
        await expect(rows).to_have_count(2)
        await expect(rows.nth(0)).to_contain_text("Dose 1")
        await expect(rows.nth(0)).to_contain_text("Impfzentrum 1.1")
        await expect(rows.nth(0)).to_contain_text("Comirnaty (BioNTech/Pfizer)")
        await expect(rows.nth(1)).to_contain_text("Dose 2")
        reference = await page.locator("#booking-ref").text_content()
        assert reference and reference.startswith("bk_")
        await shown(page, "callcenter-held")

        await page.fill("#confirm-identity", "A123456789")
        await page.click("#confirm-button")
        await expect(notice).to_have_text("Confirmed: the appointments are the caller's.")
        await expect(words).to_have_text("Confirmed: these are the caller's appointments.")
        await expect(page.locator("#confirm-part")).to_be_hidden()
        await shown(page, "callcenter-confirmed")

        await page.select_option("#move-county", "county-2")
        await page.click("#move-button")
        await expect(notice).to_have_text("Moved: read the new appointments to the caller.")
        await expect(words).to_contain_text("Moved once.")
        await expect(rows.nth(0)).to_contain_text("Impfzentrum 2.1")
        await shown(page, "callcenter-moved")

        dialogs: list[str] = []
        accept_dialogs(page, dialogs)
        await page.click("#cancel-button")
        await expect(notice).to_have_text("Cancelled: the appointments were given back.")
        await expect(words).to_contain_text("Cancelled")
        await expect(page.locator("#booking-caption")).to_have_text(
            "Given back: these appointments are no longer the caller's."
        )
        assert dialogs == ["Cancel this booking? The appointments go to someone else."]
        await expect(page.locator("#cancel-part")).to_be_hidden()
        await shown(page, "callcenter-cancelled")

        assert not problems, problems
        # an agent's session does not open the operator API
        status = await page.evaluate("fetch('/api/admin/overview').then((r) => r.status)")
        assert status == 401
    listed = await client.get("/api/admin/audit/agents", headers=operator())
    recorded = [(a["who"], a["action"].split("/")[-1]) for a in (await listed.json())["actions"]]
    assert recorded == [
        ("alice", "cancel"),
        ("alice", "move"),
        ("alice", "confirm"),
        ("alice", "bookings"),
    ]


@pytest.mark.usefixtures("allocator", "admitter")
async def test_lookups_and_refusals_are_plain_words_on_screen(
    browser: Browser, client: Client, first_day: dt.date
) -> None:
    code, online_id = await booked_online(client, first_day)
    problems: list[str] = []
    async with agent_page(browser, problems) as page:
        await page.goto(str(client.make_url("/callcenter")))
        await page.click("#signin-button")
        signin_error = page.locator("#signin-error")
        await expect(signin_error).to_have_text("Enter your agent key.")
        await page.fill("#signin-key", "this-is-not-an-agent-key")
        await page.click("#signin-button")
        await expect(signin_error).to_have_text(
            "That is not a valid agent key. Check it and try again."
        )
        await shown(page, "callcenter-wrong-key")
        await signed_in(page, client)

        notice = page.locator("#notice")
        await page.fill("#find-ref", online_id)  # the reference of an online booking
        await page.click("#find-button")
        await expect(notice).to_have_text(f"Booking {online_id} found.")
        await expect(page.locator("#booking-words")).to_contain_text("Held for the caller until")
        await expect(page.locator("#booking-body tr")).to_have_count(2)
        await shown(page, "callcenter-found-online-booking")

        await page.fill("#find-ref", "bk_nosuchbooking")
        await page.click("#find-button")
        await expect(notice).to_have_text(
            "There is no booking with this reference. Check it with the caller, letter by letter."
        )
        await expect(notice).to_have_class("error")

        await book(page, "NOPE-NOPE-NOPE")
        await expect(notice).to_have_text(
            "This access code is not valid for this campaign. Check it with the caller,"
            " letter by letter."
        )
        no_stack_trace(await notice.text_content())
        await shown(page, "callcenter-unknown-code")

        await book(page, code)  # the caller booked online already
        await expect(notice).to_have_text(
            "This caller has a booking already: only one booking per person."
            f" The caller's booking is {online_id}."
        )
        await expect(page.locator("#find-ref")).to_have_value(online_id)
        no_stack_trace(await page.locator("main").inner_text())
        await shown(page, "callcenter-already-booked")
    # the refusals are answers the page shows (403, 404, 409), not script errors
    assert all(any(s in p for s in ("403", "404", "409")) for p in problems), problems


@pytest.mark.usefixtures("allocator")
async def test_a_booking_in_doubt_says_not_to_book_again(
    browser: Browser, connections: Connections, kafka_srv: Server, first_day: dt.date
) -> None:
    async with gateway_client(connections, send_timeout_s=SEND_TIMEOUT_S) as client:
        await create_campaign(client, first_day, counties=1, places=2)
        await create_room(client)
        [code] = await issue_codes(client, 1)
        problems: list[str] = []
        async with agent_page(browser, problems) as page:
            await signed_in(page, client)
            notice = page.locator("#notice")
            with paused(kafka_srv):
                await book(page, code)
                await expect(notice).to_contain_text("the booking may still come. Do NOT book")
            text = await notice.text_content() or ""
            reference = await page.locator("#find-ref").input_value()
            assert reference.startswith("bk_") and reference in text, text
            await shown(page, "callcenter-in-doubt")
            await page.click("#find-button")  # the gateway sends it again: it comes
            await expect(page.locator("#booking-words")).to_contain_text(
                "Held for the caller until", timeout=30_000
            )
        assert all("503" in p for p in problems), problems
