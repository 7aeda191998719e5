"""Operator routes that shape supply after loading: priority reserves and removing slots.

Both become commands on ``booking-commands`` keyed by the center's county, so the
allocator applies them in order with the bookings of that county, and both wait
for the allocator's answers (``ReserveSet``, ``InventoryRemoved``) to report them.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from gateway import bounds
from gateway.admin import require_operator
from gateway.bookings import new_command_id
from gateway.campaigns import center_county, load_public
from gateway.commanding import send_commands
from gateway.errors import ApiError, Code, refused
from gateway.http import json_response, read_json
from gateway.state import Gateway
from schemas.commands import RESERVE_MODES, RemoveInventory, SetReserve
from schemas.events import InventoryRemoved, ReserveSet
from schemas.fields import (
    only_keys,
    opt_date,
    parse_date,
    parse_datetime,
    req_ident,
    req_list,
    req_str,
)

logger = logging.getLogger(__name__)

RESERVE_FIELDS = frozenset({"center", "from", "to", "group", "share_pct", "mode", "release_at"})
REMOVE_FIELDS = frozenset({"center", "vaccine", "starts"})
MAX_RESERVE_DAYS = 366
MAX_REMOVE_SLOTS = 20_000

routes = web.RouteTableDef()


async def _center(gw: Gateway, campaign: str, body: Mapping[str, Any]) -> tuple[str, str]:
    """The named center and its county; 400 when the campaign has no such center."""
    center = req_str(body, "center")
    county = center_county(await load_public(gw, campaign), center)
    if county is None:
        raise ApiError(Code.UNKNOWN_CENTER, f"campaign {campaign!r} has no center {center!r}")
    return center, county


def _days(body: Mapping[str, Any]) -> list[str]:
    first = parse_date(body.get("from"), "from")
    last = opt_date(body, "to") or first
    count = (last - first).days + 1
    if not 1 <= count <= MAX_RESERVE_DAYS:
        raise ApiError(
            Code.INVALID_REQUEST, f"'to' must be 0..{MAX_RESERVE_DAYS - 1} days after 'from'"
        )
    return [(first + dt.timedelta(days=i)).isoformat() for i in range(count)]


def _mode(body: Mapping[str, Any]) -> str:
    mode = body.get("mode")
    if mode not in RESERVE_MODES:
        raise ApiError(Code.INVALID_REQUEST, f"'mode' must be one of {', '.join(RESERVE_MODES)}")
    return str(mode)


@routes.post("/api/admin/campaigns/{campaign}/reserves")
async def set_reserves(request: web.Request) -> web.Response:
    """Reserve a share of every slot of a center on the given days for a priority group."""
    gw = require_operator(request)
    campaign = request.match_info["campaign"]
    body = await read_json(request)
    only_keys(body, RESERVE_FIELDS, "the reserve body")
    center, county = await _center(gw, campaign, body)
    group = req_ident(body, "group")
    share_pct = bounds.read_int(body, "share_pct")
    mode = _mode(body)
    release_at = parse_datetime(body.get("release_at"), "release_at")
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


def _starts(body: Mapping[str, Any]) -> tuple[int, ...]:
    raw = req_list(body, "starts", max_len=MAX_REMOVE_SLOTS)
    if not raw:
        raise ApiError(Code.INVALID_REQUEST, "'starts' must name at least one slot")
    return tuple(int(parse_datetime(s, "starts[]").timestamp()) for s in raw)


@routes.post("/api/admin/campaigns/{campaign}/inventory/remove")
async def remove_inventory(request: web.Request) -> web.Response:
    """Take slots out, all or none: refused (409) when one is unknown or has a place used."""
    gw = require_operator(request)
    campaign = request.match_info["campaign"]
    body = await read_json(request)
    only_keys(body, REMOVE_FIELDS, "the removal body")
    center, county = await _center(gw, campaign, body)
    command = RemoveInventory(
        command_id=new_command_id(),
        campaign=campaign,
        county=county,
        center=center,
        vaccine=req_str(body, "vaccine"),
        starts=_starts(body),
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
