"""The booking read model: every booking's current view in Redis, projected from the log.

The allocator's ``booking-events`` log is the truth; this is a projection of it that a
gateway does not have to rebuild when it starts (see docs/read-model.md). Every gateway
reads the log from the offset the projection reflects (stored per partition in the
same Redis, written by the same script as the views), applies what it reads with one
script call per chunk of records, and answers ``GET /api/bookings/{id}``, the
appointment exports and the identity checks from Redis. A gateway's start thus costs
what happened since the projection's offset, not the season's history, and its
memory holds the live streams and answers, not every booking.

Several gateways read the same records: the script applies a record only if its
offset is at or past the projection's next offset, so each record changes Redis once
(the others' calls find it applied and only read the tally). A booking's events may
come from two partitions (a move to another county), read in any order: a change is
applied only when its ``rev`` is higher than the view's, and the county only when its
``rev`` is higher than the one that named the county held.

The projection never skips: a caller that reads from an offset past the projection's
(Redis lost its data, or came back from an older copy) is told to read again from
the projection's offset (``Projected.gap``), so a Redis loss is repaired by reading
the log again, from its beginning if need be.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import msgspec
import redis.asyncio as aioredis

from schemas.events import (
    Appointment,
    BookingEvent,
    Cancelled,
    Confirmed,
    CountySummary,
    Event,
    Expired,
    Held,
    InventoryAdded,
    Moved,
    Offered,
    Rejected,
    Summary,
    Waitlisted,
    decode_event,
)
from waitingroom import keys

FINAL_STATES = frozenset({"confirmed", "rejected", "expired", "cancelled"})  # streams end
# states of a booking that holds no pair and never will again (a confirmed one holds one)
ENDED_STATES = frozenset({"rejected", "expired", "cancelled"})
_STATE_OF: dict[type, str] = {
    Held: "held",
    Offered: "held",
    Confirmed: "confirmed",
    Rejected: "rejected",
    Expired: "expired",
    Cancelled: "cancelled",
    Waitlisted: "waitlisted",
}
CHUNK = 500  # records per script call: one call holds Redis for a few milliseconds at most
# an appointments export's columns (``export_row``)
APPOINTMENT_COLUMNS = ("center", "center_name", "day", "start", "dose", "vaccine", "booking_id")
EXPORT_PAGE = 1000  # export members read per round trip
# a stored appointment: sort key parts, then the appointment as JSON, joined by NUL
# (sorts before every other character, so the parts order as a tuple would)
_SEP = "\x00"

# KEYS[1] the topic's offsets hash (keys.readmodel_offsets)
# KEYS[2] the summaries hash, KEYS[3] the inventory answers hash, KEYS[4] the tally hash
# ARGV[1] partition, ARGV[2] the offset the caller read these records from,
# ARGV[3] the partition's first offset (where a projection that has nothing starts),
# ARGV[4] the offset of the last record read, ARGV[5] the views' TTL in seconds,
# ARGV[6] the records' changes as a JSON list of ops, each with its offset 'o' and kind:
#   'b' booking change: key, rev, set (flat field/value list), county or absent,
#       moved (1 or absent), tally (tally field), index (the campaign's appointments key)
#   's' summary: set (flat field/value list for KEYS[2])
#   'i' inventory answer: cmd (command id), raw (the event, base64)
# Booking keys are named by the ops, not KEYS: fairq runs one Redis, not a Cluster.
# Reply: {'gap', next} when ARGV[2] is past the next offset the projection lacks
# (nothing applied: the caller reads again from there), else {'ok', applied, tally}
# with tally the whole tally hash (flat).
PROJECT = """
local ttl = ARGV[5]

local function apply_booking(op)
  local key, rev = op.key, op.rev
  if op.county then
    if rev > tonumber(redis.call('HGET', key, 'county_rev') or '0') then
      redis.call('HSET', key, 'county', op.county, 'county_rev', rev)
    end
  end
  if rev > tonumber(redis.call('HGET', key, 'rev') or '0') then
    -- a booking's appointments are in the campaign's index exactly while it is confirmed
    local had = ''
    if redis.call('HGET', key, 'state') == 'confirmed' then
      had = redis.call('HGET', key, 'appointments') or ''
    end
    redis.call('HSET', key, 'rev', rev, unpack(op.set))
    if op.moved then redis.call('HINCRBY', key, 'moves', 1) end
    redis.call('HINCRBY', KEYS[4], op.tally, 1)
    local want = ''
    if redis.call('HGET', key, 'state') == 'confirmed' then
      want = redis.call('HGET', key, 'appointments') or ''
    end
    if want ~= had then
      if had ~= '' then
        for _, m in ipairs(cjson.decode(had)) do redis.call('ZREM', op.index, m) end
      end
      if want ~= '' then
        for _, m in ipairs(cjson.decode(want)) do redis.call('ZADD', op.index, 0, m) end
        redis.call('EXPIRE', op.index, ttl)
      end
    end
  end
  redis.call('EXPIRE', key, ttl)
end

-- records deleted from the log (retention) are past reading again: start after them
local nxt = math.max(tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or ARGV[3]), tonumber(ARGV[3]))
if tonumber(ARGV[2]) > nxt then return {'gap', nxt} end
local applied = 0
for _, op in ipairs(cjson.decode(ARGV[6])) do
  if op.o >= nxt then
    applied = applied + 1
    if op.t == 'b' then apply_booking(op)
    elseif op.t == 's' then redis.call('HSET', KEYS[2], unpack(op.set))
    elseif op.t == 'i' then redis.call('HSETNX', KEYS[3], op.cmd, op.raw) end
  end
end
local last = tonumber(ARGV[4])
if last + 1 > nxt then redis.call('HSET', KEYS[1], ARGV[1], last + 1) end
return {'ok', applied, redis.call('HGETALL', KEYS[4])}
"""


def iso_ms(epoch_ms: int) -> str:
    return dt.datetime.fromtimestamp(epoch_ms / 1000, dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass(slots=True)
class BookingView:
    booking_id: str
    state: str = "pending"
    rev: int = 0
    campaign: str | None = None
    county: str | None = None
    county_rev: int = 0  # the rev of the event that named ``county``
    appointments: tuple[Appointment, ...] = ()
    hold_expires_at_ms: int | None = None
    reason: str | None = None
    offered: bool = False  # the pair was offered from the waitlist
    moves: int = 0  # times the booking was moved to another pair

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def to_json(self) -> dict[str, Any]:
        held = self.state == "held" and self.hold_expires_at_ms is not None
        return {
            "booking_id": self.booking_id,
            "campaign": self.campaign,
            "state": self.state,
            "appointments": [
                {
                    "dose": a.dose,
                    "center": a.center,
                    "center_name": a.center_name,
                    "vaccine": a.vaccine,
                    "start": a.start,
                }
                for a in self.appointments
            ],
            "hold_expires_at": iso_ms(self.hold_expires_at_ms)
            if held and self.hold_expires_at_ms
            else None,
            "reason": self.reason,
            "offered": self.offered,
            "moves": self.moves,
        }


def view_of(booking_id: str, fields: Mapping[bytes, bytes]) -> BookingView | None:
    """The view stored in a booking's hash (None: no event of it applied yet)."""
    f = {k.decode(): v.decode() for k, v in fields.items()}
    if not f:
        return None
    return BookingView(
        booking_id,
        state=f.get("state", "pending"),
        rev=int(f.get("rev", "0")),
        campaign=f.get("campaign"),
        county=f.get("county"),
        county_rev=int(f.get("county_rev", "0")),
        appointments=tuple(_appointment(m) for m in json.loads(f.get("appointments", "[]"))),
        hold_expires_at_ms=int(f["hold_expires_at_ms"]) if f.get("hold_expires_at_ms") else None,
        reason=f.get("reason") or None,
        offered=f.get("offered") == "1",
        moves=int(f.get("moves", "0")),
    )


def appointment_member(booking_id: str, a: Appointment) -> str:
    """One appointment as stored: in the booking's view, and as the member of the
    campaign's index while the booking is confirmed. Members sort as the export lists
    them (center, then start, dose, vaccine, booking); the appointment ends it."""
    sort_key = (a.center, a.start, f"{a.dose:03d}", a.vaccine, booking_id)
    return _SEP.join((*sort_key, json.dumps(a.to_map())))


def _appointment(member: str) -> Appointment:
    return msgspec.json.decode(member.rpartition(_SEP)[2], type=Appointment)


def export_row(member: bytes) -> list[Any]:
    """An index member as an export row (``APPOINTMENT_COLUMNS``)."""
    head, _, _ = member.decode().rpartition(_SEP)
    a = _appointment(member.decode())
    booking_id = head.rpartition(_SEP)[2]
    return [a.center, a.center_name, a.start[:10], a.start, a.dose, a.vaccine, booking_id]


def _tally_field(campaign: str, kind: str) -> str:
    return json.dumps([campaign, kind])


def _booking_op(offset: int, event: BookingEvent) -> dict[str, Any]:
    """The fields an event sets on its booking's view (the rest the script decides)."""
    fields: dict[str, Any] = {"campaign": event.campaign}
    state = _STATE_OF.get(type(event))  # a move keeps the state
    if state is not None:
        fields["state"] = state
    if isinstance(event, Held | Offered | Moved | Confirmed):
        members = [appointment_member(event.booking_id, a) for a in event.appointments]
        fields["appointments"] = json.dumps(members)
    if isinstance(event, Held | Offered | Moved):
        fields["hold_expires_at_ms"] = event.hold_expires_at_ms or ""
    if isinstance(event, Offered):
        fields["offered"] = 1
    elif isinstance(event, Rejected):
        fields["reason"] = event.reason
    op: dict[str, Any] = {
        "o": offset,
        "t": "b",
        "key": keys.readmodel_booking(event.booking_id),
        "rev": event.rev,
        "set": [x for kv in fields.items() for x in kv],
        "tally": _tally_field(event.campaign, event.TYPE),
        "index": keys.readmodel_appointments(event.campaign),
    }
    county = event.county if isinstance(event, Held | Waitlisted | Moved) else None
    if county is not None:
        op["county"] = county
    if isinstance(event, Moved):
        op["moved"] = 1
    return op


def op_of(offset: int, event: Event, raw: bytes) -> dict[str, Any] | None:
    """What one event changes in the read model (None: nothing)."""
    if isinstance(event, BookingEvent):
        return _booking_op(offset, event)
    if isinstance(event, Summary):
        pairs = [
            (json.dumps([event.campaign, county]), json.dumps(summary.to_map()))
            for county, summary in event.counties.items()
        ]
        return {"o": offset, "t": "s", "set": [x for kv in pairs for x in kv]} if pairs else None
    if isinstance(event, InventoryAdded):
        raw64 = base64.b64encode(raw).decode()
        return {"o": offset, "t": "i", "cmd": event.command_id, "raw": raw64}
    return None


Tally = dict[str, Counter[str]]


def _tally_of(flat: Sequence[bytes]) -> Tally:
    tally: Tally = {}
    for field, count in zip(flat[::2], flat[1::2], strict=True):
        campaign, kind = json.loads(field)
        tally.setdefault(campaign, Counter())[kind] = int(count)
    return tally


@dataclass(frozen=True, slots=True)
class Start:
    """Where a gateway starts reading, and what the projection held at that offset."""

    offsets: dict[int, int]  # partition -> next offset not applied yet
    summaries: dict[str, dict[str, CountySummary]]
    tally: Tally


@dataclass(frozen=True, slots=True)
class Projected:
    gap: int | None  # not None: nothing applied; read the partition again from this offset
    applied: int  # records this call applied (others had them applied already)
    tally: Tally


@dataclass(frozen=True, slots=True)
class Record:
    offset: int
    raw: bytes
    event: Event | None  # None: undecodable (skipped, its offset still counts)


class ReadModel:
    """The booking read model of one events topic, in one Redis."""

    def __init__(self, redis: aioredis.Redis, topic: str, retention_s: int) -> None:
        self.redis = redis
        self.topic = topic
        self.retention_s = retention_s
        self._project = redis.register_script(PROJECT)

    async def offsets(self) -> dict[int, int]:
        """Partition -> the next offset the projection has not applied."""
        stored = await self.redis.hgetall(keys.readmodel_offsets(self.topic))
        return {int(p): int(o) for p, o in stored.items()}

    async def start(self) -> Start:
        """The projection's offsets with the summaries and tally they reflect (read together)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(keys.readmodel_offsets(self.topic))
            pipe.hgetall(keys.readmodel_summaries())
            pipe.hgetall(keys.readmodel_tally())
            offsets, summaries, tally = await pipe.execute()
        counties: dict[str, dict[str, CountySummary]] = {}
        for field, value in summaries.items():
            campaign, county = json.loads(field)
            counties.setdefault(campaign, {})[county] = msgspec.json.decode(
                value, type=CountySummary
            )
        return Start(
            offsets={int(p): int(o) for p, o in offsets.items()},
            summaries=counties,
            tally=_tally_of([x for kv in tally.items() for x in kv]),
        )

    async def project(
        self, partition: int, read_from: int, first: int, records: Sequence[Record]
    ) -> Projected:
        """Apply ``records`` (in offset order, read from ``read_from`` of a partition whose
        first offset is ``first``), a chunk per script call."""
        applied, tally = 0, None
        for i in range(0, len(records), CHUNK):
            chunk = records[i : i + CHUNK]
            ops = [
                op
                for r in chunk
                if r.event is not None and (op := op_of(r.offset, r.event, r.raw)) is not None
            ]
            reply = await self._project(
                keys=[
                    keys.readmodel_offsets(self.topic),
                    keys.readmodel_summaries(),
                    keys.readmodel_inventory_answers(),
                    keys.readmodel_tally(),
                ],
                args=[
                    partition,
                    read_from,
                    first,
                    chunk[-1].offset,
                    self.retention_s,
                    json.dumps(ops),
                ],
            )
            if reply[0] == b"gap":
                return Projected(gap=int(reply[1]), applied=applied, tally={})
            applied += int(reply[1])
            tally = reply[2]
            read_from = chunk[-1].offset + 1
        return Projected(gap=None, applied=applied, tally=_tally_of(tally or []))

    async def get(self, booking_id: str) -> BookingView | None:
        fields = await self.redis.hgetall(keys.readmodel_booking(booking_id))
        return view_of(booking_id, cast(dict[bytes, bytes], fields))

    async def get_many(self, booking_ids: Iterable[str]) -> dict[str, BookingView]:
        ids = list(booking_ids)
        async with self.redis.pipeline(transaction=False) as pipe:
            for booking_id in ids:
                pipe.hgetall(keys.readmodel_booking(booking_id))
            found = await pipe.execute()
        return {b: v for b, f in zip(ids, found, strict=True) if (v := view_of(b, f)) is not None}

    async def appointments(
        self, campaign: str, center: str | None, day: str | None
    ) -> AsyncIterator[list[Any]]:
        """The campaign's confirmed appointments in export order, a page per round trip."""
        prefix = b"" if center is None else (center + _SEP + (day or "")).encode()
        low: bytes = b"[" + prefix if prefix else b"-"
        high: bytes = b"(" + prefix + b"\xff" if prefix else b"+"
        key = keys.readmodel_appointments(campaign)
        while True:
            page = cast(
                list[bytes], await self.redis.zrangebylex(key, low, high, start=0, num=EXPORT_PAGE)
            )
            for member in page:
                row = export_row(member)
                if day is None or row[2] == day:
                    yield row
            if len(page) < EXPORT_PAGE:
                return
            low = b"(" + page[-1]

    async def inventory_answers(self, command_ids: Sequence[str]) -> dict[str, InventoryAdded]:
        """The first answers to these inventory commands, of those answered."""
        if not command_ids:
            return {}
        raws = await self.redis.hmget(keys.readmodel_inventory_answers(), command_ids)
        return {
            cid: cast(InventoryAdded, decode_event(base64.b64decode(raw)))
            for cid, raw in zip(command_ids, raws, strict=True)
            if raw is not None
        }
