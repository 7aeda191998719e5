"""The waiting-room page in a real browser (headless Chromium): it renders, joins, and
keeps to its Content-Security-Policy."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, expect

from tests.browser import collect_problems, screenshot
from tests.gateway.conftest import create_campaign, create_room

Client = TestClient[Any, Any]


async def test_a_visitor_joins_the_prequeue_in_chromium(
    client: Client, browser: Browser, first_day: dt.date
) -> None:
    await create_campaign(client, first_day)
    await create_room(client, opens_in_s=600)
    page = await browser.new_page()
    problems: list[str] = []
    collect_problems(page, problems)
    page.on(
        "response",
        lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None,
    )
    await page.goto(str(client.make_url("/rooms/room")))
    await expect(page.locator("#join-section")).to_be_visible()
    await screenshot(page, "page-before-joining")
    await page.click("#join-button")
    await expect(page.locator("#queue-section")).to_be_visible()
    await expect(page.locator("#queue-state")).not_to_be_empty()
    await screenshot(page, "page-prequeue")
    assert not problems, problems
