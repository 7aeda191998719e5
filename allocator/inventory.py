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
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left
from collections.abc import Iterable
from itertools import pairwise

from allocator.errors import InvariantError
from schemas.commands import SlotSpec
from schemas.events import Appointment


def day_ordinal(iso_day: str) -> int:
    """The proleptic Gregorian ordinal of an ISO date: days compare as integers."""
    return dt.date.fromisoformat(iso_day).toordinal()


class Center:
    """A vaccination center of a campaign, in exactly one county."""

    __slots__ = ("center_id", "county", "line_list", "lines", "name")

    def __init__(self, center_id: str, name: str, county: str) -> None:
        self.center_id = center_id
        self.name = name
        self.county = county
        self.lines: dict[str, Line] = {}  # vaccine -> line
        self.line_list: list[Line] = []  # the lines ordered by vaccine id

    def line(self, vaccine: str, min_days: int, max_days: int) -> Line:
        """The center's line for ``vaccine``, made on first use."""
        line = self.lines.get(vaccine)
        if line is None:
            line = Line(self, vaccine, min_days, max_days)
            self.lines[vaccine] = line
            self.line_list = [self.lines[v] for v in sorted(self.lines)]
        return line


class Slot:
    """One bookable time: ``capacity`` places, ``used`` of them held or confirmed."""

    __slots__ = (
        "bucket",
        "capacity",
        "day",
        "day_idx",
        "line",
        "order_idx",
        "retired",
        "slot_id",
        "start",
        "start_ms",
        "start_s",
        "used",
    )

    bucket: Day  # set by Line._reindex, before the slot is ever used

    def __init__(self, line: Line, day: int, start: str, start_s: int) -> None:
        self.line = line
        self.slot_id = f"{line.center.center_id}/{line.vaccine}/{start}"
        self.day = day  # local day as a date ordinal
        self.start = start
        self.start_s = start_s
        self.start_ms = start_s * 1000
        self.capacity = 0
        self.used = 0
        self.retired = False
        self.order_idx = 0  # index in line.slots
        self.day_idx = 0  # index in bucket.slots

    def appointment(self, dose: int) -> Appointment:
        center = self.line.center
        return Appointment(
            dose, center.center_id, center.name, self.line.vaccine, self.start, self.slot_id
        )


class Day:
    """The slots of one line on one local day, by start time."""

    __slots__ = ("free", "ordinal", "ptr", "slots")

    def __init__(self, ordinal: int, slots: list[Slot]) -> None:
        self.ordinal = ordinal
        self.slots = slots
        self.free = 0  # free places in slots that are not retired
        self.ptr = 0  # slots[:ptr] are full or retired

    def first_free(self) -> Slot | None:
        """The earliest usable slot of the day (free and not retired), if any."""
        if not self.free:
            return None
        slots = self.slots
        i = self.ptr
        n = len(slots)
        while i < n:
            s = slots[i]
            if s.used < s.capacity and not s.retired:
                break
            i += 1
        self.ptr = i
        return slots[i] if i < n else None


class Line:
    """All slots of one vaccine at one center, with cursors for fast search."""

    __slots__ = (
        "_barren",
        "_by_start_s",
        "_gains",
        "center",
        "days",
        "free",
        "head",
        "max_days",
        "min_days",
        "monotone",
        "ordinals",
        "past",
        "slots",
        "vaccine",
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
        self.head = 0  # slots[:head] are full or retired
        self.past = 0  # slots[:past] are retired
        self.free = 0  # free places in slots that are not retired
        # True when every slot of a day starts before every slot of the next day:
        # then the first day with a free place holds the earliest free slot.
        self.monotone = True
        # Taking places or letting time pass never creates a pair; only places coming
        # back or being added do. ``_gains`` counts those; while it is unchanged, a
        # search that found no pair for dose 1 from day ``_barren`` on still finds none.
        self._gains = 0
        self._barren: tuple[int, int] | None = None  # (_gains then, first day searched)

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
            self._reindex()

    def _add_capacity(self, slot: Slot, places: int) -> None:
        slot.capacity += places
        if not slot.retired:
            self._count_free(slot, places)

    def _reindex(self) -> None:
        """Rebuild the orderings and counters after new slots came in."""
        self._gains += 1
        self.slots = sorted(self._by_start_s.values(), key=lambda s: s.start_s)
        by_day: dict[int, list[Slot]] = {}
        for i, s in enumerate(self.slots):
            s.order_idx = i
            by_day.setdefault(s.day, []).append(s)
        self.days = [Day(d, by_day[d]) for d in sorted(by_day)]
        self.ordinals = [d.ordinal for d in self.days]
        self.free = 0
        for day in self.days:
            for j, s in enumerate(day.slots):
                s.day_idx = j
                s.bucket = day
                if not s.retired:
                    day.free += s.capacity - s.used
            self.free += day.free
        self.head = 0
        self.past = 0
        self.monotone = all(
            a.slots[-1].start_s < b.slots[0].start_s for a, b in pairwise(self.days)
        )

    def take(self, slot: Slot) -> None:
        """Use one place of ``slot`` (for a hold)."""
        if slot.used >= slot.capacity or slot.retired:
            raise InvariantError(f"slot {slot.slot_id} has no usable place to take")
        slot.used += 1
        self.free -= 1
        slot.bucket.free -= 1

    def release(self, slot: Slot) -> None:
        """Give one place of ``slot`` back (cancel or expiry)."""
        if slot.used <= 0:
            raise InvariantError(f"slot {slot.slot_id} has no used place to release")
        slot.used -= 1
        if not slot.retired:
            self._count_free(slot, 1)

    def _count_free(self, slot: Slot, places: int) -> None:
        self._gains += 1
        day = slot.bucket
        self.free += places
        day.free += places
        if slot.order_idx < self.head:
            self.head = slot.order_idx
        if slot.day_idx < day.ptr:
            day.ptr = slot.day_idx

    def retire(self, now_ms: int) -> None:
        """Retire every slot that starts at or before ``now_ms``."""
        slots = self.slots
        i = self.past
        n = len(slots)
        while i < n and slots[i].start_ms <= now_ms:
            s = slots[i]
            if not s.retired:
                s.retired = True
                unused = s.capacity - s.used
                self.free -= unused
                s.bucket.free -= unused
            i += 1
        self.past = i
        if self.head < i:
            self.head = i

    # -- searching -------------------------------------------------------------------------

    def head_slot(self, now_ms: int) -> Slot | None:
        """The earliest-starting usable slot, if any (a lower bound for any dose 1)."""
        self.retire(now_ms)
        if not self.free:
            return None
        slots = self.slots
        i = self.head
        n = len(slots)
        while i < n and slots[i].used >= slots[i].capacity:
            i += 1
        self.head = i
        return slots[i] if i < n else None

    def partner(self, day: int) -> Slot | None:
        """The earliest-starting usable slot on a day in [day + min_days, day + max_days].

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
        """The pair with the earliest dose 1 (on a day >= ``earliest``), then earliest dose 2."""
        first = self.head_slot(now_ms)
        if first is None:
            return None
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
        lonely: set[int] = set()  # days whose dose 1 has no partner
        while i < n:
            s = slots[i]
            i += 1
            if s.used >= s.capacity or s.day in lonely:
                continue
            if earliest is not None and s.day < earliest:
                continue
            other = self.partner(s.day)
            if other is not None:
                return s, other
            lonely.add(s.day)
            if self.monotone:  # the day's slots are contiguous: skip the rest of them
                i = s.bucket.slots[-1].order_idx + 1
        return None

    def pairs_left(self, now_ms: int) -> int:
        """Pairs that can still be formed, counted greedily over free places per day.

        Days are taken in order; each day's remaining places are paired with the
        earliest remaining places inside its window. The count is 0 exactly when
        no day with a free place has a free place inside its window.
        """
        self.retire(now_ms)
        if not self.free:
            return 0
        ords = self.ordinals
        rem = [d.free for d in self.days]
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
