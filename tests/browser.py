"""Headless Chromium for the pages' tests: Debian's ``chromium``, driven by Playwright.

No browser is downloaded (Playwright's own builds cannot be fetched here, nor on CI):
Playwright launches the system's ``chromium`` (``make test`` installs Debian's package).
Screenshots are written under ``test-artifacts/screenshots`` (``FAIRQ_TEST_ARTIFACTS``
moves it) so that a person can look at every screen a test reached.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright

ARTIFACTS = Path(os.environ.get("FAIRQ_TEST_ARTIFACTS", "test-artifacts"))
SCREENSHOTS = ARTIFACTS / "screenshots"


def chromium_path() -> str:
    """The system's Chromium; a clear error where it is missing."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(
        "Debian's chromium is not installed: `make test` installs it (apt-get install chromium)"
    )


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """A headless Chromium for one test (started in about a second), closed on leaving."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path(),
            headless=True,
            # root in a container has no user namespaces for Chromium's sandbox
            args=["--no-sandbox"] if os.geteuid() == 0 else [],
        )
        try:
            yield browser
        finally:
            await browser.close()


async def screenshot(page: Page, name: str) -> Path:
    """A full-page screenshot named after the test's step; returns its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


def collect_problems(page: Page, problems: list[str]) -> None:
    """Put the page's console errors (a CSP violation is one) and uncaught script errors
    in ``problems``; a browser's own ask for an icon is not the page's doing."""

    def on_console(message: ConsoleMessage) -> None:
        url = message.location.get("url", "")
        if message.type == "error" and not url.endswith("/favicon.ico"):
            problems.append(f"{message.text} ({url})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(str(error)))
