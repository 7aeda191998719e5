"""Commands on the ``booking-commands`` topic (msgpack), keyed by county.

Every command carries a unique ``command_id`` made by its producer. The
allocator answers each Book, Confirm, Cancel and AddInventory with exactly one
event naming that ``command_id`` (see ``schemas.events``). Ticks carry no
answer: they only move a partition's log clock forward (the record timestamp).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from schemas.errors import SchemaError
from schemas.fields import opt_date, parse_date, req_int, req_list, req_str
from schemas.wire import Message, dispatch, read

MAX_HOLD_S = 24 * 3600
MAX_WINDOW_DAYS = 366
MAX_SLOTS_PER_COMMAND = 20_000
DEFAULT_HOLD_S = 600


def _iso_date(m: Mapping[str, Any], key: str) -> str | None:
    day = opt_date(m, key)
    return day.isoformat() if day else None


def _hold_s(m: Mapping[str, Any], key: str) -> int:
    return req_int(m, key, lo=1, hi=MAX_HOLD_S)


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class Confirm(Message):
    """Make a held pair an appointment."""

    TYPE: ClassVar[str] = "confirm"
    command_id: str
    booking_id: str
    campaign: str


@dataclass(frozen=True, slots=True)
class Cancel(Message):
    """Give a held or confirmed pair back to the pool."""

    TYPE: ClassVar[str] = "cancel"
    command_id: str
    booking_id: str
    campaign: str


def _has_offset(text: str) -> bool:
    try:
        return dt.datetime.fromisoformat(text).tzinfo is not None
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class Tick(Message):
    """Moves an idle partition's clock (the record timestamp); answered by nothing."""

    TYPE: ClassVar[str] = "tick"
    command_id: str


Command = Book | Confirm | Cancel | AddInventory | Tick

_DECODERS = {c.TYPE: c.from_map for c in (Book, Confirm, Cancel, AddInventory, Tick)}


def decode_command(data: bytes) -> Command:
    """Decode one record value; raises SchemaError for anything malformed."""
    return dispatch(data, _DECODERS, "command")  # type: ignore[no-any-return]
