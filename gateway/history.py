"""The last hour of every room's figures, kept in Redis for the console's charts.

Every gateway samples every room (the names from Redis) once per ``step_s`` into the room's
history (``keys.room_history``, a sorted set scored by time bucket), through one
script (``scripts.RECORD_POINT``) that adds a point only to an empty bucket and
trims what is older than ``KEEP_S``: with N gateways there is still one point per
bucket, and a gateway that stops leaves the others writing. A reload, another
operator or another gateway reads the same history.

A point holds counters (joined, admitted, holds, confirmations, expiries), not
rates: the rates are differences between neighbouring points, computed when the
history is read, so they do not depend on which gateway wrote which point.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
from collections import Counter
from typing import Any

import orjson
from aiohttp import web
from redis.exceptions import RedisError

from fairq.tasks import stopped_within
from gateway.admin import require_operator
from gateway.contracts import Document, operation
from gateway.errors import Code
from gateway.frontdoor import Access, add_routes
from gateway.http import json_response
from gateway.roomcache import RoomView
from gateway.rooms import room_view
from gateway.state import GATEWAY, Gateway
from waitingroom import keys
from waitingroom.status import wait_s

logger = logging.getLogger(__name__)

KEEP_S = 3600.0
COUNTERS = ("joined", "admitted", "holds", "confirmations", "expiries")
LEVELS = ("queue_depth", "prequeue_size", "active", "pairs_left")
# the rates read from the counters: (series, counter, per how many seconds)
RATES = (
    ("arrivals_per_s", "joined", 1.0),
    ("admissions_per_s", "admitted", 1.0),
    ("holds_per_min", "holds", 60.0),
    ("confirmations_per_min", "confirmations", 60.0),
)

routes = web.RouteTableDef()


def room_figures(gw: Gateway, view: RoomView) -> dict[str, Any]:
    """A room's figures now, from this gateway's memory (no Redis round trip).

    Holds, confirmations and expiries count the booking events of the room's
    campaign since the log began (a campaign's rooms share them).
    """
    snap, campaign = view.snap, view.snap.config.campaign
    counties = gw.views.summaries.get(campaign, {})
    tally = gw.views.tally.get(campaign) or Counter[str]()
    rate = view.meter.rate_per_s
    if rate is None:
        rate = snap.rate_at(gw.clock())
    waiting = snap.queue_depth
    admitting = snap.state == "open" and not snap.sold_out and rate > 0
    wait_at_back = (
        wait_s(waiting, snap, rate, view.meter.dwell_s) if admitting and waiting else None
    )
    return {
        "queue_depth": waiting,
        "prequeue_size": snap.prequeue_size if snap.opened else snap.queue_length,
        "joined": snap.queue_length,
        "admitted": snap.cursor,
        "active": snap.active,
        "pairs_left": sum(c.pairs_left for c in counties.values()),
        "waitlisted": sum(c.waitlisted for c in counties.values()),
        "holds": tally.get("held", 0) + tally.get("offered", 0),
        "confirmations": tally.get("confirmed", 0),
        "expiries": tally.get("expired", 0),
        "wait_at_back_s": None if wait_at_back is None else round(wait_at_back, 1),
    }


async def learn_rooms(gw: Gateway) -> None:
    """Make the room cache know every room (a fresh gateway knows only those asked for)."""
    for name in await gw.store.room_names():
        await gw.rooms.get(name)


class History:
    """Writes and reads the rooms' histories."""

    def __init__(self, gw: Gateway, step_s: float) -> None:
        self._gw = gw
        self._step_s = step_s

    async def sample(self) -> int:
        """One point for every known room in the current bucket; returns how many were new."""
        gw, now = self._gw, self._gw.clock()
        bucket = math.floor(now / self._step_s)
        oldest = math.floor((now - KEEP_S) / self._step_s)
        await learn_rooms(gw)  # every room has a history, asked for or not
        added = 0
        for name, view in list(gw.rooms.known().items()):
            figures = room_figures(gw, view)
            point = {"t": round(now, 3)} | {k: figures[k] for k in (*COUNTERS, *LEVELS)}
            added += await gw.store.scripts.record_point(
                keys=[keys.room_history(name)], args=[bucket, orjson.dumps(point), oldest]
            )
        return added

    async def run(self, stop: asyncio.Event) -> None:
        """Sample every ``step_s`` until ``stop`` is set."""
        while not stop.is_set():
            try:
                await self.sample()
            except RedisError as e:
                logger.warning("sampling the rooms' history failed: %s", e)
            await stopped_within(stop, self._step_s)

    async def read(self, room: str) -> dict[str, Any]:
        """The room's kept points as columns (time in epoch seconds), with the rates."""
        raw = await self._gw.redis.zrange(keys.room_history(room), 0, -1)
        points = [orjson.loads(p) for p in raw if isinstance(p, bytes | str)]
        columns: dict[str, Any] = {"room": room, "step_s": self._step_s}
        columns["t"] = [p["t"] for p in points]
        for level in LEVELS:
            columns[level] = [p[level] for p in points]
        for series, counter, per_s in RATES:
            rates: list[float | None] = [None]
            for before, after in itertools.pairwise(points):
                dt = after["t"] - before["t"]
                change = after[counter] - before[counter]
                # a counter that went back (a room set up again) says nothing
                rates.append(round(change * per_s / dt, 3) if dt > 0 and change >= 0 else None)
            columns[series] = rates[: len(points)]
        return columns


HISTORY = web.AppKey("history", History)


@routes.get("/api/admin/rooms/{room}/history")
@operation(
    "the room's last hour as columns",
    {200: Document},
    Code.UNKNOWN_ROOM,
    tag="operators",
)
async def room_history(request: web.Request) -> web.Response:
    gw = require_operator(request)
    view = await room_view(gw, request.match_info["room"])
    return json_response(await request.app[HISTORY].read(view.snap.config.name))


def install(app: web.Application) -> None:
    """The sampler (one task per gateway, for the app's lifetime) and the history route."""

    async def sampler(app: web.Application) -> Any:
        history = app[HISTORY] = History(app[GATEWAY], app[GATEWAY].settings.history_step_s)
        stop = asyncio.Event()
        task = asyncio.create_task(history.run(stop))
        try:
            yield
        finally:
            stop.set()
            await task

    app.cleanup_ctx.append(sampler)
    add_routes(app, routes, Access.OPERATOR)
