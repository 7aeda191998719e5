"""Booking routes: request a pair, read and stream its state, confirm and cancel it."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass, replace

from aiohttp import web

from gateway import identities
from gateway.calendarfile import TEXTS, calendar_file
from gateway.campaigns import Public, center_county, county_ids, load_public
from gateway.contracts import (
    CALENDAR,
    EVENTS,
    TICKET_IN_COOKIE,
    TOKEN_IN_QUERY,
    Booking,
    BookingRequest,
    ConfirmRequest,
    Language,
    MoveRequest,
    Pending,
    Query,
    WaitlistPending,
    WaitlistRequest,
    operation,
)
from gateway.contracts import Wish as WishFields
from gateway.errors import ApiError, Code, refused
from gateway.http import bearer, json_response, read_body
from gateway.identities import Claim, not_taken, read_identity_key
from gateway.placement import BOOKING_RECORD_TTL_S, Resent, SendInDoubt, place, send_again
from gateway.producer import CommandNotAccepted
from gateway.readmodel import BookingView
from gateway.roomcache import RoomView
from gateway.rooms import room_view, ticket_identity, verify_ticket
from gateway.sse import open_stream, send_event, send_keepalive
from gateway.state import GATEWAY, Gateway
from schemas import SchemaError
from schemas.commands import Book, Cancel, Confirm, Move
from schemas.events import Event, Failed
from schemas.states import TimeOfDay
from waitingroom import keys
from waitingroom.bookingrecord import BookingRecord
from waitingroom.errors import TicketError, TicketExpired, WrongRoom
from waitingroom.rooms import LANGUAGES
from waitingroom.tickets import BookingToken

# what a change of a booking can be refused with (besides its credential's codes)
CHANGE_CODES = (Code.UNKNOWN_BOOKING, Code.PENDING, Code.REFUSED, Code.IN_DOUBT)
CANCEL_CODES = (*CHANGE_CODES, Code.NOT_CANCELLABLE)
CONFIRM_CODES = (
    *CHANGE_CODES,
    Code.NOT_HELD,
    Code.UNKNOWN_CAMPAIGN,
    Code.INVALID_IDENTITY_KEY,
    Code.IDENTITY_KEYS_OFF,
    Code.IDENTITY_KEY_REQUIRED,
    Code.ALREADY_BOOKED,
)
MOVE_CODES = (
    *CHANGE_CODES,
    Code.NOT_MOVABLE,
    Code.UNKNOWN_CAMPAIGN,
    Code.UNKNOWN_COUNTY,
    Code.UNKNOWN_CENTER,
    Code.CENTER_NOT_IN_COUNTY,
)
TOKEN_USED = (Code.TOKEN_USED, "this booking token has made its booking already")

routes = web.RouteTableDef()


def new_command_id() -> str:
    return uuid.uuid4().hex


def booking_id_for(token: BookingToken) -> str:
    """The one booking a token can make: derived from the token, so no lookup is needed."""
    digest = hashlib.sha256(token.token_id.encode()).digest()
    return "bk_" + base64.b32encode(digest).decode()[:24].lower()


def verify_booking_token(
    gw: Gateway, raw: str, room: str | None = None, *, for_booking_made: bool = False
) -> BookingToken:
    """The booking token in ``raw``. Its expiry limits the time to *make* the booking;
    the booking it made stays readable and changeable with it (``for_booking_made``)."""
    try:
        return gw.signer.verify_booking_token(
            raw, gw.clock(), room, check_expiry=not for_booking_made
        )
    except WrongRoom as e:
        raise ApiError(Code.WRONG_ROOM, "this booking token belongs to another room") from e
    except TicketExpired as e:
        raise ApiError(Code.TOKEN_EXPIRED, "this booking token has expired") from e
    except TicketError as e:
        raise ApiError(Code.INVALID_TOKEN, "the booking token is not valid") from e


@dataclass(frozen=True, slots=True)
class Wish:
    county: str
    center: str | None
    earliest: str | None
    time_of_day: TimeOfDay | None
    waitlist: bool = False


def read_wish(body: WishFields, campaign: Public | None, county: str | None = None) -> Wish:
    """The booking wish of a body, checked against the campaign's counties and centers.

    ``county`` is the booking's county when the wish moves an existing booking; a new
    booking names a county (where the person lives or works) or a center (whose county
    it is then).
    """
    center = body.center
    centers_county = None
    if center is not None:
        centers_county = center_county(campaign, center)
        if centers_county is None:
            raise ApiError(Code.UNKNOWN_CENTER, f"there is no center {center!r}")
    if county is None:
        if body.county is None and centers_county is not None:
            county = centers_county  # a center named alone: its county
        else:
            county = _named_county(body.county, campaign)
    if centers_county is not None and centers_county != county:
        raise ApiError(Code.CENTER_NOT_IN_COUNTY, f"that center is not in {county}")
    earliest = body.earliest.isoformat() if body.earliest else None
    waitlist = bool(getattr(body, "waitlist", False))
    return Wish(county, center, earliest, body.time_of_day, waitlist)


def book_command(
    wish: Wish,
    booking_id: str,
    campaign: str,
    identity: str,
    hold_s: int,
    group: str | None,
) -> Book:
    return Book(
        command_id=new_command_id(),
        booking_id=booking_id,
        campaign=campaign,
        identity=identity,
        county=wish.county,
        center=wish.center,
        earliest=wish.earliest,
        hold_s=hold_s,
        group=group,
        time_of_day=wish.time_of_day,
        waitlist=wish.waitlist,
    )


@routes.post("/api/rooms/{room}/bookings")
@operation(
    "request a paired appointment",
    {202: Pending},
    Code.UNKNOWN_ROOM,
    Code.WRONG_ROOM,
    Code.UNKNOWN_COUNTY,
    Code.UNKNOWN_CENTER,
    Code.CENTER_NOT_IN_COUNTY,
    Code.TOKEN_USED,
    Code.ADMISSION_LAPSED,
    Code.ALREADY_BOOKED,
    Code.IN_DOUBT,
    body=BookingRequest,
    security="booking_token",
)
async def create_booking(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    name = request.match_info["room"]
    view = await room_view(gw, name)
    token = verify_booking_token(gw, bearer(request), name)
    wish = read_wish(await read_body(request, BookingRequest), view.campaign)
    deadline_s, before_s = await _start_booking(gw, view, token)
    claimed = await claim_booking(gw, view, token, wish, TOKEN_USED)
    if claimed is None:
        return pending(booking_id_for(token))
    command, used_key = claimed
    try:
        await place(gw, command, BookingRecord(room=token.room, position=token.position), used_key)
    except SendInDoubt:  # it may be booking: the place stays active as for a booking
        raise
    except ApiError:  # refused (already_booked) or not taken (503): nothing is booking
        await gw.store.booking_not_started(token.room, token.position, deadline_s, before_s)
        raise
    return pending(command.booking_id)


def pending(booking_id: str, **extra: str) -> web.Response:
    """The answer to a booking request whose Book the broker has: the allocator's comes later."""
    return json_response({"booking_id": booking_id, "state": "pending", **extra}, status=202)


async def _start_booking(gw: Gateway, view: RoomView, token: BookingToken) -> tuple[float, float]:
    """Keep the token's admitted place active while it books, or refuse a lapsed one.

    The place counts against the room's cap until the booking ends (the admitter frees
    it then) or, at the latest, until the hold and a grace have passed. A place whose
    turn passed without a booking went back to the pool: its token makes no booking
    (409 ``admission_lapsed``), or the room would have one active booker over its cap.
    Returns the deadline it set and the place's deadline before.
    """
    now = gw.clock()
    deadline_s = now + view.snap.config.hold_s + gw.settings.booking_grace_s
    before = await gw.store.booking_started(token.room, token.position, now, deadline_s)
    if before is not None:
        return deadline_s, before
    if await gw.redis.exists(keys.token_booking(token.token_id)):  # it booked, and that ended
        raise ApiError(*TOKEN_USED, extra={"booking_id": booking_id_for(token)})
    raise ApiError(
        Code.ADMISSION_LAPSED,
        "your turn passed without a booking and your place went to the next in line;"
        " join the room again for a new place",
    )


async def claim_booking(
    gw: Gateway, view: RoomView, token: BookingToken, wish: Wish, used: tuple[Code, str]
) -> tuple[Book, str] | None:
    """The Book a token makes, once: its used-key is set, or 409 with ``used`` (code, text).

    None when the token's Book was in doubt (an earlier request got 503 ``in_doubt``)
    and this retry sent that same Book again: the broker has it now, and the answer
    is the first request's (202, pending). A token used by a request that wrote no
    booking record (Redis failed under it: that request got 503) books now, with the
    same booking id.
    """
    booking_id = booking_id_for(token)
    used_key = keys.token_booking(token.token_id)
    if not await gw.redis.set(used_key, booking_id, nx=True, ex=BOOKING_RECORD_TTL_S):
        resent = await send_again(gw, booking_id)
        if resent is Resent.SENT:
            return None
        if resent is Resent.PLACED:
            raise ApiError(*used, extra={"booking_id": booking_id})
    config = view.snap.config
    command = book_command(
        wish, booking_id, config.campaign, token.identity, config.hold_s, token.group
    )
    return command, used_key


@routes.post("/api/rooms/{room}/waitlist")
@operation(
    "join the county's waitlist while the room is sold out",
    {202: WaitlistPending},
    Code.UNKNOWN_ROOM,
    Code.UNKNOWN_COUNTY,
    Code.UNKNOWN_CENTER,
    Code.CENTER_NOT_IN_COUNTY,
    Code.NOT_SOLD_OUT,
    Code.ALREADY_WAITING,
    Code.ALREADY_BOOKED,
    Code.IN_DOUBT,
    body=WaitlistRequest,
    security="ticket",
    also=(TICKET_IN_COOKIE,),
)
async def join_waitlist(request: web.Request) -> web.Response:
    """A visitor of a sold-out room waits on the county's waitlist for a later offer.

    Taken only while the room is sold out, so the waitlist is no way around the
    line. One waitlist booking per ticket; the answer carries a booking token that
    reads, confirms and cancels that booking (and can make no other).
    """
    gw = request.app[GATEWAY]
    name = request.match_info["room"]
    view = await room_view(gw, name)
    ticket = verify_ticket(gw, bearer(request, TICKET_IN_COOKIE), name)
    body = await read_body(request, WaitlistRequest)
    wish = replace(read_wish(body, view.campaign), waitlist=True)
    if not view.snap.sold_out:
        raise ApiError(Code.NOT_SOLD_OUT, "the room is not sold out; wait for your turn")
    token = BookingToken(
        room=name,
        ticket_id=ticket.ticket_id,
        position=0,  # not a place on the timeline: the admitter frees nothing for it
        identity=ticket_identity(ticket),
        group=ticket.group,
        expires_at_s=gw.clock(),  # already expired: it can make no booking of its own
    )
    claimed = await claim_booking(
        gw, view, token, wish, (Code.ALREADY_WAITING, "this ticket is on the waitlist already")
    )
    if claimed is not None:
        command, used_key = claimed
        await place(gw, command, BookingRecord(waitlist_room=name), used_key)
    return pending(booking_id_for(token), booking_token=gw.signer.sign_booking_token(token))


async def _own_booking(request: web.Request, token_param: bool = False) -> tuple[Gateway, str]:
    gw = request.app[GATEWAY]
    booking_id = request.match_info["booking_id"]
    raw = bearer(request, *((TOKEN_IN_QUERY,) if token_param else ()))
    token = verify_booking_token(gw, raw, for_booking_made=True)
    if booking_id_for(token) != booking_id:
        raise ApiError(Code.NOT_YOUR_BOOKING, "this token did not make that booking")
    return gw, booking_id


async def current_view(gw: Gateway, booking_id: str) -> BookingView:
    view = await gw.views.get(booking_id)
    if view is not None:
        return view
    if await gw.redis.exists(keys.booking(booking_id)):
        return BookingView(booking_id)
    raise ApiError(Code.UNKNOWN_BOOKING, "there is no such booking")


@routes.get("/api/bookings/{booking_id}")
@operation("the booking", {200: Booking}, Code.UNKNOWN_BOOKING, security="booking_token")
async def get_booking(request: web.Request) -> web.Response:
    gw, booking_id = await _own_booking(request)
    return json_response((await current_view(gw, booking_id)).to_json())


@routes.get("/api/bookings/{booking_id}/calendar.ics")
@operation(
    "the confirmed appointments as an iCalendar file",
    {200: CALENDAR},
    Code.UNKNOWN_BOOKING,
    Code.NOT_CONFIRMED,
    Code.UNKNOWN_CAMPAIGN,
    security="booking_token",
    also=(TOKEN_IN_QUERY,),
    query=(Query("lang", Language, "the file's language (default de)"),),
)
async def booking_calendar(request: web.Request) -> web.Response:
    """The confirmed appointments as an iCalendar file (``gateway.calendarfile``); the
    token may come as ``?token=`` so that a plain link downloads it. ``?lang=de|en``."""
    gw, booking_id = await _own_booking(request, token_param=True)
    language = request.query.get("lang", LANGUAGES[0])
    if language not in TEXTS:
        raise ApiError(Code.INVALID_REQUEST, f"'lang' must be one of {', '.join(TEXTS)}")
    view = await current_view(gw, booking_id)
    if view.state != "confirmed" or view.campaign is None:
        raise ApiError(
            Code.NOT_CONFIRMED,
            f"only confirmed appointments go into a calendar; the booking is {view.state}",
        )
    public = await load_public(gw, view.campaign)
    now = dt.datetime.fromtimestamp(gw.clock(), dt.UTC)
    body = calendar_file(booking_id, view.to_json()["appointments"], public, language, now)
    return web.Response(
        body=body.encode("utf-8"),
        content_type="text/calendar",
        charset="utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{booking_id}.ics"',
            "Cache-Control": "no-store",
        },
    )


@routes.get("/api/bookings/{booking_id}/events")
@operation(
    "the booking as server-sent events (event 'booking')",
    {200: EVENTS},
    Code.UNKNOWN_BOOKING,
    security="booking_token",
    also=(TOKEN_IN_QUERY,),
)
async def booking_events(request: web.Request) -> web.StreamResponse:
    gw, booking_id = await _own_booking(request, token_param=True)
    current = await current_view(gw, booking_id)
    response = await open_stream(request)
    gw.metrics.streams.labels("booking").inc()
    try:
        with gw.views.watch(booking_id) as changes:
            view = await gw.views.get(booking_id) or current
            await send_event(response, "booking", view.to_json())
            while not view.final:
                try:
                    change = await asyncio.wait_for(changes.get(), gw.settings.sse_keepalive_s)
                except TimeoutError:
                    await send_keepalive(response)
                    continue
                # a change read from the read model while the first view was: sent already
                if change.rev > view.rev:
                    view = change
                    await send_event(response, "booking", view.to_json())
    except ConnectionResetError:
        pass  # the client went away (e.g. closed the stream at the answer it waited for)
    finally:
        gw.metrics.streams.labels("booking").dec()
    return response


async def send_and_answer(
    gw: Gateway, view: BookingView, command: Confirm | Cancel | Move
) -> web.Response:
    """Send a confirm, cancel or move and wait briefly for the allocator's answer."""
    if view.county is None:
        raise ApiError(Code.PENDING, "the booking has no answer yet; try again shortly")
    with gw.views.expect([command.command_id]) as futures:
        try:
            await gw.commands.send(view.county, command)
        except CommandNotAccepted as e:
            if not e.maybe_in_log:
                raise not_taken() from e
            gw.metrics.sends_in_doubt.labels(command.TYPE).inc()
            raise SendInDoubt(view.booking_id, change=command.TYPE) from e
        try:
            answer: Event = await asyncio.wait_for(
                futures[command.command_id], gw.settings.answer_wait_s
            )
        except TimeoutError:
            return json_response(view.to_json(), status=202)
    # the answer came after the read model had it
    view = await gw.views.get(view.booking_id) or view
    if isinstance(answer, Failed):
        raise refused(
            answer.reason,
            f"the booking could not be changed: {answer.reason}",
            extra={"booking": view.to_json()},
        )
    return json_response(view.to_json())


CANCELLABLE = ("held", "confirmed", "waitlisted")


async def confirm_booking(
    gw: Gateway, booking_id: str, body: ConfirmRequest | None = None
) -> web.Response:
    """Confirm a held booking. An ``identity_key`` in ``body`` makes the key one
    person: it is claimed for this booking first (409 ``already_booked`` if another
    booking of the campaign holds it) and given back if the allocator refuses, unless
    the booking is confirmed all the same: by another confirm of it, which may have
    carried the same key and found the claim already the booking's (a double click
    whose other confirm went on the log first)."""
    raw_key = None if body is None else body.identity_key
    identity = read_identity_key(raw_key, gw.settings.identity_secret)
    view = await current_view(gw, booking_id)
    if view.state != "held":
        raise ApiError(
            Code.NOT_HELD,
            f"only a held booking can be confirmed; it is {view.state}",
            extra={"booking": view.to_json()},
        )
    campaign = view.campaign or ""
    command = Confirm(new_command_id(), booking_id, campaign)
    if identity is None:
        if (await load_public(gw, campaign)).get("identity_key") == "required":
            raise ApiError(
                Code.IDENTITY_KEY_REQUIRED,
                "this campaign confirms only with the person's identity key ('identity_key')",
            )
        return await send_and_answer(gw, view, command)
    claim = Claim(campaign, identity, booking_id)
    taken_now = await identities.take(gw, claim, BOOKING_RECORD_TTL_S)
    try:
        return await send_and_answer(gw, view, command)
    except ApiError as e:
        # 409: the allocator refused (or the booking had no answer yet): this command
        # confirmed nothing; the views have every event before the refusal, so they
        # say whether another one did. A 503 keeps the claim: the broker may have the
        # command after all.
        if taken_now and e.status == 409 and not await _confirmed(gw, booking_id):
            await identities.release(gw, claim)
        raise


async def _confirmed(gw: Gateway, booking_id: str) -> bool:
    view = await gw.views.get(booking_id)
    return view is not None and view.state == "confirmed"


async def cancel_booking(gw: Gateway, booking_id: str) -> web.Response:
    """Cancel a hold, an appointment or a place on the waitlist."""
    view = await current_view(gw, booking_id)
    if view.state not in CANCELLABLE:
        raise ApiError(
            Code.NOT_CANCELLABLE,
            f"a {view.state} booking cannot be cancelled",
            extra={"booking": view.to_json()},
        )
    campaign = view.campaign or ""
    return await send_and_answer(gw, view, Cancel(new_command_id(), booking_id, campaign))


async def move_booking(gw: Gateway, booking_id: str, body: MoveRequest) -> web.Response:
    """Move a held or confirmed booking to the best pair for a new wish, atomically.

    The pair is searched in the named county, else the named center's, else the
    booking's own. The old pair is given back only once the new one is taken (for
    another county's partition, after the round trip through the log that
    ``schemas.commands.TransferIn`` describes).
    """
    view = await current_view(gw, booking_id)
    if view.state not in ("held", "confirmed") or view.campaign is None:
        raise ApiError(
            Code.NOT_MOVABLE,
            f"only a held or confirmed booking can be moved; it is {view.state}",
            extra={"booking": view.to_json()},
        )
    public = await load_public(gw, view.campaign)
    wish = read_wish(body, public, county=_move_county(body, view.county))
    command = Move(
        new_command_id(),
        booking_id,
        view.campaign,
        center=wish.center,
        earliest=wish.earliest,
        time_of_day=wish.time_of_day,
        county=wish.county if wish.county != view.county else None,
    )
    return await send_and_answer(gw, view, command)


def _named_county(county: str | None, campaign: Public | None) -> str:
    if county is None:
        raise SchemaError("'county' (or 'center') is required")
    if county not in county_ids(campaign):
        raise ApiError(Code.UNKNOWN_COUNTY, f"this campaign books no county {county!r}")
    return county


def _move_county(body: MoveRequest, own: str | None) -> str | None:
    """The county a move searches in: the booking's own unless the body names a county
    or a center (None: ``read_wish`` reads it, or takes the center's)."""
    if body.county is not None or body.center is not None:
        return None
    return own


@routes.post("/api/bookings/{booking_id}/move")
@operation(
    "move a held or confirmed booking to another pair, atomically",
    {200: Booking, 202: Booking},
    *MOVE_CODES,
    body=MoveRequest,
    security="booking_token",
)
async def move(request: web.Request) -> web.Response:
    gw, booking_id = await _own_booking(request)
    return await move_booking(gw, booking_id, await read_body(request, MoveRequest))


@routes.post("/api/bookings/{booking_id}/confirm")
@operation(
    "confirm a held pair, optionally with an identity key",
    {200: Booking, 202: Booking},
    *CONFIRM_CODES,
    body=ConfirmRequest,
    body_required=False,
    security="booking_token",
)
async def confirm(request: web.Request) -> web.Response:
    gw, booking_id = await _own_booking(request)
    body = await read_body(request, ConfirmRequest, optional=True)
    return await confirm_booking(gw, booking_id, body)


@routes.post("/api/bookings/{booking_id}/cancel")
@operation(
    "cancel a held or confirmed pair, or a place on the waitlist",
    {200: Booking, 202: Booking},
    *CANCEL_CODES,
    security="booking_token",
)
async def cancel(request: web.Request) -> web.Response:
    gw, booking_id = await _own_booking(request)
    return await cancel_booking(gw, booking_id)
