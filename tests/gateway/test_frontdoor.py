"""The front door: every route declared, and every operator and agent route guarded."""

from __future__ import annotations

import re
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from aiohttp.typedefs import Handler

from fairq.config import Connections
from gateway.app import create_app
from gateway.frontdoor import (
    FRONT_DOOR,
    UNMATCHED,
    Access,
    Around,
    FrontDoor,
    UnclassifiedRoute,
    add_routes,
    install,
    label_of,
    nested,
)
from gateway.metrics import GatewayMetrics
from gateway.ratelimit import RateLimiter, RateLimitSettings
from gateway.sessions import AGENT, OPERATOR
from tests.gateway.conftest import make_settings
from tests.gateway.test_bad_input import end_offsets, redis_state

Client = TestClient[Any, Any]

# Every route anyone may call, reviewed: a new public route is added here on purpose.
# (HEAD goes with GET.) Every other route is an operator's or an agent's.
PUBLIC_ROUTES = {
    ("GET", "/healthz"),
    ("GET", "/livez"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/api/openapi.json"),
    ("GET", "/api/reference"),
    ("GET", "/api/rooms/{room}/status"),
    ("POST", "/api/rooms/{room}/join"),
    ("GET", "/api/rooms/{room}/events"),
    ("GET", "/api/rooms/{room}"),
    ("POST", "/api/rooms/{room}/bookings"),
    ("POST", "/api/rooms/{room}/waitlist"),
    ("GET", "/api/bookings/{booking_id}"),
    ("GET", "/api/bookings/{booking_id}/calendar.ics"),
    ("GET", "/api/bookings/{booking_id}/events"),
    ("POST", "/api/bookings/{booking_id}/move"),
    ("POST", "/api/bookings/{booking_id}/confirm"),
    ("POST", "/api/bookings/{booking_id}/cancel"),
    ("GET", "/assets/{asset}"),
    ("GET", "/rooms/{room}"),
    ("GET", "/api/rooms/{room}/challenge"),
    ("GET", "/operator"),
    ("GET", "/operator/{asset}"),
    ("POST", "/api/operator/session"),
    ("GET", "/api/operator/session"),
    ("DELETE", "/api/operator/session"),
    ("GET", "/callcenter"),
    ("POST", "/api/agent/session"),
    ("GET", "/api/agent/session"),
    ("DELETE", "/api/agent/session"),
}
# the signed-in routes, by the path every one of them is under
PREFIXES = {"/api/admin/": Access.OPERATOR, "/api/callcenter/": Access.AGENT}


def expected_access(method: str, path: str) -> Access | None:
    """What the reviewed list and the prefixes say (None: neither knows the route)."""
    key = ("GET" if method == "HEAD" else method, path)
    if key in PUBLIC_ROUTES:
        return Access.PUBLIC
    return next((a for prefix, a in PREFIXES.items() if path.startswith(prefix)), None)


def sample_path(canonical: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", canonical)


def every_route(app: web.Application) -> dict[tuple[str, str], Access]:
    return {(r.method, label_of(r)): p.access for r, p in app[FRONT_DOOR].plans().items()}


async def test_every_route_is_declared_and_planned(connections: Connections) -> None:
    app = create_app(make_settings(connections))
    await app[FRONT_DOOR].plan(app)
    routes = every_route(app)
    assert len(routes) == len(list(app.router.routes())) >= 90
    assert routes == {route: expected_access(*route) for route in routes}
    # the reviewed list is every public route: a new one is added to it, a gone one removed
    assert {(m, p) for (m, p), a in routes.items() if a is Access.PUBLIC and m != "HEAD"} == (
        PUBLIC_ROUTES
    )
    assert {a for a in routes.values()} == set(Access)


async def test_an_undeclared_route_stops_the_app_from_starting(connections: Connections) -> None:
    app = create_app(make_settings(connections))

    async def new(request: web.Request) -> web.Response:
        return web.Response()

    app.router.add_post("/api/admin/new", new)
    with pytest.raises(UnclassifiedRoute, match="POST /api/admin/new was added without"):
        await app[FRONT_DOOR].plan(app)


def test_a_handler_serves_one_kind_of_caller(connections: Connections) -> None:
    app = create_app(make_settings(connections))
    tables = web.RouteTableDef(), web.RouteTableDef()

    async def twice(request: web.Request) -> web.Response:
        return web.Response()

    tables[0].get("/api/admin/twice")(twice)
    tables[1].get("/twice")(twice)
    add_routes(app, tables[0], Access.OPERATOR)
    with pytest.raises(ValueError, match="declared both operator and public"):
        add_routes(app, tables[1], Access.PUBLIC)


async def test_every_signed_in_route_is_behind_its_door(
    client: Client, redis: aioredis.Redis, connections: Connections
) -> None:
    """Each operator and agent route the router has (by the reviewed list, not by what
    the routes are declared), called for real: without credentials 401 JSON;
    with a forged session cookie of its role 401 ``not_signed_in``, which only its door
    says (it alone reads the cookie). Nothing changes."""
    app: web.Application = client.app
    routes = {(r.method, label_of(r)) for r in app.router.routes()}
    calls = [(m, p, a) for m, p in routes if (a := expected_access(m, p)) in PREFIXES.values()]
    assert {a for _, _, a in calls} == {Access.OPERATOR, Access.AGENT} and len(calls) >= 40
    before = (await redis_state(redis), await end_offsets(connections))
    cookie: dict[Access | None, str] = {
        Access.OPERATOR: OPERATOR.cookie,
        Access.AGENT: AGENT.cookie,
    }
    answers = {}
    for method, canonical, access in calls:
        path = sample_path(canonical)
        bare = await client.request(method, path, data=b"{}")
        forged = await client.request(
            method, path, data=b"{}", cookies={cookie[access]: "s.4102444800.forged"}
        )
        answers[method, canonical] = [
            (r.status, r.content_type, None if method == "HEAD" else (await r.json())["error"])
            for r in (bare, forged)
        ]
    assert {route: [(s, t, e and e["code"]) for s, t, e in a] for route, a in answers.items()} == {
        (m, p): [(401, "application/json", c) for c in ("unauthorized", "not_signed_in")]
        if m != "HEAD"
        else [(401, "application/json", None)] * 2
        for m, p, _ in calls
    }
    assert (await redis_state(redis), await end_offsets(connections)) == before


async def test_the_app_has_one_middleware(client: Client) -> None:
    assert len(client.app.middlewares) == 1


async def test_a_route_added_after_the_plans_is_never_served() -> None:
    """An ``on_startup`` handler that adds a route after the front door planned: the
    route is answered 500 (logged), its handler never runs."""
    served: list[str] = []

    async def late(request: web.Request) -> web.Response:
        served.append(request.path)
        return web.Response()

    async def add_late(app: web.Application) -> None:
        app.router.add_get("/late", late)

    app = web.Application()
    metrics = GatewayMetrics()
    install(app, FrontDoor(metrics, RateLimiter(RateLimitSettings()), {}))
    app.on_startup.append(add_late)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/late")
        assert (response.status, (await response.json())["error"]["code"]) == (500, "internal")
    assert served == [] and metrics.counters.requests[(UNMATCHED, 500)] == 1


async def test_a_door_and_a_stream_cap_nest_around_the_handler() -> None:
    calls: list[str] = []

    def around(name: str) -> Around:
        async def run(request: web.Request, handler: Handler) -> web.StreamResponse:
            calls.append(f"{name} in")
            try:
                return await handler(request)
            finally:
                calls.append(f"{name} out")

        return run

    async def handler(request: web.Request) -> web.StreamResponse:
        calls.append("handler")
        return web.Response()

    await nested(around("door"), around("cap"))(make_mocked_request("GET", "/"), handler)
    assert calls == ["door in", "cap in", "handler", "cap out", "door out"]
