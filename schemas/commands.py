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
from collections.abc import Callable
from typing import Annotated

from msgspec import Meta

from schemas.events import Appointment
from schemas.message import Message, Part, wire_decoder
from schemas.states import MovableState, RejectReason, ReserveMode, TimeOfDay
from schemas.types import Count, IsoDate, Name, Text, check_iso_date

MAX_HOLD_S = 24 * 3600
MAX_WINDOW_DAYS = 366
MAX_SLOTS_PER_COMMAND = 20_000
DEFAULT_HOLD_S = 600

HoldS = Annotated[int, Meta(ge=1, le=MAX_HOLD_S)]
WindowDays = Annotated[int, Meta(ge=1, le=MAX_WINDOW_DAYS)]
Percent = Annotated[int, Meta(ge=0, le=100)]


class _ByBooking(Message, frozen=True):
    """What every command about one booking starts with."""

    command_id: Text
    booking_id: Text
    campaign: Text


class Book(_ByBooking, frozen=True):
    """Hold the earliest feasible pair for ``identity`` in ``county`` (or at ``center``)."""

    identity: Text
    county: Text
    center: Text | None = None
    earliest: IsoDate | None = None  # ISO date; dose 1 on or after it
    hold_s: HoldS = DEFAULT_HOLD_S
    group: Text | None = None  # priority group of the access code, if any
    # Part of the local day both doses start in: morning (before 12:00), afternoon
    # (12:00-16:59) or evening (from 17:00); None takes any time.
    time_of_day: TimeOfDay | None = None
    # When the Book would be rejected sold_out or no_pair_in_window: wait on the
    # county's waitlist instead (answered Waitlisted; a pair comes later as Offered).
    waitlist: bool = False

    def __post_init__(self) -> None:
        if self.earliest is not None:
            check_iso_date(self.earliest, "earliest")


class Confirm(_ByBooking, frozen=True):
    """Make a held pair an appointment."""


class Cancel(_ByBooking, frozen=True):
    """Give a held or confirmed pair back to the pool."""


class Move(_ByBooking, frozen=True):
    """Rebook a held or confirmed booking onto another pair, in one step.

    Keeps the booking id and its state (a hold keeps its expiry). The new pair is
    searched in the booking's own county, at ``center`` if given, with dose 1 on
    or after ``earliest``, for the booking's priority group, while the old pair is
    still taken; the old pair is given back only when a new one is found.
    Answered by Moved or Failed (then nothing changed).
    """

    center: Text | None = None
    earliest: IsoDate | None = None  # ISO date; dose 1 on or after it
    time_of_day: TimeOfDay | None = None
    # Another county of the campaign (None: the booking's own). Its inventory has
    # another writer, so the move goes through it and back (see TransferIn).
    county: Text | None = None

    def __post_init__(self) -> None:
        if self.earliest is not None:
            check_iso_date(self.earliest, "earliest")


class TransferIn(Message, frozen=True):
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

    command_id: Text
    move_id: Text  # the Move's command id
    booking_id: Text
    campaign: Text
    county: Text  # where the booking goes (the record key)
    origin: Text  # where it comes from
    identity: Text
    book_command_id: Text  # the Book's command id (an Expired names it)
    state: MovableState
    rev: int  # the booking's revision once moved
    hold_expires_at_ms: int | None = None  # None when confirmed
    group: Text | None = None
    center: Text | None = None
    earliest: IsoDate | None = None
    time_of_day: TimeOfDay | None = None

    def __post_init__(self) -> None:
        if self.earliest is not None:
            check_iso_date(self.earliest, "earliest")


class TransferAnswer(Message, frozen=True):
    """A Move to another county, step 3: the new county's answer to a TransferIn, keyed
    by the booking's old county (``county``). ``reason`` is None when the booking
    now has ``appointments`` in ``target``; else it is why not, and nothing was taken."""

    command_id: Text  # the Move's command id plus ``:answer``
    move_id: Text
    booking_id: Text
    campaign: Text
    county: Text  # the booking's old county (the record key)
    target: Text  # the county the booking moves to
    appointments: Annotated[tuple[Appointment, ...], Meta(max_length=2)]
    reason: RejectReason | None = None


def _has_offset(text: str) -> bool:
    try:
        return dt.datetime.fromisoformat(text).tzinfo is not None
    except ValueError:
        return False


class SlotSpec(Part, frozen=True, array_like=True, forbid_unknown_fields=True):
    """One time slot: local day, local start with offset, start in epoch seconds, capacity.

    On the wire a list ``[day, start, start_s, capacity]``, which keeps an AddInventory of
    thousands of slots compact.
    """

    day: IsoDate  # ISO date, the local day of the slot
    start: Annotated[str, Meta(max_length=64)]  # ISO datetime with UTC offset, as shown
    start_s: int  # epoch seconds
    capacity: Count

    def __post_init__(self) -> None:
        check_iso_date(self.day, "day")
        if not _has_offset(self.start):
            raise ValueError("a slot's start must be an ISO datetime with a UTC offset")


class AddInventory(Message, frozen=True):
    """Add slots of one vaccine at one center (a delivery, or the initial load).

    Adding to an existing slot raises its capacity by ``capacity``.
    """

    command_id: Text
    campaign: Text
    county: Text
    center: Text
    center_name: Name
    vaccine: Text
    min_days: WindowDays
    max_days: WindowDays
    slots: Annotated[tuple[SlotSpec, ...], Meta(max_length=MAX_SLOTS_PER_COMMAND)]

    def __post_init__(self) -> None:
        if self.max_days < self.min_days:
            raise ValueError(f"'max_days' must be at least min_days ({self.min_days})")


class RemoveInventory(Message, frozen=True):
    """Take slots of one vaccine at one center out of the inventory, all or none.

    ``starts`` names the slots by ``start_s``. Refused (InventoryRemoved with
    ``accepted`` false) when a slot is unknown or has a held or confirmed place.
    """

    command_id: Text
    campaign: Text
    county: Text  # the center's county (the record key); must match it
    center: Text
    vaccine: Text
    starts: Annotated[tuple[int, ...], Meta(max_length=MAX_SLOTS_PER_COMMAND)]


class SetReserve(Message, frozen=True):
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

    command_id: Text
    campaign: Text
    county: Text  # the center's county (the record key); must match it
    center: Text
    day: IsoDate  # ISO date, the local day of the slots
    group: Text
    share_pct: Percent
    mode: ReserveMode
    release_at_ms: Count

    def __post_init__(self) -> None:
        check_iso_date(self.day, "day")


class ReportInventory(Message, frozen=True):
    """Ask for the inventory of one county of a campaign per center and day.

    Read-only: the allocator changes nothing and answers with an InventoryReport
    (a ``reason`` when it knows no such county), every time it is delivered.
    Operators ask it (the console's campaign view); places per center and day
    exist only in the allocator, which owns the inventory.
    """

    command_id: Text
    campaign: Text
    county: Text  # the record key


class Tick(Message, frozen=True):
    """Moves an idle partition's clock (the record timestamp); answered by nothing."""

    command_id: Text


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

decode_command: Callable[[bytes], Command] = wire_decoder(Command, "a command")
"""Decode one record value; raises SchemaError for anything malformed."""
