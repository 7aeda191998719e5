"""Public room routes: room info, join, status and the status event stream."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Awaitable
from functools import partial
from typing import Any

from aiohttp import hdrs, web

from gateway.challenge import check_join_pow
from gateway.contracts import (
    EVENTS,
    TICKET_ELSEWHERE,
    TICKET_IN_COOKIE,
    JoinRequest,
    RoomInfo,
    TicketStatus,
    operation,
)
from gateway.errors import ApiError, Code
from gateway.http import bearer, json_response, read_body
from gateway.ratelimit import RATE_LIMITER
from gateway.roomcache import RoomView
from gateway.sse import open_stream
from gateway.state import GATEWAY, Gateway
from gateway.statusstreams import StatusStreams
from waitingroom.codes import code_identity, stored_hashes
from waitingroom.durable import state_lost
from waitingroom.errors import (
    InvalidAccessCode,
    RoomClosed,
    RoomNotFound,
    StateUnavailable,
    TicketError,
    TicketExpired,
    TooEarly,
    TooManyAttempts,
    WrongRoom,
)
from waitingroom.rooms import RoomMessage
from waitingroom.status import Status, chance_of
from waitingroom.tickets import BookingToken, Ticket

NO_BODY = JoinRequest()
INVALID_CODE = "this access code is not valid for this room"

routes = web.RouteTableDef()


def iso_s(epoch_s: float | None) -> str | None:
    if epoch_s is None:
        return None
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).isoformat().replace("+00:00", "Z")


async def room_view(gw: Gateway, name: str) -> RoomView:
    """The room's view; hot routes first try ``gw.rooms.known()`` (no coroutine).

    404 for an unknown name, 503 while Redis has lost its state (the name may come back).
    """
    view = await gw.rooms.get(name)
    if view is None:
        if await state_lost(gw.redis):
            raise _restoring()
        raise ApiError(Code.UNKNOWN_ROOM, f"there is no room {name!r}")
    return view


def ticket_cookie(room: str, token: str) -> str:
    """The ``Set-Cookie`` value for the ticket, formatted once (a Morsel costs more).

    Room names match ``NAME_PATTERN`` and tokens are base64url with dots: no quoting.
    """
    name = TICKET_IN_COOKIE.name
    return f"{name}={token}; HttpOnly; Path=/api/rooms/{room}; SameSite=Strict"


def verify_ticket(gw: Gateway, token: str, room: str, now_s: float | None = None) -> Ticket:
    """The ticket in ``token`` for ``room`` at ``now_s`` (default: ``gw.clock()``)."""
    try:
        return gw.signer.verify_ticket(token, room, gw.clock() if now_s is None else now_s)
    except WrongRoom as e:
        raise ApiError(Code.WRONG_ROOM, "this ticket belongs to another room") from e
    except TicketExpired as e:
        raise ApiError(Code.TICKET_EXPIRED, "this ticket has expired; join again") from e
    except TicketError as e:
        raise ApiError(Code.INVALID_TICKET, "the ticket is not valid") from e


def status_body(
    gw: Gateway,
    view: RoomView,
    ticket: Ticket,
    token: str,
    now_s: float | None = None,
    status: Status | None = None,
) -> dict[str, Any]:
    """What a visitor is told at ``now_s`` (default: ``gw.clock()``); ``status``: the
    ticket's status at ``now_s`` if the caller has it already."""
    now = gw.clock() if now_s is None else now_s
    snap = view.snap
    config = snap.config
    if status is None:
        status = view.status(ticket, now)
    state, eta_s = status.state, status.eta_s
    body: dict[str, Any] = {
        "room": config.name,
        "ticket": token,
        "state": state,
        "position": status.position,
        "eta_s": None if eta_s is None else round(eta_s, 1),
        "chance": chance_of(status, snap, gw.views.pairs_left.get(config.campaign)),
        "message": message_body(snap.message),
    }
    if state == "admitted":
        body["booking_token"] = issue_booking_token(gw, view, ticket, status, now)
    elif state == "sold_out":  # the offer to wait for freed or added pairs
        body["waitlist"] = f"/api/rooms/{config.name}/waitlist"
    elif state == "turn_passed":  # booked, or lapsed: a new place is a new join
        body["join"] = f"/api/rooms/{config.name}/join"
    return body


def message_body(message: RoomMessage | None) -> dict[str, str | None] | None:
    """The operator's message as the status, its events and the room info carry it."""
    return None if message is None else message.as_dict()


def too_early(room: str, prequeue_opens_at_s: float, now_s: float) -> ApiError:
    return ApiError(
        Code.TOO_EARLY,
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
        raise ApiError(Code.NOT_ADMITTED, "this ticket has no place on the timeline yet")
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
@operation("public room info", {200: RoomInfo}, Code.UNKNOWN_ROOM)
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
            "admit_window_s": snap.config.admit_window_s,
            "language": snap.config.language,
            "message": message_body(snap.message),
            "identity_key": campaign.get("identity_key", "optional"),
            "counties": campaign.get("counties", []),
            "centers": campaign.get("centers", []),
            "vaccines": campaign.get("vaccines", []),
        }
    )


@routes.post("/api/rooms/{room}/join")
@operation(
    "join the room's queue (optional access code; a proof of work where the room asks for one)",
    {200: TicketStatus},
    Code.UNKNOWN_ROOM,
    Code.INVALID_ACCESS_CODE,
    Code.POW_REQUIRED,
    Code.POW_INVALID,
    Code.POW_EXPIRED,
    Code.ROOM_CLOSED,
    Code.TOO_EARLY,
    Code.TOO_MANY_ATTEMPTS,
    Code.NOT_ADMITTED,
    body=JoinRequest,
    body_required=False,
)
async def join(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    name = request.match_info["room"]
    body = NO_BODY
    if request.body_exists:  # most anonymous joins have none: nothing to read or check
        body = await read_body(request, JoinRequest, optional=True)
    code = body.access_code
    view = gw.rooms.known().get(name) or await room_view(gw, name)
    now = gw.clock()
    held = presented_ticket(gw, request, name, now) if code is None else None
    try:
        if held is None:
            ticket = await _new_place(gw, request, view, body, code, now)
        else:  # joining again (a reload, another tab): the same place ...
            old, token = held
            new, status = await _join_again(gw, request, view, body, old, now)
            if new is None:
                return json_response(status_body(gw, view, old, token, now, status))
            ticket = new  # ... unless its turn has passed
    except InvalidAccessCode as e:
        raise ApiError(Code.INVALID_ACCESS_CODE, INVALID_CODE) from e
    except RoomNotFound as e:
        if name in gw.rooms.known():  # Redis lost it: back once restored from the state log
            raise _restoring() from e
        raise ApiError(Code.UNKNOWN_ROOM, f"there is no room {name!r}") from e
    except StateUnavailable as e:
        raise _restoring() from e
    except RoomClosed as e:
        raise ApiError(Code.ROOM_CLOSED, "this room is closed") from e
    except TooEarly as e:
        raise too_early(name, e.prequeue_opens_at_s, now) from e
    gw.metrics.counters.joined(ticket.kind)
    token = gw.signer.sign_ticket(ticket)
    return json_response(
        status_body(gw, view, ticket, token, now),
        headers={"Set-Cookie": ticket_cookie(name, token)},
    )


def _restoring() -> ApiError:
    return ApiError(
        Code.UNAVAILABLE,
        "the waiting room is being restored; try again shortly",
        headers={"Retry-After": "2"},
    )


def _new_place(
    gw: Gateway,
    request: web.Request,
    view: RoomView,
    body: JoinRequest,
    code: str | None,
    now_s: float,
) -> Awaitable[Ticket]:
    """A new ticket (or the one an access code holds) to await: one Redis round trip.

    Not a coroutine: the checks raise here, and the usual join's await goes straight to
    the batcher's future, without one more frame (this is the join's hot path).
    """
    config = view.snap.config
    if not view.snap.opened and now_s < config.prequeue_opens_at_s:
        raise too_early(config.name, config.prequeue_opens_at_s, now_s)  # no Redis trip
    if config.pow_difficulty > 0:  # anonymous joins of a room asking for work
        check_join_pow(request, view, body, now_s)
    if code is None:  # the usual join
        return gw.store.join_anonymous(config.name, now_s)
    return _join_with_code(gw, request, config.name, config.campaign, code, now_s)


async def _join_with_code(
    gw: Gateway, request: web.Request, room: str, campaign: str, code: str, now_s: float
) -> Ticket:
    """The code is looked up, and a wrong one counted against the client and the code's
    prefix (``waitingroom.guesses``), by the join's own script."""
    secret = gw.settings.identity_secret
    limiter = request.app[RATE_LIMITER]
    guesser = limiter.code_guesser(request, code, secret)
    hashes = stored_hashes(code, secret)
    try:
        outcome = await gw.store.join_with_code(room, now_s, campaign, hashes, guesser=guesser)
    except TooManyAttempts as e:
        raise limiter.too_many_attempts(e, now_s) from e
    return outcome.ticket


async def _join_again(
    gw: Gateway,
    request: web.Request,
    view: RoomView,
    body: JoinRequest,
    ticket: Ticket,
    now_s: float,
) -> tuple[Ticket | None, Status]:
    """(None: ``ticket`` keeps its place, or a new ticket; its status now), for a valid
    ticket joining again, in at most one Redis round trip.

    A waiting ticket keeps its place (no trip). An admitted one keeps it while its place
    is active; a turn that passed without a booking, or whose booking ended, makes way
    for a new place (its token can book nothing more), which in a room asking for work
    needs a proof: without one the join only learns whether the turn is kept.
    """
    status = view.status(ticket, now_s)
    position = status.position_abs
    if status.state not in ("admitted", "turn_passed") or position is None:
        return None, status
    name = view.snap.config.name
    if view.snap.config.pow_difficulty > 0:
        try:
            check_join_pow(request, view, body, now_s)
        except ApiError:
            if await gw.store.is_active(name, position, now_s):
                return None, status
            raise
    return await gw.store.rejoin(name, now_s, position), status


def presented_ticket(
    gw: Gateway, request: web.Request, room: str, now_s: float
) -> tuple[Ticket, str] | None:
    """The valid ticket for ``room`` a join brings (bearer or cookie), with its token.

    A joiner who has one keeps its place (see ``_join_again``). One that is expired, of
    another room or not valid gets a new place like anyone else.
    """
    if hdrs.AUTHORIZATION not in request.headers and hdrs.COOKIE not in request.headers:
        return None  # a first join: nothing to look at
    try:
        token = bearer(request, TICKET_IN_COOKIE)
        return gw.signer.verify_ticket(token, room, now_s), token
    except (ApiError, TicketError):
        return None


@routes.get("/api/rooms/{room}/status")
@operation(
    "the ticket's status",
    {200: TicketStatus},
    Code.UNKNOWN_ROOM,
    Code.NOT_ADMITTED,
    security="ticket",
    also=TICKET_ELSEWHERE,
)
async def status(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    name = request.match_info["room"]
    token = bearer(request, *TICKET_ELSEWHERE)
    view = gw.rooms.known().get(name) or await room_view(gw, name)
    now = gw.clock()  # one reading for the ticket's expiry and its status
    ticket = verify_ticket(gw, token, name, now)
    return json_response(status_body(gw, view, ticket, token, now))


@routes.get("/api/rooms/{room}/events")
@operation(
    "the ticket's status as server-sent events (event 'status')",
    {200: EVENTS},
    Code.UNKNOWN_ROOM,
    Code.NOT_ADMITTED,
    security="ticket",
    also=TICKET_ELSEWHERE,
)
async def status_events(request: web.Request) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    name = request.match_info["room"]
    token = bearer(request, *TICKET_ELSEWHERE)
    view = gw.rooms.known().get(name) or await room_view(gw, name)
    ticket = verify_ticket(gw, token, name)
    response = await open_stream(request)
    gw.metrics.streams.labels("room").inc()
    try:
        await status_streams(gw, view).serve(ticket, token, request, response)
    finally:
        gw.metrics.streams.labels("room").dec()
    return response


def status_streams(gw: Gateway, view: RoomView) -> StatusStreams:
    """The room's streams (one task keeps them all up to date), made on first use."""
    if view.streams is None:
        render = partial(status_body, gw, view)
        view.streams = StatusStreams(view, render, gw.settings.sse_keepalive_s)
    return view.streams
