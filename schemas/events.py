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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from schemas.errors import SchemaError
from schemas.fields import opt_str, req_int, req_list, req_map, req_str
from schemas.wire import Message, dispatch

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


@dataclass(frozen=True, slots=True)
class Appointment:
    dose: int
    center: str
    center_name: str
    vaccine: str
    start: str  # ISO datetime with offset
    slot: str  # slot id, unique within the campaign

    def to_map(self) -> dict[str, Any]:
        return {
            "dose": self.dose,
            "center": self.center,
            "center_name": self.center_name,
            "vaccine": self.vaccine,
            "start": self.start,
            "slot": self.slot,
        }

    @classmethod
    def from_map(cls, m: Any) -> Appointment:
        if not isinstance(m, Mapping):
            raise SchemaError("an appointment must be a map")
        return cls(
            dose=req_int(m, "dose", lo=1, hi=2),
            center=req_str(m, "center"),
            center_name=req_str(m, "center_name", max_len=200),
            vaccine=req_str(m, "vaccine"),
            start=req_str(m, "start"),
            slot=req_str(m, "slot", max_len=300),
        )


def _appointments(m: Mapping[str, Any]) -> tuple[Appointment, ...]:
    return tuple(Appointment.from_map(a) for a in req_list(m, "appointments", max_len=2))


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
    rev: int
    at_ms: int
    identity: str
    county: str
    appointments: tuple[Appointment, ...]
    hold_expires_at_ms: int

    @classmethod
    def from_map(cls, m: Mapping[str, Any]) -> Held:
        return cls(
            command_id=req_str(m, "command_id"),
            booking_id=req_str(m, "booking_id"),
            campaign=req_str(m, "campaign"),
            rev=req_int(m, "rev", lo=1),
            at_ms=req_int(m, "at_ms"),
            identity=req_str(m, "identity"),
            county=req_str(m, "county"),
            appointments=_appointments(m),
            hold_expires_at_ms=req_int(m, "hold_expires_at_ms"),
        )


@dataclass(frozen=True, slots=True)
class Confirmed(_WithAppointments):
    TYPE: ClassVar[str] = "confirmed"
    command_id: str
    booking_id: str
    campaign: str
    rev: int
    at_ms: int
    appointments: tuple[Appointment, ...]

    @classmethod
    def from_map(cls, m: Mapping[str, Any]) -> Confirmed:
        return cls(
            command_id=req_str(m, "command_id"),
            booking_id=req_str(m, "booking_id"),
            campaign=req_str(m, "campaign"),
            rev=req_int(m, "rev", lo=1),
            at_ms=req_int(m, "at_ms"),
            appointments=_appointments(m),
        )


@dataclass(frozen=True, slots=True)
class _BookingChange(Message):
    """A state change of a booking that carries no appointments."""

    command_id: str
    booking_id: str
    campaign: str
    rev: int
    at_ms: int

    @classmethod
    def from_map(cls, m: Mapping[str, Any]) -> Any:
        return cls(
            command_id=req_str(m, "command_id"),
            booking_id=req_str(m, "booking_id"),
            campaign=req_str(m, "campaign"),
            rev=req_int(m, "rev", lo=1),
            at_ms=req_int(m, "at_ms"),
        )


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
    rev: int
    at_ms: int
    reason: str

    @classmethod
    def from_map(cls, m: Mapping[str, Any]) -> Rejected:
        return cls(
            command_id=req_str(m, "command_id"),
            booking_id=req_str(m, "booking_id"),
            campaign=req_str(m, "campaign"),
            rev=req_int(m, "rev", lo=1),
            at_ms=req_int(m, "at_ms"),
            reason=req_str(m, "reason"),
        )


@dataclass(frozen=True, slots=True)
class Failed(Message):
    """A Confirm or Cancel that could not apply; the booking is unchanged (no rev)."""

    TYPE: ClassVar[str] = "failed"
    command_id: str
    booking_id: str
    campaign: str
    at_ms: int
    reason: str

    @classmethod
    def from_map(cls, m: Mapping[str, Any]) -> Failed:
        return cls(
            command_id=req_str(m, "command_id"),
            booking_id=req_str(m, "booking_id"),
            campaign=req_str(m, "campaign"),
            at_ms=req_int(m, "at_ms"),
            reason=req_str(m, "reason"),
        )


@dataclass(frozen=True, slots=True)
class InventoryAdded(Message):
    TYPE: ClassVar[str] = "inventory_added"
    command_id: str
    campaign: str
    center: str
    at_ms: int
    accepted: bool
    slots_added: int
    reason: str | None = None

    @classmethod
    def from_map(cls, m: Mapping[str, Any]) -> InventoryAdded:
        accepted = m.get("accepted")
        if not isinstance(accepted, bool):
            raise SchemaError("'accepted' must be a boolean")
        return cls(
            command_id=req_str(m, "command_id"),
            campaign=req_str(m, "campaign"),
            center=req_str(m, "center"),
            at_ms=req_int(m, "at_ms"),
            accepted=accepted,
            slots_added=req_int(m, "slots_added", lo=0),
            reason=opt_str(m, "reason"),
        )


@dataclass(frozen=True, slots=True)
class CountySummary:
    pairs_left: int  # pairs that can still be formed (greedy; 0 exactly when none can)
    free: int  # free slot places (dose 1 or dose 2)
    held: int  # pairs held in baskets
    confirmed: int  # pairs confirmed

    def to_map(self) -> dict[str, int]:
        return {
            "pairs_left": self.pairs_left,
            "free": self.free,
            "held": self.held,
            "confirmed": self.confirmed,
        }

    @classmethod
    def from_map(cls, m: Any) -> CountySummary:
        if not isinstance(m, Mapping):
            raise SchemaError("a county summary must be a map")
        return cls(
            pairs_left=req_int(m, "pairs_left", lo=0),
            free=req_int(m, "free", lo=0),
            held=req_int(m, "held", lo=0),
            confirmed=req_int(m, "confirmed", lo=0),
        )


@dataclass(frozen=True, slots=True)
class Summary(Message):
    """Inventory per county of one campaign on one partition."""

    TYPE: ClassVar[str] = "summary"
    campaign: str
    at_ms: int
    counties: dict[str, CountySummary]

    def to_map(self) -> dict[str, Any]:
        out = Message.to_map(self)
        out["counties"] = {k: v.to_map() for k, v in self.counties.items()}
        return out

    @classmethod
    def from_map(cls, m: Mapping[str, Any]) -> Summary:
        return cls(
            campaign=req_str(m, "campaign"),
            at_ms=req_int(m, "at_ms"),
            counties={str(k): CountySummary.from_map(v) for k, v in req_map(m, "counties").items()},
        )


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
