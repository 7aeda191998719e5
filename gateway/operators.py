"""The one door of every signed-in route: who is asking, and the record.

Two doors, one code path: operator routes (``/api/admin/...``) and call-center routes
(``/api/callcenter/...``). The front door (``gateway.frontdoor``) sends every request
to a route declared ``OPERATOR`` or ``AGENT`` through its door (``GATES``), whatever
module added it, so a route cannot miss either part:

- **who**: a request with ``Authorization`` goes on to the route's own key check
  (``admin.require_operator``, ``callcenter.require_agent``: the key, as for scripts
  and curl); a request with the door's session cookie is verified here
  (``gateway.sessions``: signature, role, expiry, not signed out, key unchanged) and,
  unless it only reads, must carry the session's CSRF token and come from this origin.
  The verified session is put on the request (``sessions.SIGNED_IN``), which the key
  checks accept for their own role only: an agent's session does not open
  ``/api/admin/`` (its cookie is not even looked at there).
- **the record**: every request that is not a read is recorded in the door's action log
  (``gateway.actionlog``) with who, when, the route, the target, the request body
  (secrets left out), the answer's status, and what it acted on before and after: a
  room's settings or a campaign's inventory for operators, the booking for agents.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from gateway.actionlog import ACTION_LOG, AGENT_LOG, ActionLog, recorded_body
from gateway.admin import require_operator
from gateway.callcenter import BOOKING_ID, require_agent
from gateway.errors import ANSWERED, error_answer
from gateway.frontdoor import Access, Around, Gate
from gateway.rooms import iso_s
from gateway.sessions import (
    AGENT,
    OPERATOR,
    SAFE_METHODS,
    SESSIONS,
    SIGNED_IN,
    Role,
    Sessions,
    signed_in_session,
)
from gateway.state import GATEWAY, Gateway
from waitingroom import keys

API_KEY_WHO = "operator key (API)"
Subject = Callable[[Gateway, dict[str, str]], Awaitable[dict[str, Any] | None]]


def _operator_by_key(request: web.Request) -> str:
    require_operator(request)
    return API_KEY_WHO


def _agent_by_key(request: web.Request) -> str:
    return f"{require_agent(request)[1]} (API key)"


async def _room_or_campaign(gw: Gateway, match: dict[str, str]) -> dict[str, Any] | None:
    """What an operator action may change, as this gateway sees it now: the room's
    settings, or the campaign's inventory."""
    room = match.get("room")
    if room is not None:
        view = gw.rooms.known().get(room)
        if view is None:
            return None
        snap, config = view.snap, view.snap.config
        return {
            "state": snap.state,
            "sold_out": snap.sold_out,
            "opens_at": iso_s(config.opens_at_s),
            "rate_per_s": config.rate_per_s,
            "max_active": config.max_active,
            "ramp_s": config.ramp_s,
            "admission_mode": config.admission_mode,
            "pow_difficulty": config.pow_difficulty,
        }
    campaign = match.get("campaign")
    counties = gw.views.summaries.get(campaign or "")
    if not counties:
        return None
    fields = ("pairs_left", "free", "held", "confirmed", "reserved")
    return {f: sum(getattr(c, f) for c in counties.values()) for f in fields}


async def _booking(gw: Gateway, match: dict[str, str]) -> dict[str, Any] | None:
    """What an agent action may change: the booking's state and appointments."""
    view = await gw.views.get(match.get("booking_id", ""))
    if view is None:
        return None
    return {
        "state": view.state,
        "appointments": [f"dose {a.dose} {a.center} {a.start}" for a in view.appointments],
    }


@dataclass(frozen=True, slots=True)
class Door:
    role: Role
    by_key: Callable[[web.Request], str]  # who, for a request with a key (raises if none)
    log: web.AppKey[ActionLog]
    subject: Subject
    prepare: Callable[[Gateway, dict[str, str]], Awaitable[Any]] | None = None


async def _known_room(gw: Gateway, match: dict[str, str]) -> None:
    if "room" in match:
        await gw.rooms.get(match["room"])  # known before, for its "before"


DOORS = {
    Access.OPERATOR: Door(OPERATOR, _operator_by_key, ACTION_LOG, _room_or_campaign, _known_room),
    Access.AGENT: Door(AGENT, _agent_by_key, AGENT_LOG, _booking),
}


async def caller_of(request: web.Request, door: Door) -> str:
    """Who makes this request (raises 401/403 when nobody valid)."""
    if hdrs.AUTHORIZATION in request.headers or door.role.cookie not in request.cookies:
        return door.by_key(request)
    session = await signed_in_session(request, door.role)
    request[SIGNED_IN] = session
    return session.who


def _gate(door: Door) -> Gate:
    """What guards the requests to one of ``door``'s routes (by its canonical path)."""
    return lambda route: _guard(route, door)


def _guard(route: str, door: Door) -> Around:
    async def guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
        who = await caller_of(request, door)
        if request.method in SAFE_METHODS:
            return await handler(request)
        gw = request.app[GATEWAY]
        match = dict(request.match_info)
        if door.prepare is not None:
            await door.prepare(gw, match)
        entry: dict[str, Any] = {
            "at": iso_s(gw.clock()),
            "who": who,
            "client": request.remote,
            "action": f"{request.method} {route}",
            "target": match,
            "query": dict(request.query),
            "request": recorded_body(await request.read()),
            "before": await door.subject(gw, match),
        }
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except ANSWERED as e:  # answered here, once (the front door would do the same)
            response = error_answer(request, e)
            status = response.status
            entry["error"] = getattr(e, "code", None)
            return response
        finally:
            if BOOKING_ID in request:  # a booking the handler made
                entry["target"] = match | {"booking_id": request[BOOKING_ID]}
            entry["status"] = status
            entry["after"] = await door.subject(gw, entry["target"])
            await request.app[door.log].record(entry)

    return guarded


# the doors, by the routes' declared access (the front door asks them once per route)
GATES: dict[Access, Gate] = {access: _gate(door) for access, door in DOORS.items()}


async def _components(app: web.Application) -> AsyncIterator[None]:
    gw = app[GATEWAY]
    settings = gw.settings
    app[SESSIONS] = Sessions(
        gw.redis, settings.operator_key, settings.agent_keys, settings.console_session_s, gw.clock
    )
    app[ACTION_LOG] = ActionLog(gw.redis, keys.operator_actions())
    app[AGENT_LOG] = ActionLog(gw.redis, keys.agent_actions())
    yield


def install(app: web.Application) -> None:
    """The doors' services (after the gateway's own components: they use its Redis
    client); the front door puts the doors in front of their routes."""
    app.cleanup_ctx.append(_components)


__all__ = ["GATES", "SESSIONS", "install"]
