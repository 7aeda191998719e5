"""The allocator's pure core: commands in log order in, events out.

One ``Allocator`` serves one partition of ``booking-commands``: all inventory
of the counties whose commands land there, for any number of campaigns. It
does no I/O and reads no clock: time is the largest record timestamp seen so
far (``now_ms``), so replaying the same records into a fresh instance gives the
same events.

Every Book, Confirm, Cancel, Move, AddInventory, RemoveInventory and SetReserve
command id gets exactly one answer; a command delivered again (same command id)
gets none. ReportInventory only reads (places per center and day of a county,
for operators): it changes nothing, not even a remembered command id, so it is
answered each time it is delivered. Holds run out at the start of the first command whose timestamp
reaches their expiry.

Move rebooks a held or confirmed booking inside its own county: the new pair
is searched while the old one is still taken (so it never reuses the old
places), then the old pair is released and the new one taken in the same
command; so does a move to another county of this partition. A move to a
county whose inventory is on another partition, with another single writer,
cannot be one command. It goes through the log and back
(``schemas.commands.TransferIn``): the booking is frozen here with its pair
taken (``Booking.moving``; its hold does not run out meanwhile, and a Confirm,
Cancel or Move fails ``move_in_progress``), a TransferIn goes to the new
county (``sends``), whose allocator takes the best pair there for the booking
and answers with a TransferAnswer; only then is the old pair given back here
and the Move answered Moved (or, without a pair there, the booking unfrozen and
the Move answered Failed). The booking then lives in the new county's
partition, and stays here as ``moved_out`` (its id and answered command ids are
kept, so it may come back). Old pair and new pair are thus both taken for the
round trip through the log, never neither. ``sends`` is a list the caller
empties: the commands for other partitions, in the order they were made; they
are a pure function of the log like the events.

Waitlist. A Book with ``waitlist`` that finds no pair for its wish (any of
``WAITLIST_REASONS``) waits on its county's waitlist; its identity counts as
booked. Whenever places of a county come back or arrive (a cancel, an expiry,
a move's old pair, AddInventory, a priority reserve released or removed;
``_places_returned`` is the one entry point) the county's waitlist is *served*:
right after the expiries and reserve releases that start a record (so people
who waited come before a Book in the same record), and again after the
command's own events. Serving offers pairs in
arrival order (FIFO): the earliest waitlisted booking for which a pair exists
gets the best pair for its own wish, held for its Book's ``hold_s`` (event
Offered), until no waitlisted booking can be served. After every record,
therefore, no waitlisted booking has a feasible pair.

Serving is bounded without rescanning the waitlist: bookings with the same
wish (center, earliest, group, time of day) form one FIFO class, and a round
keeps a heap of class heads by arrival. It pops the earliest head, searches
once for its wish, offers and pushes the class's next head, or, when no pair
exists, drops the whole class for the round: taking places never makes a pair
feasible, so a wish that fails stays failed until places come back, which
starts the next round. A round ends when the heap is empty or the county has
no usable place left, so it costs one search per offer plus at most one per
distinct wish, whatever the waitlist's length.

Priority reserves and time of day. SetReserve holds back a share of every slot
of one center on one day for one priority group (``allocator.inventory``); a
day may have reserves for several groups, each set, changed and released on its
own, their shares summing to at most 100 (more is refused). A member's place
comes out of its group's reserve or the open places in the order that reserve's
mode says (``_take``), never out of another group's; the booking remembers which
reserve, and giving it back returns it to that reserve while it lasts
(``_give_back``). Each reserve opens to everybody at its own release time: at
the start of the first record that reaches it, right after the expiries
(``_release_reserves``). Every search is made for
the wisher's group and time of day; a search without either is the plain one
(``Line.best_pair``) and costs what it did before reserves existed.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple, Protocol

from allocator.inventory import (
    OVER_AND_ABOVE,
    Center,
    Line,
    PairKey,
    Reserve,
    Slot,
    View,
    day_ordinal,
    iso_day,
)
from schemas.commands import (
    AddInventory,
    Book,
    Cancel,
    Command,
    Confirm,
    Move,
    RemoveInventory,
    ReportInventory,
    SetReserve,
    Tick,
    Transfer,
    TransferAnswer,
    TransferIn,
)
from schemas.events import (
    Appointment,
    Cancelled,
    Confirmed,
    CountySummary,
    DayInventory,
    Event,
    Expired,
    Failed,
    Held,
    InventoryAdded,
    InventoryRemoved,
    InventoryReport,
    Moved,
    Offered,
    Rejected,
    ReserveSet,
    Summary,
    Waitlisted,
)
from schemas.states import TIMES_OF_DAY, BookingState, MovableState, RejectReason
from schemas.states import WAITLIST_REASONS as WAITLIST_REASONS

# The states as plain strings (``schemas.states.BookingState``): compared on every command.
HELD = BookingState.HELD.value
CONFIRMED = BookingState.CONFIRMED.value
REJECTED = BookingState.REJECTED.value
EXPIRED = BookingState.EXPIRED.value
CANCELLED = BookingState.CANCELLED.value
WAITLISTED = BookingState.WAITLISTED.value
MOVED_OUT = BookingState.MOVED_OUT.value  # moved to another county's partition: lives there now

SUMMARY_EVERY_MS = 5000  # a campaign's summary is repeated on ticks at least this often


class Want(NamedTuple):
    """A Book's wish, kept by a waitlisted booking for the searches made for it later.

    Also the class key of a waitlist: bookings with equal wants get equal answers.
    """

    center: str | None
    earliest: str | None  # ISO date; dose 1 on or after it
    group: str | None
    time_of_day: str | None

    @classmethod
    def of(cls, cmd: Book) -> Want:
        return cls(cmd.center, cmd.earliest, cmd.group, cmd.time_of_day)


class Booking:
    __slots__ = (
        "answered",
        "booking_id",
        "command_id",
        "county",
        "dose1",
        "dose2",
        "expires_ms",
        "group",
        "hold_s",
        "identity",
        "moving",
        "rev",
        "rsv1",
        "rsv2",
        "state",
        "want",
    )

    def __init__(
        self,
        booking_id: str,
        command_id: str,  # the Book's (an Expired or Offered names it)
        identity: str,
        county: str,
        group: str | None,
        state: str,
        rev: int = 1,
        expires_ms: int = 0,
    ) -> None:
        self.booking_id = booking_id
        self.command_id = command_id
        self.identity = identity
        self.county = county
        self.group = group  # the priority group: searches for a Move or an offer use it
        self.state = state
        self.rev = rev
        self.dose1: Slot | None = None
        self.dose2: Slot | None = None
        # The reserve each dose's place was taken out of (None: an open place). A place
        # goes back to that reserve only while it is still its group's reserve of the day.
        self.rsv1: Reserve | None = None
        self.rsv2: Reserve | None = None
        self.expires_ms = expires_ms
        # later command ids already answered: a tuple, not a set, because a booking sees
        # few (a confirm, a cancel, a move or two): an empty set alone is 216 bytes more,
        # for each of millions of bookings
        self.answered: tuple[str, ...] | None = None
        self.want: Want | None = None  # while waitlisted: what to search for
        self.hold_s = 0  # while waitlisted: how long an offered pair is held
        self.moving: str | None = None  # the Move's command id while moving to another county

    @classmethod
    def made(cls, cmd: Book, state: str, expires_ms: int = 0) -> Booking:
        """The booking a Book makes, with no places taken yet."""
        return cls(
            cmd.booking_id,
            cmd.command_id,
            cmd.identity,
            cmd.county,
            cmd.group,
            state,
            1,
            expires_ms,
        )

    @classmethod
    def restored(
        cls,
        fields: tuple[str, str, str, str, str, int, int, str | None],
        pair: tuple[Slot, Slot] | None,
        answered: Iterable[str] | None,
    ) -> Booking:
        """A booking rebuilt from a snapshot: (booking_id, command_id, identity, county,
        state, rev, expires_ms, group), its pair and the later command ids it answered.
        A waitlisted booking's ``want`` and ``hold_s``, the reserves of its places and
        the move it is in are set by the caller."""
        booking_id, command_id, identity, county, state, rev, expires_ms, group = fields
        b = cls(booking_id, command_id, identity, county, group, state, rev, expires_ms)
        if pair is not None:
            b.dose1, b.dose2 = pair
        b.answered = tuple(sorted(answered)) if answered is not None else None
        return b

    @classmethod
    def arriving(cls, cmd: TransferIn) -> Booking:
        """A booking new to this partition, brought by ``cmd`` (no places taken yet)."""
        b = cls(cmd.booking_id, cmd.book_command_id, cmd.identity, cmd.county, cmd.group, "")
        b.arrive(cmd)
        b.answered = (cmd.command_id,)
        return b

    def arrive(self, cmd: TransferIn) -> None:
        """Take the identity, county, state and revision ``cmd`` brings from another county."""
        self.command_id = cmd.book_command_id
        self.identity = cmd.identity
        self.county = cmd.county
        self.group = cmd.group
        self.state = cmd.state
        self.rev = cmd.rev
        self.expires_ms = cmd.hold_expires_at_ms or 0

    def seen(self, command_id: str) -> bool:
        """Whether ``command_id`` was answered already; marks it answered."""
        if command_id == self.command_id:
            return True
        answered = self.answered
        if answered is None:
            self.answered = (command_id,)
        elif command_id in answered:
            return True
        else:
            self.answered = (*answered, command_id)
        return False

    def pair(self) -> tuple[Slot, Slot]:
        assert self.dose1 is not None and self.dose2 is not None
        return self.dose1, self.dose2


class Waitlist:
    """One county's waitlisted bookings in arrival order, grouped by what they want."""

    __slots__ = ("_by_want", "_next_seq", "_seq")

    def __init__(self) -> None:
        self._seq: dict[str, int] = {}  # booking id -> arrival number, in arrival order
        self._by_want: dict[Want, dict[str, Booking]] = {}  # each class in arrival order
        self._next_seq = 0

    def __len__(self) -> int:
        return len(self._seq)

    def push(self, b: Booking) -> None:
        assert b.want is not None
        self._seq[b.booking_id] = self._next_seq
        self._next_seq += 1
        self._by_want.setdefault(b.want, {})[b.booking_id] = b

    def drop(self, b: Booking) -> None:
        assert b.want is not None
        del self._seq[b.booking_id]
        same = self._by_want[b.want]
        del same[b.booking_id]
        if not same:
            del self._by_want[b.want]

    def booking_ids(self) -> list[str]:
        """Every waitlisted booking id, first come first."""
        return list(self._seq)

    def heads(self) -> list[tuple[int, Want]]:
        """(arrival number, want) of the first booking of every class."""
        return [(self._seq[next(iter(same))], want) for want, same in self._by_want.items()]

    def head(self, want: Want) -> tuple[int, Want] | None:
        same = self._by_want.get(want)
        return (self._seq[next(iter(same))], want) if same else None

    def first(self, want: Want) -> Booking:
        return next(iter(self._by_want[want].values()))


class County:
    __slots__ = ("centers", "confirmed", "held", "lines", "name", "waitlist")

    def __init__(self, name: str) -> None:
        self.name = name
        self.centers: dict[str, Center] = {}
        self.lines: list[Line] = []  # ordered by (center id, vaccine id)
        self.held = 0
        self.confirmed = 0
        self.waitlist = Waitlist()

    def count(self, state: str, n: int) -> None:
        """Add ``n`` to the summary count of a held or confirmed booking's ``state``."""
        if state == HELD:
            self.held += n
        else:
            self.confirmed += n

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
        "rejected",
        "windows",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.counties: dict[str, County] = {}
        self.centers: dict[str, Center] = {}
        self.windows: dict[str, tuple[int, int]] = {}  # vaccine -> (min_days, max_days)
        self.bookings: dict[str, Booking] = {}
        # Books rejected and not named by a command since: booking id -> (the Book's
        # command id, identity, county), a fifth of a Booking's memory (on launch day most
        # Books are rejected, and all are kept to answer each command once). A later
        # command on one makes it a Booking again (``booking``).
        self.rejected: dict[str, tuple[str, str, str]] = {}
        self.active: dict[str, Booking] = {}  # identity -> held, confirmed or waitlisted booking
        self.inventory_commands: set[str] = set()  # Add/RemoveInventory command ids answered
        self.orphans: set[str] = set()  # Confirm/Cancel/Move command ids of unknown bookings
        self.dirty = True  # inventory changed since the last summary
        self.last_summary_ms: int | None = None

    def booking(self, booking_id: str) -> Booking | None:
        """The booking ``booking_id``, a rejected one brought back as a ``Booking``."""
        b = self.bookings.get(booking_id)
        if b is not None:
            return b
        kept = self.rejected.pop(booking_id, None)
        if kept is None:
            return None
        command_id, identity, county = kept
        b = self.bookings[booking_id] = Booking(
            booking_id, command_id, identity, county, None, REJECTED
        )
        return b


class SlotUsage(NamedTuple):
    campaign: str
    slot: str
    capacity: int
    used: int
    held_back: int  # free places reserved for the day's priority groups (summed)


class BookingView(NamedTuple):
    campaign: str
    booking_id: str
    identity: str
    county: str
    state: str
    rev: int
    slots: tuple[str, ...]  # slot ids of dose 1 and dose 2 (empty when rejected)
    moving: bool = False  # frozen while moving to another county's partition


class Wish(Protocol):
    """What a pair search needs from a command that asks for a pair (Book, and later ones)."""

    @property
    def earliest(self) -> str | None: ...  # ISO date; dose 1 on or after it

    @property
    def group(self) -> str | None: ...  # priority group of the person, if any

    @property
    def time_of_day(self) -> str | None: ...  # one of TIMES_OF_DAY: both doses start then


def _cannot_win(line: Line, head: Slot, best: PairKey) -> bool:
    """Whether no pair of ``line``, whose earliest usable slot is ``head``, beats ``best``.

    Every dose 1 of the line starts at or after ``head``; a pair on ``head`` itself
    is ranked by (start, day, center, vaccine) first, and lines differ in center
    or vaccine, so those four decide.
    """
    if head.start_s != best[0]:
        return head.start_s > best[0]
    return (head.start_s, head.day, line.center.center_id, line.vaccine) > best[:4]


def _take(slot: Slot, group: str | None) -> Reserve | None:
    """Take a place of ``slot`` for a person of ``group``; the reserve it came out of, if any.

    For a member of a group with a reserve that day the reserve's mode is the order in which
    the two categories are processed (Pathak, Sönmez, Ünver, Yenmez): over-and-above
    takes an open place first and the reserve only when no open place is left, so
    the reserve comes on top of what members win in open competition; minimum
    guarantee takes the reserve first, so members who would have won open places
    use it up and it only matters when members would otherwise get fewer places.
    """
    rsv = slot.bucket.rsvs.get(group) if group is not None and slot.held_back else None
    if (
        rsv is None
        or group is None
        or not slot.held_for(group)
        or (rsv.mode == OVER_AND_ABOVE and slot.used < slot.limit)
    ):
        slot.line.take(slot)
        return None
    slot.line.take_reserved(slot, group)
    return rsv


def _give_back(slot: Slot, rsv: Reserve | None) -> None:
    """Give back a place of ``slot`` taken out of ``rsv`` (None: an open place): to that
    reserve while it is still its group's reserve of the day, otherwise to everybody."""
    if rsv is not None and slot.bucket.rsvs.get(rsv.group) is rsv:
        slot.line.release_reserved(slot, rsv.group)
    else:
        slot.line.release(slot)


class Allocator:
    """All decisions about one partition's inventory, in log order."""

    __slots__ = (
        "_campaigns",
        "_expiries",
        "_handlers",
        "_releases",
        "_returned",
        "next_offset",
        "now_ms",
        "sends",
    )

    def __init__(self) -> None:
        self.now_ms = 0
        self.next_offset = 0  # offset after the last record applied
        self._campaigns: dict[str, Campaign] = {}
        self._expiries: list[tuple[int, str, str]] = []  # (expires_ms, booking_id, campaign)
        # (release_at_ms, campaign, center, day ordinal, group) of reserves; stale entries
        # are skipped
        self._releases: list[tuple[int, str, str, int, str]] = []
        # (campaign, county) whose places came back while it has a waitlist, in order;
        # always empty between records (so never in a snapshot)
        self._returned: dict[tuple[str, str], None] = {}
        # commands for other partitions (a move to another county), for the caller to
        # put on the log keyed by their ``county`` and to empty
        self.sends: list[Transfer] = []
        self._handlers: dict[type, Callable[[Any, list[Event]], None]] = {
            Book: self._book,
            Confirm: self._confirm,
            Cancel: self._cancel,
            Move: self._move,
            AddInventory: self._add_inventory,
            RemoveInventory: self._remove_inventory,
            SetReserve: self._set_reserve,
            ReportInventory: self._report_inventory,
            Tick: self._tick,
            TransferIn: self._transfer_in,
            TransferAnswer: self._transfer_answer,
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
        expiries = self._expiries
        if expiries and expiries[0][0] <= self.now_ms:
            self._expire(out)
        releases = self._releases
        if releases and releases[0][0] <= self.now_ms:
            self._release_reserves()
        if self._returned:
            self._serve_waitlists(out)
        self._handlers[type(command)](command, out)
        if self._returned:
            self._serve_waitlists(out)
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
            if b.state != HELD or b.moving is not None:  # confirmed or cancelled in time,
                continue  # or moving (expired when its move fails, see _transfer_answer)
            self._end(c, b, EXPIRED)
            out.append(Expired(b.command_id, booking_id, name, b.rev, now))

    def _end(self, c: Campaign, b: Booking, state: str) -> None:
        """Move a held or confirmed booking to a final state, freeing its pair."""
        c.counties[b.county].count(b.state, -1)
        self._release_pair(b)
        del c.active[b.identity]
        b.state = state
        b.rev += 1
        c.dirty = True
        self._places_returned(c, b.county)

    # -- Book --------------------------------------------------------------------------------

    def _book(self, cmd: Book, out: list[Event]) -> None:
        c = self._campaigns.get(cmd.campaign) or self._campaign(cmd.campaign)
        known = c.bookings.get(cmd.booking_id) or c.booking(cmd.booking_id)
        if known is not None:
            if not known.seen(cmd.command_id):
                out.append(
                    Failed(
                        cmd.command_id,
                        cmd.booking_id,
                        cmd.campaign,
                        self.now_ms,
                        RejectReason.DUPLICATE_BOOKING_ID,
                    )
                )
            return
        lines, reason = self._lines_for(c, cmd)
        pair: tuple[Slot, Slot] | None = None
        if reason is None:
            pair, reason = self._pair_for(lines, cmd)
        if pair is None and cmd.waitlist and reason in WAITLIST_REASONS:
            self._waitlist(c, cmd, out)
            return
        if pair is None:
            assert reason is not None  # no pair: the search says why
            county = c.counties.get(cmd.county)  # its name, kept once for all its Books
            c.rejected[cmd.booking_id] = (
                cmd.command_id,
                cmd.identity,
                county.name if county is not None else cmd.county,
            )
            out.append(
                Rejected(cmd.command_id, cmd.booking_id, cmd.campaign, 1, self.now_ms, reason)
            )
            return
        self._hold(c, cmd, pair, out)

    def _lines_for(self, c: Campaign, cmd: Book) -> tuple[list[Line], RejectReason | None]:
        """The lines a Book may take from, or the reason it is rejected."""
        if cmd.county not in c.counties:
            return [], RejectReason.UNKNOWN_COUNTY
        lines, reason = self._place_lines(c, cmd.county, cmd.center)
        if reason is None and cmd.identity in c.active:
            return [], RejectReason.ALREADY_BOOKED
        return lines, reason

    def _find_pair(self, lines: list[Line], wish: Wish) -> tuple[tuple[Slot, Slot] | None, bool]:
        """The best pair over ``lines`` for ``wish`` and whether any line has a place the
        wisher may take at all (any time of day). Every pair search goes through here."""
        earliest = day_ordinal(wish.earliest) if wish.earliest is not None else None
        tod = wish.time_of_day
        if tod is not None or wish.group is not None or earliest is not None:
            tod_idx = TIMES_OF_DAY.index(tod) if tod is not None else None
            return self._find_pair_for(lines, earliest, tod_idx, wish.group)
        # the plain search: every line remembers its answer while nothing changes
        now = self.now_ms
        best: tuple[Slot, Slot] | None = None
        best_key: PairKey | None = None
        any_free = False
        for line in lines:
            cached = line.plain_best
            if cached is None or cached.ver != line.ver or now >= cached.until_ms:
                cached = line.plain(now)
            if cached.head is None:
                continue
            any_free = True
            key = cached.key
            if key is not None and (best_key is None or key < best_key):
                best, best_key = cached.pair, key
        return best, any_free

    def _find_pair_for(
        self,
        lines: list[Line],
        earliest: int | None,
        tod: int | None,
        group: str | None,
        everyone: bool = False,
    ) -> tuple[tuple[Slot, Slot] | None, bool]:
        """As ``_find_pair``, from day ``earliest`` on, for a time of day (index in
        TIMES_OF_DAY) and a group whose members may take the places reserved for it
        (``everyone``: any reserved place); lines it serves for nobody's group and any
        time of day get the plain search (``Line.best_pair``)."""
        now = self.now_ms
        best: tuple[Slot, Slot] | None = None
        best_key: PairKey | None = None
        any_free = False
        for line in lines:
            member = everyone or (group is not None and group in line.center.groups)
            # None: the plain search serves this line (any time, open places only)
            view = None
            if tod is not None or member:
                view = View(tod, group if member else None, everyone)
            head = line.head_slot(now) if view is None else line.member_head(now)
            if head is None:
                continue
            any_free = any_free or view is None or line.has_place_for(now, view)
            if best_key is not None and _cannot_win(line, head, best_key):
                continue
            if view is None:
                pair = line.best_pair(now, earliest)
            else:
                pair = line.best_pair_for(now, earliest, view)
            if pair is None:
                continue
            d1, d2 = pair
            key = (d1.start_s, d1.day, line.center.center_id, line.vaccine, d2.start_s)
            if best_key is None or key < best_key:
                best, best_key = pair, key
        return best, any_free

    def _no_pair_reason(self, lines: list[Line], wish: Wish, any_free: bool) -> RejectReason:
        """Why ``wish`` found no pair over ``lines``, the most helpful reason first: a
        pair at another time of day, a pair only in places reserved for a group, free
        places without a partner in the window, nothing left."""
        earliest = day_ordinal(wish.earliest) if wish.earliest is not None else None
        search = self._find_pair_for
        if wish.time_of_day is not None and search(lines, earliest, None, wish.group)[0]:
            return RejectReason.NO_PAIR_AT_TIME_OF_DAY
        if any(line.reserved for line in lines) and search(lines, earliest, None, None, True)[0]:
            return RejectReason.RESERVED_FOR_PRIORITY_GROUP
        return RejectReason.NO_PAIR_IN_WINDOW if any_free else RejectReason.SOLD_OUT

    @staticmethod
    def _take_pair(b: Booking, pair: tuple[Slot, Slot]) -> None:
        """Give ``b`` the places of ``pair``. Every taking of places goes through here."""
        d1, d2 = pair
        # ``b`` holds no places here (new, or released just before): rsv1/rsv2 are None
        if not (d1.held_back or d2.held_back):  # nothing held back: both places are open
            d1.line.take_pair(d1, d2)  # both doses of a pair are of one line
        else:
            b.rsv1 = _take(d1, b.group)
            b.rsv2 = _take(d2, b.group)
        b.dose1, b.dose2 = d1, d2

    @staticmethod
    def _release_pair(b: Booking) -> None:
        """Give ``b``'s places back. Every release of places goes through here."""
        d1, d2 = b.pair()
        _give_back(d1, b.rsv1)
        _give_back(d2, b.rsv2)
        b.rsv1 = b.rsv2 = None

    def _hold(self, c: Campaign, cmd: Book, pair: tuple[Slot, Slot], out: list[Event]) -> None:
        expires_ms = self.now_ms + cmd.hold_s * 1000
        b = Booking.made(cmd, HELD, expires_ms)
        self._take_pair(b, pair)
        d1, d2 = pair
        c.bookings[cmd.booking_id] = b
        c.active[cmd.identity] = b
        c.counties[cmd.county].held += 1
        c.dirty = True
        heapq.heappush(self._expiries, (expires_ms, cmd.booking_id, cmd.campaign))
        out.append(
            Held(  # positional: the hottest event, and keywords cost a third more
                cmd.command_id,
                cmd.booking_id,
                cmd.campaign,
                1,  # rev
                self.now_ms,  # at_ms
                cmd.identity,
                cmd.county,
                (d1.appointment(1), d2.appointment(2)),
                expires_ms,  # hold_expires_at_ms
            )
        )

    def _pair_for(
        self, lines: list[Line], wish: Wish
    ) -> tuple[tuple[Slot, Slot] | None, RejectReason | None]:
        """The best pair over ``lines`` for ``wish``, or the reason there is none (a
        Book's rejection, a Move's failure; a waitlisted Book waits on any of
        ``WAITLIST_REASONS``)."""
        pair, any_free = self._find_pair(lines, wish)
        if pair is None:
            return None, self._no_pair_reason(lines, wish, any_free)
        return pair, None

    def _place_lines(
        self, c: Campaign, county_name: str, center_id: str | None
    ) -> tuple[list[Line], RejectReason | None]:
        """The lines of a known county (or of ``center_id`` in it), or why there are none."""
        if center_id is None:
            return c.counties[county_name].lines, None
        center = c.centers.get(center_id)
        if center is None:
            return [], RejectReason.UNKNOWN_CENTER
        if center.county != county_name:
            return [], RejectReason.NOT_ELIGIBLE
        return center.line_list, None

    # -- the waitlist ------------------------------------------------------------------------

    def _waitlist(self, c: Campaign, cmd: Book, out: list[Event]) -> None:
        b = Booking.made(cmd, WAITLISTED)
        b.want, b.hold_s = Want.of(cmd), cmd.hold_s
        c.bookings[cmd.booking_id] = b
        c.active[cmd.identity] = b
        c.counties[cmd.county].waitlist.push(b)
        c.dirty = True
        out.append(
            Waitlisted(
                cmd.command_id,
                cmd.booking_id,
                cmd.campaign,
                1,
                self.now_ms,
                cmd.identity,
                cmd.county,
            )
        )

    def _places_returned(self, c: Campaign, county: str) -> None:
        """Places of ``county`` came back or arrived: serve its waitlist before this
        record ends. Every path that makes places usable again calls this."""
        if c.counties[county].waitlist:
            self._returned[(c.name, county)] = None

    def _serve_waitlists(self, out: list[Event]) -> None:
        returned = self._returned
        while returned:
            name, county = next(iter(returned))
            del returned[(name, county)]
            c = self._campaigns[name]
            self._serve(c, c.counties[county], out)

    def _serve(self, c: Campaign, county: County, out: list[Event]) -> None:
        """Offer pairs to ``county``'s waitlist, first come first (see the module docstring)."""
        waitlist = county.waitlist
        heads = waitlist.heads()
        heapq.heapify(heads)
        while heads and self._has_free(county):
            _, want = heapq.heappop(heads)
            lines, reason = self._place_lines(c, county.name, want.center)
            pair = self._find_pair(lines, want)[0] if reason is None else None
            if pair is None:
                continue
            b = waitlist.first(want)
            waitlist.drop(b)
            self._offer(c, county, b, pair, out)
            head = waitlist.head(want)
            if head is not None:
                heapq.heappush(heads, head)

    def _has_free(self, county: County) -> bool:
        """Whether any line of ``county`` has a free place, held back or not (no search
        for a pair: only the cursors move)."""
        now = self.now_ms
        return any(line.head_slot(now) is not None or line.reserved for line in county.lines)

    def _offer(
        self, c: Campaign, county: County, b: Booking, pair: tuple[Slot, Slot], out: list[Event]
    ) -> None:
        self._take_pair(b, pair)
        b.state = HELD
        b.rev += 1
        b.expires_ms = self.now_ms + b.hold_s * 1000
        b.want, b.hold_s = None, 0
        county.held += 1
        c.dirty = True
        heapq.heappush(self._expiries, (b.expires_ms, b.booking_id, c.name))
        d1, d2 = pair
        appointments = (d1.appointment(1), d2.appointment(2))
        out.append(
            Offered(
                b.command_id, b.booking_id, c.name, b.rev, self.now_ms, appointments, b.expires_ms
            )
        )

    # -- Confirm, Cancel and Move ------------------------------------------------------------

    def _known_booking(self, cmd: Confirm | Cancel | Move, out: list[Event]) -> Booking | None:
        """The booking a Confirm/Cancel/Move names, or None when it was answered here already."""
        c = self._campaign(cmd.campaign)
        if cmd.command_id in c.orphans:
            return None
        b = c.booking(cmd.booking_id)
        if b is None:
            c.orphans.add(cmd.command_id)
            self._fail(cmd, RejectReason.UNKNOWN_BOOKING, out)
            return None
        if b.seen(cmd.command_id):
            return None
        if b.moving is not None:
            self._fail(cmd, RejectReason.MOVE_IN_PROGRESS, out)
            return None
        if b.state == MOVED_OUT:
            self._fail(cmd, RejectReason.MOVED_AWAY, out)
            return None
        return b

    def _fail(self, cmd: Confirm | Cancel | Move, reason: RejectReason, out: list[Event]) -> None:
        out.append(Failed(cmd.command_id, cmd.booking_id, cmd.campaign, self.now_ms, reason))

    def _confirm(self, cmd: Confirm, out: list[Event]) -> None:
        b = self._known_booking(cmd, out)
        if b is None:
            return
        if b.state != HELD:
            self._fail(
                cmd, RejectReason.HOLD_EXPIRED if b.state == EXPIRED else RejectReason.NOT_HELD, out
            )
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
        c = self._campaigns[cmd.campaign]
        if b.state == WAITLISTED:
            c.counties[b.county].waitlist.drop(b)
            del c.active[b.identity]
            b.state = CANCELLED
            b.rev += 1
            b.want, b.hold_s = None, 0
            c.dirty = True
        elif b.state in (HELD, CONFIRMED):
            self._end(c, b, CANCELLED)
        else:
            self._fail(cmd, RejectReason.ALREADY_FINAL, out)
            return
        out.append(Cancelled(cmd.command_id, cmd.booking_id, cmd.campaign, b.rev, self.now_ms))

    def _move(self, cmd: Move, out: list[Event]) -> None:
        b = self._known_booking(cmd, out)
        if b is None:
            return
        if b.state not in (HELD, CONFIRMED):
            self._fail(cmd, RejectReason.NOT_MOVABLE, out)
            return
        c = self._campaigns[cmd.campaign]
        old = b.county
        county = old if cmd.county is None else cmd.county
        if county not in c.counties:  # another partition's county (or no county at all)
            self._move_out(c, b, cmd)
            return
        lines, reason = self._place_lines(c, county, cmd.center)
        pair: tuple[Slot, Slot] | None = None
        if reason is None:
            wish = Want(cmd.center, cmd.earliest, b.group, cmd.time_of_day)
            pair, reason = self._pair_for(lines, wish)  # the old pair is still taken
        if pair is None:
            assert reason is not None  # no pair: the search says why
            self._fail(cmd, reason, out)
            return
        self._release_pair(b)
        self._take_pair(b, pair)
        if county != old:
            self._change_county(c, b, county)
        b.rev += 1
        c.dirty = True
        d1, d2 = pair
        expires_ms = b.expires_ms if b.state == HELD else None
        out.append(
            Moved(
                cmd.command_id,
                cmd.booking_id,
                cmd.campaign,
                b.rev,
                self.now_ms,
                (d1.appointment(1), d2.appointment(2)),
                expires_ms,
                county if county != old else None,
            )
        )
        self._places_returned(c, old)

    @staticmethod
    def _change_county(c: Campaign, b: Booking, county: str) -> None:
        """Count a held or confirmed ``b`` in ``county`` (of this partition) from now on."""
        c.counties[b.county].count(b.state, -1)
        c.counties[county].count(b.state, 1)
        b.county = county

    # -- Moves to another county (see the module docstring) ---------------------------------

    def _move_out(self, c: Campaign, b: Booking, cmd: Move) -> None:
        """Step 1 here: freeze ``b`` with its pair taken and send it to ``cmd.county``, a
        county whose inventory is not on this partition."""
        assert cmd.county is not None
        b.moving = cmd.command_id
        self.sends.append(
            TransferIn(
                cmd.command_id + ":in",
                cmd.command_id,
                b.booking_id,
                c.name,
                cmd.county,
                b.county,
                b.identity,
                b.command_id,
                MovableState(b.state),
                b.rev + 1,
                b.expires_ms if b.state == HELD else None,
                b.group,
                cmd.center,
                cmd.earliest,
                cmd.time_of_day,
            )
        )

    def _transfer_in(self, cmd: TransferIn, out: list[Event]) -> None:
        """Step 2 in the new county: take a pair for the arriving booking, answer either way."""
        c = self._campaign(cmd.campaign)
        if cmd.command_id in c.orphans:
            return
        b = c.booking(cmd.booking_id)
        if b is not None and b.seen(cmd.command_id):
            return
        pair, reason = self._arrival_pair(c, b, cmd)
        if pair is None:
            if b is None:
                c.orphans.add(cmd.command_id)
            self._answer_transfer(cmd, (), reason)
            return
        if b is None:
            b = c.bookings[cmd.booking_id] = Booking.arriving(cmd)
        else:
            b.arrive(cmd)
        self._take_pair(b, pair)
        c.active[b.identity] = b
        c.counties[b.county].count(b.state, 1)
        if b.state == HELD:
            heapq.heappush(self._expiries, (b.expires_ms, b.booking_id, c.name))
        c.dirty = True
        d1, d2 = pair
        self._answer_transfer(cmd, (d1.appointment(1), d2.appointment(2)), None)

    def _arrival_pair(
        self, c: Campaign, b: Booking | None, cmd: TransferIn
    ) -> tuple[tuple[Slot, Slot] | None, RejectReason | None]:
        """The pair an arriving booking takes here, or why there is none."""
        if cmd.county not in c.counties:  # also when it came back to where it was sent from
            return None, RejectReason.UNKNOWN_COUNTY
        if b is not None and b.state != MOVED_OUT:
            return None, RejectReason.DUPLICATE_BOOKING_ID
        lines, reason = self._place_lines(c, cmd.county, cmd.center)
        if reason is not None:
            return None, reason
        if cmd.identity in c.active:
            return None, RejectReason.ALREADY_BOOKED
        expires_ms = cmd.hold_expires_at_ms
        if cmd.state == HELD and expires_ms is not None and expires_ms <= self.now_ms:
            return None, RejectReason.HOLD_EXPIRED
        return self._pair_for(lines, Want(cmd.center, cmd.earliest, cmd.group, cmd.time_of_day))

    def _answer_transfer(
        self, cmd: TransferIn, appointments: tuple[Appointment, ...], reason: RejectReason | None
    ) -> None:
        self.sends.append(
            TransferAnswer(
                cmd.move_id + ":answer",
                cmd.move_id,
                cmd.booking_id,
                cmd.campaign,
                cmd.origin,
                cmd.county,
                appointments,
                reason,
            )
        )

    def _transfer_answer(self, cmd: TransferAnswer, out: list[Event]) -> None:
        """Step 3 back here: give the old pair back and answer the Move, or unfreeze."""
        c = self._campaigns.get(cmd.campaign)
        b = c.bookings.get(cmd.booking_id) if c is not None else None
        if c is None or b is None or b.moving != cmd.move_id:
            return  # a repetition: this move was answered already
        b.moving = None
        now = self.now_ms
        if cmd.reason is not None:
            out.append(Failed(cmd.move_id, b.booking_id, c.name, now, cmd.reason))
            if b.state == HELD and b.expires_ms <= now:  # ran out while frozen
                self._end(c, b, EXPIRED)
                out.append(Expired(b.command_id, b.booking_id, c.name, b.rev, now))
            return
        expires_ms = b.expires_ms if b.state == HELD else None
        self._end(c, b, MOVED_OUT)
        b.dose1 = b.dose2 = None
        out.append(
            Moved(
                cmd.move_id,
                b.booking_id,
                c.name,
                b.rev,
                now,
                cmd.appointments,
                expires_ms,
                cmd.target,
            )
        )

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
        self._places_returned(c, cmd.county)

    @staticmethod
    def _inventory_refusal(c: Campaign, cmd: AddInventory) -> RejectReason | None:
        center = c.centers.get(cmd.center)
        if center is not None and center.county != cmd.county:
            return RejectReason.CENTER_MISMATCH
        window = c.windows.get(cmd.vaccine)
        if window is not None and window != (cmd.min_days, cmd.max_days):
            return RejectReason.WINDOW_MISMATCH
        return None

    # -- RemoveInventory ---------------------------------------------------------------------

    def _remove_inventory(self, cmd: RemoveInventory, out: list[Event]) -> None:
        c = self._campaign(cmd.campaign)
        if cmd.command_id in c.inventory_commands:
            return
        c.inventory_commands.add(cmd.command_id)
        slots, reason = self._slots_to_remove(c, cmd)
        if reason is not None:
            out.append(
                InventoryRemoved(
                    cmd.command_id, cmd.campaign, cmd.center, self.now_ms, False, 0, reason
                )
            )
            return
        for s in slots:
            s.line.remove(s)
        c.dirty = True
        out.append(
            InventoryRemoved(
                cmd.command_id, cmd.campaign, cmd.center, self.now_ms, True, len(slots)
            )
        )

    @staticmethod
    def _slots_to_remove(
        c: Campaign, cmd: RemoveInventory
    ) -> tuple[list[Slot], RejectReason | None]:
        """The distinct slots ``cmd`` names, or why none may be removed (all or nothing)."""
        center = c.centers.get(cmd.center)
        if center is None:
            return [], RejectReason.UNKNOWN_CENTER
        if center.county != cmd.county:
            return [], RejectReason.CENTER_MISMATCH
        line = center.lines.get(cmd.vaccine)
        slots: list[Slot] = []
        for start_s in dict.fromkeys(cmd.starts):
            s = line.slot_at(start_s) if line is not None else None
            if s is None:
                return [], RejectReason.UNKNOWN_SLOT
            slots.append(s)
        if any(s.used for s in slots):
            return [], RejectReason.SLOT_IN_USE
        return slots, None

    # -- priority reserves -------------------------------------------------------------------

    def _set_reserve(self, cmd: SetReserve, out: list[Event]) -> None:
        c = self._campaign(cmd.campaign)
        if cmd.command_id in c.inventory_commands:
            return
        c.inventory_commands.add(cmd.command_id)
        center = c.centers.get(cmd.center)
        reason = (
            RejectReason.UNKNOWN_CENTER if center is None else self._reserve_refusal(center, cmd)
        )
        if center is None or reason is not None:
            out.append(
                ReserveSet(cmd.command_id, cmd.campaign, cmd.center, self.now_ms, False, 0, reason)
            )
            return
        day = day_ordinal(cmd.day)
        held, _ = center.reserve(
            day, cmd.group, cmd.share_pct, cmd.mode, cmd.release_at_ms, self.now_ms
        )
        if cmd.share_pct:
            release = (cmd.release_at_ms, c.name, center.center_id, day, cmd.group)
            heapq.heappush(self._releases, release)
        c.dirty = True
        out.append(ReserveSet(cmd.command_id, cmd.campaign, cmd.center, self.now_ms, True, held))
        # places may have opened, or become usable for the new group's members
        self._places_returned(c, center.county)

    def _reserve_refusal(self, center: Center, cmd: SetReserve) -> RejectReason | None:
        if center.county != cmd.county:
            return RejectReason.CENTER_MISMATCH
        if cmd.share_pct and cmd.release_at_ms <= self.now_ms:
            return RejectReason.RELEASE_PASSED
        if cmd.share_pct + center.other_shares_pct(day_ordinal(cmd.day), cmd.group) > 100:
            return (
                RejectReason.RESERVE_SHARES_OVER_100
            )  # the groups' reserves of a day share its places
        return None

    def _release_reserves(self) -> None:
        """Open the unused places of every reserve whose release time the log clock reached,
        in order of (release time, campaign, center, day, group); other groups' reserves
        of the same day stay."""
        heap = self._releases
        now = self.now_ms
        while heap and heap[0][0] <= now:
            at_ms, name, center_id, day, group = heapq.heappop(heap)
            c = self._campaigns[name]
            center = c.centers[center_id]
            rsv = center.reserve_of(day, group)
            if rsv is None or rsv.release_at_ms != at_ms:  # removed, replaced or moved
                continue
            center.release(day, group, now)
            c.dirty = True
            self._places_returned(c, center.county)

    # -- ReportInventory (reads only) --------------------------------------------------------

    def _report_inventory(self, cmd: ReportInventory, out: list[Event]) -> None:
        """Answer with the county's places per center and day. Nothing changes (a campaign
        not known here is not made, the command id is not remembered)."""
        c = self._campaigns.get(cmd.campaign)
        county = c.counties.get(cmd.county) if c is not None else None
        if c is None or county is None:
            report = InventoryReport(
                cmd.command_id,
                cmd.campaign,
                cmd.county,
                self.now_ms,
                {},
                RejectReason.UNKNOWN_COUNTY,
            )
        else:
            report = InventoryReport(
                cmd.command_id, cmd.campaign, cmd.county, self.now_ms, self._by_day(c, county)
            )
        out.append(report)

    def _by_day(self, c: Campaign, county: County) -> dict[str, dict[str, DayInventory]]:
        """Places of each center of ``county`` per day, summed over its slots. Slots know
        how many places are used, not by whom: held and confirmed come from one pass over
        the campaign's active bookings (those with a pair hold two places)."""
        booked: Counter[tuple[str, int, str]] = Counter()  # (center, day, state) -> places
        # a county with nothing held or confirmed is spared the pass (its cost: the
        # campaign's active bookings, in the partition's one writer)
        for b in c.active.values() if county.held or county.confirmed else ():
            if b.dose1 is None or b.dose2 is None:  # waitlisted
                continue
            for s in (b.dose1, b.dose2):
                center = s.line.center
                if center.county == county.name:
                    booked[center.center_id, s.day, b.state] += 1
        now = self.now_ms
        report: dict[str, dict[str, DayInventory]] = {}
        for center_id in sorted(county.centers):
            days: dict[int, tuple[int, int, int]] = {}  # day -> (capacity, free, reserved)
            for line in county.centers[center_id].line_list:
                for day, capacity, free, reserved in line.day_places(now):
                    cap0, free0, reserved0 = days.get(day, (0, 0, 0))
                    days[day] = (cap0 + capacity, free0 + free, reserved0 + reserved)
            report[center_id] = {
                iso_day(day): DayInventory(
                    capacity,
                    free,
                    booked[center_id, day, HELD],
                    booked[center_id, day, CONFIRMED],
                    reserved,
                )
                for day, (capacity, free, reserved) in sorted(days.items())
            }
        return report

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
        """Pairs left per county and per vaccine in it (each line is one center's vaccine,
        so a county's figure of a vaccine is the sum over its lines of that vaccine)."""
        counties: dict[str, CountySummary] = {}
        now = self.now_ms
        for name in sorted(c.counties):
            county = c.counties[name]
            pairs = free = reserved = 0
            by_vaccine: dict[str, int] = {}
            for line in county.lines:
                n = line.pairs_left(now)
                pairs += n
                by_vaccine[line.vaccine] = by_vaccine.get(line.vaccine, 0) + n
                free += line.free
                reserved += line.reserved
            counties[name] = CountySummary(
                pairs,
                free,
                county.held,
                county.confirmed,
                len(county.waitlist),
                reserved,
                dict(sorted(by_vaccine.items())),
            )
        return Summary(c.name, now, counties)

    # -- read-only views ---------------------------------------------------------------------

    def summaries(self) -> list[Summary]:
        """The current summary of every campaign with inventory here, by campaign name."""
        return [
            self._summary(self._campaigns[name])
            for name in sorted(self._campaigns)
            if self._campaigns[name].counties
        ]

    def slot_usage(self) -> Iterator[SlotUsage]:
        """Every slot with its capacity, places used (held or confirmed) and held back."""
        for name, c in self._campaigns.items():
            for center in c.centers.values():
                for line in center.line_list:
                    for s in line.slots:
                        yield SlotUsage(name, s.slot_id, s.capacity, s.used, s.held_back)

    def bookings(self) -> Iterator[BookingView]:
        """Every booking answered so far, in any state."""
        for name, c in self._campaigns.items():
            for booking_id, (_, identity, county) in c.rejected.items():
                yield BookingView(name, booking_id, identity, county, REJECTED, 1, (), False)
            for b in c.bookings.values():
                slots = (b.dose1.slot_id, b.dose2.slot_id) if b.dose1 and b.dose2 else ()
                yield BookingView(
                    name,
                    b.booking_id,
                    b.identity,
                    b.county,
                    b.state,
                    b.rev,
                    slots,
                    b.moving is not None,
                )
