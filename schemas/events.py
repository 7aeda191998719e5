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

from collections.abc import Callable
from typing import Annotated

from msgspec import Meta

from schemas.message import Message, Part, wire_decoder
from schemas.states import RejectReason
from schemas.types import Count, IsoDate, Name, Positive, SlotId, Text, check_iso_date

# Reasons a Book is rejected or a Confirm/Cancel fails (``schemas.states.RejectReason``).
REASONS = frozenset(RejectReason)

Dose = Annotated[int, Meta(ge=1, le=2)]


class Appointment(Part, frozen=True):
    dose: Dose
    center: Text
    center_name: Name
    vaccine: Text
    start: Text  # ISO datetime with offset
    slot: SlotId  # slot id, unique within the campaign


Pair = Annotated[tuple[Appointment, ...], Meta(max_length=2)]


class _BookingChange(Message, frozen=True):
    """What every event that changes a booking starts with (``rev`` rises by one)."""

    command_id: Text
    booking_id: Text
    campaign: Text
    rev: Positive
    at_ms: int


class Held(_BookingChange, frozen=True):
    identity: Text
    county: Text
    appointments: Pair
    hold_expires_at_ms: int


class Confirmed(_BookingChange, frozen=True):
    appointments: Pair


class Moved(_BookingChange, frozen=True):
    """A Move found a new pair: the booking keeps its id and state, the old pair is free.

    ``hold_expires_at_ms`` is the unchanged expiry of a held booking, None when confirmed.
    ``county`` is set when the booking moved to another county: its later commands are
    keyed by that county (and its later events come from that county's partition).
    """

    appointments: Pair
    hold_expires_at_ms: int | None = None
    county: Text | None = None


class Waitlisted(_BookingChange, frozen=True):
    """A Book found no pair and waits on its county's waitlist (the identity counts as booked)."""

    identity: Text
    county: Text


class Offered(_BookingChange, frozen=True):
    """A waitlisted booking got a pair: it is now held until ``hold_expires_at_ms``.

    ``command_id`` is the Book's; Confirm, Cancel and expiry work as for any hold.
    """

    appointments: Pair
    hold_expires_at_ms: int


class Expired(_BookingChange, frozen=True):
    pass


class Cancelled(_BookingChange, frozen=True):
    pass


class Rejected(_BookingChange, frozen=True):
    reason: RejectReason


class Failed(Message, frozen=True):
    """A Confirm, Cancel or Move that could not apply (or a Book naming a known booking
    id); the booking is unchanged (no rev)."""

    command_id: Text
    booking_id: Text
    campaign: Text
    at_ms: int
    reason: RejectReason


class _InventoryAnswer(Message, frozen=True):
    """What every answer to an inventory command starts with; ``reason`` when refused."""

    command_id: Text
    campaign: Text
    center: Text
    at_ms: int
    accepted: bool


class InventoryAdded(_InventoryAnswer, frozen=True):
    slots_added: Count
    reason: RejectReason | None = None


class InventoryRemoved(_InventoryAnswer, frozen=True):
    """The answer to RemoveInventory: every named slot removed, or none (``reason``)."""

    slots_removed: Count
    reason: RejectReason | None = None


class ReserveSet(_InventoryAnswer, frozen=True):
    """The answer to SetReserve: ``places_reserved`` free places now held back for the
    group (0 when the reserve was removed; other groups' places not counted), or
    refused (``accepted`` false, ``reason``)."""

    places_reserved: Count
    reason: RejectReason | None = None


class DayInventory(Part, frozen=True):
    """Places of one center on one day, summed over its slots (every vaccine).

    ``held`` and ``confirmed`` count places of held and confirmed bookings (a pair
    takes two places, on its two days); ``free`` places anybody may take and
    ``reserved`` places held back for priority groups are free places of slots not
    yet started, as in CountySummary (a started slot's free places count as neither).
    """

    capacity: Count
    free: Count
    held: Count
    confirmed: Count
    reserved: Count


class InventoryReport(Message, frozen=True):
    """The answer to ReportInventory: places per center of ``county`` and day (ISO),
    or ``reason`` (then ``centers`` is empty) when the county has no inventory here."""

    command_id: Text
    campaign: Text
    county: Text
    at_ms: int
    centers: dict[str, dict[IsoDate, DayInventory]]
    reason: RejectReason | None = None

    def __post_init__(self) -> None:
        for days in self.centers.values():
            for day in days:
                check_iso_date(day, "centers")


class CountySummary(Part, frozen=True):
    # pairs that can still be formed from free and reserved places (greedy; 0 exactly when none)
    pairs_left: Count
    free: Count  # free slot places anybody may take (dose 1 or dose 2)
    held: Count  # pairs held in baskets
    confirmed: Count  # pairs confirmed
    waitlisted: Count = 0  # bookings on the waitlist (absent, from older writers: 0)
    reserved: Count = 0  # free places held back for groups (absent, from older writers: 0)
    # ``pairs_left`` split by vaccine id: every vaccine the county has inventory of, 0 when
    # it has no pair left; the figures sum to ``pairs_left`` (a pair is of one vaccine).
    # None (absent) in summaries written before it existed: not known, never "none".
    pairs_left_by_vaccine: dict[Text, Count] | None = None

    def __post_init__(self) -> None:
        by_vaccine = self.pairs_left_by_vaccine
        if by_vaccine is not None and sum(by_vaccine.values()) != self.pairs_left:
            raise ValueError("'pairs_left_by_vaccine' must sum to 'pairs_left'")


class Summary(Message, frozen=True):
    """Inventory per county of one campaign on one partition."""

    campaign: Text
    at_ms: int
    counties: dict[str, CountySummary]


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

decode_event: Callable[[bytes], Event] = wire_decoder(Event, "an event")
"""Decode one record value; raises SchemaError for anything malformed."""
