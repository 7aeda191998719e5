"""The rehearsal (``loadtest.rehearse``) end to end: the CI scenario against the real
stack (allocator, admitter and a gateway as processes, ``tests.harness``), a report
with its plots and checks, a verdict that a broken service level turns, and the
report as a person sees it in Chromium (a screenshot under test-artifacts)."""

from __future__ import annotations

import html
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.async_api import Browser

from fairq.config import Connections
from fairq.devservices import free_port
from loadtest.rehearse import ROOT, main, parse, rehearse, remote_worker_command
from loadtest.report import CAP_LIMITED
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
    "System side: Event loop lag, worst in each second, per process (s)",
    "Click to held over time",
    "Honesty of the estimated wait",
)


async def rehearse_ci(connections: Connections, out: Path, *args: str) -> tuple[Path, bool]:
    """The CI scenario against the real processes; the report's path and the verdict."""
    prefix = connections.topics.commands.removesuffix("booking-commands")
    env = {
        "FAIRQ_OPERATOR_KEY": OPERATOR_KEY,
        "FAIRQ_LOADTEST_KEY": LOADTEST_KEY,
        "KAFKA_BOOTSTRAP": connections.kafka_bootstrap,
        "FAIRQ_TOPIC_PREFIX": prefix,
    }
    with running_system(connections, out / "logs", gateways=1) as system:
        url = system.gateways[0]
        options = parse(["--scenario", "ci", "--host", url, "--out", str(out), *args], env)
        path, passed = await rehearse(options)
        assert not system.dead(), system.dead()
    return path, passed


async def test_a_ci_launch_gets_a_report_and_a_verdict(
    connections: Connections, tmp_path: Path, browser: Browser
) -> None:
    path, passed = await rehearse_ci(connections, tmp_path)

    page_text = path.read_text(encoding="utf-8")
    verdict = page_text[page_text.index("Verdict:") : page_text.index("Verdict:") + 20]
    assert passed, (verdict, (path.parent / "locust.log").read_text()[-4000:])
    assert "Verdict: PASS" in page_text
    assert "The operator paused admission from 3 s to 5 s" in page_text
    assert "lowered the cap on active bookers to 1 from 6 s to 10 s" in page_text
    # the estimates shown while the cap held admission back, judged apart
    phase = re.search(
        rf"<td>{re.escape(html.escape(CAP_LIMITED))}</td><td>(\d+)</td><td>(\d+)%</td><td>(\d+)%</td>",
        page_text,
    )
    honesty = page_text[page_text.index("Honesty of the") :][:1500]
    assert phase is not None and int(phase[1]) > 0, honesty
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


async def test_locust_distributed_merges_every_workers_outcomes(
    connections: Connections, tmp_path: Path
) -> None:
    """``--workers 2``: a locust master and two worker processes; the report is made of
    what both workers sent the master (outcomes, timeline, tickets for the order check)."""
    path, passed = await rehearse_ci(connections, tmp_path, "--workers", "2")
    run = path.parent
    assert passed, (run / "locust.log").read_text()[-4000:]
    outcomes = json.loads((run / "outcomes.json").read_text())
    workers = outcomes["workers"]
    assert len(workers) == 2, workers
    for share in workers.values():  # each worker drove visits of its own
        assert share["requests"] > 0 and share["counts"].get("joined anonymously", 0) > 0, share
    merged_on_master = {"order checked (tickets)", "order inversions"}
    for name, total in outcomes["counts"].items():
        if name not in merged_on_master:
            assert sum(w["counts"].get(name, 0) for w in workers.values()) == total, name
    # the order check ran on the master over both workers' tickets
    assert outcomes["counts"]["order checked (tickets)"] > 0
    assert outcomes["counts"]["order inversions"] == 0
    # the timeline holds every request of both workers, as locust's own merged stats count
    totals = json.loads((run / "timeline.json").read_text())["totals"]
    assert sum(t["n"] for t in totals.values()) == sum(w["requests"] for w in workers.values())
    locust_stats = json.loads((run / "locust-stats.json").read_text())
    assert {s["name"]: s["num_requests"] for s in locust_stats} == {
        name: t["n"] for name, t in totals.items()
    }
    page_text = path.read_text(encoding="utf-8")
    assert "Verdict: PASS" in page_text and "--workers 2" in page_text
    for heading in (*CHECKS, *PLOTS):
        assert heading in page_text, heading


async def test_a_worker_on_another_machine_joins_with_the_printed_command(
    connections: Connections, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--remote-workers 1 --master-bind ADDR``: the master listens on ADDR (here another
    loopback address, as another machine would reach it) and waits for the worker that
    runs the command it prints, beside its local one; both drive visits."""
    master, port = "127.0.0.2", free_port()
    worker = [sys.executable, "-m", *remote_worker_command(master, port)]
    env = os.environ | {"FAIRQ_OPERATOR_KEY": OPERATOR_KEY, "FAIRQ_LOADTEST_KEY": LOADTEST_KEY}
    log = (tmp_path / "remote-worker.log").open("wb")
    remote = subprocess.Popen(worker, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        path, passed = await rehearse_ci(
            connections,
            tmp_path,
            *("--workers", "1", "--remote-workers", "1"),
            *("--master-bind", master, "--master-port", str(port)),
        )
    finally:
        if remote.poll() is None:
            remote.kill()
        remote.wait()
        log.close()
    assert shlex.join(remote_worker_command(master, port)) in capsys.readouterr().err
    assert f"--remote-workers 1 --master-bind {master} --master-port {port}" in path.read_text()
    assert passed, (path.parent / "locust.log").read_text()[-4000:]
    workers = json.loads((path.parent / "outcomes.json").read_text())["workers"]
    assert len(workers) == 2 and all(w["requests"] > 0 for w in workers.values()), workers


def test_remote_workers_need_an_address_other_machines_reach(
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = {"FAIRQ_OPERATOR_KEY": OPERATOR_KEY, "FAIRQ_LOADTEST_KEY": LOADTEST_KEY}
    for bind in ([], ["--master-bind", "0.0.0.0"]):
        with pytest.raises(SystemExit) as exited:
            parse(["--scenario", "ci", "--remote-workers", "2", *bind], env)
        assert exited.value.code == 2
        assert "--remote-workers needs --master-bind" in capsys.readouterr().err
