"""Public room routes: room info, join, status and the status event stream."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from dataclasses import replace
from typing import Any

from aiohttp import web

from gateway.errors import ApiError
from gateway.http import bearer, json_response, read_json
from gateway.roomcache import RoomView
from gateway.sse import open_stream, send_event, send_keepalive
from gateway.state import GATEWAY, Gateway
from schemas.fields import only_keys, opt_str
from waitingroom.codes import code_group, code_identity, hash_code
from waitingroom.errors import (
    RoomClosed,
    RoomNotFound,
    TicketError,
    TicketExpired,
    TooEarly,
    WrongRoom,
)
from waitingroom.status import Status, chance_of
from waitingroom.tickets import BookingToken, Ticket

TICKET_COOKIE = "fairq_ticket"
JOIN_FIELDS = frozenset({"access_code"})

routes = web.RouteTableDef()


def iso_s(epoch_s: float | None) -> str | None:
    if epoch_s is None:
        return None
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).isoformat().replace("+00:00", "Z")


async def room_view(gw: Gateway, name: str) -> RoomView:
    view = await gw.rooms.get(name)
    if view is None:
        raise ApiError(404, "unknown_room", f"there is no room {name!r}")
    return view


def verify_ticket(gw: Gateway, token: str, room: str) -> Ticket:
    try:
        return gw.signer.verify_ticket(token, room, gw.clock())
    except WrongRoom as e:
        raise ApiError(403, "wrong_room", "this ticket belongs to another room") from e
    except TicketExpired as e:
        raise ApiError(401, "ticket_expired", "this ticket has expired; join again") from e
    except TicketError as e:
        raise ApiError(401, "invalid_ticket", "the ticket is not valid") from e


def status_body(gw: Gateway, view: RoomView, ticket: Ticket, token: str) -> dict[str, Any]:
    now = gw.clock()
    status = view.status(ticket, now)
    body: dict[str, Any] = {
        "room": view.snap.config.name,
        "ticket": token,
        "state": status.state,
        "position": status.position,
        "eta_s": None if status.eta_s is None else round(status.eta_s, 1),
        "chance": chance_of(status, view.snap, gw.views.pairs_left.get(view.snap.config.campaign)),
    }
    if status.state == "admitted":
        body["booking_token"] = issue_booking_token(gw, view, ticket, status, now)
    return body


def too_early(room: str, prequeue_opens_at_s: float, now_s: float) -> ApiError:
    return ApiError(
        409,
        "too_early",
        f"the queue of this room opens at {iso_s(prequeue_opens_at_s)}; come back then",
        headers={"Retry-After": str(max(1, math.ceil(prequeue_opens_at_s - now_s)))},
        extra={"opens_prequeue_at": iso_s(prequeue_opens_at_s)},
    )


def ticket_identity(ticket: Ticket) -> str:
    """Who books: the access code (one pair per code, whatever the room) or else the ticket."""
    if ticket.code_hash is not None:
        return code_identity(ticket.code_hash)
    return f"ticket:{ticket.ticket_id}"


def issue_booking_token(
    gw: Gateway, view: RoomView, ticket: Ticket, status: Status, now_s: float
) -> str:
    position = status.position_abs
    if position is None:  # admitted always has a position; guard the invariant loudly
        raise ApiError(409, "not_admitted", "this ticket has no place on the timeline yet")
    token = BookingToken(
        room=ticket.room,
        ticket_id=ticket.ticket_id,
        position=position,
        identity=ticket_identity(ticket),
        group=ticket.group,
        expires_at_s=now_s + view.snap.config.admit_window_s,
    )
    return gw.signer.sign_booking_token(token)


@routes.get("/api/rooms/{room}")
async def room_info(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    view = await room_view(gw, request.match_info["room"])
    snap, campaign = view.snap, view.campaign or {}
    return json_response(
        {
            "name": snap.config.name,
            "campaign": snap.config.campaign,
            "title": campaign.get("title"),
            "opens_at": iso_s(snap.config.opens_at_s),
            "opens_prequeue_at": iso_s(snap.config.prequeue_opens_at_s),
            "state": snap.state,
            "sold_out": snap.sold_out,
            "hold_s": snap.config.hold_s,
            "counties": campaign.get("counties", []),
            "centers": campaign.get("centers", []),
            "vaccines": campaign.get("vaccines", []),
        }
    )


@routes.post("/api/rooms/{room}/join")
async def join(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    name = request.match_info["room"]
    body = await read_json(request, optional=True)
    only_keys(body, JOIN_FIELDS, "the join body")
    code = opt_str(body, "access_code", max_len=64)
    view = await room_view(gw, name)
    now = gw.clock()
    if not view.snap.opened and now < view.snap.config.prequeue_opens_at_s:
        raise too_early(name, view.snap.config.prequeue_opens_at_s, now)  # no Redis trip
    code_hash, group = await _check_code(gw, view, code) if code is not None else (None, None)
    try:
        outcome = await gw.store.join(name, now, code_hash)
    except RoomNotFound as e:
        raise ApiError(404, "unknown_room", f"there is no room {name!r}") from e
    except RoomClosed as e:
        raise ApiError(409, "room_closed", "this room is closed") from e
    except TooEarly as e:
        raise too_early(name, e.prequeue_opens_at_s, now) from e
    ticket = replace(outcome.ticket, code_hash=code_hash, group=group)
    gw.metrics.joins_total.labels(ticket.kind).inc()
    token = gw.signer.sign_ticket(ticket)
    response = json_response(status_body(gw, view, ticket, token), status=200)
    response.set_cookie(
        TICKET_COOKIE, token, path=f"/api/rooms/{name}", httponly=True, samesite="Strict"
    )
    return response


async def _check_code(gw: Gateway, view: RoomView, code: str) -> tuple[str, str]:
    group = await code_group(gw.redis, view.snap.config.campaign, code)
    if group is None:
        raise ApiError(403, "invalid_access_code", "this access code is not valid for this room")
    return hash_code(code), group


@routes.get("/api/rooms/{room}/status")
async def status(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    name = request.match_info["room"]
    token = bearer(request, cookie=TICKET_COOKIE, query="ticket")
    view = await room_view(gw, name)
    ticket = verify_ticket(gw, token, name)
    return json_response(status_body(gw, view, ticket, token))


@routes.get("/api/rooms/{room}/events")
async def status_events(request: web.Request) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    name = request.match_info["room"]
    token = bearer(request, cookie=TICKET_COOKIE, query="ticket")
    view = await room_view(gw, name)
    ticket = verify_ticket(gw, token, name)
    response = await open_stream(request)
    gw.metrics.streams.labels("room").inc()
    try:
        await _stream_status(gw, view, ticket, token, response)
    except ConnectionResetError:  # the visitor went away; nothing to answer
        pass
    finally:
        gw.metrics.streams.labels("room").dec()
    return response


async def _stream_status(
    gw: Gateway, view: RoomView, ticket: Ticket, token: str, response: web.StreamResponse
) -> None:
    """Send the status whenever it changes; end after the visitor is admitted or the room closes."""
    last: tuple[Any, ...] | None = None
    version = -1
    while True:
        body = status_body(gw, view, ticket, token)
        key = (body["state"], body["position"], _eta_bucket(body["eta_s"]), body["chance"])
        if key != last:
            await send_event(response, "status", body)
            last = key
        if body["state"] in ("admitted", "closed"):
            return
        try:
            version = await asyncio.wait_for(
                view.next_change(version), timeout=gw.settings.sse_keepalive_s
            )
        except TimeoutError:
            await send_keepalive(response)


def _eta_bucket(eta_s: float | None) -> int | None:
    """Coarse ETA so a stream is not re-sent for every tenth of a second of estimate."""
    if eta_s is None:
        return None
    return int(eta_s // 5)
