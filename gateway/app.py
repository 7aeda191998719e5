"""The gateway's aiohttp application factory.

Every request goes through the front door (``gateway.frontdoor``, the app's one
middleware): who may call the route, per-route rate limits, the cap on open event
streams, JSON error bodies (404 and 405 included), request metrics by route. Every
route table is added with the access it is declared with (``frontdoor.add_routes``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from functools import partial
from typing import TypedDict

import redis.asyncio as aioredis
from aiohttp import web

from fairq import looplag, safelog
from fairq.health import (
    Check,
    NotReady,
    broker_reachable,
    liveness_response,
    metrics_response,
    readiness_response,
)
from fairq.tasks import cancel_and_wait
from gateway import (
    actionlog,
    admin,
    audit,
    bookings,
    callcenter,
    callscreen,
    challenge,
    console,
    dailyinventory,
    frontdoor,
    history,
    openapi,
    operators,
    page,
    rooms,
    supply,
    system,
)
from gateway.bookingviews import BookingViews, consume_events
from gateway.bounds import DAY_S
from gateway.contracts import METRICS, Health, operation
from gateway.errors import Code
from gateway.frontdoor import Access, FrontDoor, add_routes
from gateway.metrics import DashboardCollector, GatewayMetrics
from gateway.placement import run_resender
from gateway.producer import CommandProducer, make_producer
from gateway.ratelimit import RATE_LIMITER, RateLimiter
from gateway.readmodel import ReadModel
from gateway.roomcache import RoomCache
from gateway.settings import GatewaySettings
from gateway.state import GATEWAY, Gateway
from waitingroom.durable import Restorer, check_on_connect
from waitingroom.rooms import RoomStore
from waitingroom.statelog import StateLog
from waitingroom.tickets import Signer

logger = logging.getLogger(__name__)

routes = web.RouteTableDef()
CAUGHT_UP_WAIT_S = 30.0
REDIS_WAIT_S = 5.0  # how long a request waits for a free Redis connection


# Readiness checks, set once the gateway's clients exist (see ``fairq.health``).
READINESS: web.AppKey[dict[str, Check]] = web.AppKey("readiness")


@routes.get("/livez")
@routes.get("/healthz")  # the earlier name of /livez, kept for existing probes
@operation("liveness: the process serves", {200: Health}, backend=False, tag="health")
async def livez(request: web.Request) -> web.Response:
    """The process serves; Redis or the broker being down does not make it 503 (a
    restart would not bring them back)."""
    return liveness_response()


@routes.get("/readyz")
@operation(
    "readiness: Redis and the broker answer, the booking views are loaded",
    {200: Health},
    Code.NOT_READY,
    backend=False,
    tag="health",
)
async def readyz(request: web.Request) -> web.Response:
    """Redis and the broker answer, and the booking views are loaded: 200, else 503."""
    checks = request.app[READINESS]
    return await readiness_response(checks)


@routes.get("/metrics")
@operation("Prometheus metrics", {200: METRICS}, backend=False, tag="health")
async def metrics(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    gw.metrics.streams.labels("booking")  # make the series exist before the first stream
    return metrics_response(gw.metrics.registry)


async def _loop_lag(metrics: GatewayMetrics, _app: web.Application) -> AsyncIterator[None]:
    async with looplag.watching(metrics.registry):  # fairq_event_loop_lag_seconds
        yield


async def _components(
    settings: GatewaySettings, metrics: GatewayMetrics, app: web.Application
) -> AsyncIterator[None]:
    """Redis, the producer, the events reader and the room refresher, for the app's lifetime.

    Before serving, Redis is restored from the state log if it lost its state (see
    ``waitingroom.durable``); the room refresher looks again at every refresh.
    """
    conn = settings.connections
    pool = aioredis.BlockingConnectionPool.from_url(
        conn.redis_url,
        max_connections=settings.redis_connections,
        timeout=REDIS_WAIT_S,
        redis_connect_func=check_on_connect,
    )
    redis = aioredis.Redis(connection_pool=pool)
    producer = make_producer(conn.kafka)
    await producer.start()
    ledger = StateLog(producer, conn.kafka, conn.topics.state, settings.send_timeout_s)
    store = RoomStore(redis, ledger)
    cache = RoomCache(redis, store, settings.refresh_s, booking_grace_s=settings.booking_grace_s)
    restorer = Restorer(
        redis, store, ledger, on_restore=metrics.restores.inc, floors=cache.admission_floors
    )
    await restorer.ensure_at_start()
    views = BookingViews(
        ReadModel(redis, conn.topics.events, settings.readmodel_retention_days * DAY_S)
    )
    app[GATEWAY] = Gateway(
        settings=settings,
        redis=redis,
        store=store,
        signer=Signer(settings.signing_keys, settings.signing_kid),
        rooms=cache,
        views=views,
        commands=CommandProducer(producer, conn.topics.commands, settings.send_timeout_s),
        metrics=metrics,
    )
    dashboard = DashboardCollector(cache, views)
    metrics.registry.register(dashboard)
    caught_up, stop = asyncio.Event(), asyncio.Event()

    async def views_loaded() -> None:
        if not caught_up.is_set():
            raise NotReady("the booking-events topic is not read up to its end yet")

    checks: dict[str, Check] = {
        "redis": redis.ping,
        "broker": partial(broker_reachable, producer.client),
        "booking_views": views_loaded,
    }
    app[READINESS] = checks
    tasks = [
        asyncio.create_task(consume_events(conn.kafka, conn.topics.events, views, caught_up, stop)),
        asyncio.create_task(cache.run(stop, restorer)),
        asyncio.create_task(run_resender(app[GATEWAY], stop)),
    ]
    try:
        await _wait_caught_up(caught_up, tasks[0])
        yield
    finally:
        stop.set()
        await _finish(tasks, settings.shutdown_drain_s)
        metrics.registry.unregister(dashboard)
        await producer.stop()
        await redis.aclose()


async def _finish(tasks: list[asyncio.Task[None]], timeout_s: float) -> None:
    """Let background tasks end by themselves for a while; cancel what is left."""
    _, pending = await asyncio.wait(tasks, timeout=timeout_s)
    for task in pending:
        logger.warning("cancelling %s: it did not stop within %.1fs", task.get_coro(), timeout_s)
    await cancel_and_wait(pending)
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _wait_caught_up(caught_up: asyncio.Event, reader: asyncio.Task[None]) -> None:
    """Serve only after the booking states of the events topic are read (or say why not)."""
    waiter = asyncio.create_task(caught_up.wait())
    done, _ = await asyncio.wait(
        {waiter, reader}, timeout=CAUGHT_UP_WAIT_S, return_when=asyncio.FIRST_COMPLETED
    )
    if reader in done:
        waiter.cancel()
        reader.result()  # raises the reader's error
        raise RuntimeError("the booking-events reader stopped before it caught up")
    if not done:
        waiter.cancel()
        logger.warning("booking-events not caught up after %.0fs; serving anyway", CAUGHT_UP_WAIT_S)


# The router tries the resources under one path prefix in the order they were added:
# the visitors' routes go first, the most frequent first.
HOT_PATHS = ("/api/rooms/{room}/status", "/api/rooms/{room}/join", "/api/rooms/{room}/events")


def hot_first(table: web.RouteTableDef) -> list[web.AbstractRouteDef]:
    def rank(route: web.AbstractRouteDef) -> int:
        path = getattr(route, "path", "")
        return HOT_PATHS.index(path) if path in HOT_PATHS else len(HOT_PATHS)

    return sorted(table, key=rank)


# What a request may be. aiohttp's HTTP parser refuses more itself, before any handler
# or middleware runs, with a plain-text 400 (no hook of its server can make that JSON:
# see docs/api.md, "Bad input"); these make its limits ours, not whatever a release defaults to.
MAX_URL_BYTES = 8190  # the request target: path and query
MAX_HEADER_BYTES = 8190  # one header field, name and value
MAX_HEADERS = 128
MAX_BODY_BYTES = 4 * 1024 * 1024  # read by a handler: beyond it 413 payload_too_large (JSON)


class ServerLimits(TypedDict):
    """The parser's limits as ``web.AppRunner`` (and ``TestServer``) take them."""

    max_line_size: int
    max_field_size: int
    max_headers: int


# for every web.AppRunner (or TestServer) that serves ``create_app``
SERVER_LIMITS = ServerLimits(
    max_line_size=MAX_URL_BYTES, max_field_size=MAX_HEADER_BYTES, max_headers=MAX_HEADERS
)


def create_app(settings: GatewaySettings, metrics: GatewayMetrics | None = None) -> web.Application:
    safelog.install()  # client input reaches log lines escaped
    metrics = metrics or GatewayMetrics(worker=settings.worker)
    limiter = RateLimiter(settings.rate_limits, metrics.registry)
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[RATE_LIMITER] = limiter
    app.cleanup_ctx.append(partial(_components, settings, metrics))
    app.cleanup_ctx.append(partial(_loop_lag, metrics))
    frontdoor.install(app, FrontDoor(metrics, limiter, operators.GATES))
    for table in (routes, hot_first(rooms.routes), bookings.routes, page.routes):
        add_routes(app, table, Access.PUBLIC)
    operator_tables = (admin.routes, audit.routes, supply.routes, dailyinventory.routes)
    for table in (*operator_tables, actionlog.routes, system.routes):
        add_routes(app, table, Access.OPERATOR)
    add_routes(app, callcenter.routes, Access.AGENT)
    challenge.install(app, settings)
    console.install(app)
    callscreen.install(app)
    history.install(app)
    operators.install(app)  # sessions and the action logs
    openapi.install(app)  # the document of every route added before it
    return app
