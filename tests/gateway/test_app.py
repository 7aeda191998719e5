"""The gateway's front door: JSON errors for every failure, and the request counters."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from fairq.config import Connections
from fairq.devservices import Server
from gateway.app import create_app
from gateway.frontdoor import Access, add_routes
from gateway.metrics import GatewayMetrics
from gateway.state import GATEWAY
from tests.conftest import bounded, paused
from tests.gateway.conftest import bearer, create_campaign, create_room, make_settings

Client = TestClient[Any, Any]


async def boom(request: web.Request) -> web.Response:
    raise RuntimeError("a bug")


@pytest.fixture
async def app_client(connections: Connections) -> AsyncIterator[tuple[Client, GatewayMetrics]]:
    metrics = GatewayMetrics()
    app = create_app(make_settings(connections), metrics)
    table = web.RouteTableDef()
    table.get("/boom")(boom)
    table.get("/boom/{what}")(boom)
    add_routes(app, table, Access.PUBLIC)
    client: Client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client, metrics
    finally:
        await bounded(client.close(), "closing the test gateway")


async def test_unknown_path_and_wrong_method_answer_json(
    app_client: tuple[Client, GatewayMetrics],
) -> None:
    client, metrics = app_client
    missing = await client.get("/api/nothing-here")
    assert (missing.status, (await missing.json())["error"]["code"]) == (404, "not_found")
    wrong = await client.delete("/api/rooms/room/status")
    assert (wrong.status, (await wrong.json())["error"]["code"]) == (405, "method_not_allowed")
    assert "GET" in wrong.headers["Allow"]
    assert metrics.counters.requests[("unmatched", 404)] == 1
    assert metrics.counters.requests[("unmatched", 405)] == 1


async def test_a_bug_is_a_logged_500_in_json(
    app_client: tuple[Client, GatewayMetrics], caplog: pytest.LogCaptureFixture
) -> None:
    client, metrics = app_client
    response = await client.get("/boom")
    assert response.status == 500
    assert (await response.json())["error"]["code"] == "internal"
    assert any("unhandled error on GET /boom" in r.getMessage() for r in caplog.records)
    assert metrics.counters.requests[("/boom", 500)] == 1


async def test_a_line_break_in_the_path_of_a_500_is_escaped_in_its_log_line(
    app_client: tuple[Client, GatewayMetrics], caplog: pytest.LogCaptureFixture
) -> None:
    client, _ = app_client
    forged = "FORGED 2026-12-07 09:00:00 INFO gateway.admin: operator key rotated"
    response = await client.get(URL(f"/boom/x%0d%0a{quote(forged)}", encoded=True))
    assert (response.status, (await response.json())["error"]["code"]) == (500, "internal")
    [record] = [r for r in caplog.records if forged in r.getMessage()]
    assert record.getMessage() == f"unhandled error on GET /boom/x\\r\\n{forged}"
    assert record.exc_info is not None  # the traceback is still there
    assert not [line for line in caplog.text.splitlines() if line.startswith("FORGED")]


async def test_every_route_counted_by_its_path(
    app_client: tuple[Client, GatewayMetrics],
) -> None:
    client, metrics = app_client
    response = await client.get("/api/rooms/room/status")  # no ticket
    assert (response.status, (await response.json())["error"]["code"]) == (401, "unauthorized")
    assert metrics.counters.requests[("/api/rooms/{room}/status", 401)] == 1
    assert sum(metrics.counters.latency["/api/rooms/{room}/status"][:-1]) == 1


async def test_head_of_an_unknown_path_is_a_bodiless_404(
    app_client: tuple[Client, GatewayMetrics],
) -> None:
    client, metrics = app_client
    response = await client.head("/api/nothing-here")
    assert (response.status, response.content_type) == (404, "application/json")
    assert metrics.counters.requests[("unmatched", 404)] == 1


async def test_a_bug_in_a_handler_is_a_logged_json_500_counted_by_route(
    app_client: tuple[Client, GatewayMetrics],
    first_day: dt.date,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, metrics = app_client
    await create_campaign(client, first_day)
    await create_room(client)
    joined = await client.post("/api/rooms/room/join")
    assert joined.status == 200
    ticket = (await joined.json())["ticket"]
    assert (await client.get("/api/rooms/room/status", headers=bearer(ticket))).status == 200
    assert metrics.counters.requests[("/api/rooms/{room}/join", 200)] == 1
    assert metrics.counters.requests[("/api/rooms/{room}/status", 200)] == 1
    assert sum(metrics.counters.latency["/api/rooms/{room}/join"][:-1]) == 1

    def bug(*args: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(client.app[GATEWAY].signer, "verify_ticket", bug)
    broken = await client.get("/api/rooms/room/status", headers=bearer(ticket))
    assert (broken.status, (await broken.json())["error"]["code"]) == (500, "internal")
    message = "unhandled error on GET /api/rooms/room/status"
    assert any(message in r.getMessage() for r in caplog.records)
    assert metrics.counters.requests[("/api/rooms/{room}/status", 500)] == 1


async def test_liveness_holds_and_readiness_follows_redis_and_the_broker(
    client: Client, redis_srv: Server, kafka_srv: Server
) -> None:
    """/livez (and its old name /healthz) ask nothing of the dependencies: a Redis blip
    must not get a gateway restarted. /readyz is 503 while Redis or the broker is paused."""
    ready = await client.get("/readyz")
    assert ready.status == 200, await ready.text()
    assert (await ready.json())["checks"] == {"redis": "ok", "broker": "ok", "booking_views": "ok"}
    with paused(redis_srv):
        for path in ("/livez", "/healthz"):
            assert (await client.get(path)).status == 200
        not_ready = await client.get("/readyz")
        assert not_ready.status == 503
        body = await not_ready.json()
        assert body["error"]["code"] == "not_ready" and "redis" in body["error"]["message"]
        assert body["checks"]["redis"] != "ok" and body["checks"]["broker"] == "ok"
    assert (await client.get("/readyz")).status == 200
    with paused(kafka_srv):
        assert (await client.get("/livez")).status == 200
        not_ready = await client.get("/readyz")
        assert not_ready.status == 503
        assert (await not_ready.json())["checks"]["broker"] != "ok"
    assert (await client.get("/readyz")).status == 200
