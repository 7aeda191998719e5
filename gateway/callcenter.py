"""Call-center routes: agents book, look up, move, confirm and cancel for a caller.

Agents authenticate with their own key (``FAIRQ_AGENT_KEYS``, ``agent:key`` pairs)
or the operator key (as agent ``operator``), or with the call-center screen's session
that such a key signed in (``gateway.sessions``; ``gateway.operators`` verifies it and
records every action with the agent's name). A caller identifies with the access
code from their letter, so a phone booking is the same person as an online one with
that code: one pair per code per campaign holds across both, and across counties (the
identity claim of ``gateway.identities``). A refused phone booking names the caller's booking.
Booking references are the same ids online and on the phone.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets

from aiohttp import web

from gateway.bookings import (
    CANCEL_CODES,
    CONFIRM_CODES,
    MOVE_CODES,
    book_command,
    cancel_booking,
    confirm_booking,
    current_view,
    move_booking,
    read_wish,
)
from gateway.campaigns import load_public
from gateway.contracts import (
    Booking,
    ConfirmRequest,
    Document,
    MoveRequest,
    PhoneBookingRequest,
    operation,
)
from gateway.errors import ApiError, Code
from gateway.history import learn_rooms
from gateway.http import json_response, key_holder, read_body
from gateway.identities import IdentityTaken
from gateway.placement import place
from gateway.sessions import AGENT, SIGNED_IN
from gateway.state import GATEWAY, Gateway
from schemas.states import TIMES_OF_DAY
from waitingroom.bookingrecord import BookingRecord
from waitingroom.codes import code_identity, find_code

logger = logging.getLogger(__name__)

CAMPAIGN_FIELDS = ("title", "identity_key", "hold_s", "counties", "centers", "vaccines")
# the booking a phone booking made, for the record of agent actions (``gateway.operators``)
BOOKING_ID = web.RequestKey("phone_booking_id", str)

routes = web.RouteTableDef()


def require_agent(request: web.Request) -> tuple[Gateway, str]:
    """The gateway and the agent's id; the operator key acts as agent ``operator``.
    A request signed in to the call-center screen is its agent's."""
    gw = request.app[GATEWAY]
    session = request.get(SIGNED_IN)
    if session is not None and session.role == AGENT.name:
        return gw, session.who
    keys = {"operator": gw.settings.operator_key, **gw.settings.agent_keys}
    return gw, key_holder(request, keys, "agent")


def new_booking_id() -> str:
    return "bk_" + base64.b32encode(secrets.token_bytes(15)).decode().lower()


@routes.post("/api/callcenter/campaigns/{campaign}/bookings")
@operation(
    "book a pair for a caller with their access code",
    {201: Booking, 202: Booking},
    Code.UNKNOWN_CAMPAIGN,
    Code.UNKNOWN_COUNTY,
    Code.UNKNOWN_CENTER,
    Code.CENTER_NOT_IN_COUNTY,
    Code.INVALID_ACCESS_CODE,
    Code.ALREADY_BOOKED,
    Code.IN_DOUBT,
    body=PhoneBookingRequest,
    tag="callcenter",
)
async def phone_booking(request: web.Request) -> web.Response:
    gw, agent = require_agent(request)
    campaign = request.match_info["campaign"]
    public = await load_public(gw, campaign)
    body = await read_body(request, PhoneBookingRequest)
    code = body.access_code
    wish = read_wish(body, public)
    found = await find_code(gw.redis, campaign, code, gw.settings.identity_secret)
    if found is None:
        raise ApiError(Code.INVALID_ACCESS_CODE, "this access code is not valid for this campaign")
    code_hash, group = found
    identity = code_identity(code_hash)
    hold_s = int(public.get("hold_s", 600))
    command = book_command(wish, new_booking_id(), campaign, identity, hold_s, group)
    request[BOOKING_ID] = command.booking_id
    with gw.views.expect([command.command_id]) as answers:
        try:
            await place(gw, command, BookingRecord(agent=agent))
        except IdentityTaken as e:  # an agent may see the caller's booking: say which
            raise ApiError(Code.ALREADY_BOOKED, e.message, extra={"booking_id": e.holder}) from e
        logger.info("agent %s booked %s for a caller", agent, command.booking_id)
        done, _ = await asyncio.wait(answers.values(), timeout=gw.settings.answer_wait_s)
    view = await current_view(gw, command.booking_id)
    return json_response(view.to_json(), status=201 if done else 202)


@routes.get("/api/callcenter/campaigns")
@operation(
    "the campaigns of the rooms, with their counties, centers and vaccines",
    {200: Document},
    tag="callcenter",
)
async def phone_campaigns(request: web.Request) -> web.Response:
    """The campaigns agents book for: those of the rooms (a campaign is booked online
    through a room), with their counties, centers and vaccines; and the times of day a
    wish may name."""
    gw, _ = require_agent(request)
    await learn_rooms(gw)
    names = sorted({view.snap.config.campaign for view in gw.rooms.known().values()})
    campaigns = []
    for name in names:
        public = await load_public(gw, name)
        campaigns.append({"name": name} | {f: public.get(f) for f in CAMPAIGN_FIELDS})
    return json_response({"campaigns": campaigns, "times_of_day": TIMES_OF_DAY})


@routes.get("/api/callcenter/bookings/{booking_id}")
@operation(
    "any booking, by reference",
    {200: Booking},
    Code.UNKNOWN_BOOKING,
    tag="callcenter",
)
async def phone_lookup(request: web.Request) -> web.Response:
    gw, _ = require_agent(request)
    view = await current_view(gw, request.match_info["booking_id"])
    return json_response(view.to_json())


@routes.post("/api/callcenter/bookings/{booking_id}/confirm")
@operation(
    "confirm a booking for a caller",
    {200: Booking, 202: Booking},
    *CONFIRM_CODES,
    body=ConfirmRequest,
    body_required=False,
    tag="callcenter",
)
async def phone_confirm(request: web.Request) -> web.Response:
    gw, agent = require_agent(request)
    booking_id = request.match_info["booking_id"]
    logger.info("agent %s confirms %s", agent, booking_id)
    body = await read_body(request, ConfirmRequest, optional=True)
    return await confirm_booking(gw, booking_id, body)


@routes.post("/api/callcenter/bookings/{booking_id}/move")
@operation(
    "move a booking for a caller",
    {200: Booking, 202: Booking},
    *MOVE_CODES,
    body=MoveRequest,
    tag="callcenter",
)
async def phone_move(request: web.Request) -> web.Response:
    gw, agent = require_agent(request)
    booking_id = request.match_info["booking_id"]
    logger.info("agent %s moves %s", agent, booking_id)
    return await move_booking(gw, booking_id, await read_body(request, MoveRequest))


@routes.post("/api/callcenter/bookings/{booking_id}/cancel")
@operation(
    "cancel a booking for a caller",
    {200: Booking, 202: Booking},
    *CANCEL_CODES,
    tag="callcenter",
)
async def phone_cancel(request: web.Request) -> web.Response:
    gw, agent = require_agent(request)
    booking_id = request.match_info["booking_id"]
    logger.info("agent %s cancels %s", agent, booking_id)
    return await cancel_booking(gw, booking_id)
