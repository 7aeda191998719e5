"""Commands on the ``booking-commands`` topic (msgpack), keyed by county.

Every command carries a unique ``command_id`` made by its producer. The
allocator answers each Book, Confirm, Cancel, Move, AddInventory,
RemoveInventory and SetReserve with exactly one event naming that
``command_id`` (see ``schemas.events``). Ticks carry no answer: they only
move a partition's log clock forward (the record timestamp). ReportInventory
only reads: it is answered each time it is delivered (an InventoryReport),
since remembering its id would be a change of state.

Confirm, Cancel and Move are keyed by the county of the booking they name
(where its Book went, or the county of its last move); AddInventory,
RemoveInventory and SetReserve by the center's county, ReportInventory by the
county it asks about. TransferIn and
TransferAnswer carry a Move from one county's partition to another's and back;
only allocators write them, and they are answered by no event of their own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, ClassVar

from schemas.errors import SchemaError
from schemas.events import Appointment, map_with_appointments, read_appointments
from schemas.fields import (
    opt_date,
    opt_int,
    opt_time_of_day,
    parse_date,
    req_bool,
    req_int,
    req_list,
    req_str,
)
from schemas.wire import Message, decoders, dispatch, inline_check, read, wire_class

MAX_HOLD_S = 24 * 3600
MAX_WINDOW_DAYS = 366
MAX_SLOTS_PER_COMMAND = 20_000
DEFAULT_HOLD_S = 600


@inline_check("{v} is None")
def _iso_date(m: Mapping[str, Any], key: str) -> str | None:
    day = opt_date(m, key)
    return day.isoformat() if day else None


@inline_check(f"type({{v}}) is int and 1 <= {{v}} <= {MAX_HOLD_S}")
def _hold_s(m: Mapping[str, Any], key: str) -> int:
    return req_int(m, key, lo=1, hi=MAX_HOLD_S)


@inline_check("{v} is False")
def _flag(m: Mapping[str, Any], key: str) -> bool:
    """An optional boolean: absent or null reads as False."""
    return False if m.get(key) is None else req_bool(m, key)


@wire_class
class Book(Message):
    """Hold the earliest feasible pair for ``identity`` in ``county`` (or at ``center``)."""

    TYPE: ClassVar[str] = "book"
    command_id: str
    booking_id: str
    campaign: str
    identity: str
    county: str
    center: str | None = None
    earliest: str | None = read(_iso_date, None)  # ISO date; dose 1 on or after it
    hold_s: int = read(_hold_s, DEFAULT_HOLD_S)
    group: str | None = None  # priority group of the access code, if any
    # Part of the local day both doses start in: morning (before 12:00), afternoon
    # (12:00-16:59) or evening (from 17:00); None takes any time.
    time_of_day: str | None = read(opt_time_of_day, None)
    # When the Book would be rejected sold_out or no_pair_in_window: wait on the
    # county's waitlist instead (answered Waitlisted; a pair comes later as Offered).
    waitlist: bool = read(_flag, False)


@wire_class
class Confirm(Message):
    """Make a held pair an appointment."""

    TYPE: ClassVar[str] = "confirm"
    command_id: str
    booking_id: str
    campaign: str


@wire_class
class Cancel(Message):
    """Give a held or confirmed pair back to the pool."""

    TYPE: ClassVar[str] = "cancel"
    command_id: str
    booking_id: str
    campaign: str


@wire_class
class Move(Message):
    """Rebook a held or confirmed booking onto another pair, in one step.

    Keeps the booking id and its state (a hold keeps its expiry). The new pair is
    searched in the booking's own county, at ``center`` if given, with dose 1 on
    or after ``earliest``, for the booking's priority group, while the old pair is
    still taken; the old pair is given back only when a new one is found.
    Answered by Moved or Failed (then nothing changed).
    """

    TYPE: ClassVar[str] = "move"
    command_id: str
    booking_id: str
    campaign: str
    center: str | None = None
    earliest: str | None = read(_iso_date, None)  # ISO date; dose 1 on or after it
    time_of_day: str | None = read(opt_time_of_day, None)
    # Another county of the campaign (None: the booking's own). Its inventory has
    # another writer, so the move goes through it and back (see TransferIn).
    county: str | None = None


MOVABLE_STATES = ("held", "confirmed")


def _movable_state(m: Mapping[str, Any], key: str) -> str:
    value = m.get(key)
    if value not in MOVABLE_STATES:
        raise SchemaError(f"'{key}' must be one of {', '.join(MOVABLE_STATES)}, got {value!r}")
    return str(value)


@wire_class
class TransferIn(Message):
    """A Move to another county, step 2: take a pair in ``county`` for a booking that
    arrives from ``origin``.

    Step 1: the Move reaches the booking's county (``origin``), whose allocator
    freezes the booking (its pair stays taken; Confirm, Cancel and Move fail
    ``move_in_progress``; its hold does not run out) and puts this command on the
    log, keyed by ``county``. Step 2: that county's allocator searches the best pair
    for the Move's wish, and if there is one takes it for the booking, in the state
    it had (held until ``hold_expires_at_ms``, or confirmed), at revision ``rev``.
    Either way it answers with a TransferAnswer keyed by ``origin``. Step 3: the
    origin gives the old pair back and answers the Move with Moved (``county`` set),
    or, if the new county found none, unfreezes the booking and answers Failed.
    Written only by allocators; ``command_id`` is the Move's plus ``:in``, so a
    repeated step sends the same ids, and a partition drops the repetition.
    """

    TYPE: ClassVar[str] = "transfer_in"
    command_id: str
    move_id: str  # the Move's command id
    booking_id: str
    campaign: str
    county: str  # where the booking goes (the record key)
    origin: str  # where it comes from
    identity: str
    book_command_id: str  # the Book's command id (an Expired names it)
    state: str = read(_movable_state)
    rev: int = read(req_int)  # the booking's revision once moved
    hold_expires_at_ms: int | None = read(opt_int, None)  # None when confirmed
    group: str | None = None
    center: str | None = None
    earliest: str | None = read(_iso_date, None)
    time_of_day: str | None = read(opt_time_of_day, None)


@wire_class
class TransferAnswer(Message):
    """A Move to another county, step 3: the new county's answer to a TransferIn, keyed
    by the booking's old county (``county``). ``reason`` is None when the booking
    now has ``appointments`` in ``target``; else it is why not, and nothing was taken."""

    TYPE: ClassVar[str] = "transfer_answer"
    command_id: str  # the Move's command id plus ``:answer``
    move_id: str
    booking_id: str
    campaign: str
    county: str  # the booking's old county (the record key)
    target: str  # the county the booking moves to
    appointments: tuple[Appointment, ...] = read(read_appointments)
    reason: str | None = None

    def to_map(self) -> dict[str, Any]:
        return map_with_appointments(self, self.appointments)


def _has_offset(text: str) -> bool:
    try:
        return dt.datetime.fromisoformat(text).tzinfo is not None
    except ValueError:
        return False


@wire_class
class SlotSpec:
    """One time slot: local day, local start with offset, start in epoch seconds, capacity."""

    day: str  # ISO date, the local day of the slot
    start: str  # ISO datetime with UTC offset, as shown to people
    start_s: int  # epoch seconds
    capacity: int

    def to_list(self) -> list[Any]:
        return [self.day, self.start, self.start_s, self.capacity]

    @classmethod
    def from_list(cls, raw: Any) -> SlotSpec:
        if not isinstance(raw, list | tuple) or len(raw) != 4:
            raise SchemaError("a slot must be [day, start, start_s, capacity]")
        day, start, start_s, capacity = raw
        day = parse_date(day, "slot day").isoformat()
        if not isinstance(start, str) or not _has_offset(start):
            raise SchemaError("a slot's start must be an ISO datetime with a UTC offset")
        if not isinstance(start_s, int) or isinstance(start_s, bool):
            raise SchemaError("a slot's start_s must be an integer")
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 0:
            raise SchemaError("a slot's capacity must be a non-negative integer")
        return cls(day, start, start_s, capacity)


@wire_class
class AddInventory(Message):
    """Add slots of one vaccine at one center (a delivery, or the initial load).

    Adding to an existing slot raises its capacity by ``capacity``.
    """

    TYPE: ClassVar[str] = "add_inventory"
    command_id: str
    campaign: str
    county: str
    center: str
    center_name: str
    vaccine: str
    min_days: int
    max_days: int
    slots: tuple[SlotSpec, ...]

    def to_map(self) -> dict[str, Any]:
        out = Message.to_map(self)
        out["slots"] = [s.to_list() for s in self.slots]
        return out

    @classmethod
    def from_map(cls, m: Mapping[str, Any]) -> AddInventory:
        min_days = req_int(m, "min_days", lo=1, hi=MAX_WINDOW_DAYS)
        max_days = req_int(m, "max_days", lo=min_days, hi=MAX_WINDOW_DAYS)
        raw_slots = req_list(m, "slots", max_len=MAX_SLOTS_PER_COMMAND)
        return cls(
            command_id=req_str(m, "command_id"),
            campaign=req_str(m, "campaign"),
            county=req_str(m, "county"),
            center=req_str(m, "center"),
            center_name=req_str(m, "center_name", max_len=200),
            vaccine=req_str(m, "vaccine"),
            min_days=min_days,
            max_days=max_days,
            slots=tuple(SlotSpec.from_list(s) for s in raw_slots),
        )


def _starts(m: Mapping[str, Any], key: str) -> tuple[int, ...]:
    starts = req_list(m, key, max_len=MAX_SLOTS_PER_COMMAND)
    for start_s in starts:
        if not isinstance(start_s, int) or isinstance(start_s, bool):
            raise SchemaError(f"'{key}' must be a list of integers (slot start_s)")
    return tuple(starts)


@wire_class
class RemoveInventory(Message):
    """Take slots of one vaccine at one center out of the inventory, all or none.

    ``starts`` names the slots by ``start_s``. Refused (InventoryRemoved with
    ``accepted`` false) when a slot is unknown or has a held or confirmed place.
    """

    TYPE: ClassVar[str] = "remove_inventory"
    command_id: str
    campaign: str
    county: str  # the center's county (the record key); must match it
    center: str
    vaccine: str
    starts: tuple[int, ...] = read(_starts)


RESERVE_MODES = ("over_and_above", "minimum_guarantee")


def _day(m: Mapping[str, Any], key: str) -> str:
    return parse_date(m.get(key), key).isoformat()


def _share_pct(m: Mapping[str, Any], key: str) -> int:
    return req_int(m, key, lo=0, hi=100)


def _reserve_mode(m: Mapping[str, Any], key: str) -> str:
    value = m.get(key)
    if value not in RESERVE_MODES:
        raise SchemaError(f"'{key}' must be one of {', '.join(RESERVE_MODES)}, got {value!r}")
    return str(value)


def _release_at_ms(m: Mapping[str, Any], key: str) -> int:
    return req_int(m, key, lo=0)


@wire_class
class SetReserve(Message):
    """Reserve ``share_pct`` percent of every slot of ``center`` on ``day`` for ``group``.

    Each slot of that center and local day (all vaccines) holds back
    floor(capacity * share_pct / 100) places that only members of ``group`` may
    take, until ``release_at_ms`` (log time), when what is left opens to
    everybody. ``mode`` is the order a member's place is counted in:
    ``over_and_above`` takes open places first and the reserve only when none is
    left (the reserve comes on top of what members win in open competition),
    ``minimum_guarantee`` takes the reserve first (a floor for the group). One
    reserve per center, day and group; several groups may have one on the same
    day, their shares summing to at most 100 (refused otherwise:
    ``reserve_shares_over_100``). Setting again for the group changes its reserve,
    share 0 removes it; other groups' reserves stay. Answered by ReserveSet.
    """

    TYPE: ClassVar[str] = "set_reserve"
    command_id: str
    campaign: str
    county: str  # the center's county (the record key); must match it
    center: str
    day: str = read(_day)  # ISO date, the local day of the slots
    group: str = read(req_str)
    share_pct: int = read(_share_pct)
    mode: str = read(_reserve_mode)
    release_at_ms: int = read(_release_at_ms)


@wire_class
class ReportInventory(Message):
    """Ask for the inventory of one county of a campaign per center and day.

    Read-only: the allocator changes nothing and answers with an InventoryReport
    (a ``reason`` when it knows no such county), every time it is delivered.
    Operators ask it (the console's campaign view); places per center and day
    exist only in the allocator, which owns the inventory.
    """

    TYPE: ClassVar[str] = "report_inventory"
    command_id: str
    campaign: str
    county: str  # the record key


@wire_class
class Tick(Message):
    """Moves an idle partition's clock (the record timestamp); answered by nothing."""

    TYPE: ClassVar[str] = "tick"
    command_id: str


Command = (
    Book
    | Confirm
    | Cancel
    | Move
    | AddInventory
    | RemoveInventory
    | SetReserve
    | ReportInventory
    | Tick
    | TransferIn
    | TransferAnswer
)
Transfer = TransferIn | TransferAnswer  # commands one allocator puts on another's partition

_DECODERS = decoders(
    Book,
    Confirm,
    Cancel,
    Move,
    AddInventory,
    RemoveInventory,
    SetReserve,
    ReportInventory,
    Tick,
    TransferIn,
    TransferAnswer,
)


def decode_command(data: bytes) -> Command:
    """Decode one record value; raises SchemaError for anything malformed."""
    return dispatch(data, _DECODERS, "command")  # type: ignore[no-any-return]
