"""Call-center routes: agents book, look up, move, confirm and cancel for a caller.

Agents authenticate with their own key (``FAIRQ_AGENT_KEYS``, ``agent:key`` pairs)
or the operator key. A caller identifies with the access code from their letter,
so a phone booking is the same person as an online one with that code: one pair
per code per campaign holds across both, and across counties (the identity claim
of ``gateway.identities``). A refused phone booking names the caller's booking.
Booking references are the same ids online and on the phone.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets

from aiohttp import web

from gateway.bookings import (
    BOOKING_FIELDS,
    book_command,
    cancel_booking,
    confirm_booking,
    current_view,
    move_booking,
    read_wish,
)
from gateway.campaigns import load_public
from gateway.errors import ApiError
from gateway.http import json_response, key_holder, read_json
from gateway.identities import IdentityTaken
from gateway.placement import place
from gateway.state import GATEWAY, Gateway
from schemas.fields import only_keys, req_str
from waitingroom.codes import code_identity, find_code

logger = logging.getLogger(__name__)

PHONE_BOOKING_FIELDS = BOOKING_FIELDS | {"access_code"}

routes = web.RouteTableDef()


def require_agent(request: web.Request) -> tuple[Gateway, str]:
    """The gateway and the agent's id; the operator key acts as agent ``operator``."""
    gw = request.app[GATEWAY]
    keys = {"operator": gw.settings.operator_key, **gw.settings.agent_keys}
    return gw, key_holder(request, keys, "agent")


def new_booking_id() -> str:
    return "bk_" + base64.b32encode(secrets.token_bytes(15)).decode().lower()


@routes.post("/api/callcenter/campaigns/{campaign}/bookings")
async def phone_booking(request: web.Request) -> web.Response:
    gw, agent = require_agent(request)
    campaign = request.match_info["campaign"]
    public = await load_public(gw, campaign)
    body = await read_json(request)
    only_keys(body, PHONE_BOOKING_FIELDS, "the phone booking body")
    code = req_str(body, "access_code", max_len=64)
    wish = read_wish(body, public)
    found = await find_code(gw.redis, campaign, code, gw.settings.identity_secret)
    if found is None:
        raise ApiError(
            403, "invalid_access_code", "this access code is not valid for this campaign"
        )
    code_hash, group = found
    identity = code_identity(code_hash)
    hold_s = int(public.get("hold_s", 600))
    command = book_command(wish, new_booking_id(), campaign, identity, hold_s, group)
    with gw.views.expect([command.command_id]) as answers:
        try:
            await place(gw, command, [*("agent", agent)])
        except IdentityTaken as e:  # an agent may see the caller's booking: say which
            raise ApiError(e.status, e.code, e.message, extra={"booking_id": e.holder}) from e
        logger.info("agent %s booked %s for a caller", agent, command.booking_id)
        done, _ = await asyncio.wait(answers.values(), timeout=gw.settings.answer_wait_s)
    view = await current_view(gw, command.booking_id)
    return json_response(view.to_json(), status=201 if done else 202)


@routes.get("/api/callcenter/bookings/{booking_id}")
async def phone_lookup(request: web.Request) -> web.Response:
    gw, _ = require_agent(request)
    view = await current_view(gw, request.match_info["booking_id"])
    return json_response(view.to_json())


@routes.post("/api/callcenter/bookings/{booking_id}/confirm")
async def phone_confirm(request: web.Request) -> web.Response:
    gw, agent = require_agent(request)
    booking_id = request.match_info["booking_id"]
    logger.info("agent %s confirms %s", agent, booking_id)
    return await confirm_booking(gw, booking_id, await read_json(request, optional=True))


@routes.post("/api/callcenter/bookings/{booking_id}/move")
async def phone_move(request: web.Request) -> web.Response:
    gw, agent = require_agent(request)
    booking_id = request.match_info["booking_id"]
    logger.info("agent %s moves %s", agent, booking_id)
    return await move_booking(gw, booking_id, await read_json(request))


@routes.post("/api/callcenter/bookings/{booking_id}/cancel")
async def phone_cancel(request: web.Request) -> web.Response:
    gw, agent = require_agent(request)
    booking_id = request.match_info["booking_id"]
    logger.info("agent %s cancels %s", agent, booking_id)
    return await cancel_booking(gw, booking_id)
