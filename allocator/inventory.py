"""Slots of a campaign's inventory, arranged so that a pair is found without scanning.

A *line* is every slot of one vaccine at one center: the unit inside which a
pair is formed (dose 1 on day d, dose 2 on a day in [d + min_days, d + max_days]).
A line keeps its slots twice: in one list by start time (for dose 1) and grouped
by local day (for dose 2), each with a cursor before which every slot is
unusable, so a search starts where the free places are.

A slot whose start is not after the log clock is *retired*: it can never be
booked again (the clock only moves forward), and its free places no longer
count as free. Retirement is applied lazily by ``Line.retire(now_ms)``, which
every reading method calls first.

Time of day. Every slot knows the part of its local day it starts in (an index
in ``TIMES_OF_DAY``: morning, afternoon, evening), read once from the hour of
its ISO start. Each day keeps its slots once more per part (``Day.parts``),
with cursors of their own, so a search with a preference reads only that part
of each day.

Priority reserves. A ``Reserve`` holds back, in every slot of one center on one
day, floor(capacity * share_pct / 100) places for one group until it is
released. A center's day may have a reserve for each of several groups (their
shares sum to at most 100); each is set, changed, removed and released on its
own. A slot's ``held_back`` places are free places that only members of some
group of the day may take (the sum over groups); ``limit = capacity - held_back``
is how far anybody may fill it with open places. Per group, a slot's ``Share``
(``Slot.shares``, None on a slot without reserves) counts the places held back
for that group (``held``) and its members' places taken out of its reserve
(``used``); a member of ``g`` may fill the slot up to ``limit + held`` of ``g``.
Lines and days count ``free`` places (anybody may take them) and ``reserved``
ones (held back, for any group) separately. The cursors ``head`` and
``ptr`` pass slots that only a member could still use; ``mhead`` and ``mptr``
pass slots that nobody can use (a day's counters tell whether it is worth
reading at all). The search without a preference and without
membership (``best_pair``) reads only ``free``, ``limit``, ``head`` and ``ptr``:
it costs what it cost before reserves existed. Every other search is made for a
``View``: a time of day, and the group whose members may use held-back places.

Remembered answers. Every change of a line's places bumps its ``ver``; the plain
search without ``earliest`` (``Line.plain``) is remembered with the ``ver`` and
the start of the next slot to retire, and answered again without searching while
both hold. Taking the remembered pair keeps it remembered when both its slots
still have a place (``Line.take_pair``). Slots build their appointments once and
keep them while they have a place left. All of it is derived: nothing of it is in
a snapshot.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from itertools import pairwise
from types import MappingProxyType
from typing import NamedTuple

from allocator.errors import InvariantError
from schemas.commands import SlotSpec
from schemas.events import Appointment
from schemas.states import ReserveMode, time_of_day_index

# The order a member's place is counted in (see ``allocator.core._take``), as plain strings:
OVER_AND_ABOVE = ReserveMode.OVER_AND_ABOVE.value  # open places first, then the reserve
MINIMUM_GUARANTEE = ReserveMode.MINIMUM_GUARANTEE.value  # the reserve first, then open places


def day_ordinal(iso_day: str) -> int:
    """The proleptic Gregorian ordinal of an ISO date: days compare as integers."""
    return dt.date.fromisoformat(iso_day).toordinal()


def iso_day(ordinal: int) -> str:
    """The ISO date of a day ordinal (``day_ordinal`` back)."""
    return dt.date.fromordinal(ordinal).isoformat()


def time_of_day_of(start: str) -> int:
    """The index in ``TIMES_OF_DAY`` of a slot starting at ``start`` (ISO, local with offset)."""
    return time_of_day_index(dt.datetime.fromisoformat(start).hour)


class Reserve:
    """Places of one center on one day held back for ``group`` until ``release_at_ms``."""

    __slots__ = ("day", "group", "mode", "release_at_ms", "share_pct")

    def __init__(self, day: int, group: str, share_pct: int, mode: str, release_at_ms: int):
        self.day = day
        self.group = group
        self.share_pct = share_pct
        self.mode = mode
        self.release_at_ms = release_at_ms

    def places(self, capacity: int) -> int:
        """The reserve's share of a slot of ``capacity`` places."""
        return capacity * self.share_pct // 100


# the reserves of a day without any (never changed: a center's days with reserves get their own)
NO_RESERVES: Mapping[str, Reserve] = MappingProxyType({})


class Share:
    """One group's part of one slot: places ``held`` back for the group and places its
    members ``used`` out of the group's reserve (they stay counted against it)."""

    __slots__ = ("held", "used")

    def __init__(self) -> None:
        self.held = 0
        self.used = 0


class View(NamedTuple):
    """Who searches: a time of day (index in ``TIMES_OF_DAY``; None for any) and a group.

    On a day with a reserve for ``group`` the searcher is a member and may take the
    places held back for that group too (never another group's); ``everyone`` makes
    the searcher a member of every group on every day (to tell whether a pair exists
    at all, reserved places included).
    """

    tod: int | None
    group: str | None
    everyone: bool = False

    def member(self, day: Day) -> bool:
        return self.everyone or self.group in day.rsvs


class Center:
    """A vaccination center of a campaign, in exactly one county."""

    __slots__ = ("center_id", "county", "groups", "line_list", "lines", "name", "reserves")

    def __init__(self, center_id: str, name: str, county: str) -> None:
        self.center_id = center_id
        self.name = name
        self.county = county
        self.lines: dict[str, Line] = {}  # vaccine -> line
        self.line_list: list[Line] = []  # the lines ordered by vaccine id
        # day ordinal -> group -> the group's reserve of that day (no empty dicts)
        self.reserves: dict[int, dict[str, Reserve]] = {}
        self.groups: dict[str, int] = {}  # group -> days with a reserve for it

    def line(self, vaccine: str, min_days: int, max_days: int) -> Line:
        """The center's line for ``vaccine``, made on first use."""
        line = self.lines.get(vaccine)
        if line is None:
            line = Line(self, vaccine, min_days, max_days)
            self.lines[vaccine] = line
            self.line_list = [self.lines[v] for v in sorted(self.lines)]
        return line

    def day_reserves(self, day: int) -> Mapping[str, Reserve]:
        """The reserves of ``day`` by group."""
        return self.reserves.get(day, NO_RESERVES)

    def reserve_of(self, day: int, group: str) -> Reserve | None:
        """The reserve of ``group`` on ``day``, if any."""
        return self.reserves.get(day, NO_RESERVES).get(group)

    def other_shares_pct(self, day: int, group: str) -> int:
        """The shares of ``day``'s reserves for groups other than ``group``, summed."""
        return sum(r.share_pct for g, r in self.day_reserves(day).items() if g != group)

    def reserve(
        self, day: int, group: str, share_pct: int, mode: str, release_at_ms: int, now_ms: int
    ) -> tuple[int, int]:
        """Set (share 0: remove) the reserve of ``group`` on ``day``, leaving the other
        groups' reserves alone; returns (places held back for ``group``, places given
        to everybody) in slots after ``now_ms``. Setting it again for the same group
        changes it in place: the places its members took stay counted against it.
        The caller keeps the shares of a day at most 100 in sum."""
        old = self.reserve_of(day, group)
        if old is not None and share_pct:
            old.share_pct, old.mode, old.release_at_ms = share_pct, mode, release_at_ms
            return self._apply(day, group, old, True, now_ms)
        if old is not None:
            self._forget(old)
        rsv = None
        if share_pct:
            rsv = Reserve(day, group, share_pct, mode, release_at_ms)
            self.restore_reserve(rsv)
        return self._apply(day, group, rsv, False, now_ms)

    def release(self, day: int, group: str, now_ms: int) -> int:
        """The reserve of ``group`` on ``day`` ends: its unused places go to everybody;
        returns how many (in slots after ``now_ms``). Other groups keep theirs."""
        old = self.reserve_of(day, group)
        if old is not None:
            self._forget(old)
        return self._apply(day, group, None, False, now_ms)[1]

    def restore_reserve(self, rsv: Reserve) -> None:
        """Add a reserve (read from a snapshot: before the center's lines are made)."""
        self.reserves.setdefault(rsv.day, {})[rsv.group] = rsv
        self.groups[rsv.group] = self.groups.get(rsv.group, 0) + 1

    def _forget(self, rsv: Reserve) -> None:
        rsvs = self.reserves[rsv.day]
        del rsvs[rsv.group]
        if not rsvs:
            del self.reserves[rsv.day]
        left = self.groups[rsv.group] - 1
        if left:
            self.groups[rsv.group] = left
        else:
            del self.groups[rsv.group]

    def _apply(
        self, day: int, group: str, rsv: Reserve | None, keep: bool, now_ms: int
    ) -> tuple[int, int]:
        held = opened = 0
        for line in self.line_list:
            line.retire(now_ms)
            h, o = line.set_reserve(day, group, rsv, keep)
            held += h
            opened += o
        return held, opened


class Slot:
    """One bookable time: ``capacity`` places, ``used`` of them held or confirmed,
    ``held_back`` of the free ones reserved for the day's groups (per group: ``shares``)."""

    __slots__ = (
        "_appointments",
        "bucket",
        "capacity",
        "day",
        "day_idx",
        "held_back",
        "limit",
        "line",
        "order_idx",
        "part",
        "part_idx",
        "retired",
        "shares",
        "slot_id",
        "start",
        "start_ms",
        "start_s",
        "tod",
        "used",
    )

    bucket: Day  # set by Line._reindex, before the slot is ever used
    part: Part  # the bucket's part of the slot's time of day, likewise

    def __init__(self, line: Line, day: int, start: str, start_s: int) -> None:
        self.line = line
        self.slot_id = f"{line.center.center_id}/{line.vaccine}/{start}"
        self.day = day  # local day as a date ordinal
        self.start = start
        self.start_s = start_s
        self.start_ms = start_s * 1000
        self.tod = time_of_day_of(start)  # index in TIMES_OF_DAY
        self.capacity = 0
        self.used = 0
        self.held_back = 0  # free places only members of the day's groups may take (sum)
        self.limit = 0  # capacity - held_back: anybody may take a place while used < limit
        # group -> its places held back and used out of its reserve (None: no group has any)
        self.shares: dict[str, Share] | None = None
        self.retired = False
        self.order_idx = 0  # index in line.slots
        self.day_idx = 0  # index in bucket.slots
        self.part_idx = 0  # index in part.slots
        # (dose 1, dose 2) appointments of this slot, built on first use: every field
        # they read is fixed once the slot exists (a cache, not state)
        self._appointments: tuple[Appointment, Appointment] | None = None

    def set_places(self, capacity: int, held_back: int) -> None:
        self.capacity = capacity
        self.held_back = held_back
        self.limit = capacity - held_back

    def held_for(self, group: str) -> int:
        """The places held back for ``group``."""
        shares = self.shares
        if shares is None:
            return 0
        share = shares.get(group)
        return share.held if share is not None else 0

    def share(self, group: str) -> Share:
        """``group``'s share of the slot, made on first use."""
        shares = self.shares
        if shares is None:
            shares = self.shares = {}
        share = shares.get(group)
        if share is None:
            share = shares[group] = Share()
        return share

    def appointment(self, dose: int) -> Appointment:
        """The slot's appointment for ``dose``: built once and kept while the slot has a
        place left, for the next bookings of it. A full slot lets them go: a campaign
        booked out would otherwise keep two appointments per slot for events it seldom
        makes again (about 430 bytes per pair held: ``loadtest.bench_allocator_memory``
        shows 685 MiB less at 1.68 million pairs)."""
        appointments = self._appointments
        if appointments is None:
            center = self.line.center
            args = (center.center_id, center.name, self.line.vaccine, self.start, self.slot_id)
            appointments = (Appointment(1, *args), Appointment(2, *args))
        self._appointments = appointments if self.used < self.capacity else None
        return appointments[dose - 1]


def _next_slot(slots: list[Slot], i: int, held_back_too: bool) -> int:
    """The index of the first slot from ``i`` on with a place anybody may take (the next
    value of a cursor ``ptr``) or, ``held_back_too``, with any free place (of ``mptr``);
    ``len(slots)`` if none."""
    n = len(slots)
    while i < n:
        s = slots[i]
        if s.used < (s.capacity if held_back_too else s.limit) and not s.retired:
            return i
        i += 1
    return n


def _rewind(d: Day | Part, i: int) -> None:
    """Move the cursors of ``d`` back to its slot ``i`` if they are past it."""
    if i < d.ptr:
        d.ptr = i
    if i < d.mptr:
        d.mptr = i


class Part:
    """The slots of one line on one local day that start in one time of day, by start time.

    Without counters: taking a place touches no part, and the cursors alone keep
    each search's scan short (they only move back when a place comes back).
    """

    __slots__ = ("mptr", "ptr", "slots")

    def __init__(self, slots: list[Slot]) -> None:
        self.slots = slots
        self.ptr = 0  # slots[:ptr] have no place anybody may take, or are retired
        self.mptr = 0  # slots[:mptr] have no free place at all, or are retired

    def first_free(self) -> Slot | None:
        """The earliest slot with a place anybody may take, if any."""
        slots = self.slots
        i = self.ptr = _next_slot(slots, self.ptr, False)
        return slots[i] if i < len(slots) else None

    def first_any(self) -> Slot | None:
        """The earliest slot with any free place (held back or not), if any."""
        slots = self.slots
        i = self.mptr = _next_slot(slots, self.mptr, True)
        return slots[i] if i < len(slots) else None

    def first_member(self, group: str) -> Slot | None:
        """The earliest slot with an open place or one held back for ``group``, if any."""
        return _first_member(self, group)


def _first_member(d: Day | Part, group: str) -> Slot | None:
    """The earliest slot of ``d`` with an open place or one held back for ``group``.

    ``mptr`` only passes slots without any free place (it serves every group); the
    slots after it that only another group could use are read, not skipped.
    """
    slots = d.slots
    i = d.mptr = _next_slot(slots, d.mptr, True)
    n = len(slots)
    while i < n:
        s = slots[i]
        if not s.retired and s.used < s.limit + s.held_for(group):
            return s
        i += 1
    return None


class Day:
    """The slots of one line on one local day, by start time."""

    __slots__ = ("free", "mptr", "ordinal", "parts", "ptr", "reserved", "rsvs", "slots")

    def __init__(self, ordinal: int, slots: list[Slot]) -> None:
        self.ordinal = ordinal
        self.slots = slots
        self.free = 0  # free places anybody may take, in slots that are not retired
        self.reserved = 0  # held-back places in slots that are not retired
        self.ptr = 0  # slots[:ptr] have no place anybody may take, or are retired
        self.mptr = 0  # slots[:mptr] have no free place at all, or are retired
        self.rsvs: Mapping[str, Reserve] = NO_RESERVES  # the center's reserves of this day
        self.parts: tuple[Part, ...] = ()  # the slots by time of day (TIMES_OF_DAY order)

    def first_free(self) -> Slot | None:
        """The earliest slot of the day with a place anybody may take, if any."""
        if not self.free:
            return None
        slots = self.slots
        i = self.ptr = _next_slot(slots, self.ptr, False)
        return slots[i] if i < len(slots) else None

    def first_any(self) -> Slot | None:
        """The earliest slot of the day with any free place (held back or not), if any."""
        if not (self.free or self.reserved):
            return None
        slots = self.slots
        i = self.mptr = _next_slot(slots, self.mptr, True)
        return slots[i] if i < len(slots) else None

    def first_member(self, group: str) -> Slot | None:
        """The earliest slot of the day with an open place or one held back for
        ``group``, if any."""
        return _first_member(self, group)

    def first_for(self, view: View) -> Slot | None:
        """The earliest slot of the day usable in ``view``, if any."""
        rsvs = self.rsvs
        group = view.group
        member = view.everyone or group in rsvs
        if not (self.free or (member and self.reserved)):
            return None
        d: Day | Part = self if view.tod is None else self.parts[view.tod]
        if not member:
            return d.first_free()
        if view.everyone or len(rsvs) == 1 or group is None:  # every held-back place is usable
            return d.first_any()
        return d.first_member(group)


PairKey = tuple[int, int, str, str, int]  # dose-1 start_s and day, center, vaccine, dose-2 start_s


class PlainBest:
    """A line's remembered plain answer (see ``Line.plain``): ``head`` (``head_slot``),
    ``pair`` (``best_pair`` without earliest) and its ``key``, right while the line's
    ``ver`` is ``ver`` and the clock is before ``until_ms``. A cache, not state."""

    __slots__ = ("head", "key", "pair", "until_ms", "ver")

    def __init__(
        self,
        ver: int,
        until_ms: int,
        head: Slot | None,
        pair: tuple[Slot, Slot] | None,
        key: PairKey | None,
    ) -> None:
        self.ver = ver
        self.until_ms = until_ms
        self.head = head
        self.pair = pair
        self.key = key


_NEVER = 1 << 62  # a clock bound past any timestamp


def _start_s(slot: Slot) -> int:
    return slot.start_s


class Line:
    """All slots of one vaccine at one center, with cursors for fast search."""

    __slots__ = (
        "_barren",
        "_barren_for",
        "_by_start_s",
        "_gains",
        "center",
        "days",
        "free",
        "head",
        "max_days",
        "mhead",
        "min_days",
        "monotone",
        "ordinals",
        "past",
        "plain_best",
        "reserved",
        "slots",
        "vaccine",
        "ver",
    )

    def __init__(self, center: Center, vaccine: str, min_days: int, max_days: int) -> None:
        self.center = center
        self.vaccine = vaccine
        self.min_days = min_days
        self.max_days = max_days
        self.slots: list[Slot] = []  # by start_s (unique within a line)
        self.days: list[Day] = []  # by ordinal
        self.ordinals: list[int] = []  # days[i].ordinal, for bisection
        self._by_start_s: dict[int, Slot] = {}
        self.head = 0  # slots[:head] have no place anybody may take, or are retired
        self.mhead = 0  # slots[:mhead] have no free place at all, or are retired
        self.past = 0  # slots[:past] are retired
        self.free = 0  # free places anybody may take, in slots that are not retired
        self.reserved = 0  # held-back places in slots that are not retired
        # True when every slot of a day starts before every slot of the next day:
        # then the first day with a free place holds the earliest free slot.
        self.monotone = True
        # Taking places or letting time pass never creates a pair; only places coming
        # back, being added or changing category do. ``_gains`` counts those; while it
        # is unchanged, a search that found no pair for dose 1 from day ``_barren`` on
        # still finds none (``_barren_for``: the same per View; a cache, not state).
        self._gains = 0
        self._barren: tuple[int, int] | None = None  # (_gains then, first day searched)
        self._barren_for: dict[View, tuple[int, int]] = {}
        # Every change of places or counters of a non-retired slot bumps ``ver``.
        # ``_plain`` remembers the plain search's answer (see ``plain``) with the
        # ``ver`` and the clock bound it holds for (a cache, not state).
        self.ver = 0
        self.plain_best: PlainBest | None = None

    # -- changing inventory --------------------------------------------------------------

    def add(self, specs: Iterable[SlotSpec]) -> None:
        """Add slots; a slot with a known ``start_s`` gets its capacity raised instead."""
        fresh: set[int] = set()  # start_s of slots made here, not yet indexed
        for spec in specs:
            slot = self._by_start_s.get(spec.start_s)
            if slot is None:
                slot = Slot(self, day_ordinal(spec.day), spec.start, spec.start_s)
                self._by_start_s[spec.start_s] = slot
                fresh.add(spec.start_s)
                slot.capacity = spec.capacity
            elif spec.start_s in fresh:
                slot.capacity += spec.capacity
            elif spec.capacity:
                self._add_capacity(slot, spec.capacity)
        if fresh:
            center = self.center
            for start_s in fresh:
                slot = self._by_start_s[start_s]
                rsvs = center.day_reserves(slot.day)
                held = 0
                for group in sorted(rsvs):
                    share = slot.share(group)
                    share.held = min(rsvs[group].places(slot.capacity), slot.capacity - held)
                    held += share.held
                slot.set_places(slot.capacity, held)
            self._reindex()

    def _add_capacity(self, slot: Slot, places: int) -> None:
        """Raise a known slot's capacity; each of the day's reserves gets its share of it
        (groups in name order, never more than the places added and left open)."""
        added = 0
        rsvs = slot.bucket.rsvs
        capacity = slot.capacity + places
        room = capacity - slot.used - slot.held_back
        for group in sorted(rsvs):
            rsv = rsvs[group]
            share = slot.share(group)
            whole = rsv.places(capacity)
            grown = whole - rsv.places(slot.capacity)
            held = max(0, min(grown, whole - share.used - share.held, room))
            share.held += held
            room -= held
            added += held
        slot.set_places(capacity, slot.held_back + added)
        if not slot.retired:
            self._count(slot, places - added, added)
            self._reopen(slot)

    def _reindex(self) -> None:
        """Rebuild the orderings and counters after new slots came in."""
        self._gains += 1
        self.ver += 1
        self.slots = sorted(self._by_start_s.values(), key=_start_s)
        by_day: dict[int, list[Slot]] = {}
        for i, s in enumerate(self.slots):
            s.order_idx = i
            by_day.setdefault(s.day, []).append(s)
        self.days = [Day(d, by_day[d]) for d in sorted(by_day)]
        self.ordinals = [d.ordinal for d in self.days]
        self.free = self.reserved = 0
        center = self.center
        for day in self.days:
            day.rsvs = center.day_reserves(day.ordinal)
            self._index_day(day)
            self.free += day.free
            self.reserved += day.reserved
        self.head = self.mhead = 0
        self.past = 0
        self.monotone = all(
            a.slots[-1].start_s < b.slots[0].start_s for a, b in pairwise(self.days)
        )

    @staticmethod
    def _index_day(day: Day) -> None:
        """Split ``day`` into its parts by time of day and count its places."""
        by_part: tuple[list[Slot], ...] = ([], [], [])
        for j, s in enumerate(day.slots):
            s.day_idx = j
            s.bucket = day
            by_part[s.tod].append(s)
            if not s.retired:
                day.free += s.limit - s.used
                day.reserved += s.held_back
        day.parts = tuple(Part(slots) for slots in by_part)
        for part in day.parts:
            for j, s in enumerate(part.slots):
                s.part_idx = j
                s.part = part

    def set_reserve(self, day: int, group: str, rsv: Reserve | None, keep: bool) -> tuple[int, int]:
        """Make ``rsv`` (None: none) ``group``'s reserve of the line's slots on ``day``;
        returns (places now held back for ``group``, places given to everybody).

        Each slot holds back the group's share less the places its members took out
        of the reserve (``keep``: the same reserve, changed; otherwise none are
        counted), but never a place that is used or held back for another group.
        Places no longer held back go to everybody.
        """
        k = bisect_left(self.ordinals, day)
        if k == len(self.days) or self.ordinals[k] != day:
            return 0, 0
        bucket = self.days[k]
        bucket.rsvs = self.center.day_reserves(day)
        self.ver += 1
        held = opened = 0
        for s in bucket.slots:
            shares = s.shares
            share = shares.get(group) if shares is not None else None
            before = share.held if share is not None else 0
            now = 0
            if rsv is None:
                if shares is not None and share is not None:
                    del shares[group]
                    if not shares:
                        s.shares = None
            else:
                share = s.share(group)
                if not keep:
                    share.used = 0
                wanted = rsv.places(s.capacity) - share.used
                now = share.held = max(0, min(wanted, s.capacity - s.used - s.held_back + before))
            change = now - before
            s.set_places(s.capacity, s.held_back + change)
            if s.retired:
                continue
            self._count(s, -change, change)
            held += now
            if change < 0:
                opened -= change
                self._reopen(s)
        self._gains += 1  # the group's members may now use places they could not
        return held, opened

    def take(self, slot: Slot) -> None:
        """Use one place of ``slot`` that anybody may take (for a hold)."""
        if slot.used >= slot.limit or slot.retired:
            raise InvariantError(f"slot {slot.slot_id} has no usable place to take")
        slot.used += 1
        self.free -= 1
        self.ver += 1
        slot.bucket.free -= 1

    def take_pair(self, d1: Slot, d2: Slot) -> None:
        """``take`` a place of both slots of a pair of this line.

        When the pair is the remembered plain answer (``plain``) and both slots keep a
        place anybody may take, every slot usable before stays usable: the answer
        stays right and stays remembered.
        """
        if d1.line is not self or d2.line is not self:
            raise InvariantError(f"pair {d1.slot_id}, {d2.slot_id} is not of one line")
        cached = self.plain_best
        # ``take`` twice, inlined: the hottest path of a Book
        if d1.used >= d1.limit or d1.retired or d2.used >= d2.limit or d2.retired:
            raise InvariantError(f"pair {d1.slot_id}, {d2.slot_id} has no usable place to take")
        d1.used += 1
        d1.bucket.free -= 1
        d2.used += 1
        d2.bucket.free -= 1
        self.free -= 2
        self.ver += 2
        if (
            cached is not None
            and cached.ver == self.ver - 2
            and (pair := cached.pair) is not None
            and pair[0] is d1
            and pair[1] is d2
        ):
            if d1.used < d1.limit and d2.used < d2.limit:
                cached.ver = self.ver
            elif self.monotone:
                self._plain_after_full(cached, d1)

    def _plain_after_full(self, cached: PlainBest, d1: Slot) -> None:
        """Carry the remembered plain answer past the taking of its pair (``d1``, d2)
        that left one of them full, without a search from the head, when it can.

        Slots before ``d1`` are full or lonely (no partner in their window), and places
        taken make no partner; slots of ``d1``'s day before it are full (they would share
        its partner and come first). So the earliest usable slot of the day, if it has a
        partner, makes the next best pair, in a line whose days in order are slots in
        order (``monotone``). Otherwise the answer is left stale for ``plain`` to redo.
        """
        day = d1.day
        first = d1.bucket.first_free()
        if first is None:
            return
        other = self.partner(day)
        if other is None:
            return
        head = cached.head
        if head is d1:
            head = first
        cached.ver = self.ver
        cached.head = head
        cached.pair = (first, other)
        cached.key = (first.start_s, day, self.center.center_id, self.vaccine, other.start_s)

    def take_reserved(self, slot: Slot, group: str) -> None:
        """Use one place of ``slot`` held back for ``group`` (for a member of it)."""
        shares = slot.shares
        share = shares.get(group) if shares is not None else None
        if share is None or share.held <= 0 or slot.retired:
            raise InvariantError(f"slot {slot.slot_id} has no place reserved for {group} to take")
        slot.used += 1
        share.held -= 1
        share.used += 1
        slot.set_places(slot.capacity, slot.held_back - 1)
        self.reserved -= 1
        self.ver += 1
        slot.bucket.reserved -= 1

    def release(self, slot: Slot) -> None:
        """Give one place of ``slot`` back to everybody (cancel, expiry or move)."""
        if slot.used <= 0:
            raise InvariantError(f"slot {slot.slot_id} has no used place to release")
        slot.used -= 1
        if not slot.retired:
            self._count_free(slot, 1)

    def release_reserved(self, slot: Slot, group: str) -> None:
        """Give back one place of ``slot`` taken out of ``group``'s current reserve.

        It goes back to that reserve, unless the reserve was made smaller than what
        its members hold: then to everybody.
        """
        rsv = slot.bucket.rsvs.get(group)
        shares = slot.shares
        share = shares.get(group) if shares is not None else None
        if slot.used <= 0 or rsv is None or share is None or share.used <= 0:
            raise InvariantError(f"slot {slot.slot_id} has no place of {group} to release")
        slot.used -= 1
        share.used -= 1
        if slot.retired:
            return
        if rsv.places(slot.capacity) - share.used - share.held > 0:
            share.held += 1
            slot.set_places(slot.capacity, slot.held_back + 1)
            self._count(slot, 0, 1)
            self._reopen(slot)
        else:
            self._count_free(slot, 1)

    def remove(self, slot: Slot) -> None:
        """Take an unused ``slot`` out of the inventory: its capacity becomes 0.

        The slot stays known (a booking that ended may still name it; adding it
        again gives it places again). Removing places never creates a pair, so the
        cursors and the no-pair cache stay right: a slot without places is skipped
        like a full one.
        """
        if slot.used:
            raise InvariantError(f"slot {slot.slot_id} is in use and cannot be removed")
        if not slot.retired:
            self._count(slot, -slot.limit, -slot.held_back)
        slot.set_places(0, 0)
        if slot.shares is not None:
            for share in slot.shares.values():
                share.held = 0

    def day_places(self, now_ms: int) -> Iterator[tuple[int, int, int, int]]:
        """(day ordinal, capacity, free, reserved) of each day of the line, in order;
        free and reserved count slots not retired, as the line's own counters do."""
        self.retire(now_ms)
        for d in self.days:
            yield d.ordinal, sum(s.capacity for s in d.slots), d.free, d.reserved

    def slot_at(self, start_s: int) -> Slot | None:
        """The line's slot starting at ``start_s``, if it has one."""
        return self._by_start_s.get(start_s)

    def _count(self, slot: Slot, free: int, reserved: int) -> None:
        """Add ``free`` and ``reserved`` places of ``slot`` (not retired) to the counters
        of its line and day."""
        self.free += free
        self.reserved += reserved
        self.ver += 1
        day = slot.bucket
        day.free += free
        day.reserved += reserved

    def _count_free(self, slot: Slot, places: int) -> None:
        self._count(slot, places, 0)
        self._reopen(slot)

    def _reopen(self, slot: Slot) -> None:
        """A place of ``slot`` became usable: no cursor may stay past it, and every
        remembered search without a pair is void."""
        self._gains += 1
        self.ver += 1
        i = slot.order_idx
        if i < self.head:
            self.head = i
        if i < self.mhead:
            self.mhead = i
        _rewind(slot.bucket, slot.day_idx)
        _rewind(slot.part, slot.part_idx)

    def retire(self, now_ms: int) -> None:
        """Retire every slot that starts at or before ``now_ms``."""
        slots = self.slots
        i = self.past
        n = len(slots)
        while i < n and slots[i].start_ms <= now_ms:
            s = slots[i]
            if not s.retired:
                s.retired = True
                self._count(s, s.used - s.limit, -s.held_back)
            i += 1
        self.past = i
        if self.head < i:
            self.head = i

    # -- searching for anybody, any time of day --------------------------------------------

    def settled_cursors(self) -> tuple[int, list[int]]:
        """``head`` and the days' ``ptr`` moved as far on as they may go now. The cursors
        are lower bounds that searches move lazily, so how far they got depends on which
        searches ran (and on what was remembered); settled, they depend only on the
        places, as a snapshot should."""
        slots = self.slots
        i = self.head
        n = len(slots)
        while i < n and slots[i].used >= slots[i].limit:
            i += 1
        return i, [_next_slot(d.slots, d.ptr, False) for d in self.days]

    def head_slot(self, now_ms: int) -> Slot | None:
        """The earliest-starting slot with a place anybody may take, if any (a lower
        bound for any dose 1 of ``best_pair``)."""
        self.retire(now_ms)
        if not self.free:
            return None
        slots = self.slots
        i = self.head
        n = len(slots)
        while i < n and slots[i].used >= slots[i].limit:
            i += 1
        self.head = i
        return slots[i] if i < n else None

    def partner(self, day: int) -> Slot | None:
        """The earliest-starting slot with a place anybody may take on a day in
        [day + min_days, day + max_days].

        Call ``retire`` first (``best_pair`` does).
        """
        ords = self.ordinals
        days = self.days
        i = bisect_left(ords, day + self.min_days)
        last = day + self.max_days
        n = len(ords)
        best: Slot | None = None
        while i < n and ords[i] <= last:
            s = days[i].first_free()
            if s is not None:
                if self.monotone:
                    return s
                if best is None or s.start_s < best.start_s:
                    best = s
            i += 1
        return best

    def best_pair(self, now_ms: int, earliest: int | None) -> tuple[Slot, Slot] | None:
        """The pair with the earliest dose 1 (on a day >= ``earliest``), then earliest dose 2,
        from places anybody may take."""
        first = self.head_slot(now_ms)
        if first is None:
            return None
        return self._best_from(first, earliest)

    def _best_from(self, first: Slot, earliest: int | None) -> tuple[Slot, Slot] | None:
        """``best_pair`` once ``first`` is its ``head_slot``."""
        from_day = 0 if earliest is None else earliest  # date ordinals start at 1
        barren = self._barren
        if barren is not None and barren[0] == self._gains and from_day >= barren[1]:
            return None
        pair = self._search(first, earliest)
        if pair is None:
            self._barren = (self._gains, from_day)
        return pair

    def _search(self, first: Slot, earliest: int | None) -> tuple[Slot, Slot] | None:
        i = first.order_idx
        if earliest is not None and self.monotone:
            k = bisect_left(self.ordinals, earliest)
            if k == len(self.days):
                return None
            i = max(i, self.days[k].slots[0].order_idx)
        slots = self.slots
        n = len(slots)
        lonely: set[int] | None = None  # days whose dose 1 has no partner (made when needed)
        while i < n:
            s = slots[i]
            i += 1
            if s.used >= s.limit or (lonely is not None and s.day in lonely):
                continue
            if earliest is not None and s.day < earliest:
                continue
            other = self.partner(s.day)
            if other is not None:
                return s, other
            if lonely is None:
                lonely = set()
            lonely.add(s.day)
            if self.monotone:  # the day's slots are contiguous: skip the rest of them
                i = s.bucket.slots[-1].order_idx + 1
        return None

    def plain(self, now_ms: int) -> PlainBest:
        """``head_slot(now_ms)`` and ``best_pair(now_ms, None)`` with the pair's key,
        remembered while no place of the line changes (``ver``) and the clock stays
        before the start of the next slot to retire (the clock bound): until then
        both answers stay the same."""
        cached = self.plain_best
        if cached is not None and cached.ver == self.ver and now_ms < cached.until_ms:
            return cached
        head = self.head_slot(now_ms)
        pair: tuple[Slot, Slot] | None = None
        key: PairKey | None = None
        if head is not None:
            pair = self._best_from(head, None)
            if pair is not None:
                d1, d2 = pair
                key = (d1.start_s, d1.day, self.center.center_id, self.vaccine, d2.start_s)
        past = self.past
        until = self.slots[past].start_ms if past < len(self.slots) else _NEVER
        cached = self.plain_best = PlainBest(self.ver, until, head, pair, key)
        return cached

    # -- searching for a view ----------------------------------------------------------------

    def member_head(self, now_ms: int) -> Slot | None:
        """The earliest-starting slot with any free place (held back or not), if any: a
        lower bound for any dose 1 of any view."""
        self.retire(now_ms)
        if not (self.free or self.reserved):
            return None
        slots = self.slots
        i = max(self.mhead, self.past)
        n = len(slots)
        while i < n and slots[i].used >= slots[i].capacity:
            i += 1
        self.mhead = i
        return slots[i] if i < n else None

    def has_place_for(self, now_ms: int, view: View) -> bool:
        """Whether the searcher of ``view`` could take any place at all (any time of day)."""
        self.retire(now_ms)
        if self.free:
            return True
        if not self.reserved:
            return False
        group = view.group
        for d in self.days:
            if not (d.reserved and view.member(d)):
                continue
            if view.everyone or len(d.rsvs) == 1 or group is None:
                return True
            if any(s.held_for(group) and not s.retired for s in d.slots):
                return True
        return False

    def best_pair_for(
        self, now_ms: int, earliest: int | None, view: View
    ) -> tuple[Slot, Slot] | None:
        """As ``best_pair``, from the places usable in ``view``: only slots of its time
        of day, and on days where the searcher is a member, held-back places too."""
        head = self.member_head(now_ms)
        if head is None:
            return None
        from_day = 0 if earliest is None else earliest
        barren = self._barren_for.get(view)
        if barren is not None and barren[0] == self._gains and from_day >= barren[1]:
            return None
        pair = self._search_for(head, earliest, view)
        if pair is None:
            self._barren_for[view] = (self._gains, from_day)
        return pair

    def _search_for(self, head: Slot, earliest: int | None, view: View) -> tuple[Slot, Slot] | None:
        days = self.days
        k = 0 if earliest is None else bisect_left(self.ordinals, earliest)
        if self.monotone:  # days in order are slots in order: the first day that pairs wins
            k = max(k, bisect_left(self.ordinals, head.day))
            for day in days[k:]:
                s = day.first_for(view)
                if s is not None:
                    other = self.partner_for(day.ordinal, view)
                    if other is not None:
                        return s, other
            return None
        firsts = [s for day in days[k:] if (s := day.first_for(view)) is not None]
        firsts.sort(key=_start_s)
        for s in firsts:
            other = self.partner_for(s.day, view)
            if other is not None:
                return s, other
        return None

    def partner_for(self, day: int, view: View) -> Slot | None:
        """As ``partner``, from the places usable in ``view``."""
        ords = self.ordinals
        days = self.days
        i = bisect_left(ords, day + self.min_days)
        last = day + self.max_days
        n = len(ords)
        best: Slot | None = None
        while i < n and ords[i] <= last:
            s = days[i].first_for(view)
            if s is not None:
                if self.monotone:
                    return s
                if best is None or s.start_s < best.start_s:
                    best = s
            i += 1
        return best

    def pairs_left(self, now_ms: int) -> int:
        """Pairs that can still be formed from free places, held back or not, counted
        greedily over free places per day.

        Days are taken in order; each day's remaining places are paired with the
        earliest remaining places inside its window. The count is 0 exactly when
        no day with a free place has a free place inside its window.
        """
        self.retire(now_ms)
        if not (self.free or self.reserved):
            return 0
        ords = self.ordinals
        rem = [d.free + d.reserved for d in self.days]
        n = len(ords)
        pairs = 0
        for i in range(n):
            r = rem[i]
            if not r:
                continue
            k = bisect_left(ords, ords[i] + self.min_days, i + 1)
            last = ords[i] + self.max_days
            while r and k < n and ords[k] <= last:
                t = rem[k]
                m = r if r < t else t
                pairs += m
                r -= m
                rem[k] = t - m
                if not rem[k]:
                    k += 1
            rem[i] = r
        return pairs
