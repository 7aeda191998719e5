"""Random command logs against an independent model of what the allocator must answer.

The model (``Oracle``) keeps slots, windows and bookings in plain dicts and
finds the best pair by brute force over every free pair. After every record it
checks the events (exactly one answer per new command id, none for a
redelivery, the right pair or reason, expiries in order, revs rising by one,
the waitlist's offers) and the allocator's state (usage per slot, one active
pair per identity, summaries, no waitlisted booking left that a pair would
fit). Replaying a log, whole or split, must give the same events.

Priority reserves are modelled by their definition too: per group, each slot's
held-back places and the members' places taken out of the group's reserve, the
category every place of a pair came out of (by the reserve's mode), and the
release of each reserve at its own time. A center's day may have reserves for
several groups (shares summing to at most 100). A place held back for a group
never goes to anybody else (outsiders nor other groups' members), and every
search is made for the searcher's group and time of day.

The model serves a waitlist by its definition: while some waitlisted booking
has a pair, the earliest such booking gets its best pair (rescanning the whole
waitlist after every offer), which the allocator must match with its bounded
rounds.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocator.core import CANCELLED, CONFIRMED, EXPIRED, HELD, REJECTED, WAITLISTED, Allocator
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
)
from schemas.events import (
    Cancelled,
    Confirmed,
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
from schemas.states import RejectReason, ReserveMode
from tests.allocator import T0_MS, add, book, cancel, confirm, day_iso, move, remove, slot

CAMPAIGNS = ("spring", "spring", "spring", "autumn")
CENTERS = {"c1": "north", "c2": "north", "c3": "south"}
COUNTIES = ("north", "south", "west")
WINDOWS = {"va": (1, 2), "vb": (2, 4)}
START_MS = T0_MS + 22 * 3_600_000  # two hours before the first slot
HOUR_MS = 3_600_000
TO_NEXT_HOUR = -1  # a step to the next full hour: where slots start
STEPS_MS = (0, 0, 1, 1_000, 5_000, 60_000, HOUR_MS, 6 * HOUR_MS, TO_NEXT_HOUR, -10_000)
WAITLIST_REASONS = (
    "sold_out",
    "no_pair_in_window",
    "no_pair_at_time_of_day",
    "reserved_for_priority_group",
)
GROUPS = (None, None, "care", "care", "teachers", "medical")
RESERVE_GROUPS = ("care", "care", "teachers", "medical")
SHARES = (0, 30, 40, 50, 50, 60, 100)
TIMES = (None, None, None, "morning", "afternoon", "evening")
MODES = tuple(ReserveMode)

Record = tuple[int, int, Command]  # offset, timestamp_ms, command


# -- the random logs -------------------------------------------------------------------------


@st.composite
def inventories(
    draw: st.DrawFn, command_id: str, campaigns: tuple[str, ...] = CAMPAIGNS
) -> AddInventory:
    center = draw(st.sampled_from(sorted(CENTERS)))
    right_county = draw(st.integers(0, 9)) > 0
    county = CENTERS[center] if right_county else draw(st.sampled_from(COUNTIES))
    vaccine = draw(st.sampled_from(sorted(WINDOWS)))
    min_days, max_days = WINDOWS[vaccine] if draw(st.integers(0, 9)) else (1, 3)
    days = draw(st.lists(st.integers(0, 5), max_size=6, unique=True))
    hours = draw(st.lists(st.sampled_from((8, 9, 10, 13, 18)), min_size=1, max_size=3, unique=True))
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
        campaign=draw(st.sampled_from(campaigns)),
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
        waitlist=draw(st.integers(0, 2)) == 0,
        group=draw(st.sampled_from(GROUPS)),
        time_of_day=draw(st.sampled_from(TIMES)),
    )


@st.composite
def moves(draw: st.DrawFn, command_id: str, bookings: list[tuple[str, str]]) -> Move:
    """A Move, mostly of a recent booking (the likeliest to be held or confirmed)."""
    recent = draw(st.integers(0, 2)) > 0
    campaign, booking_id = draw(st.sampled_from(bookings[-3:] if recent else bookings))
    center = draw(st.sampled_from((None, None, None, "c1", "c2", "c3", "c9")))
    earliest = draw(st.one_of(st.none(), st.integers(0, 5).map(day_iso)))
    time_of_day = draw(st.sampled_from(TIMES))
    return move(
        command_id,
        booking_id,
        center=center,
        earliest=earliest,
        campaign=campaign,
        time_of_day=time_of_day,
    )


@st.composite
def set_reserves(
    draw: st.DrawFn, command_id: str, now_ms: int, campaigns: tuple[str, ...] = CAMPAIGNS
) -> SetReserve:
    """A SetReserve, mostly of a known center in its own county, released within hours
    (now and then at a time already passed)."""
    center = draw(st.sampled_from([*sorted(CENTERS), "c9"]))
    right_county = draw(st.integers(0, 9)) > 0
    county = CENTERS.get(center, "west") if right_county else draw(st.sampled_from(COUNTIES))
    step_ms = draw(st.sampled_from((-1, 0, 1, 60_000, HOUR_MS, 6 * HOUR_MS, 30 * HOUR_MS)))
    return SetReserve(
        command_id,
        draw(st.sampled_from(campaigns)),
        county,
        center,
        day_iso(draw(st.integers(0, 5))),
        draw(st.sampled_from(RESERVE_GROUPS)),
        draw(st.sampled_from(SHARES)),
        draw(st.sampled_from(MODES)),
        max(0, now_ms + step_ms),
    )


@st.composite
def removals(draw: st.DrawFn, command_id: str, stocked: list[tuple[str, str]]) -> RemoveInventory:
    """A RemoveInventory of a few slots, mostly at a stocked center of its own county;
    hour 11 is never added, so naming it is naming an unknown slot."""
    campaign = draw(st.sampled_from(CAMPAIGNS))
    center = draw(st.sampled_from([*sorted(CENTERS), "c9"]))
    if stocked and draw(st.integers(0, 3)) > 0:
        campaign, county = draw(st.sampled_from(stocked))
        center = draw(st.sampled_from([c for c in (*sorted(CENTERS), "c9") if c != "c3"]))
        center = "c3" if county == "south" else center
    right_county = draw(st.integers(0, 9)) > 0
    county = CENTERS.get(center, "west") if right_county else draw(st.sampled_from(COUNTIES))
    days = draw(st.lists(st.integers(0, 5), min_size=1, max_size=3))
    hours = draw(st.lists(st.sampled_from((8, 9, 10, 10, 11)), min_size=len(days)))
    return remove(
        command_id,
        county,
        center,
        [slot(d, h) for d, h in zip(days, hours, strict=False)],
        vaccine=draw(st.sampled_from(sorted(WINDOWS))),
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
        kind = "a" if i < n_inventory else draw(st.sampled_from("abbbbbbbbffffccctttrrmmmdssii"))
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
        elif kind == "m":
            command = draw(moves(cid, bookings))
        elif kind == "d":
            command = draw(removals(cid, stocked))
        elif kind == "s":
            command = draw(set_reserves(cid, now))
        elif kind == "i":
            command = draw(reports(cid))
        else:
            command = Tick(cid)
        records.append((i, now, command))
    return records


@st.composite
def reports(draw: st.DrawFn, command_id: str) -> ReportInventory:
    """A ReportInventory, mostly of a campaign and county that may have inventory."""
    campaign = draw(st.sampled_from((*CAMPAIGNS, "winter")))
    return ReportInventory(command_id, campaign, draw(st.sampled_from(COUNTIES)))


@st.composite
def busy_logs(draw: st.DrawFn) -> list[Record]:
    """A log of one campaign with few places and fresh booking ids, where most commands
    apply: many holds, waitlistings, moves, cancels, removals and so offers.

    Confirm, Cancel and Move mostly name one of the last bookings; RemoveInventory
    names slots of an earlier AddInventory (and sometimes a slot never added).
    """
    records: list[Record] = []
    bookings = ["k0"]
    added: list[AddInventory] = []
    now = START_MS
    for i in range(draw(st.integers(5, 60))):
        now = advance(now, draw(st.sampled_from((0, 1, 1_000, 30_000, 60_000, HOUR_MS))))
        cid = f"cmd{i}"
        kind = "a" if i < 2 else draw(st.sampled_from("aabbbbbbbfcccmmmddtrsss"))
        command: Command
        if kind == "a":
            command = draw(inventories(cid, ("spring",)))
            added.append(command)
        elif kind == "b":
            command = book(
                cid,
                f"k{i}",
                f"id{draw(st.integers(0, 7))}",
                draw(st.sampled_from(("north", "north", "south"))),
                center=draw(st.sampled_from((None, None, None, None, "c1", "c2", "c3"))),
                earliest=draw(st.one_of(st.none(), st.none(), st.integers(0, 3).map(day_iso))),
                hold_s=draw(st.sampled_from((30, 600, 7200))),
                waitlist=draw(st.booleans()),
                group=draw(st.sampled_from(GROUPS)),
                time_of_day=draw(st.sampled_from(TIMES)),
            )
            bookings.append(command.booking_id)
        elif kind in "fcm":
            command = draw(lifecycle_commands(cid, kind, bookings))
        elif kind == "d" and added:
            command = draw(slots_of(cid, draw(st.sampled_from(added))))
        elif kind == "r":
            command = records[draw(st.integers(0, len(records) - 1))][2]
        elif kind == "s":
            command = draw(set_reserves(cid, now, ("spring",)))
        else:
            command = Tick(cid)
        records.append((i, now, command))
    return records


@st.composite
def reserve_logs(draw: st.DrawFn) -> list[Record]:
    """A log of one county with roomy slots at every time of day, reserves for "care",
    "teachers" and "medical" on many of its days, often several groups on one day
    (set, changed, removed, released each on its own, refused over 100 % in sum), and
    members of each group and others booking, confirming, cancelling, moving, waiting
    and letting holds run out.
    """
    records: list[Record] = []
    bookings = ["k0"]
    now = START_MS
    for i in range(draw(st.integers(5, 60))):
        now = advance(now, draw(st.sampled_from((0, 1, 1_000, 60_000, HOUR_MS, 3 * HOUR_MS))))
        cid = f"cmd{i}"
        kind = "a" if i < 2 else "s" if i < 7 else draw(st.sampled_from("abbbbbbbbbfccmmssstri"))
        command: Command
        if kind == "a":
            vaccine = draw(st.sampled_from(sorted(WINDOWS)))
            min_days, max_days = WINDOWS[vaccine]
            places = [(d, h) for d in range(5) for h in (9, 13, 18) if draw(st.booleans())]
            command = add(
                cid,
                "north",
                ("c1", "c2")[i] if i < 2 else draw(st.sampled_from(("c1", "c2"))),
                [slot(d, h, draw(st.integers(0, 4))) for d, h in places],
                vaccine=vaccine,
                min_days=min_days,
                max_days=max_days,
            )
        elif kind == "s":
            step_ms = draw(st.sampled_from((-1, HOUR_MS, 6 * HOUR_MS, 40 * HOUR_MS, 40 * HOUR_MS)))
            command = SetReserve(
                cid,
                "spring",
                "north",
                draw(st.sampled_from(("c1", "c2"))),
                day_iso(draw(st.integers(0, 3))),
                draw(st.sampled_from(RESERVE_GROUPS)),
                draw(st.sampled_from(SHARES)),
                draw(st.sampled_from(MODES)),
                now + step_ms,
            )
        elif kind == "b":
            command = book(
                cid,
                f"k{i}",
                f"id{draw(st.integers(0, 19))}",
                "north",
                center=draw(st.sampled_from((None, None, "c1", "c2"))),
                earliest=draw(st.one_of(st.none(), st.integers(0, 2).map(day_iso))),
                hold_s=draw(st.sampled_from((60, 7200, 7200))),
                waitlist=draw(st.booleans()),
                group=draw(st.sampled_from((None, "care", "care", "teachers", "medical"))),
                time_of_day=draw(st.sampled_from(TIMES)),
            )
            bookings.append(command.booking_id)
        elif kind in "fcm":
            command = draw(lifecycle_commands(cid, kind, bookings))
        elif kind == "r":
            command = records[draw(st.integers(0, len(records) - 1))][2]
        elif kind == "i":
            command = ReportInventory(cid, "spring", "north")
        else:
            command = Tick(cid)
        records.append((i, now, command))
    return records


@st.composite
def shared_day_logs(draw: st.DrawFn) -> list[Record]:
    """A log of one center with few places, where every day starts with reserves for
    two or three groups (each its own share, mode and release time; now and then over
    100 % in sum and refused), then members of every group and others book, cancel,
    move, let holds run out, change or remove one group's reserve, and see the groups'
    reserves released one by one.
    """
    min_days, max_days = WINDOWS["va"]
    places = [(d, h) for d in range(4) for h in (9, 13)]
    specs = [slot(d, h, draw(st.integers(2, 5))) for d, h in places]
    stock = add("a0", "north", "c1", specs, vaccine="va", min_days=min_days, max_days=max_days)
    records: list[Record] = [(0, START_MS, stock)]
    now = START_MS
    bookings = ["k0"]
    groups = ("care", "teachers", "medical")

    def set_reserve(cid: str, day: int) -> SetReserve:
        release_ms = now + draw(st.sampled_from((HOUR_MS, 3 * HOUR_MS, 6 * HOUR_MS, 40 * HOUR_MS)))
        return SetReserve(
            cid, "spring", "north", "c1", day_iso(day), draw(st.sampled_from(groups)),
            draw(st.sampled_from((0, 20, 25, 30, 40, 50, 60))), draw(st.sampled_from(MODES)),
            release_ms,
        )  # fmt: skip

    for day in range(4):
        for g in range(draw(st.integers(2, 3))):
            records.append((len(records), now, set_reserve(f"s{day}-{g}", day)))
    for i in range(draw(st.integers(5, 50))):
        now = advance(now, draw(st.sampled_from((0, 1, 30_000, 60_000, HOUR_MS))))
        cid = f"cmd{i}"
        kind = draw(st.sampled_from("bbbbbbbbbccmsst"))
        command: Command
        if kind == "s":
            command = set_reserve(cid, draw(st.integers(0, 3)))
        elif kind == "b":
            command = book(
                cid,
                f"k{i}",
                f"id{i}",
                "north",
                earliest=draw(st.one_of(st.none(), st.integers(0, 2).map(day_iso))),
                hold_s=draw(st.sampled_from((60, 7200, 7200))),
                waitlist=draw(st.integers(0, 3)) == 0,
                group=draw(st.sampled_from((None, None, *groups))),
                time_of_day=draw(st.sampled_from((None, None, None, "morning", "afternoon"))),
            )
            bookings.append(command.booking_id)
        elif kind in "cm":
            command = draw(lifecycle_commands(cid, kind, bookings))
        else:
            command = Tick(cid)
        records.append((len(records), now, command))
    return records


@st.composite
def lifecycle_commands(
    draw: st.DrawFn, command_id: str, kind: str, bookings: list[str]
) -> Confirm | Cancel | Move:
    """A Confirm (``kind`` "f"), Cancel ("c") or Move ("m") of a "spring" booking, mostly
    one of the last four."""
    recent = draw(st.integers(0, 3)) > 0
    booking_id = draw(st.sampled_from(bookings[-4:] if recent else bookings))
    if kind == "m":
        return draw(moves(command_id, [("spring", booking_id)]))
    return (confirm if kind == "f" else cancel)(command_id, booking_id)


@st.composite
def slots_of(draw: st.DrawFn, command_id: str, a: AddInventory) -> RemoveInventory:
    known = [s.start_s for s in a.slots]
    starts = draw(st.lists(st.sampled_from(known), max_size=3)) if known else []
    if not starts or draw(st.integers(0, 9)) == 0:
        starts.append(slot(0, 11).start_s)  # never added
    return RemoveInventory(command_id, a.campaign, a.county, a.center, a.vaccine, tuple(starts))


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
    # per group with a reserve that day: free places only its members may take, and
    # used places its members took out of its reserve
    held: dict[str, int] = field(default_factory=dict)
    res_used: dict[str, int] = field(default_factory=dict)

    @property
    def held_back(self) -> int:
        return sum(self.held.values())

    @property
    def tod(self) -> str:
        hour = dt.datetime.fromisoformat(self.start).hour
        return "morning" if hour < 12 else "afternoon" if hour < 17 else "evening"


@dataclass
class ReserveFact:
    group: str
    share_pct: int
    mode: str
    release_at_ms: int
    generation: int  # a new one for every reserve made (not for one changed in place)

    def places(self, capacity: int) -> int:
        return capacity * self.share_pct // 100


@dataclass
class BookingFact:
    command_id: str
    identity: str
    county: str
    state: str
    rev: int
    slots: tuple[str, ...] = ()
    expires_ms: int = 0
    # while waitlisted: the Book (its wish and hold_s) and its place in the waitlist
    book: Book | None = None
    seq: int = 0
    group: str | None = None
    rsv: tuple[int | None, ...] = ()  # per place: the reserve it came out of (generation)


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
    waitlisted: int = 0  # bookings waitlisted so far (arrival numbers)
    # (campaign, center, day, group) -> the group's reserve of that center and day
    reserves: dict[tuple[str, str, int, str], ReserveFact] = field(default_factory=dict)
    generations: int = 0
    lines: set[tuple[str, str, str]] = field(default_factory=set)  # (campaign, center, vaccine)

    # -- derived state

    def used(self) -> Counter[tuple[str, str]]:
        return Counter(
            (campaign, sid)
            for (campaign, _), b in self.bookings.items()
            if b.state in (HELD, CONFIRMED)
            for sid in b.slots
        )

    def free_slots(
        self,
        campaign: str,
        centers: set[str],
        group: str | None = None,
        everyone: bool = False,
        tod: str | None = None,
    ) -> dict[str, SlotFact]:
        """The slots a member of ``group`` (``everyone``: of any group) could take a place
        of, at ``tod`` if given."""
        used = self.used()
        return {
            sid: f
            for (camp, sid), f in self.slots.items()
            if camp == campaign
            and f.center in centers
            and used[(camp, sid)] < self.limit(camp, f, group, everyone)
            and f.start_s * 1000 > self.now_ms
            and (tod is None or f.tod == tod)
        }

    def limit(self, campaign: str, f: SlotFact, group: str | None, everyone: bool) -> int:
        """How far a member of ``group`` may fill ``f``: the open places and those held
        back for its own group (``everyone``: all of it)."""
        if everyone:
            return f.capacity
        own = f.held.get(group, 0) if group is not None else 0
        return f.capacity - f.held_back + own

    def best_pair(
        self,
        campaign: str,
        centers: set[str],
        earliest: int | None,
        group: str | None = None,
        everyone: bool = False,
        tod: str | None = None,
    ) -> tuple[tuple[int, int, str, str, int, str, str] | None, bool]:
        free = self.free_slots(campaign, centers, group, everyone, tod)
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

    def wish_pair(
        self, campaign: str, county: str, wish: Book | Move, group: str | None
    ) -> tuple[int, int, str, str, int, str, str] | None:
        """The best pair in ``county`` for a wish whose center (if any) is in the county."""
        centers = self.centers_in(campaign, county) if wish.center is None else {wish.center}
        earliest = slot_day(wish.earliest) if wish.earliest else None
        return self.best_pair(campaign, centers, earliest, group, tod=wish.time_of_day)[0]

    def no_pair_reason(
        self,
        campaign: str,
        centers: set[str],
        earliest: int | None,
        group: str | None,
        tod: str | None,
    ) -> str:
        if tod is not None and self.best_pair(campaign, centers, earliest, group)[0]:
            return "no_pair_at_time_of_day"
        if self.best_pair(campaign, centers, earliest, everyone=True)[0]:
            return "reserved_for_priority_group"
        return "no_pair_in_window" if self.free_slots(campaign, centers, group) else "sold_out"

    def take(
        self,
        campaign: str,
        sids: tuple[str, ...],
        group: str | None,
        used: Counter[tuple[str, str]],
    ) -> tuple[int | None, ...]:
        """Take a place of each slot for a member of ``group`` (``used`` before): the
        reserve each comes out of, by its mode, or None for an open place."""
        out: list[int | None] = []
        for sid in sids:
            f = self.slots[(campaign, sid)]
            r = self.reserves.get((campaign, f.center, f.day, group)) if group else None
            open_left = used[(campaign, sid)] < f.capacity - f.held_back
            if (
                r is not None
                and group is not None
                and f.held.get(group)
                and (r.mode == "minimum_guarantee" or not open_left)
            ):
                f.held[group] -= 1
                f.res_used[group] = f.res_used.get(group, 0) + 1
                out.append(r.generation)
            else:
                assert open_left, f"{sid}: a place held back for a group went to {group}"
                out.append(None)
        return tuple(out)

    def give_back(self, campaign: str, b: BookingFact) -> None:
        """``b``'s places come back: one out of a reserve to it while it is still the
        day's reserve and short of its share, any other to everybody."""
        for sid, generation in zip(b.slots, b.rsv, strict=False):
            f = self.slots[(campaign, sid)]
            if generation is None or b.group is None:
                continue
            group = b.group
            r = self.reserves.get((campaign, f.center, f.day, group))
            if r is None or r.generation != generation:
                continue
            f.res_used[group] -= 1
            if r.places(f.capacity) - f.res_used[group] - f.held[group] > 0:
                f.held[group] += 1
        b.rsv = ()

    def release_due(self) -> list[tuple[str, str]]:
        """Open the places of every reserve whose release time came, in order; returns
        where places came back (campaign, county)."""
        due = sorted(
            (r.release_at_ms, camp, center, day, group)
            for (camp, center, day, group), r in self.reserves.items()
            if r.release_at_ms <= self.now_ms
        )
        for _, camp, center, day, group in due:
            del self.reserves[(camp, center, day, group)]
            self.fit_reserve(camp, center, day, group, None)
            self.dirty.add(camp)
        return [(camp, self.centers[(camp, center)]) for _, camp, center, _, _ in due]

    def fit_reserve(
        self, campaign: str, center: str, day: int, group: str, r: ReserveFact | None
    ) -> int:
        """Hold back each slot's share of ``group``'s reserve ``r`` (None: nothing, and
        what its members took is forgotten) less what its members took, never a used
        place nor one held back for another group; returns the places held back for
        ``group`` in slots still ahead."""
        used = self.used()
        held = 0
        for (camp, sid), f in self.slots.items():
            if (camp, f.center, f.day) != (campaign, center, day):
                continue
            if r is None:
                f.held.pop(group, None)
                f.res_used.pop(group, None)
                continue
            others = f.held_back - f.held.get(group, 0)
            share = r.places(f.capacity) - f.res_used.get(group, 0)
            f.held[group] = max(0, min(share, f.capacity - used[(camp, sid)] - others))
            if f.start_s * 1000 > self.now_ms:
                held += f.held[group]
        return held

    def waitlist(self, campaign: str, county: str) -> list[tuple[str, BookingFact]]:
        return sorted(
            (
                (bid, b)
                for (camp, bid), b in self.bookings.items()
                if (camp, b.county, b.state) == (campaign, county, WAITLISTED)
            ),
            key=lambda item: item[1].seq,
        )

    def serve(self, campaign: str, county: str) -> list[tuple[str, BookingFact]]:
        """Offer pairs by definition: while a waitlisted booking has a pair, the first
        such one gets its best pair. Returns the offers made, in order."""
        offers: list[tuple[str, BookingFact]] = []
        while (found := self.first_servable(campaign, county)) is not None:
            booking_id, b, best = found
            assert b.book is not None
            b.rsv = self.take(campaign, best[5:], b.group, self.used())
            b.state, b.rev, b.slots = HELD, b.rev + 1, best[5:]
            b.expires_ms = self.now_ms + b.book.hold_s * 1000
            b.book = None
            offers.append((booking_id, b))
            self.dirty.add(campaign)
        return offers

    def first_servable(
        self, campaign: str, county: str
    ) -> tuple[str, BookingFact, tuple[int, int, str, str, int, str, str]] | None:
        for booking_id, b in self.waitlist(campaign, county):
            assert b.book is not None
            best = self.wish_pair(campaign, county, b.book, b.group)
            if best is not None:
                return booking_id, b, best
        return None

    def slot_at(self, campaign: str, center: str, vaccine: str, start_s: int) -> str | None:
        for (camp, sid), f in self.slots.items():
            if (camp, f.center, f.vaccine, f.start_s) == (campaign, center, vaccine, start_s):
                return sid
        return None

    # -- checking one record

    def check(
        self, core: Allocator, timestamp_ms: int, command: Command, events: list[Event]
    ) -> None:
        self.now_ms = max(self.now_ms, timestamp_ms)
        n_expired = 0
        while n_expired < len(events) and isinstance(events[n_expired], Expired):
            n_expired += 1
        returned = self.check_expiries([e for e in events[:n_expired] if isinstance(e, Expired)])
        returned += self.release_due()
        rest = self.check_offers(returned, events[n_expired:])
        answers = [e for e in rest if not isinstance(e, Summary)]
        summaries = [e for e in rest if isinstance(e, Summary)]
        assert not any(isinstance(e, Expired) for e in rest)
        if isinstance(command, ReportInventory):  # reads only: answered each time
            assert len(answers) == 1, rest
            self.check_report(command, answers[0])
        elif isinstance(command, Tick) or command.command_id in self.answered:
            assert answers == []
        else:
            assert answers, rest
            answer = answers[0]
            assert answer.command_id == command.command_id
            assert answer.at_ms == self.now_ms
            self.answered.add(command.command_id)
            returned = self.check_answer(command, answer)
            assert self.check_offers(returned, answers[1:]) == []
        self.check_summaries(command, summaries)
        self.check_state(core)

    def check_offers(self, returned: list[tuple[str, str]], events: Sequence[Event]) -> list[Event]:
        """Serve the waitlists of the (campaign, county) pairs whose places came back, in
        order: ``events`` must start with exactly those offers. Returns the rest."""
        offers = [
            (campaign, booking_id, b)
            for campaign, county in dict.fromkeys(returned)
            for booking_id, b in self.serve(campaign, county)
        ]
        for event, (campaign, booking_id, b) in zip(events, offers, strict=False):
            assert isinstance(event, Offered), event
            assert (event.campaign, event.booking_id, event.command_id) == (
                campaign,
                booking_id,
                b.command_id,
            )
            assert (event.rev, event.at_ms) == (b.rev, self.now_ms)
            assert event.hold_expires_at_ms == b.expires_ms
            assert tuple(a.slot for a in event.appointments) == b.slots
            self.check_whole(campaign, event)
        assert len(events) >= len(offers)
        return list(events[len(offers) :])

    def check_answer(self, command: Command, answer: Event) -> list[tuple[str, str]]:
        """Check the answer to ``command``; returns where places came back (campaign, county)."""
        if isinstance(command, Book):
            return self.check_book(command, answer)
        if isinstance(command, Confirm):
            self.check_confirm(command, answer)
            return []
        if isinstance(command, Cancel):
            return self.check_cancel(command, answer)
        if isinstance(command, Move):
            return self.check_move(command, answer)
        if isinstance(command, RemoveInventory):
            self.check_remove(command, answer)
            return []
        if isinstance(command, SetReserve):
            return self.check_set_reserve(command, answer)
        assert isinstance(command, AddInventory)
        return self.check_add(command, answer)

    def check_report(self, cmd: ReportInventory, answer: Event) -> None:
        """The county's places per center and day as the model has them: capacity; places
        of held and confirmed bookings; free and held back places of slots not started."""
        assert isinstance(answer, InventoryReport), answer
        assert (answer.command_id, answer.campaign, answer.county, answer.at_ms) == (
            cmd.command_id,
            cmd.campaign,
            cmd.county,
            self.now_ms,
        )
        centers = {
            center
            for (campaign, center), county in self.centers.items()
            if campaign == cmd.campaign and county == cmd.county
        }
        if not centers:
            assert (answer.centers, answer.reason) == ({}, "unknown_county")
            return
        booked = Counter(
            (campaign, sid, b.state)
            for (campaign, _), b in self.bookings.items()
            if b.state in (HELD, CONFIRMED)
            for sid in b.slots
        )
        days: dict[str, dict[int, list[int]]] = {center: {} for center in centers}
        for (campaign, sid), f in self.slots.items():
            if campaign != cmd.campaign or f.center not in centers:
                continue
            held, confirmed = booked[(campaign, sid, HELD)], booked[(campaign, sid, CONFIRMED)]
            figures = days[f.center].setdefault(f.day, [0, 0, 0, 0, 0])
            figures[0] += f.capacity
            figures[2] += held
            figures[3] += confirmed
            if f.start_s * 1000 > self.now_ms:
                figures[1] += f.capacity - f.held_back - held - confirmed
                figures[4] += f.held_back
        assert answer.reason is None
        assert answer.centers == {
            center: {
                dt.date.fromordinal(day).isoformat(): DayInventory(*figures)
                for day, figures in by_day.items()
            }
            for center, by_day in days.items()
        }

    def check_expiries(self, expired: list[Expired]) -> list[tuple[str, str]]:
        due = sorted(
            (b.expires_ms, bid, camp)
            for (camp, bid), b in self.bookings.items()
            if b.state == HELD and b.expires_ms <= self.now_ms
        )
        assert [(e.campaign, e.booking_id) for e in expired] == [(c, b) for _, b, c in due]
        for e in expired:
            b = self.bookings[(e.campaign, e.booking_id)]
            assert (e.command_id, e.rev, e.at_ms) == (b.command_id, b.rev + 1, self.now_ms)
            self.give_back(e.campaign, b)
            b.state, b.rev = EXPIRED, b.rev + 1
            self.dirty.add(e.campaign)
        return [(e.campaign, self.bookings[(e.campaign, e.booking_id)].county) for e in expired]

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
            if camp == cmd.campaign
            and b.identity == cmd.identity
            and b.state in (HELD, CONFIRMED, WAITLISTED)
        ]
        return ("already_booked" if active else None), centers

    def check_book(self, cmd: Book, answer: Event) -> list[tuple[str, str]]:
        key = (cmd.campaign, cmd.booking_id)
        if key in self.bookings:
            assert isinstance(answer, Failed) and answer.reason == "duplicate_booking_id"
            return []
        reason, centers = self.book_refusal(cmd)
        best = None
        if reason is None:
            earliest = slot_day(cmd.earliest) if cmd.earliest else None
            best = self.best_pair(cmd.campaign, centers, earliest, cmd.group, tod=cmd.time_of_day)[
                0
            ]
            if best is None:
                reason = self.no_pair_reason(
                    cmd.campaign, centers, earliest, cmd.group, cmd.time_of_day
                )
        if best is None and cmd.waitlist and reason in WAITLIST_REASONS:
            assert answer == Waitlisted(
                cmd.command_id,
                cmd.booking_id,
                cmd.campaign,
                1,
                self.now_ms,
                cmd.identity,
                cmd.county,
            )
            self.bookings[key] = BookingFact(
                cmd.command_id,
                cmd.identity,
                cmd.county,
                WAITLISTED,
                1,
                book=cmd,
                seq=self.waitlisted,
                group=cmd.group,
            )
            self.waitlisted += 1
            self.dirty.add(cmd.campaign)
            return []
        if best is None:
            assert isinstance(answer, Rejected), answer
            assert (answer.reason, answer.rev) == (reason, 1)
            self.bookings[key] = BookingFact(cmd.command_id, cmd.identity, cmd.county, REJECTED, 1)
            return []
        assert isinstance(answer, Held), answer
        assert answer.rev == 1
        assert answer.hold_expires_at_ms == self.now_ms + cmd.hold_s * 1000
        assert (answer.identity, answer.county) == (cmd.identity, cmd.county)
        ids = tuple(a.slot for a in answer.appointments)
        assert ids == best[5:]
        self.check_whole(cmd.campaign, answer)
        rsv = self.take(cmd.campaign, ids, cmd.group, self.used())
        self.bookings[key] = BookingFact(
            cmd.command_id,
            cmd.identity,
            cmd.county,
            HELD,
            1,
            ids,
            answer.hold_expires_at_ms,
            group=cmd.group,
            rsv=rsv,
        )
        self.dirty.add(cmd.campaign)
        return []

    def check_whole(self, campaign: str, held: Held | Offered | Moved) -> None:
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

    def check_cancel(self, cmd: Cancel, answer: Event) -> list[tuple[str, str]]:
        b = self.bookings.get((cmd.campaign, cmd.booking_id))
        if b is None or b.state not in (HELD, CONFIRMED, WAITLISTED):
            expected = "unknown_booking" if b is None else "already_final"
            assert isinstance(answer, Failed) and answer.reason == expected, answer
            return []
        assert isinstance(answer, Cancelled), answer
        assert answer.rev == b.rev + 1
        had_places = b.state != WAITLISTED
        if had_places:
            self.give_back(cmd.campaign, b)
        b.state, b.rev, b.book = CANCELLED, b.rev + 1, None
        self.dirty.add(cmd.campaign)
        return [(cmd.campaign, b.county)] if had_places else []

    def move_refusal(self, cmd: Move) -> str | None:
        b = self.bookings.get((cmd.campaign, cmd.booking_id))
        if b is None:
            return "unknown_booking"
        if b.state not in (HELD, CONFIRMED):
            return "not_movable"
        if cmd.center is not None:
            county = self.centers.get((cmd.campaign, cmd.center))
            if county is None:
                return "unknown_center"
            if county != b.county:
                return "not_eligible"
        return None

    def check_move(self, cmd: Move, answer: Event) -> list[tuple[str, str]]:
        reason = self.move_refusal(cmd)
        best = None
        b = self.bookings.get((cmd.campaign, cmd.booking_id))
        if reason is None:
            assert b is not None
            best = self.wish_pair(cmd.campaign, b.county, cmd, b.group)  # b's pair is still used
            if best is None:
                centers = {cmd.center} if cmd.center else self.centers_in(cmd.campaign, b.county)
                earliest = slot_day(cmd.earliest) if cmd.earliest else None
                reason = self.no_pair_reason(
                    cmd.campaign, centers, earliest, b.group, cmd.time_of_day
                )
        if reason is not None:
            assert isinstance(answer, Failed) and answer.reason == reason, (answer, reason)
            return []
        assert b is not None and best is not None
        assert isinstance(answer, Moved), answer
        assert answer.rev == b.rev + 1
        assert tuple(a.slot for a in answer.appointments) == best[5:]
        assert answer.hold_expires_at_ms == (b.expires_ms if b.state == HELD else None)
        self.check_whole(cmd.campaign, answer)
        self.give_back(cmd.campaign, b)
        used = self.used()
        used.subtract({(cmd.campaign, sid): 1 for sid in b.slots})
        b.rsv = self.take(cmd.campaign, best[5:], b.group, used)
        b.rev, b.slots = b.rev + 1, best[5:]
        self.dirty.add(cmd.campaign)
        return [(cmd.campaign, b.county)]

    def check_remove(self, cmd: RemoveInventory, answer: Event) -> None:
        assert isinstance(answer, InventoryRemoved), answer
        county = self.centers.get((cmd.campaign, cmd.center))
        sids = [
            self.slot_at(cmd.campaign, cmd.center, cmd.vaccine, start_s)
            for start_s in dict.fromkeys(cmd.starts)
        ]
        used = self.used()
        reason: RejectReason | None = None
        if county is None:
            reason = RejectReason.UNKNOWN_CENTER
        elif county != cmd.county:
            reason = RejectReason.CENTER_MISMATCH
        elif None in sids:
            reason = RejectReason.UNKNOWN_SLOT
        elif any(used[(cmd.campaign, sid)] for sid in sids if sid is not None):
            reason = RejectReason.SLOT_IN_USE
        if reason is not None:
            assert (answer.accepted, answer.reason, answer.slots_removed) == (False, reason, 0)
            return
        assert (answer.accepted, answer.slots_removed) == (True, len(sids))
        for sid in sids:
            assert sid is not None
            fact = self.slots[(cmd.campaign, sid)]
            fact.capacity = 0
            fact.held = dict.fromkeys(fact.held, 0)
        self.dirty.add(cmd.campaign)

    def check_add(self, cmd: AddInventory, answer: Event) -> list[tuple[str, str]]:
        assert isinstance(answer, InventoryAdded)
        county = self.centers.get((cmd.campaign, cmd.center))
        window = self.windows.get((cmd.campaign, cmd.vaccine))
        reason: RejectReason | None = None
        if county is not None and county != cmd.county:
            reason = RejectReason.CENTER_MISMATCH
        elif window is not None and window != (cmd.min_days, cmd.max_days):
            reason = RejectReason.WINDOW_MISMATCH
        if reason is not None:
            assert (answer.accepted, answer.reason, answer.slots_added) == (False, reason, 0)
            return []
        assert (answer.accepted, answer.slots_added) == (True, len(cmd.slots))
        self.centers[(cmd.campaign, cmd.center)] = cmd.county
        self.lines.add((cmd.campaign, cmd.center, cmd.vaccine))
        self.windows[(cmd.campaign, cmd.vaccine)] = (cmd.min_days, cmd.max_days)
        before: dict[str, int | None] = {}  # capacity before (None: a new slot)
        for spec in cmd.slots:
            sid = f"{cmd.center}/{cmd.vaccine}/{spec.start}"
            fact = self.slots.get((cmd.campaign, sid))
            if fact is None:
                day = slot_day(spec.day)
                fact = SlotFact(cmd.center, cmd.vaccine, day, spec.start, spec.start_s, 0)
                self.slots[(cmd.campaign, sid)] = fact
                before[sid] = None
            before.setdefault(sid, fact.capacity)
            fact.capacity += spec.capacity
        used = self.used()
        for sid, capacity in before.items():
            self.reserve_added(cmd.campaign, sid, capacity, used[(cmd.campaign, sid)])
        self.dirty.add(cmd.campaign)
        return [(cmd.campaign, cmd.county)]

    def reserve_added(self, campaign: str, sid: str, capacity: int | None, used: int) -> None:
        """Places added to slot ``sid`` (a new slot if ``capacity`` was None): each of the
        day's reserves, groups in name order, holds back its share of them, up to its
        share of the whole slot and never more than the open places."""
        f = self.slots[(campaign, sid)]
        groups = sorted(
            g
            for (camp, center, day, g) in self.reserves
            if (camp, center, day) == (campaign, f.center, f.day)
        )
        room = f.capacity - used - f.held_back
        for group in groups:
            r = self.reserves[(campaign, f.center, f.day, group)]
            share = r.places(f.capacity)
            grown = share if capacity is None else share - r.places(capacity)
            own = f.held.get(group, 0)
            added = max(0, min(grown, share - f.res_used.get(group, 0) - own, room))
            f.held[group] = own + added
            room -= added

    def check_set_reserve(self, cmd: SetReserve, answer: Event) -> list[tuple[str, str]]:
        county = self.centers.get((cmd.campaign, cmd.center))
        reason: RejectReason | None = None
        if county is None:
            reason = RejectReason.UNKNOWN_CENTER
        elif county != cmd.county:
            reason = RejectReason.CENTER_MISMATCH
        elif cmd.share_pct and cmd.release_at_ms <= self.now_ms:
            reason = RejectReason.RELEASE_PASSED
        elif cmd.share_pct + self.other_shares(cmd) > 100:
            reason = RejectReason.RESERVE_SHARES_OVER_100
        if county is None or reason is not None:
            at_ms = self.now_ms
            assert answer == ReserveSet(
                cmd.command_id, cmd.campaign, cmd.center, at_ms, False, 0, reason
            )
            return []
        day = slot_day(cmd.day)
        key = (cmd.campaign, cmd.center, day, cmd.group)
        old = self.reserves.pop(key, None)
        r = None
        if old is not None and cmd.share_pct:  # changed in place
            r = old
            r.share_pct, r.mode, r.release_at_ms = cmd.share_pct, cmd.mode, cmd.release_at_ms
        else:
            for (camp, _), f in self.slots.items():  # a new reserve: nothing taken out of it
                if (camp, f.center, f.day) == key[:3]:
                    f.res_used.pop(cmd.group, None)
            if cmd.share_pct:
                self.generations += 1
                r = ReserveFact(
                    cmd.group, cmd.share_pct, cmd.mode, cmd.release_at_ms, self.generations
                )
        if r is not None:
            self.reserves[key] = r
        held = self.fit_reserve(*key, r)
        assert answer == ReserveSet(
            cmd.command_id, cmd.campaign, cmd.center, self.now_ms, True, held
        )
        self.dirty.add(cmd.campaign)
        return [(cmd.campaign, county)]

    def other_shares(self, cmd: SetReserve) -> int:
        """The shares of the other groups' reserves of ``cmd``'s center and day."""
        day = slot_day(cmd.day)
        return sum(
            r.share_pct
            for (camp, center, d, group), r in self.reserves.items()
            if (camp, center, d) == (cmd.campaign, cmd.center, day) and group != cmd.group
        )

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
            best, _ = self.best_pair(summary.campaign, centers, None, everyone=True)
            free = self.free_slots(summary.campaign, centers, everyone=True)
            places = sum(f.capacity - used[(summary.campaign, sid)] for sid, f in free.items())
            held_back = sum(f.held_back for f in free.values())
            assert (cs.pairs_left == 0) == (best is None)
            assert cs.pairs_left <= places // 2
            assert (cs.free, cs.reserved) == (places - held_back, held_back)
            by_vaccine = self.pairs_by_vaccine(summary.campaign, centers, used)
            assert cs.pairs_left_by_vaccine == by_vaccine
            assert sum(by_vaccine.values()) == cs.pairs_left
            for vaccine, pairs in by_vaccine.items():
                window = self.windows[(summary.campaign, vaccine)]
                assert (pairs == 0) == (not has_pair(free, vaccine, window)), vaccine
            in_county = [
                b
                for (camp, _), b in self.bookings.items()
                if camp == summary.campaign and b.county == county
            ]
            assert cs.held == sum(b.state == HELD for b in in_county)
            assert cs.confirmed == sum(b.state == CONFIRMED for b in in_county)
            assert cs.waitlisted == sum(b.state == WAITLISTED for b in in_county)

    def pairs_by_vaccine(
        self, campaign: str, centers: set[str], used: Counter[tuple[str, str]]
    ) -> dict[str, int]:
        """Pairs left per vaccine of ``centers``: each center's vaccine counted on its own
        (a pair is of one center and vaccine) by the definition of ``pairs_left``, from
        the places per day not used yet, held back or not, of the slots still ahead."""
        places: dict[tuple[str, str], Counter[int]] = {
            (center, vaccine): Counter()
            for camp, center, vaccine in self.lines
            if camp == campaign and center in centers
        }
        for (camp, sid), f in self.slots.items():
            if camp == campaign and f.center in centers and f.start_s * 1000 > self.now_ms:
                places[(f.center, f.vaccine)][f.day] += f.capacity - used[(camp, sid)]
        out = dict.fromkeys(sorted({vaccine for _, vaccine in places}), 0)
        for (_, vaccine), per_day in places.items():
            out[vaccine] += greedy_pairs(per_day, *self.windows[(campaign, vaccine)])
        return out

    def check_state(self, core: Allocator) -> None:
        used = self.used()
        usage = {(u.campaign, u.slot): (u.capacity, u.used) for u in core.slot_usage()}
        assert usage == {k: (f.capacity, used[k]) for k, f in self.slots.items()}
        assert all(u <= c for c, u in usage.values())
        ahead = {k for k, f in self.slots.items() if f.start_s * 1000 > self.now_ms}
        held_back = {(u.campaign, u.slot): u.held_back for u in core.slot_usage()}
        assert {k: held_back[k] for k in ahead} == {k: self.slots[k].held_back for k in ahead}
        assert all(self.slots[k].held_back + used[k] <= self.slots[k].capacity for k in ahead)
        assert held_per_group(core, ahead) == {
            (k, g): n for k in ahead for g, n in self.slots[k].held.items() if n
        }
        views = {(v.campaign, v.booking_id): (v.state, v.rev, v.slots) for v in core.bookings()}
        assert views == {k: (b.state, b.rev, b.slots) for k, b in self.bookings.items()}
        active = Counter(
            (v.campaign, v.identity)
            for v in core.bookings()
            if v.state in (HELD, CONFIRMED, WAITLISTED)
        )
        assert all(n == 1 for n in active.values())
        for (campaign, _), b in self.bookings.items():
            if b.state == WAITLISTED:  # served whenever places came back: nothing fits
                assert b.book is not None
                assert self.wish_pair(campaign, b.county, b.book, b.group) is None
        for s in core.summaries():
            assert s.at_ms == self.now_ms
            self.check_summary(s)


def greedy_pairs(places: Counter[int], min_days: int, max_days: int) -> int:
    """Pairs counted greedily: days in order, each day's places left paired with the
    places left of the earliest days inside its window."""
    left = dict(sorted(places.items()))
    pairs = 0
    for day in left:
        for later in left:
            if day + min_days <= later <= day + max_days:
                n = min(left[day], left[later])
                pairs += n
                left[day] -= n
                left[later] -= n
    return pairs


def has_pair(free: dict[str, SlotFact], vaccine: str, window: tuple[int, int]) -> bool:
    """Whether two of the ``free`` slots make a pair of ``vaccine``: by brute force over
    the days with a free slot of each center."""
    lo, hi = window
    days = {(f.center, f.day) for f in free.values() if f.vaccine == vaccine}
    return any((c, d + k) in days for c, d in days for k in range(lo, hi + 1))


def held_per_group(core: Allocator, keys: set[tuple[str, str]]) -> dict[tuple[Any, str], int]:
    """The places each slot of ``keys`` (campaign, slot id) holds back, per group (not 0)."""
    out: dict[tuple[Any, str], int] = {}
    for name, c in core._campaigns.items():
        for center in c.centers.values():
            for line in center.line_list:
                for s in line.slots:
                    if (name, s.slot_id) in keys and s.shares is not None:
                        for g, share in s.shares.items():
                            if share.held:
                                out[((name, s.slot_id), g)] = share.held
    return out


def slot_day(iso: str) -> int:
    return dt.date.fromisoformat(iso).toordinal()


# -- the properties --------------------------------------------------------------------------


def check_every_step(records: list[Record]) -> None:
    """Apply ``records`` and check every step against the model."""
    core = Allocator()
    oracle = Oracle()
    for offset, timestamp_ms, command in records:
        events = core.apply(offset, timestamp_ms, command)
        oracle.check(core, timestamp_ms, command, events)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(logs())
def test_every_step_keeps_every_invariant(records: list[Record]) -> None:
    check_every_step(records)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(busy_logs())
def test_busy_logs_with_moves_waitlists_and_removals_keep_every_invariant(
    records: list[Record],
) -> None:
    check_every_step(records)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reserve_logs())
def test_logs_with_reserves_and_times_of_day_keep_every_invariant(records: list[Record]) -> None:
    check_every_step(records)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shared_day_logs())
def test_logs_with_several_groups_reserving_on_one_day_keep_every_invariant(
    records: list[Record],
) -> None:
    check_every_step(records)


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
