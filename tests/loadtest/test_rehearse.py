"""The rehearsal (``loadtest.rehearse``) end to end: the CI scenario against the real
stack (allocator, admitter and a gateway as processes, ``tests.harness``), a report
with its plots and checks, a verdict that a broken service level turns, and the
report as a person sees it in Chromium (a screenshot under test-artifacts)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Browser

from fairq.config import Connections
from loadtest.rehearse import main, parse, rehearse
from loadtest.scenario import SCENARIOS
from tests.browser import collect_problems, screenshot
from tests.harness import LOADTEST_KEY, OPERATOR_KEY, running_system

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

# the checks and plots every report holds (their headings)
CHECKS = (
    "zero inversions in admission order",
    "log: every booking: one path to one final answer",
    "log: every Book answered",
    "log: no slot over its capacity",
    "log: whole pairs",
    "log: nobody with two pairs",
)
PLOTS = (
    "Client side: requests per second",
    "Client side: latency percentiles over time",
    "Client side: errors",
    "System side: The line",
    "System side: Inventory (pairs)",
    "System side: Allocator lag (records behind the log&#x27;s end)",
    "Click to held over time",
    "Honesty of the estimated wait",
)


async def test_a_ci_launch_gets_a_report_and_a_verdict(
    connections: Connections, tmp_path: Path, browser: Browser
) -> None:
    prefix = connections.topics.commands.removesuffix("booking-commands")
    env = {
        "FAIRQ_OPERATOR_KEY": OPERATOR_KEY,
        "FAIRQ_LOADTEST_KEY": LOADTEST_KEY,
        "KAFKA_BOOTSTRAP": connections.kafka_bootstrap,
        "FAIRQ_TOPIC_PREFIX": prefix,
    }
    with running_system(connections, tmp_path / "logs", gateways=1) as system:
        url = system.gateways[0]
        options = parse(["--scenario", "ci", "--host", url, "--out", str(tmp_path)], env)
        path, passed = await rehearse(options)
        assert not system.dead(), system.dead()

    page_text = path.read_text(encoding="utf-8")
    verdict = page_text[page_text.index("Verdict:") : page_text.index("Verdict:") + 20]
    assert passed, (verdict, (path.parent / "locust.log").read_text()[-4000:])
    assert "Verdict: PASS" in page_text
    assert "The operator paused admission from 3 s to 5 s" in page_text
    for heading in (*CHECKS, *PLOTS):
        assert heading in page_text, heading
    assert page_text.count("<svg") == len(PLOTS) + 2  # and two more system-side plots
    assert not re.search(r"(src|href)=\"https?:|<link|url\(http", page_text)  # nothing fetched
    assert "<script" not in page_text  # self-contained: nothing to fetch, nothing to run

    # The same data against a scenario whose click-to-held level no stack can meet: the
    # verdict fails, and so does the exit code.
    broken = tmp_path / "broken.toml"
    broken.write_text(
        (SCENARIOS / "ci.toml")
        .read_text()
        .replace("max_click_to_held_p99_ms = 5000.0", "max_click_to_held_p99_ms = 0.001")
    )
    args = ["--scenario", str(broken), "--rejudge", str(path.parent)]
    assert main(args) == 1
    assert "Verdict: FAIL" in path.read_text(encoding="utf-8")
    assert main(["--scenario", "ci", "--rejudge", str(path.parent)]) == 0

    page = await browser.new_page(viewport={"width": 1100, "height": 900})
    problems: list[str] = []
    collect_problems(page, problems)
    await page.goto(path.resolve().as_uri())
    assert await page.locator(".verdict").inner_text() == "Verdict: PASS"
    assert await page.locator("svg").count() == len(PLOTS) + 2
    await screenshot(page, "rehearsal-report")
    assert problems == []
