"""The one door of every operator route (``/api/admin/...``): who is asking, and the record.

``install`` wraps, when the app starts, the handler of every route under
``ADMIN_PREFIX``, whatever module added it, so a new operator route cannot miss
either part:

- **who**: a request with ``Authorization`` goes on to ``admin.require_operator``
  (the operator key, as for scripts and curl); a request with the console's session
  cookie is verified here (``gateway.sessions``: signature, expiry, not signed out)
  and, unless it only reads, must carry the session's CSRF token and come from this
  origin. The verified operator's name is put on the request (``sessions.OPERATOR``),
  which ``require_operator`` accepts.
- **the record**: every request that is not a read is recorded in the action log
  (``gateway.actionlog``) with who, when, the route, the target, the request body, the
  answer's status, and the room's settings or the campaign's inventory before and after.
"""

from __future__ import annotations

from typing import Any

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from gateway.actionlog import ACTION_LOG, recorded_body
from gateway.admin import require_operator
from gateway.errors import ANSWERED, ApiError, error_answer
from gateway.rooms import iso_s
from gateway.sessions import (
    OPERATOR,
    SAFE_METHODS,
    SESSION_COOKIE,
    OperatorSessions,
    Session,
    check_origin,
)
from gateway.state import GATEWAY, Gateway

ADMIN_PREFIX = "/api/admin/"
API_KEY_WHO = "operator key (API)"
SESSIONS = web.AppKey("operator_sessions", OperatorSessions)


async def console_session(request: web.Request) -> Session:
    """The request's live console session (401 without one), checked against
    cross-site use when the request changes something."""
    value = request.cookies.get(SESSION_COOKIE)
    if not value:
        raise ApiError(401, "not_signed_in", "sign in with the operator key first")
    session = await request.app[SESSIONS].verify(value)
    if request.method not in SAFE_METHODS:
        check_origin(request, request.app[GATEWAY].settings.trust_forwarded_proto)
        request.app[SESSIONS].check_csrf(request, session)
    return session


async def operator_of(request: web.Request) -> str:
    """Who makes this operator request (raises 401/403 when nobody valid)."""
    if hdrs.AUTHORIZATION in request.headers or SESSION_COOKIE not in request.cookies:
        require_operator(request)
        return API_KEY_WHO
    who = (await console_session(request)).who
    request[OPERATOR] = who
    return who


def _subject(gw: Gateway, match: dict[str, str]) -> dict[str, Any] | None:
    """What an action may change, as this gateway sees it now: the room's settings, or
    the campaign's inventory."""
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


def _guarded(handler: Handler, route: str) -> Handler:
    async def door(request: web.Request) -> web.StreamResponse:
        who = await operator_of(request)
        if request.method in SAFE_METHODS:
            return await handler(request)
        gw = request.app[GATEWAY]
        match = dict(request.match_info)
        if "room" in match:
            await gw.rooms.get(match["room"])  # known before, for its "before"
        entry: dict[str, Any] = {
            "at": iso_s(gw.clock()),
            "who": who,
            "client": request.remote,
            "action": f"{request.method} {route}",
            "target": match,
            "query": dict(request.query),
            "request": recorded_body(await request.read()),
            "before": _subject(gw, match),
        }
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except ANSWERED as e:
            status = error_answer(request, e).status
            entry["error"] = getattr(e, "code", None)
            raise
        finally:
            entry["status"] = status
            entry["after"] = _subject(gw, match)
            await request.app[ACTION_LOG].record(entry)

    return door


async def guard_operator_routes(app: web.Application) -> None:
    """Put every operator route behind the door (an ``on_startup`` handler, before the
    front door wraps the result)."""
    for resource in app.router.resources():
        if not resource.canonical.startswith(ADMIN_PREFIX):
            continue
        if not isinstance(resource, web.Resource):
            raise TypeError(f"the operator door cannot guard {resource!r}")
        for route in list(resource):
            resource.register_route(
                web.ResourceRoute(
                    route.method,
                    _guarded(route.handler, resource.canonical),
                    resource,
                    expect_handler=route.handle_expect_header,
                )
            )
