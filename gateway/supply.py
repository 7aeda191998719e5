"""Operator routes that shape supply after loading: priority reserves and removing slots.

Both become commands on ``booking-commands`` keyed by the center's county, so the
allocator applies them in order with the bookings of that county, and both wait
for the allocator's answers (``ReserveSet``, ``InventoryRemoved``) to report them.
"""

from __future__ import annotations

import datetime as dt
import logging

from aiohttp import web

from gateway.admin import require_operator
from gateway.bookings import new_command_id
from gateway.campaigns import center_county, load_public
from gateway.commanding import send_commands
from gateway.contracts import RemoveRequest, ReserveRequest, ReservesSet, SlotsRemoved, operation
from gateway.errors import ApiError, Code, refused
from gateway.http import json_response, read_body
from gateway.state import Gateway
from schemas.commands import RemoveInventory, SetReserve
from schemas.events import InventoryRemoved, ReserveSet

logger = logging.getLogger(__name__)

MAX_RESERVE_DAYS = 366

routes = web.RouteTableDef()


async def _center(gw: Gateway, campaign: str, center: str) -> tuple[str, str]:
    """The named center and its county; 400 when the campaign has no such center."""
    county = center_county(await load_public(gw, campaign), center)
    if county is None:
        raise ApiError(Code.UNKNOWN_CENTER, f"campaign {campaign!r} has no center {center!r}")
    return center, county


def _days(body: ReserveRequest) -> list[str]:
    first = body.from_
    last = body.to or first
    count = (last - first).days + 1
    if not 1 <= count <= MAX_RESERVE_DAYS:
        raise ApiError(
            Code.INVALID_REQUEST, f"'to' must be 0..{MAX_RESERVE_DAYS - 1} days after 'from'"
        )
    return [(first + dt.timedelta(days=i)).isoformat() for i in range(count)]


@routes.post("/api/admin/campaigns/{campaign}/reserves")
@operation(
    "reserve a share of a center's slots on days for a priority group",
    {200: ReservesSet, 202: ReservesSet},
    Code.UNKNOWN_CAMPAIGN,
    Code.UNKNOWN_CENTER,
    Code.IN_DOUBT,
    body=ReserveRequest,
    tag="operators",
)
async def set_reserves(request: web.Request) -> web.Response:
    """Reserve a share of every slot of a center on the given days for a priority group."""
    gw = require_operator(request)
    campaign = request.match_info["campaign"]
    body = await read_body(request, ReserveRequest)
    center, county = await _center(gw, campaign, body.center)
    group, share_pct, mode, release_at = body.group, body.share_pct, body.mode, body.release_at
    commands = [
        SetReserve(
            command_id=new_command_id(),
            campaign=campaign,
            county=county,
            center=center,
            day=day,
            group=group,
            share_pct=share_pct,
            mode=mode,
            release_at_ms=int(release_at.timestamp() * 1000),
        )
        for day in _days(body)
    ]
    answers = await send_commands(gw, [(county, c) for c in commands], gw.settings.answer_wait_s)
    days = {c.command_id: c.day for c in commands}
    sets = [a for a in answers if isinstance(a, ReserveSet)]
    logger.info(
        "reserve for %s at %s: %d days, share %d%%", group, center, len(commands), share_pct
    )
    return json_response(
        {
            "campaign": campaign,
            "center": center,
            "group": group,
            "days": len(commands),
            "answered": len(sets),
            "places_reserved": sum(a.places_reserved for a in sets if a.accepted),
            "refused": [
                {"day": days[a.command_id], "reason": a.reason} for a in sets if not a.accepted
            ],
        },
        status=200 if len(sets) == len(commands) else 202,
    )


@routes.post("/api/admin/campaigns/{campaign}/inventory/remove")
@operation(
    "remove slots of a center and vaccine, all or none",
    {200: SlotsRemoved, 202: SlotsRemoved},
    Code.UNKNOWN_CAMPAIGN,
    Code.UNKNOWN_CENTER,
    Code.REFUSED,
    Code.IN_DOUBT,
    body=RemoveRequest,
    tag="operators",
)
async def remove_inventory(request: web.Request) -> web.Response:
    """Take slots out, all or none: refused (409) when one is unknown or has a place used."""
    gw = require_operator(request)
    campaign = request.match_info["campaign"]
    body = await read_body(request, RemoveRequest)
    center, county = await _center(gw, campaign, body.center)
    command = RemoveInventory(
        command_id=new_command_id(),
        campaign=campaign,
        county=county,
        center=center,
        vaccine=body.vaccine,
        starts=tuple(int(start.timestamp()) for start in body.starts),
    )
    answers = await send_commands(gw, [(county, command)], gw.settings.answer_wait_s)
    answer = next((a for a in answers if isinstance(a, InventoryRemoved)), None)
    if answer is None:
        return json_response(
            {"campaign": campaign, "center": center, "state": "pending"}, status=202
        )
    if not answer.accepted:
        raise refused(
            str(answer.reason), f"no slot was removed: {answer.reason}", extra={"center": center}
        )
    logger.info("removed %d slots at %s", answer.slots_removed, center)
    return json_response(
        {"campaign": campaign, "center": center, "slots_removed": answer.slots_removed}
    )
