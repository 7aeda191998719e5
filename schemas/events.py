"""Events on the ``booking-events`` topic (msgpack), written only by the allocator.

Each event carries ``at_ms``, the allocator's log time when it was made, and the
``command_id`` it answers. Events about a booking carry ``rev``, a per-booking
revision that rises by one with every change of the booking's state; a consumer
applies an event only when its ``rev`` is higher than the one it has, which
drops the duplicates that a replay or a stale second allocator sends again.

Answers, exactly one per command:
- Book → Held, Rejected, Waitlisted (a Book with ``waitlist`` that found no pair)
  or Failed (``duplicate_booking_id``)
- Confirm → Confirmed or Failed
- Cancel → Cancelled or Failed (cancels a hold, an appointment or a waitlisting)
- Move → Moved or Failed (then the booking is unchanged); a move to another county is
  answered by its booking's old county once the new one has taken a pair (see
  ``schemas.commands.TransferIn``)
- AddInventory → InventoryAdded (``accepted`` false with a ``reason`` if refused)
- RemoveInventory → InventoryRemoved (``accepted`` false with a ``reason`` if refused)
- SetReserve → ReserveSet (``accepted`` false with a ``reason`` if refused)
- ReportInventory → InventoryReport (every time it is delivered: it only reads)

Spontaneous: Expired (a hold ran out; ``command_id`` is the Book's), Offered (a
waitlisted booking got a pair, now held; ``command_id`` is the Book's), and
Summary (pairs left per county and, inside it, per vaccine, after changes and on ticks).

A booking's life: Held → Confirmed → Cancelled, with Expired or Cancelled ending
a hold, Moved keeping the state it had (held or confirmed) with a new pair, and
Waitlisted → Offered (held, as after Held) or Cancelled.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from schemas.errors import SchemaError
from schemas.fields import (
    MAX_ID_LEN,
    opt_int,
    opt_str,
    parse_date,
    req_int,
    req_list,
    req_map,
    req_str,
)
from schemas.wire import Message, decoders, dispatch, field_map, read, read_fields, wire_class

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
        "center_mismatch",  # AddInventory/RemoveInventory naming a center of another county
        "not_movable",  # Move of a booking that is not held or confirmed
        "unknown_slot",  # RemoveInventory naming a slot the center's line does not have
        "slot_in_use",  # RemoveInventory naming a slot with a held or confirmed place
        "no_pair_at_time_of_day",  # a pair exists, but none with both doses at that time of day
        "reserved_for_priority_group",  # a pair exists only in places reserved for a group
        "release_passed",  # SetReserve whose release_at_ms is not after the log time
        # SetReserve whose share, with the other groups' shares of that center and day, is > 100
        "reserve_shares_over_100",
        "move_in_progress",  # a Confirm/Cancel/Move while the booking moves to another county
        "moved_away",  # a Confirm/Cancel/Move sent to the county a booking has moved away from
    }
)


def _positive(m: Mapping[str, Any], key: str) -> int:
    return req_int(m, key, lo=1)


def _count(m: Mapping[str, Any], key: str) -> int:
    return req_int(m, key, lo=0)


def _count_or_zero(m: Mapping[str, Any], key: str) -> int:
    """A count that older writers did not send: absent reads as 0."""
    return req_int(m, key, lo=0) if key in m else 0


def _counts_by_id(m: Mapping[str, Any], key: str) -> dict[str, int] | None:
    """Counts by id (e.g. vaccine), a map that older writers did not send: absent or null
    reads as None (not known), never as an empty map (which would say "none")."""
    if m.get(key) is None:
        return None
    counts = req_map(m, key)
    for k, n in counts.items():
        if not k or len(k) > MAX_ID_LEN:
            raise SchemaError(f"'{key}' keys must be ids of 1 to {MAX_ID_LEN} characters")
        if type(n) is not int or n < 0:
            raise SchemaError(f"'{key}' values must be integers of at least 0")
    return dict(counts)


def _dose(m: Mapping[str, Any], key: str) -> int:
    return req_int(m, key, lo=1, hi=2)


def _name(m: Mapping[str, Any], key: str) -> str:
    return req_str(m, key, max_len=200)


def _slot_id(m: Mapping[str, Any], key: str) -> str:
    return req_str(m, key, max_len=300)


@wire_class
class Appointment:
    dose: int = read(_dose)
    center: str = read(req_str)
    center_name: str = read(_name)
    vaccine: str = read(req_str)
    start: str = read(req_str)  # ISO datetime with offset
    slot: str = read(_slot_id)  # slot id, unique within the campaign

    def to_map(self) -> dict[str, Any]:
        return field_map(self)

    @classmethod
    def from_map(cls, m: Any) -> Appointment:
        if not isinstance(m, Mapping):
            raise SchemaError("an appointment must be a map")
        return read_fields(cls, m)


def read_appointments(m: Mapping[str, Any], key: str) -> tuple[Appointment, ...]:
    return tuple(Appointment.from_map(a) for a in req_list(m, key, max_len=2))


@wire_class
class _BookingChange(Message):
    """What every event that changes a booking starts with (``rev`` rises by one)."""

    command_id: str
    booking_id: str
    campaign: str
    rev: int = read(_positive)
    at_ms: int = read(req_int)


class _WithAppointments(_BookingChange):
    """A booking event that carries the booking's pair, written out as maps."""

    __slots__ = ()
    appointments: tuple[Appointment, ...]

    def to_map(self) -> dict[str, Any]:
        return map_with_appointments(self, self.appointments)


def map_with_appointments(
    message: Message, appointments: tuple[Appointment, ...]
) -> dict[str, Any]:
    """A message's map, its appointments written out as maps."""
    out = Message.to_map(message)
    out["appointments"] = [a.to_map() for a in appointments]
    return out


@wire_class
class Held(_WithAppointments):
    TYPE: ClassVar[str] = "held"
    identity: str = read(req_str)
    county: str = read(req_str)
    appointments: tuple[Appointment, ...] = read(read_appointments)
    hold_expires_at_ms: int = read(req_int)


@wire_class
class Confirmed(_WithAppointments):
    TYPE: ClassVar[str] = "confirmed"
    appointments: tuple[Appointment, ...] = read(read_appointments)


@wire_class
class Moved(_WithAppointments):
    """A Move found a new pair: the booking keeps its id and state, the old pair is free.

    ``hold_expires_at_ms`` is the unchanged expiry of a held booking, None when confirmed.
    ``county`` is set when the booking moved to another county: its later commands are
    keyed by that county (and its later events come from that county's partition).
    """

    TYPE: ClassVar[str] = "moved"
    appointments: tuple[Appointment, ...] = read(read_appointments)
    hold_expires_at_ms: int | None = read(opt_int, None)
    county: str | None = None


@wire_class
class Waitlisted(_BookingChange):
    """A Book found no pair and waits on its county's waitlist (the identity counts as booked)."""

    TYPE: ClassVar[str] = "waitlisted"
    identity: str = read(req_str)
    county: str = read(req_str)


@wire_class
class Offered(_WithAppointments):
    """A waitlisted booking got a pair: it is now held until ``hold_expires_at_ms``.

    ``command_id`` is the Book's; Confirm, Cancel and expiry work as for any hold.
    """

    TYPE: ClassVar[str] = "offered"
    appointments: tuple[Appointment, ...] = read(read_appointments)
    hold_expires_at_ms: int = read(req_int)


@wire_class
class Expired(_BookingChange):
    TYPE: ClassVar[str] = "expired"


@wire_class
class Cancelled(_BookingChange):
    TYPE: ClassVar[str] = "cancelled"


@wire_class
class Rejected(_BookingChange):
    TYPE: ClassVar[str] = "rejected"
    reason: str = read(req_str)


@wire_class
class Failed(Message):
    """A Confirm, Cancel or Move that could not apply (or a Book naming a known booking
    id); the booking is unchanged (no rev)."""

    TYPE: ClassVar[str] = "failed"
    command_id: str
    booking_id: str
    campaign: str
    at_ms: int
    reason: str


@wire_class
class _InventoryAnswer(Message):
    """What every answer to an inventory command starts with; ``reason`` when refused."""

    command_id: str
    campaign: str
    center: str
    at_ms: int
    accepted: bool


@wire_class
class InventoryAdded(_InventoryAnswer):
    TYPE: ClassVar[str] = "inventory_added"
    slots_added: int = read(_count)
    reason: str | None = read(opt_str, None)


@wire_class
class InventoryRemoved(_InventoryAnswer):
    """The answer to RemoveInventory: every named slot removed, or none (``reason``)."""

    TYPE: ClassVar[str] = "inventory_removed"
    slots_removed: int = read(_count)
    reason: str | None = read(opt_str, None)


@wire_class
class ReserveSet(_InventoryAnswer):
    """The answer to SetReserve: ``places_reserved`` free places now held back for the
    group (0 when the reserve was removed; other groups' places not counted), or
    refused (``accepted`` false, ``reason``)."""

    TYPE: ClassVar[str] = "reserve_set"
    places_reserved: int = read(_count)
    reason: str | None = read(opt_str, None)


@wire_class
class DayInventory:
    """Places of one center on one day, summed over its slots (every vaccine).

    ``held`` and ``confirmed`` count places of held and confirmed bookings (a pair
    takes two places, on its two days); ``free`` places anybody may take and
    ``reserved`` places held back for priority groups are free places of slots not
    yet started, as in CountySummary (a started slot's free places count as neither).
    """

    capacity: int = read(_count)
    free: int = read(_count)
    held: int = read(_count)
    confirmed: int = read(_count)
    reserved: int = read(_count)

    def to_map(self) -> dict[str, Any]:
        return field_map(self)

    @classmethod
    def from_map(cls, m: Any) -> DayInventory:
        if not isinstance(m, Mapping):
            raise SchemaError("a day's inventory must be a map")
        return read_fields(cls, m)


def _centers_by_day(m: Mapping[str, Any], key: str) -> dict[str, dict[str, DayInventory]]:
    centers: dict[str, dict[str, DayInventory]] = {}
    for center, days in req_map(m, key).items():
        if not isinstance(days, Mapping) or not all(isinstance(d, str) for d in days):
            raise SchemaError(f"'{key}' must map each center to a map by ISO day")
        centers[center] = {
            parse_date(day, "day").isoformat(): DayInventory.from_map(figures)
            for day, figures in days.items()
        }
    return centers


@wire_class
class InventoryReport(Message):
    """The answer to ReportInventory: places per center of ``county`` and day (ISO),
    or ``reason`` (then ``centers`` is empty) when the county has no inventory here."""

    TYPE: ClassVar[str] = "inventory_report"
    command_id: str
    campaign: str
    county: str
    at_ms: int
    centers: dict[str, dict[str, DayInventory]] = read(_centers_by_day)
    reason: str | None = read(opt_str, None)

    def to_map(self) -> dict[str, Any]:
        out = Message.to_map(self)
        out["centers"] = {
            center: {day: figures.to_map() for day, figures in days.items()}
            for center, days in self.centers.items()
        }
        return out


@wire_class
class CountySummary:
    # pairs that can still be formed from free and reserved places (greedy; 0 exactly when none)
    pairs_left: int = read(_count)
    free: int = read(_count)  # free slot places anybody may take (dose 1 or dose 2)
    held: int = read(_count)  # pairs held in baskets
    confirmed: int = read(_count)  # pairs confirmed
    waitlisted: int = read(_count_or_zero, 0)  # bookings on the waitlist (absent: 0)
    reserved: int = read(_count_or_zero, 0)  # free places held back for groups (absent: 0)
    # ``pairs_left`` split by vaccine id: every vaccine the county has inventory of, 0 when
    # it has no pair left; the figures sum to ``pairs_left`` (a pair is of one vaccine).
    # None (absent) in summaries written before it existed.
    pairs_left_by_vaccine: dict[str, int] | None = read(_counts_by_id, None)

    def to_map(self) -> dict[str, Any]:
        return field_map(self)

    @classmethod
    def from_map(cls, m: Any) -> CountySummary:
        if not isinstance(m, Mapping):
            raise SchemaError("a county summary must be a map")
        summary = read_fields(cls, m)
        by_vaccine = summary.pairs_left_by_vaccine
        if by_vaccine is not None and sum(by_vaccine.values()) != summary.pairs_left:
            raise SchemaError("'pairs_left_by_vaccine' must sum to 'pairs_left'")
        return summary


def _counties(m: Mapping[str, Any], key: str) -> dict[str, CountySummary]:
    return {k: CountySummary.from_map(v) for k, v in req_map(m, key).items()}


@wire_class
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


Event = (
    Held
    | Confirmed
    | Rejected
    | Expired
    | Cancelled
    | Moved
    | Waitlisted
    | Offered
    | Failed
    | InventoryAdded
    | InventoryRemoved
    | ReserveSet
    | InventoryReport
    | Summary
)
BookingEvent = Held | Confirmed | Rejected | Expired | Cancelled | Moved | Waitlisted | Offered

_TYPES: tuple[Any, ...] = (
    Held,
    Confirmed,
    Rejected,
    Expired,
    Cancelled,
    Moved,
    Waitlisted,
    Offered,
    Failed,
    InventoryAdded,
    InventoryRemoved,
    ReserveSet,
    InventoryReport,
    Summary,
)
_DECODERS = decoders(*_TYPES)


def decode_event(data: bytes) -> Event:
    """Decode one record value; raises SchemaError for anything malformed."""
    return dispatch(data, _DECODERS, "event")  # type: ignore[no-any-return]
