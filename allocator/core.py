"""The allocator's pure core: commands in log order in, events out.

One ``Allocator`` serves one partition of ``booking-commands``: all inventory
of the counties whose commands land there, for any number of campaigns. It
does no I/O and reads no clock: time is the largest record timestamp seen so
far (``now_ms``), so replaying the same records into a fresh instance gives the
same events.

Every Book, Confirm, Cancel and AddInventory command id gets exactly one
answer; a command delivered again (same command id) gets none. Holds run out
at the start of the first command whose timestamp reaches their expiry.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, Protocol

from allocator.inventory import Center, Line, Slot, day_ordinal
from schemas.commands import AddInventory, Book, Cancel, Command, Confirm, Tick
from schemas.events import (
    Cancelled,
    Confirmed,
    CountySummary,
    Event,
    Expired,
    Failed,
    Held,
    InventoryAdded,
    Rejected,
    Summary,
)

HELD = "held"
CONFIRMED = "confirmed"
REJECTED = "rejected"
EXPIRED = "expired"
CANCELLED = "cancelled"

SUMMARY_EVERY_MS = 5000  # a campaign's summary is repeated on ticks at least this often


class Booking:
    __slots__ = (
        "answered",
        "booking_id",
        "command_id",
        "county",
        "dose1",
        "dose2",
        "expires_ms",
        "identity",
        "rev",
        "state",
    )

    def __init__(self, cmd: Book, state: str, pair: tuple[Slot, Slot] | None, expires_ms: int):
        self.booking_id = cmd.booking_id
        self.command_id = cmd.command_id
        self.identity = cmd.identity
        self.county = cmd.county
        self.state = state
        self.rev = 1
        self.dose1: Slot | None = pair[0] if pair is not None else None
        self.dose2: Slot | None = pair[1] if pair is not None else None
        self.expires_ms = expires_ms
        self.answered: set[str] | None = None  # later command ids already answered

    @classmethod
    def restored(
        cls,
        fields: tuple[str, str, str, str, str, int, int],
        pair: tuple[Slot, Slot] | None,
        answered: set[str] | None,
    ) -> Booking:
        """A booking rebuilt from a snapshot: (booking_id, command_id, identity, county,
        state, rev, expires_ms), its pair and the later command ids it answered."""
        b = cls.__new__(cls)
        b.booking_id, b.command_id, b.identity, b.county, b.state, b.rev, b.expires_ms = fields
        b.dose1, b.dose2 = pair if pair is not None else (None, None)
        b.answered = answered
        return b

    def seen(self, command_id: str) -> bool:
        """Whether ``command_id`` was answered already; marks it answered."""
        if command_id == self.command_id:
            return True
        if self.answered is None:
            self.answered = set()
        elif command_id in self.answered:
            return True
        self.answered.add(command_id)
        return False

    def pair(self) -> tuple[Slot, Slot]:
        assert self.dose1 is not None and self.dose2 is not None
        return self.dose1, self.dose2


class County:
    __slots__ = ("centers", "confirmed", "held", "lines", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.centers: dict[str, Center] = {}
        self.lines: list[Line] = []  # ordered by (center id, vaccine id)
        self.held = 0
        self.confirmed = 0

    def index_lines(self) -> None:
        self.lines = [line for c in sorted(self.centers) for line in self.centers[c].line_list]


class Campaign:
    __slots__ = (
        "active",
        "bookings",
        "centers",
        "counties",
        "dirty",
        "inventory_commands",
        "last_summary_ms",
        "name",
        "orphans",
        "windows",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.counties: dict[str, County] = {}
        self.centers: dict[str, Center] = {}
        self.windows: dict[str, tuple[int, int]] = {}  # vaccine -> (min_days, max_days)
        self.bookings: dict[str, Booking] = {}
        self.active: dict[str, Booking] = {}  # identity -> held or confirmed booking
        self.inventory_commands: set[str] = set()  # AddInventory command ids answered
        self.orphans: set[str] = set()  # Confirm/Cancel command ids of unknown bookings
        self.dirty = True  # inventory changed since the last summary
        self.last_summary_ms: int | None = None


class SlotUsage(NamedTuple):
    campaign: str
    slot: str
    capacity: int
    used: int


class BookingView(NamedTuple):
    campaign: str
    booking_id: str
    identity: str
    county: str
    state: str
    rev: int
    slots: tuple[str, ...]  # slot ids of dose 1 and dose 2 (empty when rejected)


class Wish(Protocol):
    """What a pair search needs from a command that asks for a pair (Book, and later ones)."""

    @property
    def earliest(self) -> str | None: ...  # ISO date; dose 1 on or after it

    @property
    def group(self) -> str | None: ...  # priority group of the person, if any


PairKey = tuple[int, int, str, str, int]  # dose-1 start_s and day, center, vaccine, dose-2 start_s


def _cannot_win(line: Line, head: Slot, best: PairKey) -> bool:
    """Whether no pair of ``line``, whose earliest usable slot is ``head``, beats ``best``.

    Every dose 1 of the line starts at or after ``head``; a pair on ``head`` itself
    is ranked by (start, day, center, vaccine) first, and lines differ in center
    or vaccine, so those four decide.
    """
    if head.start_s != best[0]:
        return head.start_s > best[0]
    return (head.start_s, head.day, line.center.center_id, line.vaccine) > best[:4]


class Allocator:
    """All decisions about one partition's inventory, in log order."""

    __slots__ = ("_campaigns", "_expiries", "_handlers", "next_offset", "now_ms")

    def __init__(self) -> None:
        self.now_ms = 0
        self.next_offset = 0  # offset after the last record applied
        self._campaigns: dict[str, Campaign] = {}
        self._expiries: list[tuple[int, str, str]] = []  # (expires_ms, booking_id, campaign)
        self._handlers: dict[type, Callable[[Any, list[Event]], None]] = {
            Book: self._book,
            Confirm: self._confirm,
            Cancel: self._cancel,
            AddInventory: self._add_inventory,
            Tick: self._tick,
        }

    def snapshot(self) -> bytes:
        """The whole state as versioned msgpack bytes (see ``allocator.snapshot``)."""
        from allocator.snapshot import dump

        return dump(self)

    @classmethod
    def restore(cls, data: bytes) -> Allocator:
        """An allocator in the state of ``snapshot()`` bytes; SnapshotError if unreadable."""
        from allocator.snapshot import load

        return load(data)

    def apply(self, offset: int, timestamp_ms: int, command: Command) -> list[Event]:
        """Apply one record; returns the events it causes, in order."""
        if timestamp_ms > self.now_ms:
            self.now_ms = timestamp_ms
        self.next_offset = offset + 1
        out: list[Event] = []
        self._expire(out)
        self._handlers[type(command)](command, out)
        return out

    def _campaign(self, name: str) -> Campaign:
        c = self._campaigns.get(name)
        if c is None:
            c = self._campaigns[name] = Campaign(name)
        return c

    # -- holds running out -----------------------------------------------------------------

    def _expire(self, out: list[Event]) -> None:
        heap = self._expiries
        now = self.now_ms
        while heap and heap[0][0] <= now:
            _, booking_id, name = heapq.heappop(heap)
            c = self._campaigns[name]
            b = c.bookings[booking_id]
            if b.state != HELD:  # confirmed or cancelled in time
                continue
            self._end(c, b, EXPIRED)
            out.append(Expired(b.command_id, booking_id, name, b.rev, now))

    def _end(self, c: Campaign, b: Booking, state: str) -> None:
        """Move a held or confirmed booking to a final state, freeing its pair."""
        county = c.counties[b.county]
        if b.state == HELD:
            county.held -= 1
        else:
            county.confirmed -= 1
        self._release_pair(b)
        del c.active[b.identity]
        b.state = state
        b.rev += 1
        c.dirty = True

    # -- Book --------------------------------------------------------------------------------

    def _book(self, cmd: Book, out: list[Event]) -> None:
        c = self._campaign(cmd.campaign)
        known = c.bookings.get(cmd.booking_id)
        if known is not None:
            if not known.seen(cmd.command_id):
                out.append(
                    Failed(
                        cmd.command_id,
                        cmd.booking_id,
                        cmd.campaign,
                        self.now_ms,
                        "duplicate_booking_id",
                    )
                )
            return
        lines, reason = self._lines_for(c, cmd)
        pair: tuple[Slot, Slot] | None = None
        if reason is None:
            pair, any_free = self._find_pair(lines, cmd)
            if pair is None:
                reason = "no_pair_in_window" if any_free else "sold_out"
        if pair is None:
            c.bookings[cmd.booking_id] = Booking(cmd, REJECTED, None, 0)
            out.append(
                Rejected(cmd.command_id, cmd.booking_id, cmd.campaign, 1, self.now_ms, str(reason))
            )
            return
        self._hold(c, cmd, pair, out)

    def _lines_for(self, c: Campaign, cmd: Book) -> tuple[list[Line], str | None]:
        """The lines a Book may take from, or the reason it is rejected."""
        county = c.counties.get(cmd.county)
        if county is None:
            return [], "unknown_county"
        lines = county.lines
        if cmd.center is not None:
            center = c.centers.get(cmd.center)
            if center is None:
                return [], "unknown_center"
            if center.county != cmd.county:
                return [], "not_eligible"
            lines = center.line_list
        if cmd.identity in c.active:
            return [], "already_booked"
        return lines, None

    def _find_pair(self, lines: list[Line], wish: Wish) -> tuple[tuple[Slot, Slot] | None, bool]:
        """The best pair over ``lines`` for ``wish`` and whether any line has a usable
        place at all. Every pair search goes through here."""
        earliest = day_ordinal(wish.earliest) if wish.earliest is not None else None
        now = self.now_ms
        best: tuple[Slot, Slot] | None = None
        best_key: PairKey | None = None
        any_free = False
        for line in lines:
            head = line.head_slot(now)
            if head is None:
                continue
            any_free = True
            if best_key is not None and _cannot_win(line, head, best_key):
                continue
            pair = line.best_pair(now, earliest)
            if pair is None:
                continue
            d1, d2 = pair
            key = (d1.start_s, d1.day, line.center.center_id, line.vaccine, d2.start_s)
            if best_key is None or key < best_key:
                best, best_key = pair, key
        return best, any_free

    @staticmethod
    def _take_pair(b: Booking, pair: tuple[Slot, Slot]) -> None:
        """Give ``b`` the places of ``pair``. Every taking of places goes through here."""
        d1, d2 = pair
        d1.line.take(d1)
        d2.line.take(d2)
        b.dose1, b.dose2 = d1, d2

    @staticmethod
    def _release_pair(b: Booking) -> None:
        """Give ``b``'s places back. Every release of places goes through here."""
        d1, d2 = b.pair()
        d1.line.release(d1)
        d2.line.release(d2)

    def _hold(self, c: Campaign, cmd: Book, pair: tuple[Slot, Slot], out: list[Event]) -> None:
        expires_ms = self.now_ms + cmd.hold_s * 1000
        b = Booking(cmd, HELD, None, expires_ms)
        self._take_pair(b, pair)
        d1, d2 = pair
        c.bookings[cmd.booking_id] = b
        c.active[cmd.identity] = b
        c.counties[cmd.county].held += 1
        c.dirty = True
        heapq.heappush(self._expiries, (expires_ms, cmd.booking_id, cmd.campaign))
        out.append(
            Held(
                command_id=cmd.command_id,
                booking_id=cmd.booking_id,
                campaign=cmd.campaign,
                rev=1,
                at_ms=self.now_ms,
                identity=cmd.identity,
                county=cmd.county,
                appointments=(d1.appointment(1), d2.appointment(2)),
                hold_expires_at_ms=expires_ms,
            )
        )

    # -- Confirm and Cancel ------------------------------------------------------------------

    def _known_booking(self, cmd: Confirm | Cancel, out: list[Event]) -> Booking | None:
        """The booking a Confirm/Cancel names, or None when it was answered here already."""
        c = self._campaign(cmd.campaign)
        if cmd.command_id in c.orphans:
            return None
        b = c.bookings.get(cmd.booking_id)
        if b is None:
            c.orphans.add(cmd.command_id)
            self._fail(cmd, "unknown_booking", out)
            return None
        if b.seen(cmd.command_id):
            return None
        return b

    def _fail(self, cmd: Confirm | Cancel, reason: str, out: list[Event]) -> None:
        out.append(Failed(cmd.command_id, cmd.booking_id, cmd.campaign, self.now_ms, reason))

    def _confirm(self, cmd: Confirm, out: list[Event]) -> None:
        b = self._known_booking(cmd, out)
        if b is None:
            return
        if b.state != HELD:
            self._fail(cmd, "hold_expired" if b.state == EXPIRED else "not_held", out)
            return
        c = self._campaigns[cmd.campaign]
        county = c.counties[b.county]
        county.held -= 1
        county.confirmed += 1
        b.state = CONFIRMED
        b.rev += 1
        c.dirty = True
        d1, d2 = b.pair()
        appointments = (d1.appointment(1), d2.appointment(2))
        out.append(
            Confirmed(
                cmd.command_id, cmd.booking_id, cmd.campaign, b.rev, self.now_ms, appointments
            )
        )

    def _cancel(self, cmd: Cancel, out: list[Event]) -> None:
        b = self._known_booking(cmd, out)
        if b is None:
            return
        if b.state not in (HELD, CONFIRMED):
            self._fail(cmd, "already_final", out)
            return
        self._end(self._campaigns[cmd.campaign], b, CANCELLED)
        out.append(Cancelled(cmd.command_id, cmd.booking_id, cmd.campaign, b.rev, self.now_ms))

    # -- AddInventory ------------------------------------------------------------------------

    def _add_inventory(self, cmd: AddInventory, out: list[Event]) -> None:
        c = self._campaign(cmd.campaign)
        if cmd.command_id in c.inventory_commands:
            return
        c.inventory_commands.add(cmd.command_id)
        reason = self._inventory_refusal(c, cmd)
        if reason is not None:
            out.append(
                InventoryAdded(
                    cmd.command_id, cmd.campaign, cmd.center, self.now_ms, False, 0, reason
                )
            )
            return
        county = c.counties.get(cmd.county)
        if county is None:
            county = c.counties[cmd.county] = County(cmd.county)
        center = c.centers.get(cmd.center)
        if center is None:
            center = c.centers[cmd.center] = Center(cmd.center, cmd.center_name, cmd.county)
            county.centers[cmd.center] = center
        c.windows[cmd.vaccine] = (cmd.min_days, cmd.max_days)
        known_lines = len(center.line_list)
        line = center.line(cmd.vaccine, cmd.min_days, cmd.max_days)
        if len(center.line_list) != known_lines:
            county.index_lines()
        line.add(cmd.slots)
        line.retire(self.now_ms)
        c.dirty = True
        out.append(
            InventoryAdded(
                cmd.command_id, cmd.campaign, cmd.center, self.now_ms, True, len(cmd.slots)
            )
        )

    @staticmethod
    def _inventory_refusal(c: Campaign, cmd: AddInventory) -> str | None:
        center = c.centers.get(cmd.center)
        if center is not None and center.county != cmd.county:
            return "center_mismatch"
        window = c.windows.get(cmd.vaccine)
        if window is not None and window != (cmd.min_days, cmd.max_days):
            return "window_mismatch"
        return None

    # -- Tick and summaries ------------------------------------------------------------------

    def _tick(self, cmd: Tick, out: list[Event]) -> None:
        now = self.now_ms
        for name in sorted(self._campaigns):
            c = self._campaigns[name]
            if not c.counties:
                continue
            last = c.last_summary_ms
            if c.dirty or last is None or now - last >= SUMMARY_EVERY_MS:
                out.append(self._summary(c))
                c.dirty = False
                c.last_summary_ms = now

    def _summary(self, c: Campaign) -> Summary:
        counties: dict[str, CountySummary] = {}
        for name in sorted(c.counties):
            county = c.counties[name]
            pairs = free = 0
            for line in county.lines:
                pairs += line.pairs_left(self.now_ms)
                free += line.free
            counties[name] = CountySummary(pairs, free, county.held, county.confirmed)
        return Summary(c.name, self.now_ms, counties)

    # -- read-only views ---------------------------------------------------------------------

    def summaries(self) -> list[Summary]:
        """The current summary of every campaign with inventory here, by campaign name."""
        return [
            self._summary(self._campaigns[name])
            for name in sorted(self._campaigns)
            if self._campaigns[name].counties
        ]

    def slot_usage(self) -> Iterator[SlotUsage]:
        """Every slot with its capacity and places used (held or confirmed)."""
        for name, c in self._campaigns.items():
            for center in c.centers.values():
                for line in center.line_list:
                    for s in line.slots:
                        yield SlotUsage(name, s.slot_id, s.capacity, s.used)

    def bookings(self) -> Iterator[BookingView]:
        """Every booking answered so far, in any state."""
        for name, c in self._campaigns.items():
            for b in c.bookings.values():
                slots = (b.dose1.slot_id, b.dose2.slot_id) if b.dose1 and b.dose2 else ()
                yield BookingView(name, b.booking_id, b.identity, b.county, b.state, b.rev, slots)
