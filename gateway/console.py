"""The operator console: ``GET /operator``, its sign-in, and the live rooms overview.

The page (``static/operator.html`` and ``static/operator.js``) is served by every
gateway with a strict Content-Security-Policy: this origin's scripts and styles
only (plus the page's one inline style block, by its hash); the charting library
(uPlot, from npm: ``npm ci`` puts it in ``node_modules``) is served from here too.
The console calls the same operator routes as scripts do (``/api/admin/...``),
signed in with a session cookie instead of the key (``gateway.sessions``,
``gateway.operators``).

The rooms overview is pushed: ``GET /api/admin/overview/events`` sends every room's
figures when they change (looked at every ``OVERVIEW_TICK_S``; the room cache is
refreshed every ``FAIRQ_REFRESH_S``), so a change is on screen within a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.actionlog import ACTION_LOG, MAX_ENTRIES
from gateway.admin import require_operator, stats_body
from gateway.campaigns import load_public
from gateway.contracts import EVENTS, HTML, JS, Document, operation
from gateway.errors import ApiError, Code
from gateway.frontdoor import Access, add_routes
from gateway.history import learn_rooms, room_figures
from gateway.http import json_response
from gateway.page import SHARED_ASSETS, STATIC, Asset, asset_response, html_page, page_response
from gateway.sessions import OPERATOR, SIGNED_IN, session_routes, signed_in_session
from gateway.sse import open_stream, send_event, send_keepalive
from gateway.state import Gateway
from waitingroom.rooms import ADMISSION_MODES

logger = logging.getLogger(__name__)

NODE_MODULES = Path(__file__).parent.parent / "node_modules"
OVERVIEW_TICK_S = 0.25
ROOM_NAMES_EVERY_S = 2.0  # how often the overview looks for rooms this gateway does not know

ASSETS = {
    "console.js": Asset(STATIC / "operator.js", "text/javascript", "the checkout is incomplete"),
    "uplot.js": Asset(
        NODE_MODULES / "uplot" / "dist" / "uPlot.iife.min.js",
        "text/javascript",
        "run `npm ci` in the checkout (make install does)",
    ),
    "uplot.css": Asset(
        NODE_MODULES / "uplot" / "dist" / "uPlot.min.css",
        "text/css",
        "run `npm ci` in the checkout (make install does)",
    ),
}

routes = web.RouteTableDef()  # the page and its files
api_routes = web.RouteTableDef()  # what the page calls


def missing_assets() -> list[str]:
    files = [*ASSETS.values(), *SHARED_ASSETS.values()]
    return [f"{a.path} is missing: {a.missing}" for a in files if not a.path.is_file()]


@routes.get("/operator")
@operation("the operator console", {200: HTML}, backend=False, tag="pages")
async def get_console_page(request: web.Request) -> web.Response:
    """The console's HTML (read once per process), its scripts and styles from here."""
    return page_response(html_page(STATIC / "operator.html", "'self'"))


@routes.get("/operator/{asset}")
@operation(
    "a file of the console (console.js, uplot.js, uplot.css)",
    {200: JS},
    Code.NOT_FOUND,
    Code.ASSET_MISSING,
    backend=False,
    tag="pages",
)
async def console_asset(request: web.Request) -> web.Response:
    return await asset_response(ASSETS, request.match_info["asset"])


async def overview(gw: Gateway) -> dict[str, Any]:
    """Every room this gateway knows, with its settings and figures."""
    return {
        "admission_modes": ADMISSION_MODES,
        "rooms": [
            stats_body(gw, view) | room_figures(gw, view)
            for _, view in sorted(gw.rooms.known().items())
        ],
    }


@api_routes.get("/api/admin/overview")
@operation("every room's settings and live figures", {200: Document}, tag="operators")
async def get_overview(request: web.Request) -> web.Response:
    gw = require_operator(request)
    await learn_rooms(gw)
    return json_response(await overview(gw))


async def still_signed_in(request: web.Request) -> bool:
    try:
        await signed_in_session(request, OPERATOR)
    except ApiError:
        return False
    return True


@api_routes.get("/api/admin/overview/events")
@operation(
    "the overview again whenever it changes (server-sent events)",
    {200: EVENTS},
    tag="operators",
)
async def overview_events(request: web.Request) -> web.StreamResponse:
    """The overview now, then again whenever it changes (server-sent events). A stream
    opened with a console session ends once the session has (looked at with the rooms)."""
    gw = require_operator(request)
    by_session = SIGNED_IN in request
    response = await open_stream(request)
    # the console going away (closed, reloaded) ends the stream: nothing is wrong
    with contextlib.suppress(ConnectionResetError):
        await _send_overviews(gw, request, response, by_session)
    return response


async def _send_overviews(
    gw: Gateway, request: web.Request, response: web.StreamResponse, by_session: bool
) -> None:
    """The overview whenever it changes, until the session (if any) has ended."""
    last: dict[str, Any] | None = None
    idle_s = names_s = 0.0
    while True:
        if names_s <= 0:
            if by_session and not await still_signed_in(request):
                return
            await learn_rooms(gw)
            names_s = ROOM_NAMES_EVERY_S
        body = await overview(gw)
        if body != last:
            await send_event(response, "overview", body)
            last, idle_s = body, 0.0
        elif idle_s >= gw.settings.sse_keepalive_s:
            await send_keepalive(response)
            idle_s = 0.0
        await asyncio.sleep(OVERVIEW_TICK_S)
        idle_s += OVERVIEW_TICK_S
        names_s -= OVERVIEW_TICK_S


SUPPLY_ACTIONS = {
    "POST /api/admin/campaigns/{campaign}/reserves": "reserve",
    "POST /api/admin/campaigns/{campaign}/inventory": "delivery",
    "POST /api/admin/campaigns/{campaign}/inventory/remove": "slots removed",
    "PUT /api/admin/campaigns/{campaign}": "campaign loaded",
}


@api_routes.get("/api/admin/campaigns/{campaign}/overview")
@operation(
    "inventory per county, reserves and deliveries",
    {200: Document},
    Code.UNKNOWN_CAMPAIGN,
    tag="operators",
)
async def campaign_overview(request: web.Request) -> web.Response:
    """Inventory per county, and the reserves and deliveries of the campaign as the
    record of actions has them (the newest ``actionlog.MAX_ENTRIES`` actions of all
    campaigns). Places per center and day are the allocator's to tell
    (``gateway.dailyinventory``)."""
    gw = require_operator(request)
    name = request.match_info["campaign"]
    await load_public(gw, name)
    counties = gw.views.summaries.get(name, {})
    supply = [
        {"at": a["at"], "what": SUPPLY_ACTIONS[a["action"]], "details": a["request"]}
        for a in await request.app[ACTION_LOG].recent(0, MAX_ENTRIES)
        if a.get("action") in SUPPLY_ACTIONS
        and a.get("target", {}).get("campaign") == name
        and a.get("status", 500) < 300
    ]
    return json_response(
        {
            "campaign": name,
            "counties": {k: v.to_map() for k, v in sorted(counties.items())},
            "supply": supply,
        }
    )


async def _components(app: web.Application) -> AsyncIterator[None]:
    for problem in missing_assets():
        logger.error("operator console: %s (its charts answer 503)", problem)
    yield


def install(app: web.Application) -> None:
    """The console's page, files, sign-in and overview routes and its services
    (after the gateway's own components: they use its Redis client)."""
    app.cleanup_ctx.append(_components)
    add_routes(app, routes, Access.PUBLIC)
    add_routes(app, api_routes, Access.OPERATOR)
    add_routes(app, session_routes(OPERATOR), Access.PUBLIC)  # their own checks
