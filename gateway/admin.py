"""Operator routes: campaigns and inventory, access codes, rooms, admission and stats."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import itertools
import logging
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar, get_args

import msgspec
import orjson
from aiohttp import web
from msgspec import UNSET

from gateway.bookings import new_command_id
from gateway.campaigns import load_public
from gateway.commanding import send_commands
from gateway.contracts import (
    CSV,
    AdmissionRequest,
    CampaignDocument,
    Codes,
    CodesRequest,
    Document,
    InventoryLoaded,
    InventoryRequest,
    MessageRequest,
    MessageSet,
    Query,
    RoomRequest,
    RoomStats,
    operation,
)
from gateway.errors import ApiError, Code
from gateway.exports import appointment_rows, code_letters, csv_response, csv_stream
from gateway.http import json_response, key_holder, read_body, read_json
from gateway.roomcache import RoomView
from gateway.rooms import iso_s, message_body, room_view
from gateway.sessions import OPERATOR, SIGNED_IN
from gateway.state import GATEWAY, Gateway
from schemas.campaign import parse_campaign
from schemas.commands import AddInventory
from schemas.events import InventoryAdded
from schemas.fields import (
    ID_PATTERN,
    parse_date,
)
from schemas.state import CampaignStored
from waitingroom import keys
from waitingroom.codes import issue_codes
from waitingroom.errors import InvalidRoomConfig
from waitingroom.rooms import (
    AdmissionChange,
    RoomConfig,
    RoomMessage,
)

logger = logging.getLogger(__name__)

routes = web.RouteTableDef()
_T = TypeVar("_T")


CodesFormat = Literal["json", "csv"]  # how access codes are answered (?format=)


def require_operator(request: web.Request) -> Gateway:
    """The gateway, for a request with the operator key or a verified console session
    (``gateway.operators`` verifies the session cookie and marks the request)."""
    gw = request.app[GATEWAY]
    session = request.get(SIGNED_IN)
    if session is not None and session.role == OPERATOR.name:  # the console's (operators)
        return gw
    key_holder(request, {"operator": gw.settings.operator_key}, "operator")
    return gw


async def _load_inventory(gw: Gateway, commands: list[AddInventory]) -> dict[str, Any]:
    """Put inventory on the commands topic and wait for the allocator's answers.

    A command answered before (a delivery sent again, see ``numbered_ids``) is not
    sent again: its first answer stands (``already_applied`` counts them).
    """
    known = await gw.views.model.inventory_answers([c.command_id for c in commands])
    earlier = [known[c.command_id] for c in commands if c.command_id in known]
    keyed = [(c.county, c) for c in commands if c.command_id not in known]
    answers = earlier + await send_commands(gw, keyed, gw.settings.inventory_wait_s)
    refused = [
        {"center": a.center, "reason": a.reason}
        for a in answers
        if isinstance(a, InventoryAdded) and not a.accepted
    ]
    return {
        "inventory_commands": len(commands),
        "slots": sum(len(c.slots) for c in commands),
        "places": sum(s.capacity for c in commands for s in c.slots),
        "answered": len(answers),
        "already_applied": len(earlier),
        "refused": refused,
    }


def numbered_ids(prefix: str) -> Callable[[], str]:
    """Command ids ``prefix-0``, ``prefix-1``, ...: the same for the same delivery, so
    that a delivery sent again (a retry after a timeout or a 503) adds only what was
    not applied: the allocator applies an inventory command id once."""
    numbers = itertools.count()
    return lambda: f"{prefix}-{next(numbers)}"


def _answered(result: dict[str, Any]) -> int:
    """200 when the allocator answered every command in time, else 202."""
    return 200 if result["answered"] == result["inventory_commands"] else 202


@routes.put("/api/admin/campaigns/{campaign}")
@operation(
    "create a campaign with its inventory (the same document again: a retry)",
    {201: InventoryLoaded, 200: InventoryLoaded, 202: InventoryLoaded},
    Code.CAMPAIGN_EXISTS,
    Code.IN_DOUBT,
    body=CampaignDocument,
    tag="operators",
)
async def put_campaign(request: web.Request) -> web.Response:
    """Create a campaign and load its inventory. The same document again loads what
    the allocator has not applied yet (a retry); another document is refused."""
    gw = require_operator(request)
    name = request.match_info["campaign"]
    spec = await asyncio.to_thread(parse_campaign, name, await read_json(request))
    public = msgspec.json.encode(spec.public())
    stored = await gw.redis.set(keys.campaign(name), public, nx=True)
    if not stored and await gw.redis.get(keys.campaign(name)) != public:
        raise ApiError(Code.CAMPAIGN_EXISTS, f"campaign {name!r} exists; add inventory instead")
    if gw.store.ledger is not None:  # the description Redis has now; sent again on a retry
        await gw.store.ledger.write(CampaignStored(name, public.decode()))
    result = await _load_inventory(gw, spec.inventory_commands(numbered_ids(f"campaign-{name}")))
    logger.info("campaign %s %s: %s", name, "created" if stored else "loaded again", result)
    body = {"campaign": name, "repeated": not stored, **result}
    return json_response(body, status=201 if stored else _answered(result))


@routes.post("/api/admin/campaigns/{campaign}/inventory")
@operation(
    "add inventory (with a delivery_id it may be sent again safely)",
    {200: InventoryLoaded, 202: InventoryLoaded},
    Code.UNKNOWN_CAMPAIGN,
    Code.DELIVERY_ID_REUSED,
    Code.IN_DOUBT,
    body=InventoryRequest,
    tag="operators",
)
async def add_inventory(request: web.Request) -> web.Response:
    """A delivery of slots. With a ``delivery_id`` it may be sent again safely: the
    allocator applies each of its commands once; the id with another body is refused."""
    gw = require_operator(request)
    name = request.match_info["campaign"]
    body = await read_body(request, InventoryRequest)
    delivery_id = body.delivery_id
    public = await load_public(gw, name)
    given = msgspec.structs.asdict(body).items()
    slots = {k: v for k, v in given if v is not None and k != "delivery_id"}
    doc = {k: v for k, v in public.items() if k != "name"} | slots
    spec = await asyncio.to_thread(parse_campaign, name, doc)
    repeated, new_id = False, new_command_id
    if delivery_id is not None:
        repeated = await _seen_delivery(gw, name, delivery_id, slots)
        new_id = numbered_ids(f"delivery-{delivery_id}")
    delivery = [c for c in spec.inventory_commands(new_id) if c.slots]
    result = await _load_inventory(gw, delivery)
    out = {"campaign": name, "delivery_id": delivery_id, "repeated": repeated, **result}
    return json_response(out, status=_answered(result))


async def _seen_delivery(
    gw: Gateway, campaign: str, delivery_id: str, slots: Mapping[str, Any]
) -> bool:
    """Whether this delivery was sent before (then with the same slots, else 409)."""
    digest = hashlib.sha256(orjson.dumps(slots, option=orjson.OPT_SORT_KEYS)).hexdigest()
    key = keys.campaign_delivery(campaign, delivery_id)
    if await gw.redis.set(key, digest, nx=True):
        return False
    if (await gw.redis.get(key)) != digest.encode():
        raise ApiError(
            Code.DELIVERY_ID_REUSED, f"delivery {delivery_id!r} was sent with other slots"
        )
    return True


@routes.get("/api/admin/campaigns/{campaign}")
@operation(
    "the campaign and its inventory per county",
    {200: Document},
    Code.UNKNOWN_CAMPAIGN,
    tag="operators",
)
async def get_campaign(request: web.Request) -> web.Response:
    gw = require_operator(request)
    name = request.match_info["campaign"]
    public = await load_public(gw, name)
    counties = gw.views.summaries.get(name, {})
    return json_response(public | {"inventory": {k: v.to_map() for k, v in counties.items()}})


@routes.post("/api/admin/campaigns/{campaign}/codes")
@operation(
    "issue access codes for a group (?format=csv: letters for a mail house)",
    {201: (Codes, CSV)},
    Code.UNKNOWN_CAMPAIGN,
    body=CodesRequest,
    query=(Query("format", CodesFormat, "csv: letters; else JSON"),),
    tag="operators",
)
async def post_codes(request: web.Request) -> web.Response:
    gw = require_operator(request)
    name = request.match_info["campaign"]
    form = request.query.get("format", "json")  # checked, like the body, before any code is issued
    if form not in get_args(CodesFormat):
        raise ApiError(
            Code.INVALID_REQUEST, f"'format' must be {' or '.join(get_args(CodesFormat))}"
        )
    body = await read_body(request, CodesRequest)
    group, count = body.group, body.count
    public = await load_public(gw, name)
    codes = await issue_codes(
        gw.redis, name, group, count, gw.settings.identity_secret, gw.store.ledger
    )
    if form == "csv":
        return csv_response(f"{name}-{group}-codes.csv", code_letters(public, group, codes), 201)
    return json_response({"campaign": name, "group": group, "codes": codes}, status=201)


@routes.get("/api/admin/campaigns/{campaign}/appointments.csv")
@operation(
    "confirmed appointments as CSV",
    {200: CSV},
    Code.UNKNOWN_CAMPAIGN,
    query=(Query("center", str, "one center's"), Query("day", dt.date, "one day's")),
    tag="operators",
)
async def appointments_csv(request: web.Request) -> web.StreamResponse:
    """Confirmed appointments of a campaign, optionally of one center and/or day."""
    gw = require_operator(request)
    name = request.match_info["campaign"]
    await load_public(gw, name)
    center = request.query.get("center")
    day = request.query.get("day")
    if day is not None:
        parse_date(day, "day")
    rows = appointment_rows(gw.views.model, name, center, day)
    return await csv_stream(request, f"{name}-appointments.csv", rows)


def _opens_at(body: RoomRequest, now_s: float, current: float | None) -> float:
    if body.opens_in_s is not None:
        return now_s + body.opens_in_s
    if body.opens_at is None:
        if current is None:
            raise ApiError(Code.INVALID_REQUEST, "'opens_at' or 'opens_in_s' is required")
        return current
    return body.opens_at.timestamp()


@routes.put("/api/admin/rooms/{room}")
@operation(
    "create or change a room",
    {200: RoomStats, 201: RoomStats},
    Code.UNKNOWN_CAMPAIGN,
    body=RoomRequest,
    tag="operators",
)
async def put_room(request: web.Request) -> web.Response:
    gw = require_operator(request)
    name = request.match_info["room"]
    if not ID_PATTERN.fullmatch(name):
        raise ApiError(Code.INVALID_REQUEST, f"a room name must match {ID_PATTERN.pattern}")
    body = await read_body(request, RoomRequest)
    existing = await gw.rooms.get(name)
    old = existing.snap.config if existing else None
    campaign = body.campaign or (old.campaign if old else None)
    if campaign is None:
        raise ApiError(Code.INVALID_REQUEST, "'campaign' is required for a new room")
    public = await load_public(gw, campaign)
    defaults = old or RoomConfig(
        name=name, campaign=campaign, opens_at_s=0.0, hold_s=int(public.get("hold_s", 600))
    )
    live = _admission_change(body)
    config = _room_config(
        name=name,
        campaign=campaign,
        opens_at_s=_opens_at(body, gw.clock(), old.opens_at_s if old else None),
        rate_per_s=_given(live.rate_per_s, defaults.rate_per_s),
        max_active=_given(live.max_active, defaults.max_active),
        hold_s=_given(body.hold_s, defaults.hold_s),
        admit_window_s=_given(body.admit_window_s, defaults.admit_window_s),
        prequeue_s=_given(body.prequeue_s, defaults.prequeue_s),
        ramp_s=_given(live.ramp_s, defaults.ramp_s),
        admission_mode=_given(live.admission_mode, defaults.admission_mode),
        pow_difficulty=_given(live.pow_difficulty, defaults.pow_difficulty),
        language=body.language or defaults.language,
    )
    await gw.store.put_room(config)
    view = await gw.rooms.reload(name)
    if view is None:
        raise ApiError(Code.UNAVAILABLE, "the room was stored but could not be read back")
    return json_response(stats_body(gw, view), status=200 if existing else 201)


def _given(value: _T | None, default: _T) -> _T:
    """A setting the body gave, else the room's own (or the default of a new room)."""
    return default if value is None else value


def _room_config(**fields: Any) -> RoomConfig:
    try:
        return RoomConfig(**fields)
    except InvalidRoomConfig as e:
        raise ApiError(Code.INVALID_REQUEST, str(e)) from e


async def _admin_room(request: web.Request) -> tuple[Gateway, RoomView]:
    gw = require_operator(request)
    return gw, await room_view(gw, request.match_info["room"])


@routes.post("/api/admin/rooms/{room}/open")
@operation("open the room now", {200: RoomStats}, Code.UNKNOWN_ROOM, tag="operators")
async def open_room(request: web.Request) -> web.Response:
    gw, view = await _admin_room(request)
    await gw.store.open_now(view.snap.config.name, gw.clock())
    return await _reloaded(gw, view)


async def _set_state(request: web.Request, state: str) -> web.Response:
    gw, view = await _admin_room(request)
    await gw.store.set_state(view.snap.config.name, state)
    return await _reloaded(gw, view)


@routes.post("/api/admin/rooms/{room}/pause")
@operation("pause admission", {200: RoomStats}, Code.UNKNOWN_ROOM, tag="operators")
async def pause_room(request: web.Request) -> web.Response:
    return await _set_state(request, "paused")


@routes.post("/api/admin/rooms/{room}/resume")
@operation("resume admission", {200: RoomStats}, Code.UNKNOWN_ROOM, tag="operators")
async def resume_room(request: web.Request) -> web.Response:
    return await _set_state(request, "open")


@routes.post("/api/admin/rooms/{room}/close")
@operation("close the room", {200: RoomStats}, Code.UNKNOWN_ROOM, tag="operators")
async def close_room(request: web.Request) -> web.Response:
    return await _set_state(request, "closed")


@routes.put("/api/admin/rooms/{room}/admission")
@operation(
    "change admission live (only the fields given)",
    {200: RoomStats},
    Code.UNKNOWN_ROOM,
    body=AdmissionRequest,
    tag="operators",
)
async def put_admission(request: web.Request) -> web.Response:
    gw, view = await _admin_room(request)
    change = _admission_change(await read_body(request, AdmissionRequest))
    await gw.store.set_admission(view.snap.config.name, change)
    return await _reloaded(gw, view)


def _admission_change(body: AdmissionRequest) -> AdmissionChange:
    """The live settings a body names (others stay as they are)."""
    try:
        return AdmissionChange(
            rate_per_s=body.rate_per_s,
            max_active=body.max_active,
            ramp_s=body.ramp_s,
            admission_mode=body.admission_mode,
            pow_difficulty=body.pow_difficulty,
        )
    except InvalidRoomConfig as e:
        raise ApiError(Code.INVALID_REQUEST, str(e)) from e


@routes.put("/api/admin/rooms/{room}/message")
@operation(
    "the operator's message to the room's visitors ({} clears it)",
    {200: MessageSet},
    Code.UNKNOWN_ROOM,
    body=MessageRequest,
    tag="operators",
)
async def put_message(request: web.Request) -> web.Response:
    """The operator's message to the room's visitors (``{}`` clears it): every gateway's
    room cache picks it up, and open pages are sent it with their status."""
    gw, view = await _admin_room(request)
    body = await read_body(request, MessageRequest)
    try:
        texts = {k: v for k, v in msgspec.structs.asdict(body).items() if v is not UNSET}
        message = RoomMessage(**texts) if texts else None
    except InvalidRoomConfig as e:
        raise ApiError(Code.INVALID_REQUEST, str(e)) from e
    name = view.snap.config.name
    await gw.store.set_message(name, message)
    fresh = await gw.rooms.reload(name) or view
    return json_response({"room": name, "message": message_body(fresh.snap.message)})


@routes.get("/api/admin/rooms/{room}/stats")
@operation(
    "the room's settings and figures",
    {200: RoomStats},
    Code.UNKNOWN_ROOM,
    tag="operators",
)
async def room_stats(request: web.Request) -> web.Response:
    gw, view = await _admin_room(request)
    return await _reloaded(gw, view)


async def _reloaded(gw: Gateway, view: RoomView) -> web.Response:
    fresh = await gw.rooms.reload(view.snap.config.name)
    return json_response(stats_body(gw, fresh or view))


def stats_body(gw: Gateway, view: RoomView) -> dict[str, Any]:
    """A room's settings and figures as this gateway knows them (stats, console)."""
    snap, config = view.snap, view.snap.config
    counties = gw.views.summaries.get(config.campaign, {})
    return {
        "room": config.name,
        "campaign": config.campaign,
        "state": snap.state,
        "sold_out": snap.sold_out,
        "opens_at": iso_s(config.opens_at_s),
        "opened_at": iso_s(snap.opened_at_s),
        "rate_per_s": config.rate_per_s,
        "rate_now_per_s": round(snap.rate_at(gw.clock()), 3),
        "max_active": config.max_active,
        "ramp_s": config.ramp_s,
        "admission_mode": config.admission_mode,
        "pow_difficulty": config.pow_difficulty,
        "language": config.language,
        "message": message_body(snap.message),
        "hold_s": config.hold_s,
        "admit_window_s": config.admit_window_s,
        "prequeue_s": config.prequeue_s,
        "opens_prequeue_at": iso_s(config.prequeue_opens_at_s),
        "measured_rate_per_s": view.meter.rate_per_s,
        "measured_dwell_s": view.meter.dwell_s,
        "joined": snap.queue_length,
        "prequeue_size": snap.prequeue_size,
        "queue_depth": snap.queue_depth,
        "admitted": snap.cursor,
        "active": snap.active,
        "lottery_seed": snap.seed,
        "restored_at": iso_s(snap.restored_at_s),  # the last restore from the state log
        "held": sum(c.held for c in counties.values()),
        "confirmed": sum(c.confirmed for c in counties.values()),
        "pairs_left": sum(c.pairs_left for c in counties.values()),
        "counties": {k: v.to_map() for k, v in sorted(counties.items())},
    }
