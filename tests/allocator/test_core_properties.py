"""Random command logs against an independent model of what the allocator must answer.

The model (``Oracle``) keeps slots, windows and bookings in plain dicts and
finds the best pair by brute force over every free pair. After every record it
checks the events (exactly one answer per new command id, none for a
redelivery, the right pair or reason, expiries in order, revs rising by one)
and the allocator's state (usage per slot, one active pair per identity,
summaries). Replaying a log, whole or split, must give the same events.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocator.core import CANCELLED, CONFIRMED, EXPIRED, HELD, REJECTED, Allocator
from schemas.commands import AddInventory, Book, Cancel, Command, Confirm, Tick
from schemas.events import (
    Cancelled,
    Confirmed,
    Event,
    Expired,
    Failed,
    Held,
    InventoryAdded,
    Rejected,
    Summary,
)
from tests.allocator import T0_MS, add, book, cancel, confirm, day_iso, slot

CAMPAIGNS = ("spring", "spring", "spring", "autumn")
CENTERS = {"c1": "north", "c2": "north", "c3": "south"}
COUNTIES = ("north", "south", "west")
WINDOWS = {"va": (1, 2), "vb": (2, 4)}
START_MS = T0_MS + 22 * 3_600_000  # two hours before the first slot
HOUR_MS = 3_600_000
TO_NEXT_HOUR = -1  # a step to the next full hour: where slots start
STEPS_MS = (0, 0, 1, 1_000, 5_000, 60_000, HOUR_MS, 6 * HOUR_MS, TO_NEXT_HOUR, -10_000)

Record = tuple[int, int, Command]  # offset, timestamp_ms, command


# -- the random logs -------------------------------------------------------------------------


@st.composite
def inventories(draw: st.DrawFn, command_id: str) -> AddInventory:
    center = draw(st.sampled_from(sorted(CENTERS)))
    right_county = draw(st.integers(0, 9)) > 0
    county = CENTERS[center] if right_county else draw(st.sampled_from(COUNTIES))
    vaccine = draw(st.sampled_from(sorted(WINDOWS)))
    min_days, max_days = WINDOWS[vaccine] if draw(st.integers(0, 9)) else (1, 3)
    days = draw(st.lists(st.integers(0, 5), max_size=6, unique=True))
    hours = draw(st.lists(st.sampled_from((8, 9, 10)), min_size=1, max_size=3, unique=True))
    capacities = draw(st.lists(st.integers(0, 2), min_size=len(days) * len(hours)))
    specs = [(d, h) for d in days for h in hours]
    return add(
        command_id,
        county,
        center,
        [slot(d, h, c) for (d, h), c in zip(specs, capacities, strict=False)],
        vaccine=vaccine,
        min_days=min_days,
        max_days=max_days,
        campaign=draw(st.sampled_from(CAMPAIGNS)),
    )


@st.composite
def books(draw: st.DrawFn, command_id: str, stocked: list[tuple[str, str]]) -> Book:
    """A Book, mostly for a (campaign, county) that got inventory."""
    campaign = draw(st.sampled_from(CAMPAIGNS))
    county = draw(st.sampled_from(COUNTIES))
    stocked_place = draw(st.integers(0, 4)) > 0
    if stocked and stocked_place:
        campaign, county = draw(st.sampled_from(stocked))
    center = draw(st.sampled_from((None, None, None, None, None, "c1", "c2", "c3", "c9")))
    earliest = draw(st.one_of(st.none(), st.integers(0, 5).map(day_iso)))
    return book(
        command_id,
        f"k{draw(st.integers(0, 12))}",
        f"id{draw(st.integers(0, 5))}",
        county,
        center=center,
        earliest=earliest,
        hold_s=draw(st.sampled_from((1, 30, 600, 7200, 7200))),
        campaign=campaign,
    )


@st.composite
def logs(draw: st.DrawFn) -> list[Record]:
    """A log that starts with inventory, then mixes every kind of command.

    Confirm and Cancel mostly name a booking id seen in the log; a redelivery
    repeats an earlier command as a new record.
    """
    records: list[Record] = []
    bookings = [("spring", "k0")]
    stocked: list[tuple[str, str]] = []
    now = START_MS
    n_inventory = draw(st.integers(1, 4))
    for i in range(n_inventory + draw(st.integers(5, 50))):
        if i >= n_inventory:
            now = advance(now, draw(st.sampled_from(STEPS_MS)))
        cid = f"cmd{i}"
        kind = "a" if i < n_inventory else draw(st.sampled_from("abbbbbbbbffffccctttrr"))
        command: Command
        if kind == "r":
            command = records[draw(st.integers(0, len(records) - 1))][2]
        elif kind == "a":
            command = draw(inventories(cid))
            stocked.append((command.campaign, command.county))
        elif kind == "b":
            command = draw(books(cid, stocked))
            bookings.append((command.campaign, command.booking_id))
        elif kind in "fc":
            campaign, booking_id = draw(st.sampled_from(bookings))
            command = (confirm if kind == "f" else cancel)(cid, booking_id, campaign)
        else:
            command = Tick(cid)
        records.append((i, now, command))
    return records


def advance(now_ms: int, step_ms: int) -> int:
    if step_ms == TO_NEXT_HOUR:
        return (now_ms // HOUR_MS + 1) * HOUR_MS
    return now_ms + step_ms


def run(records: list[Record]) -> list[list[Event]]:
    core = Allocator()
    return [core.apply(o, t, c) for o, t, c in records]


# -- the model -------------------------------------------------------------------------------


@dataclass
class SlotFact:
    center: str
    vaccine: str
    day: int
    start: str
    start_s: int
    capacity: int


@dataclass
class BookingFact:
    command_id: str
    identity: str
    county: str
    state: str
    rev: int
    slots: tuple[str, ...] = ()
    expires_ms: int = 0


@dataclass
class Oracle:
    now_ms: int = 0
    answered: set[str] = field(default_factory=set)
    slots: dict[tuple[str, str], SlotFact] = field(default_factory=dict)
    centers: dict[tuple[str, str], str] = field(default_factory=dict)  # -> county
    windows: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    bookings: dict[tuple[str, str], BookingFact] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)
    last_summary_ms: dict[str, int] = field(default_factory=dict)

    # -- derived state

    def used(self) -> Counter[tuple[str, str]]:
        return Counter(
            (campaign, sid)
            for (campaign, _), b in self.bookings.items()
            if b.state in (HELD, CONFIRMED)
            for sid in b.slots
        )

    def free_slots(self, campaign: str, centers: set[str]) -> dict[str, SlotFact]:
        used = self.used()
        return {
            sid: f
            for (camp, sid), f in self.slots.items()
            if camp == campaign
            and f.center in centers
            and f.capacity > used[(camp, sid)]
            and f.start_s * 1000 > self.now_ms
        }

    def best_pair(
        self, campaign: str, centers: set[str], earliest: int | None
    ) -> tuple[tuple[int, int, str, str, int, str, str] | None, bool]:
        free = self.free_slots(campaign, centers)
        best = None
        for a_id, a in free.items():
            if earliest is not None and a.day < earliest:
                continue
            lo, hi = self.windows[(campaign, a.vaccine)]
            for b_id, b in free.items():
                if (b.center, b.vaccine) == (a.center, a.vaccine) and lo <= b.day - a.day <= hi:
                    key = (a.start_s, a.day, a.center, a.vaccine, b.start_s, a_id, b_id)
                    best = key if best is None or key < best else best
        return best, bool(free)

    def centers_in(self, campaign: str, county: str) -> set[str]:
        return {c for (camp, c), cty in self.centers.items() if (camp, cty) == (campaign, county)}

    # -- checking one record

    def check(
        self, core: Allocator, timestamp_ms: int, command: Command, events: list[Event]
    ) -> None:
        self.now_ms = max(self.now_ms, timestamp_ms)
        n_expired = 0
        while n_expired < len(events) and isinstance(events[n_expired], Expired):
            n_expired += 1
        self.check_expiries([e for e in events[:n_expired] if isinstance(e, Expired)])
        rest = events[n_expired:]
        answers = [e for e in rest if not isinstance(e, Summary)]
        summaries = [e for e in rest if isinstance(e, Summary)]
        assert not any(isinstance(e, Expired) for e in rest)
        if isinstance(command, Tick) or command.command_id in self.answered:
            assert answers == []
        else:
            assert len(answers) == 1, answers
            answer = answers[0]
            assert answer.command_id == command.command_id
            assert answer.at_ms == self.now_ms
            self.answered.add(command.command_id)
            self.check_answer(command, answer)
        self.check_summaries(command, summaries)
        self.check_state(core)

    def check_answer(self, command: Command, answer: Event) -> None:
        if isinstance(command, Book):
            self.check_book(command, answer)
        elif isinstance(command, Confirm):
            self.check_confirm(command, answer)
        elif isinstance(command, Cancel):
            self.check_cancel(command, answer)
        else:
            assert isinstance(command, AddInventory)
            self.check_add(command, answer)

    def check_expiries(self, expired: list[Expired]) -> None:
        due = sorted(
            (b.expires_ms, bid, camp)
            for (camp, bid), b in self.bookings.items()
            if b.state == HELD and b.expires_ms <= self.now_ms
        )
        assert [(e.campaign, e.booking_id) for e in expired] == [(c, b) for _, b, c in due]
        for e in expired:
            b = self.bookings[(e.campaign, e.booking_id)]
            assert (e.command_id, e.rev, e.at_ms) == (b.command_id, b.rev + 1, self.now_ms)
            b.state, b.rev = EXPIRED, b.rev + 1
            self.dirty.add(e.campaign)

    def book_refusal(self, cmd: Book) -> tuple[str | None, set[str]]:
        centers = self.centers_in(cmd.campaign, cmd.county)
        if not centers:
            return "unknown_county", set()
        if cmd.center is not None:
            county = self.centers.get((cmd.campaign, cmd.center))
            if county is None:
                return "unknown_center", set()
            if county != cmd.county:
                return "not_eligible", set()
            centers = {cmd.center}
        active = [
            b
            for (camp, _), b in self.bookings.items()
            if camp == cmd.campaign and b.identity == cmd.identity and b.state in (HELD, CONFIRMED)
        ]
        return ("already_booked" if active else None), centers

    def check_book(self, cmd: Book, answer: Event) -> None:
        key = (cmd.campaign, cmd.booking_id)
        if key in self.bookings:
            assert isinstance(answer, Failed) and answer.reason == "duplicate_booking_id"
            return
        reason, centers = self.book_refusal(cmd)
        best = None
        if reason is None:
            earliest = slot_day(cmd.earliest) if cmd.earliest else None
            best, any_free = self.best_pair(cmd.campaign, centers, earliest)
            if best is None:
                reason = "no_pair_in_window" if any_free else "sold_out"
        if best is None:
            assert isinstance(answer, Rejected), answer
            assert (answer.reason, answer.rev) == (reason, 1)
            self.bookings[key] = BookingFact(cmd.command_id, cmd.identity, cmd.county, REJECTED, 1)
            return
        assert isinstance(answer, Held), answer
        assert answer.rev == 1
        assert answer.hold_expires_at_ms == self.now_ms + cmd.hold_s * 1000
        assert (answer.identity, answer.county) == (cmd.identity, cmd.county)
        ids = tuple(a.slot for a in answer.appointments)
        assert ids == best[5:]
        self.check_whole(cmd.campaign, answer)
        self.bookings[key] = BookingFact(
            cmd.command_id, cmd.identity, cmd.county, HELD, 1, ids, answer.hold_expires_at_ms
        )
        self.dirty.add(cmd.campaign)

    def check_whole(self, campaign: str, held: Held) -> None:
        one, two = held.appointments
        f1 = self.slots[(campaign, one.slot)]
        f2 = self.slots[(campaign, two.slot)]
        lo, hi = self.windows[(campaign, f1.vaccine)]
        assert (one.dose, two.dose) == (1, 2)
        assert (one.center, one.vaccine) == (two.center, two.vaccine) == (f1.center, f1.vaccine)
        assert (f2.center, f2.vaccine) == (f1.center, f1.vaccine)
        assert lo <= f2.day - f1.day <= hi
        assert f1.start_s * 1000 > self.now_ms
        assert (one.start, two.start) == (f1.start, f2.start)

    def check_confirm(self, cmd: Confirm, answer: Event) -> None:
        b = self.bookings.get((cmd.campaign, cmd.booking_id))
        if b is None or b.state != HELD:
            expected = "unknown_booking" if b is None else "not_held"
            if b is not None and b.state == EXPIRED:
                expected = "hold_expired"
            assert isinstance(answer, Failed) and answer.reason == expected, answer
            return
        assert isinstance(answer, Confirmed), answer
        assert answer.rev == b.rev + 1
        assert tuple(a.slot for a in answer.appointments) == b.slots
        b.state, b.rev = CONFIRMED, b.rev + 1
        self.dirty.add(cmd.campaign)

    def check_cancel(self, cmd: Cancel, answer: Event) -> None:
        b = self.bookings.get((cmd.campaign, cmd.booking_id))
        if b is None or b.state not in (HELD, CONFIRMED):
            expected = "unknown_booking" if b is None else "already_final"
            assert isinstance(answer, Failed) and answer.reason == expected, answer
            return
        assert isinstance(answer, Cancelled), answer
        assert answer.rev == b.rev + 1
        b.state, b.rev = CANCELLED, b.rev + 1
        self.dirty.add(cmd.campaign)

    def check_add(self, cmd: AddInventory, answer: Event) -> None:
        assert isinstance(answer, InventoryAdded)
        county = self.centers.get((cmd.campaign, cmd.center))
        window = self.windows.get((cmd.campaign, cmd.vaccine))
        reason = None
        if county is not None and county != cmd.county:
            reason = "center_mismatch"
        elif window is not None and window != (cmd.min_days, cmd.max_days):
            reason = "window_mismatch"
        if reason is not None:
            assert (answer.accepted, answer.reason, answer.slots_added) == (False, reason, 0)
            return
        assert (answer.accepted, answer.slots_added) == (True, len(cmd.slots))
        self.centers[(cmd.campaign, cmd.center)] = cmd.county
        self.windows[(cmd.campaign, cmd.vaccine)] = (cmd.min_days, cmd.max_days)
        for spec in cmd.slots:
            sid = f"{cmd.center}/{cmd.vaccine}/{spec.start}"
            fact = self.slots.get((cmd.campaign, sid))
            if fact is None:
                day = slot_day(spec.day)
                fact = SlotFact(cmd.center, cmd.vaccine, day, spec.start, spec.start_s, 0)
                self.slots[(cmd.campaign, sid)] = fact
            fact.capacity += spec.capacity
        self.dirty.add(cmd.campaign)

    def check_summaries(self, command: Command, summaries: list[Summary]) -> None:
        if not isinstance(command, Tick):
            assert summaries == []
            return
        due = sorted(
            camp
            for camp in {camp for camp, _ in self.centers}
            if camp in self.dirty
            or camp not in self.last_summary_ms
            or self.now_ms - self.last_summary_ms[camp] >= 5000
        )
        assert [s.campaign for s in summaries] == due
        for s in summaries:
            assert s.at_ms == self.now_ms
            self.check_summary(s)
            self.dirty.discard(s.campaign)
            self.last_summary_ms[s.campaign] = self.now_ms

    def check_summary(self, summary: Summary) -> None:
        counties = {cty for (camp, _), cty in self.centers.items() if camp == summary.campaign}
        assert set(summary.counties) == counties
        used = self.used()
        for county, cs in summary.counties.items():
            centers = self.centers_in(summary.campaign, county)
            best, _ = self.best_pair(summary.campaign, centers, None)
            free = self.free_slots(summary.campaign, centers)
            places = sum(f.capacity - used[(summary.campaign, sid)] for sid, f in free.items())
            assert (cs.pairs_left == 0) == (best is None)
            assert cs.pairs_left <= places // 2
            assert cs.free == places
            in_county = [
                b
                for (camp, _), b in self.bookings.items()
                if camp == summary.campaign and b.county == county
            ]
            assert cs.held == sum(b.state == HELD for b in in_county)
            assert cs.confirmed == sum(b.state == CONFIRMED for b in in_county)

    def check_state(self, core: Allocator) -> None:
        used = self.used()
        usage = {(u.campaign, u.slot): (u.capacity, u.used) for u in core.slot_usage()}
        assert usage == {k: (f.capacity, used[k]) for k, f in self.slots.items()}
        assert all(u <= c for c, u in usage.values())
        views = {(v.campaign, v.booking_id): (v.state, v.rev, v.slots) for v in core.bookings()}
        assert views == {k: (b.state, b.rev, b.slots) for k, b in self.bookings.items()}
        active = Counter(
            (v.campaign, v.identity) for v in core.bookings() if v.state in (HELD, CONFIRMED)
        )
        assert all(n == 1 for n in active.values())
        for s in core.summaries():
            assert s.at_ms == self.now_ms
            self.check_summary(s)


def slot_day(iso: str) -> int:
    return dt.date.fromisoformat(iso).toordinal()


# -- the properties --------------------------------------------------------------------------


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(logs())
def test_every_step_keeps_every_invariant(records: list[Record]) -> None:
    core = Allocator()
    oracle = Oracle()
    for offset, timestamp_ms, command in records:
        events = core.apply(offset, timestamp_ms, command)
        oracle.check(core, timestamp_ms, command, events)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(logs(), st.integers(0, 40))
def test_replaying_the_log_whole_or_split_gives_the_same_events(
    records: list[Record], split: int
) -> None:
    whole = run(records)
    assert run(records) == whole
    k = min(split, len(records))
    core = Allocator()
    for offset, timestamp_ms, command in records[:k]:
        core.apply(offset, timestamp_ms, command)
    rest = [core.apply(o, t, c) for o, t, c in records[k:]]
    assert rest == whole[k:]
    assert [e.pack() for events in rest for e in events] == [
        e.pack() for events in whole[k:] for e in events
    ]
