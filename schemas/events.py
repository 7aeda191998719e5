"""Events on the ``booking-events`` topic (msgpack), written only by the allocator.

Each event carries ``at_ms``, the allocator's log time when it was made, and the
``command_id`` it answers. Events about a booking carry ``rev``, a per-booking
revision that rises by one with every change of the booking's state; a consumer
applies an event only when its ``rev`` is higher than the one it has, which
drops the duplicates that a replay or a stale second allocator sends again.

Answers, exactly one per command:
- Book → Held or Rejected
- Confirm → Confirmed or Failed
- Cancel → Cancelled or Failed
- AddInventory → InventoryAdded (``accepted`` false with a ``reason`` if refused)

Spontaneous: Expired (a hold ran out; ``command_id`` is the Book's), and
Summary (pairs left per county, after changes and on ticks).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from schemas.errors import SchemaError
from schemas.fields import opt_str, req_int, req_list, req_map, req_str
from schemas.wire import Message, dispatch, read, read_fields

# Reasons a Book is rejected or a Confirm/Cancel fails.
REASONS = frozenset(
    {
        "sold_out",  # nothing left in the county/center at all
        "no_pair_in_window",  # free slots exist but no dose-2 partner inside the window
        "unknown_county",
        "unknown_center",
        "not_eligible",  # e.g. center not in the named county
        "already_booked",  # the identity holds or has an appointment already
        "unknown_booking",
        "not_held",  # confirm of a booking that is not held
        "hold_expired",
        "already_final",  # cancel of a booking that is rejected, expired or cancelled
        "duplicate_booking_id",
        "window_mismatch",  # AddInventory with another window for a known vaccine
        "center_mismatch",  # AddInventory naming a known center in another county
    }
)


def _positive(m: Mapping[str, Any], key: str) -> int:
    return req_int(m, key, lo=1)


def _count(m: Mapping[str, Any], key: str) -> int:
    return req_int(m, key, lo=0)


def _dose(m: Mapping[str, Any], key: str) -> int:
    return req_int(m, key, lo=1, hi=2)


def _name(m: Mapping[str, Any], key: str) -> str:
    return req_str(m, key, max_len=200)


def _slot_id(m: Mapping[str, Any], key: str) -> str:
    return req_str(m, key, max_len=300)


@dataclass(frozen=True, slots=True)
class Appointment:
    dose: int = read(_dose)
    center: str = read(req_str)
    center_name: str = read(_name)
    vaccine: str = read(req_str)
    start: str = read(req_str)  # ISO datetime with offset
    slot: str = read(_slot_id)  # slot id, unique within the campaign

    def to_map(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_map(cls, m: Any) -> Appointment:
        if not isinstance(m, Mapping):
            raise SchemaError("an appointment must be a map")
        return read_fields(cls, m)


def _appointments(m: Mapping[str, Any], key: str) -> tuple[Appointment, ...]:
    return tuple(Appointment.from_map(a) for a in req_list(m, key, max_len=2))


class _WithAppointments(Message):
    appointments: tuple[Appointment, ...]

    def to_map(self) -> dict[str, Any]:
        out = Message.to_map(self)
        out["appointments"] = [a.to_map() for a in self.appointments]
        return out


@dataclass(frozen=True, slots=True)
class Held(_WithAppointments):
    TYPE: ClassVar[str] = "held"
    command_id: str
    booking_id: str
    campaign: str
    rev: int = read(_positive)
    at_ms: int = read(req_int)
    identity: str = read(req_str)
    county: str = read(req_str)
    appointments: tuple[Appointment, ...] = read(_appointments)
    hold_expires_at_ms: int = read(req_int)


@dataclass(frozen=True, slots=True)
class Confirmed(_WithAppointments):
    TYPE: ClassVar[str] = "confirmed"
    command_id: str
    booking_id: str
    campaign: str
    rev: int = read(_positive)
    at_ms: int = read(req_int)
    appointments: tuple[Appointment, ...] = read(_appointments)


@dataclass(frozen=True, slots=True)
class _BookingChange(Message):
    """A state change of a booking that carries no appointments."""

    command_id: str
    booking_id: str
    campaign: str
    rev: int = read(_positive)
    at_ms: int = read(req_int)


@dataclass(frozen=True, slots=True)
class Expired(_BookingChange):
    TYPE: ClassVar[str] = "expired"


@dataclass(frozen=True, slots=True)
class Cancelled(_BookingChange):
    TYPE: ClassVar[str] = "cancelled"


@dataclass(frozen=True, slots=True)
class Rejected(Message):
    TYPE: ClassVar[str] = "rejected"
    command_id: str
    booking_id: str
    campaign: str
    rev: int = read(_positive)
    at_ms: int = read(req_int)
    reason: str = read(req_str)


@dataclass(frozen=True, slots=True)
class Failed(Message):
    """A Confirm or Cancel that could not apply; the booking is unchanged (no rev)."""

    TYPE: ClassVar[str] = "failed"
    command_id: str
    booking_id: str
    campaign: str
    at_ms: int
    reason: str


@dataclass(frozen=True, slots=True)
class InventoryAdded(Message):
    TYPE: ClassVar[str] = "inventory_added"
    command_id: str
    campaign: str
    center: str
    at_ms: int
    accepted: bool
    slots_added: int = read(_count)
    reason: str | None = read(opt_str, None)


@dataclass(frozen=True, slots=True)
class CountySummary:
    pairs_left: int = read(_count)  # pairs that can still be formed (greedy; 0 exactly when none)
    free: int = read(_count)  # free slot places (dose 1 or dose 2)
    held: int = read(_count)  # pairs held in baskets
    confirmed: int = read(_count)  # pairs confirmed

    def to_map(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @classmethod
    def from_map(cls, m: Any) -> CountySummary:
        if not isinstance(m, Mapping):
            raise SchemaError("a county summary must be a map")
        return read_fields(cls, m)


def _counties(m: Mapping[str, Any], key: str) -> dict[str, CountySummary]:
    return {k: CountySummary.from_map(v) for k, v in req_map(m, key).items()}


@dataclass(frozen=True, slots=True)
class Summary(Message):
    """Inventory per county of one campaign on one partition."""

    TYPE: ClassVar[str] = "summary"
    campaign: str
    at_ms: int
    counties: dict[str, CountySummary] = read(_counties)

    def to_map(self) -> dict[str, Any]:
        out = Message.to_map(self)
        out["counties"] = {k: v.to_map() for k, v in self.counties.items()}
        return out


Event = Held | Confirmed | Rejected | Expired | Cancelled | Failed | InventoryAdded | Summary
BookingEvent = Held | Confirmed | Rejected | Expired | Cancelled

_TYPES: tuple[Any, ...] = (
    Held,
    Confirmed,
    Rejected,
    Expired,
    Cancelled,
    Failed,
    InventoryAdded,
    Summary,
)
_DECODERS = {c.TYPE: c.from_map for c in _TYPES}


def decode_event(data: bytes) -> Event:
    """Decode one record value; raises SchemaError for anything malformed."""
    return dispatch(data, _DECODERS, "event")  # type: ignore[no-any-return]
