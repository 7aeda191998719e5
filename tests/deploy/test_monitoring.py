"""The monitoring files of ``deploy/`` against promtool and a real Prometheus scraping fairq.

promtool (Debian's ``prometheus`` package; ``make test`` installs it) checks the scrape
configuration and the alert rules and runs the rules' unit tests. Then Debian's
``prometheus`` starts on a free port with the deploy configuration itself (its file_sd
target lists pointed at this test's gateway and allocator, its intervals shortened),
scrapes a running fairq (real Redis, broker, allocator and admitter; a campaign sold
out through the API), and every Grafana panel's query and every alert's expression
goes through its HTTP API: each must parse, and the ones named here must return data.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from allocator.service import run as run_allocator
from allocator.settings import AllocatorSettings
from fairq.config import Connections
from fairq.devservices import free_port
from tests.conftest import TEST_SESSION_TIMEOUT_MS, bounded
from tests.gateway.conftest import (  # noqa: F401 (admitter: the real admitter fixture)
    admitter,
    bearer,
    create_campaign,
    create_room,
    gateway_client,
)
from tests.gateway.test_flow import admitted_visitor, request_pair

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES = PROMETHEUS_DIR / "rules" / "fairq.rules.yml"
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
DASHBOARD = ROOT / "deploy" / "grafana" / "fairq.json"

ROOM, CAMPAIGN = "room", "camp"
# Grafana's $__rate_interval is at least four scrape intervals; the test scrapes every second.
RATE_INTERVAL = "5s"
INTERVALS = {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
GUARD_S = 30.0  # only so a broken setup fails with what is missing instead of hanging

# Every panel, by title: those that must show data once fairq has sold a campaign out,
# and those that may rightly be empty here (no request failed; the wait needs a measured
# admission rate above zero at that moment).
PANELS_WITH_DATA = {
    "Queue depth",
    "Arrivals per second",
    "Admissions per second",
    "Active bookers and cap",
    "State",
    "Sold out",
    "Pairs left per county",
    "Pairs left per county and vaccine",
    "Held, confirmed and free per county",
    "Holds, confirmations and expiries per minute",
    "Requests per second by status",
    "Request latency p99 by route",
    "Open event streams",
    "Booking requests accepted per second",
    "Allocator lag per partition",
    "Allocator commands per second",
    "Processes up",
}
PANELS_MAY_BE_EMPTY = {"Gateway 5xx per second", "Estimated wait at the back of the line"}
# The alerts whose expression holds here: the room is sold out (the others must be quiet).
ALERTS_WITH_DATA = {"FairqRoomSoldOut"}
ALERTS = {
    "FairqLineNotMoving",
    "FairqAllocatorLagging",
    "FairqGateway5xx",
    "FairqHoldExpiriesSpiking",
    "FairqRoomSoldOut",
    "FairqProcessDown",
    "FairqRedisRestored",
}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: `make test` installs Debian's prometheus package")
    return path


def promtool(*args: str | Path) -> str:
    done = subprocess.run(
        [tool("promtool"), *map(str, args)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels() -> Iterator[dict[str, Any]]:
    """The dashboard's panels that query (rows left out)."""
    for panel in dashboard()["panels"]:
        if panel["type"] != "row":
            yield panel


def substituted(expr: str) -> str:
    """A panel query with its template variables as Grafana would fill them here."""
    for name, value in (
        ("$__rate_interval", RATE_INTERVAL),
        ("$room", ROOM),
        ("$campaign", CAMPAIGN),
    ):
        expr = expr.replace(name, value)
    assert "$" not in expr, f"an unknown template variable is left in {expr}"
    return expr


def panel_queries() -> dict[str, list[str]]:
    return {
        panel["title"]: [substituted(target["expr"]) for target in panel["targets"]]
        for panel in panels()
    }


def test_promtool_accepts_the_scrape_config_and_the_rules_and_their_tests_pass() -> None:
    assert "SUCCESS" in promtool("check", "config", CONFIG)
    assert f"SUCCESS: {len(ALERTS)} rules found" in promtool("check", "rules", RULES)
    assert RULE_TESTS, "no rule unit tests found"
    assert "SUCCESS" in promtool("test", "rules", *RULE_TESTS)


def test_the_dashboard_is_importable_with_a_datasource_and_a_room_variable() -> None:
    data = dashboard()
    assert isinstance(data["schemaVersion"], int) and data["uid"]
    variables = {v["name"]: v for v in data["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["room"]["type"] == "query"
    room_rows = [p for p in data["panels"] if p["type"] == "row" and p.get("repeat") == "room"]
    assert len(room_rows) == 1
    ids = [p["id"] for p in data["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels():
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])
    assert set(panel_queries()) == PANELS_WITH_DATA | PANELS_MAY_BE_EMPTY


@contextlib.asynccontextmanager
async def metrics_server(registry: CollectorRegistry) -> AsyncIterator[int]:
    """``registry`` on /metrics of a free port, as the allocator's health port serves it."""

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def allocator_with_metrics(connections: Connections) -> AsyncIterator[int]:
    """The real allocator on the test's topics; yields the port of its metrics."""
    stop = asyncio.Event()
    registry = CollectorRegistry()
    settings = AllocatorSettings(
        connections=connections,
        group_id=f"alloc-{id(stop)}",
        tick_interval_s=0.2,
        session_timeout_ms=TEST_SESSION_TIMEOUT_MS,
    )
    task = asyncio.create_task(run_allocator(settings, stop, registry))
    try:
        async with metrics_server(registry) as port:
            yield port
    finally:
        stop.set()
        await bounded(task, "stopping the allocator")


def prometheus_config(workdir: Path, targets: dict[str, list[str]]) -> Path:
    """The deploy configuration in ``workdir`` with ``targets`` (by job) in its file_sd
    lists and second-long intervals; its rules copied beside it."""
    text = CONFIG.read_text()
    for key, value in INTERVALS.items():
        text, n = re.subn(rf"(\n\s+{key}:) \S+", rf"\1 {value}", text)
        assert n == 1, f"{key} not found once in {CONFIG}"
    (workdir / "prometheus.yml").write_text(text)
    shutil.copytree(PROMETHEUS_DIR / "rules", workdir / "rules")
    (workdir / "targets").mkdir()
    for job in ("gateway", "admitter", "allocator"):
        listed = targets.get(f"fairq-{job}", [])
        entries = [{"targets": listed}] if listed else []
        (workdir / "targets" / f"{job}.yml").write_text(json.dumps(entries))  # JSON is YAML
    return workdir / "prometheus.yml"


@contextlib.asynccontextmanager
async def prometheus(workdir: Path, config: Path) -> AsyncIterator[str]:
    """Debian's prometheus on a free port with ``config``, its data in ``workdir``;
    yields its base URL once ready, and stops it on leaving."""
    port = free_port()
    log = (workdir / "prometheus.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        tool("prometheus"),
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            while True:
                if process.returncode is not None:
                    pytest.fail(f"prometheus exited: {(workdir / 'prometheus.log').read_text()}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{base}/-/ready") as response:
                        if response.status == 200:
                            break
                await asyncio.sleep(0.1)
        yield base
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        log.close()


async def alert_rules(http: aiohttp.ClientSession, base: str) -> dict[str, dict[str, Any]]:
    """The alerting rules Prometheus loaded from the deploy rules file, by name, with
    their parsed expression (``query``), ``duration``, labels, annotations and health."""
    async with http.get(f"{base}/api/v1/rules", params={"type": "alert"}) as response:
        groups = (await response.json())["data"]["groups"]
    return {rule["name"]: rule for group in groups for rule in group["rules"]}


async def query(http: aiohttp.ClientSession, base: str, expr: str) -> dict[str, Any]:
    """Prometheus's answer to an instant query (``status`` success or error)."""
    async with http.get(f"{base}/api/v1/query", params={"query": expr}) as response:
        answer: dict[str, Any] = await response.json()
        return answer


async def sell_out(client: Any, first_day: dt.date) -> None:
    """A campaign of two pairs and an open room; two visitors hold both, one confirms."""
    await create_campaign(client, first_day, name=CAMPAIGN, counties=1, places=2)
    await create_room(client, name=ROOM, campaign=CAMPAIGN, opens_in_s=0)
    tokens = [await admitted_visitor(client) for _ in range(2)]
    held = [await request_pair(client, token) for token in tokens]
    assert [answer["state"] for _, answer in held] == ["held", "held"]
    booking_id = held[0][0]
    response = await client.post(f"/api/bookings/{booking_id}/confirm", headers=bearer(tokens[0]))
    assert response.status == 200, await response.text()


@pytest.mark.timeout(90)
@pytest.mark.usefixtures("admitter")
async def test_a_real_prometheus_scrapes_fairq_and_runs_every_panel_and_alert(
    connections: Connections, tmp_path: Path
) -> None:
    first_day = dt.date.today() + dt.timedelta(days=2)
    async with (
        gateway_client(connections) as client,
        allocator_with_metrics(connections) as allocator_port,
    ):
        await sell_out(client, first_day)
        targets = {
            "fairq-gateway": [f"127.0.0.1:{client.server.port}"],
            "fairq-allocator": [f"127.0.0.1:{allocator_port}"],
        }
        config = prometheus_config(tmp_path, targets)
        async with prometheus(tmp_path, config) as base, aiohttp.ClientSession() as http:
            rules = await alert_rules(http, base)
            assert set(rules) == ALERTS
            for name, rule in rules.items():
                assert rule["duration"] > 0, name
                assert rule["labels"]["severity"] in ("critical", "warning", "info"), name
                assert {"summary", "description"} <= set(rule["annotations"]), name
            queries = {f"panel {title}": exprs for title, exprs in panel_queries().items()}
            queries |= {f"alert {name}": [rule["query"]] for name, rule in rules.items()}
            must_have = {f"panel {t}" for t in PANELS_WITH_DATA} | {
                f"alert {a}" for a in ALERTS_WITH_DATA
            }
            answers: dict[str, list[dict[str, Any]]] = {}

            async def missing() -> set[str]:
                """What is not there yet: the queries named to have data that have none,
                and the rules Prometheus has not evaluated without error."""
                for name, exprs in queries.items():
                    answers[name] = [await query(http, base, expr) for expr in exprs]
                errors = {
                    name: [a.get("error") for a in answered if a["status"] != "success"]
                    for name, answered in answers.items()
                }
                assert not any(errors.values()), {n: e for n, e in errors.items() if e}
                health = {
                    name: rule["health"] for name, rule in (await alert_rules(http, base)).items()
                }
                assert "err" not in health.values(), health
                return {
                    name
                    for name in must_have
                    if not all(a["data"]["result"] for a in answers[name])
                } | {f"rule {name} evaluated" for name, h in health.items() if h != "ok"}

            try:
                async with asyncio.timeout(GUARD_S):
                    while await missing():
                        await asyncio.sleep(0.5)  # the next scrape (every second)
            except TimeoutError:
                pytest.fail(f"not there within {GUARD_S}s: {sorted(await missing())}")

            async with http.get(f"{base}/api/v1/targets") as response:
                active = (await response.json())["data"]["activeTargets"]
            assert {(t["labels"]["job"], t["health"]) for t in active} == {
                ("fairq-gateway", "up"),
                ("fairq-allocator", "up"),
            }
            quiet = {f"alert {a}" for a in ALERTS - ALERTS_WITH_DATA}
            assert {name for name in quiet if answers[name][0]["data"]["result"]} == set()
            sold_out = answers["alert FairqRoomSoldOut"][0]["data"]["result"]
            assert [r["metric"]["room"] for r in sold_out] == [ROOM]
