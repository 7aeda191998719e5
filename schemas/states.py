"""Booking states, rejection reasons and the other closed word lists of the contracts.

Each is a ``StrEnum``: its members are the strings on the wire and in JSON (a member
compares and hashes equal to its string, so ``BookingState.HELD == "held"``), and the
message types, the allocator core, the gateway's views and the generated OpenAPI
document all take their words from here.
"""

from __future__ import annotations

from enum import StrEnum


class BookingState(StrEnum):
    """Where a booking stands, as the allocator keeps it and the gateway shows it.

    ``pending``: the gateway took the request, no answer yet (the gateway's only);
    ``moved_out``: the booking moved to another county's partition and lives there
    now (the allocator's only: a client sees it in its new county).
    """

    PENDING = "pending"
    HELD = "held"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    WAITLISTED = "waitlisted"
    MOVED_OUT = "moved_out"


class MovableState(StrEnum):
    """The states a booking moves to another county in (``TransferIn.state``)."""

    HELD = BookingState.HELD.value
    CONFIRMED = BookingState.CONFIRMED.value


class RejectReason(StrEnum):
    """Why a Book is rejected, a Confirm/Cancel/Move fails or an inventory command is refused."""

    SOLD_OUT = "sold_out"  # nothing left in the county/center at all
    NO_PAIR_IN_WINDOW = "no_pair_in_window"  # free slots, but no dose-2 partner in the window
    UNKNOWN_COUNTY = "unknown_county"
    UNKNOWN_CENTER = "unknown_center"
    NOT_ELIGIBLE = "not_eligible"  # e.g. center not in the named county
    ALREADY_BOOKED = "already_booked"  # the identity holds or has an appointment already
    UNKNOWN_BOOKING = "unknown_booking"
    NOT_HELD = "not_held"  # confirm of a booking that is not held
    HOLD_EXPIRED = "hold_expired"
    ALREADY_FINAL = "already_final"  # cancel of a booking rejected, expired or cancelled
    DUPLICATE_BOOKING_ID = "duplicate_booking_id"
    WINDOW_MISMATCH = "window_mismatch"  # AddInventory with another window for a known vaccine
    CENTER_MISMATCH = "center_mismatch"  # Add/RemoveInventory naming another county's center
    NOT_MOVABLE = "not_movable"  # Move of a booking that is not held or confirmed
    UNKNOWN_SLOT = "unknown_slot"  # RemoveInventory naming a slot the line does not have
    SLOT_IN_USE = "slot_in_use"  # RemoveInventory naming a slot with a held/confirmed place
    NO_PAIR_AT_TIME_OF_DAY = "no_pair_at_time_of_day"  # none with both doses at that time
    RESERVED_FOR_PRIORITY_GROUP = "reserved_for_priority_group"  # only reserved places left
    RELEASE_PASSED = "release_passed"  # SetReserve whose release_at_ms is not after log time
    # SetReserve whose share, with the other groups' shares of that center and day, is > 100
    RESERVE_SHARES_OVER_100 = "reserve_shares_over_100"
    MOVE_IN_PROGRESS = "move_in_progress"  # Confirm/Cancel/Move while moving to another county
    MOVED_AWAY = "moved_away"  # Confirm/Cancel/Move sent to the county a booking has left


# A Book with ``waitlist`` waits instead of being rejected for these: no pair fits its wish now.
WAITLIST_REASONS = frozenset(
    {
        RejectReason.SOLD_OUT,
        RejectReason.NO_PAIR_IN_WINDOW,
        RejectReason.NO_PAIR_AT_TIME_OF_DAY,
        RejectReason.RESERVED_FOR_PRIORITY_GROUP,
    }
)


class TimeOfDay(StrEnum):
    """Part of the local day a slot starts in: before 12:00, 12:00-16:59, from 17:00."""

    MORNING = "morning"
    AFTERNOON = "afternoon"
    EVENING = "evening"


TIMES_OF_DAY = tuple(t.value for t in TimeOfDay)


def time_of_day_index(local_hour: int) -> int:
    """The index in ``TimeOfDay`` of a slot starting at ``local_hour`` (0..23)."""
    return 0 if local_hour < 12 else 1 if local_hour < 17 else 2


class ReserveMode(StrEnum):
    """The order a group member's place is counted in (see ``SetReserve``)."""

    OVER_AND_ABOVE = "over_and_above"
    MINIMUM_GUARANTEE = "minimum_guarantee"


class IdentityKeyMode(StrEnum):
    """Whether a confirm must carry the person's identity key (one pair per key)."""

    OPTIONAL = "optional"
    REQUIRED = "required"
