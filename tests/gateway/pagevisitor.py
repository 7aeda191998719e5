"""A citizen on the waiting-room page in headless Chromium, for the page's browser tests.

Each visitor has its own browser context (its own storage, cookies and language), on
the test's in-process gateway. The page keeps its Content-Security-Policy in every
test: axe-core (``node_modules/axe-core``, from ``npm ci``) is added as an init script,
which Playwright injects past the page's CSP, so no context needs ``bypass_csp``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, expect

from tests.browser import screenshot

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
# WCAG 2.1 levels A and AA, and axe's best practices (landmarks, one h1, ...)
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
RUN_AXE = """async (tags) => {
  const result = await axe.run(document, {runOnly: {type: "tag", values: tags}});
  return result.violations.map((v) => v.id + ": " + v.help + " at "
    + v.nodes.map((n) => n.target.join(" ")).join(", "));
}"""
WAIT_S = 30.0


def axe_installed() -> bool:
    return AXE.is_file()


@dataclass
class Visitor:
    """One visitor's page; ``problems`` collects script errors and CSP violations."""

    name: str
    context: BrowserContext
    page: Page
    problems: list[str] = field(default_factory=list)

    @classmethod
    async def open(
        cls, browser: Browser, name: str, locale: str, **context_options: Any
    ) -> Visitor:
        context = await browser.new_context(locale=locale, **context_options)
        await context.add_init_script(path=str(AXE))
        page = await context.new_page()
        visitor = cls(name, context, page)
        page.on("console", visitor._on_console)
        page.on("pageerror", lambda error: visitor.problems.append(f"page error: {error}"))
        page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        return visitor

    def _on_console(self, message: ConsoleMessage) -> None:
        # A refusal the page expects (409 too_early, ...) is logged by Chromium as a
        # failed resource; it is an answer, not a problem. Anything else is one.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.problems.append(f"console: {message.text}")

    async def goto(self, url: str) -> None:
        await self.page.goto(url)

    async def visible(self, selector: str) -> None:
        await expect(self.page.locator(selector)).to_be_visible(timeout=WAIT_S * 1000)

    async def text(self, selector: str, expected: str) -> None:
        """Wait until the element's text contains ``expected``."""
        await expect(self.page.locator(selector)).to_contain_text(expected, timeout=WAIT_S * 1000)

    async def axe_violations(self) -> list[str]:
        violations: list[str] = await self.page.evaluate(RUN_AXE, AXE_TAGS)
        return violations

    async def check(self, state: str) -> None:
        """No accessibility violation, no script error or CSP violation; a screenshot."""
        await screenshot(self.page, f"citizen-{state}-{self.name}")
        violations = await self.axe_violations()
        assert not violations, f"{state} ({self.name}): {violations}"
        assert not self.problems, f"{state} ({self.name}): {self.problems}"

    async def storage(self, name: str) -> str | None:
        value: str | None = await self.page.evaluate(
            "(key) => Object.entries(localStorage).find(([k]) => k.endsWith('.' + key))?.[1]"
            " ?? null",
            name,
        )
        return value

    async def tab_to(self, element_id: str, most: int = 40) -> None:
        """Press Tab until ``element_id`` has the focus (the keyboard alone gets there)."""
        for _ in range(most):
            await self.page.keyboard.press("Tab")
            if await self.page.evaluate("() => document.activeElement?.id") == element_id:
                return
        raise AssertionError(f"{element_id} was not reached by {most} presses of Tab")

    async def close(self) -> None:
        await self.context.close()


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = WAIT_S) -> None:
    """Wait for a condition of the system that no stream tells (bounded, fails clearly)."""
    try:
        async with asyncio.timeout(timeout_s):
            while not await check():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"not within {timeout_s} s: {what}") from None
