"""Moves to another county: through the log to that county's partition and back.

``north`` lives on one partition (``a``), ``south`` on another (``b``); each has
its own Allocator. What one sends (``core.sends``) is delivered to the other by
hand, so every interleaving can be staged.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocator.core import MOVED_OUT, Allocator, BookingView
from schemas.commands import AddInventory, Book, Command, Tick, Transfer, TransferAnswer, TransferIn
from schemas.events import (
    Confirmed,
    Event,
    Expired,
    Failed,
    Held,
    Moved,
    Offered,
    Summary,
    Waitlisted,
)
from schemas.states import RejectReason
from tests.allocator import (
    T0_MS,
    Log,
    add,
    book,
    cancel,
    confirm,
    daily,
    day_iso,
    move,
    not_summaries,
    slot,
    slot_id,
    slot_ids,
)

HOLD_MS = 600_000


class Partitions:
    """Two partitions' allocators; ``deliver`` hands each one what the other sent."""

    def __init__(self) -> None:
        self.a = Log()
        self.b = Log()
        self.home = {"north": self.a, "south": self.b}
        self.a(add("a-n", "north", "n1", daily(range(40))))
        self.b(add("a-s", "south", "s1", daily(range(40))))

    def sent(self, log: Log) -> list[Transfer]:
        sends = list(log.core.sends)
        log.core.sends.clear()
        return sends

    def deliver(self, message: Command, at_ms: int | None = None) -> list[Event]:
        assert isinstance(message, TransferIn | TransferAnswer)
        return not_summaries(self.home[message.county](message, at_ms))

    def round_trip(self, command: Command, at_ms: int | None = None) -> list[Event]:
        """``command`` on north's partition, then every message until none is left;
        the events of north's partition in the end."""
        events = not_summaries(self.a(command, at_ms))
        pending = self.sent(self.a)
        while pending:
            message = pending.pop(0)
            target = self.home[message.county]
            events += [e for e in self.deliver(message, at_ms) if target is self.a]
            pending += self.sent(self.a) + self.sent(self.b)
        return events


def view(log: Log, booking_id: str) -> BookingView:
    (found,) = [v for v in log.core.bookings() if v.booking_id == booking_id]
    return found


@pytest.fixture
def two() -> Partitions:
    return Partitions()


def test_a_held_booking_moves_to_another_county_and_stays_held(two: Partitions) -> None:
    held = two.a.held(book("b1", "k1", "ann", "north", hold_s=HOLD_MS // 1000))
    assert two.a(move("m1", "k1", county="south", earliest=day_iso(3))) == []
    (transfer,) = two.sent(two.a)
    assert isinstance(transfer, TransferIn)
    assert (transfer.county, transfer.origin, transfer.rev, transfer.state) == (
        "south",
        "north",
        2,
        "held",
    )
    assert two.deliver(transfer) == []  # the new county answers the old one, not the gateway
    (answer,) = two.sent(two.b)
    assert isinstance(answer, TransferAnswer) and answer.reason is None
    assert view(two.b, "k1").state == "held"
    assert view(two.a, "k1").slots == tuple(slot_ids(held))  # both taken for the round trip
    (event,) = two.deliver(answer)
    assert event == Moved(
        "m1",
        "k1",
        "spring",
        2,
        T0_MS,
        answer.appointments,
        held.hold_expires_at_ms,
        "south",
    )
    assert slot_ids(event) == [slot_id("s1", "vx", 3), slot_id("s1", "vx", 24)]
    assert view(two.a, "k1") == BookingView("spring", "k1", "ann", "north", MOVED_OUT, 2, ())
    assert {used for _, used in two.a.usage().values()} == {0}
    assert view(two.b, "k1") == BookingView(
        "spring", "k1", "ann", "south", "held", 2, event_slots(event)
    )
    confirmed = two.b.one(confirm("f1", "k1"))
    assert isinstance(confirmed, Confirmed) and confirmed.rev == 3


def event_slots(event: Moved) -> tuple[str, ...]:
    return tuple(slot_ids(event))


def test_a_confirmed_booking_moves_and_stays_confirmed(two: Partitions) -> None:
    two.a.held(book("b1", "k1", "ann", "north"))
    two.a.one(confirm("f1", "k1"))
    (event,) = two.round_trip(move("m1", "k1", county="south"))
    assert isinstance(event, Moved) and (event.rev, event.hold_expires_at_ms) == (3, None)
    assert view(two.b, "k1").state == "confirmed"
    summary = two.b.core.summaries()[0].counties["south"]
    assert (summary.held, summary.confirmed) == (0, 1)
    assert two.a.core.summaries()[0].counties["north"].confirmed == 0


def test_without_a_pair_there_the_move_fails_and_nothing_changed(two: Partitions) -> None:
    held = two.a.held(book("b1", "k1", "ann", "north"))
    (event,) = two.round_trip(move("m1", "k1", county="south", earliest=day_iso(35)))
    assert isinstance(event, Failed) and event.reason == "no_pair_in_window"
    assert view(two.a, "k1").slots == tuple(slot_ids(held))
    assert [v.booking_id for v in two.b.core.bookings()] == []
    assert {used for _, used in two.b.usage().values()} == {0}
    assert isinstance(two.a.one(confirm("f1", "k1")), Confirmed)


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (move("m1", "k1", county="west"), "unknown_county"),
        (move("m1", "k1", county="south", center="s9"), "unknown_center"),
    ],
)
def test_a_move_to_a_county_or_center_the_other_side_does_not_have_fails(
    two: Partitions, message: Command, reason: str
) -> None:
    two.home["west"] = two.b  # west has no inventory, on south's partition
    two.a.held(book("b1", "k1", "ann", "north"))
    (event,) = two.round_trip(message)
    assert isinstance(event, Failed) and event.reason == reason


def test_while_moving_the_booking_is_frozen_and_afterwards_it_lives_there(
    two: Partitions,
) -> None:
    two.a.held(book("b1", "k1", "ann", "north"))
    two.a(move("m1", "k1", county="south"))
    for command in (confirm("f1", "k1"), cancel("x1", "k1"), move("m2", "k1", county="south")):
        assert two.a.reason(command) == "move_in_progress"
    (transfer,) = two.sent(two.a)
    two.deliver(transfer)
    (answer,) = two.sent(two.b)
    two.deliver(answer)
    for command in (confirm("f2", "k1"), cancel("x2", "k1"), move("m3", "k1")):
        assert two.a.reason(command) == "moved_away"
    assert two.sent(two.a) == []


def test_a_hold_does_not_run_out_while_frozen_and_runs_out_when_the_move_fails(
    two: Partitions,
) -> None:
    held = two.a.held(book("b1", "k1", "ann", "north", hold_s=60))
    two.a(move("m1", "k1", county="south"))
    (transfer,) = two.sent(two.a)
    late = held.hold_expires_at_ms + 1
    assert not_summaries(two.a(Tick("t1"), at_ms=late)) == []  # frozen: no expiry
    two.deliver(transfer, at_ms=late)  # the new county's clock passed the expiry too
    (answer,) = two.sent(two.b)
    assert isinstance(answer, TransferAnswer) and answer.reason == "hold_expired"
    events = two.deliver(answer)
    assert [(type(e), getattr(e, "reason", None)) for e in events] == [
        (Failed, "hold_expired"),
        (Expired, None),
    ]
    assert {used for _, used in two.a.usage().values()} == {0}


@pytest.mark.parametrize(
    ("transfer_at", "earliest", "reason"),
    [
        (0, None, "hold_expired"),  # the TransferIn comes at the expiry millisecond
        (-1, day_iso(45), "no_pair_in_window"),  # only the TransferAnswer does
    ],
)
def test_a_move_reaching_the_expiry_millisecond_ends_the_hold(
    two: Partitions, transfer_at: int, earliest: str | None, reason: str
) -> None:
    """A hold runs out at its expiry millisecond, not after it (``apply``: a record whose
    time reaches the expiry): a TransferIn at that millisecond is refused, a refused
    TransferAnswer at it ends the frozen hold, and both counties keep no place."""
    held = two.a.held(book("b1", "k1", "ann", "north", hold_s=60))
    expiry = held.hold_expires_at_ms
    two.a(move("m1", "k1", county="south", earliest=earliest))
    (transfer,) = two.sent(two.a)
    assert not_summaries(two.a(Tick("t1"), at_ms=expiry)) == []  # frozen: no expiry
    assert two.deliver(transfer, at_ms=expiry + transfer_at) == []
    (answer,) = two.sent(two.b)
    assert isinstance(answer, TransferAnswer) and answer.reason == reason
    assert {used for _, used in two.b.usage().values()} == {0}
    assert two.deliver(answer, at_ms=expiry) == [
        Failed("m1", "k1", "spring", expiry, RejectReason(reason)),
        Expired("b1", "k1", "spring", 2, expiry),
    ]
    assert view(two.a, "k1").state == "expired"
    assert {used for _, used in two.a.usage().values()} == {0}


def test_a_moved_hold_runs_out_in_the_new_county_at_the_same_time(two: Partitions) -> None:
    held = two.a.held(book("b1", "k1", "ann", "north", hold_s=60))
    two.round_trip(move("m1", "k1", county="south"))
    events = not_summaries(two.b(Tick("t1"), at_ms=held.hold_expires_at_ms))
    assert events == [Expired("b1", "k1", "spring", 3, held.hold_expires_at_ms)]
    assert {used for _, used in two.b.usage().values()} == {0}


def test_repeated_transfers_and_answers_are_dropped(two: Partitions) -> None:
    two.a.held(book("b1", "k1", "ann", "north"))
    two.a(move("m1", "k1", county="south"))
    (transfer,) = two.sent(two.a)
    two.deliver(transfer)
    two.deliver(transfer)  # the old county's allocator crashed and sent it again
    (answer,) = two.sent(two.b)
    assert len(two.deliver(answer)) == 1
    assert two.deliver(answer) == []
    assert [u for _, u in two.b.usage().values()].count(1) == 2


def test_a_refused_transfer_repeated_after_places_came_is_still_refused(
    two: Partitions,
) -> None:
    two.a.held(book("b1", "k1", "ann", "north"))
    two.a(move("m1", "k1", county="south", earliest=day_iso(45)))
    (transfer,) = two.sent(two.a)
    two.deliver(transfer)
    (answer,) = two.sent(two.b)
    assert isinstance(answer, TransferAnswer) and answer.reason == "no_pair_in_window"
    two.b(add("a-s2", "south", "s1", [slot(45), slot(70)]))
    two.deliver(transfer)  # repeated: must not take the new places for a failed move
    assert two.sent(two.b) == []
    assert {used for _, used in two.b.usage().values()} == {0}


def test_the_identity_booked_in_the_new_county_refuses_the_move(two: Partitions) -> None:
    two.a.held(book("b1", "k1", "ann", "north"))
    two.b.held(book("b2", "k2", "ann", "south"))  # the gateway's claim failed to stop it
    (event,) = two.round_trip(move("m1", "k1", county="south"))
    assert isinstance(event, Failed) and event.reason == "already_booked"


def test_a_booking_moves_there_and_back(two: Partitions) -> None:
    two.a.held(book("b1", "k1", "ann", "north"))
    two.round_trip(move("m1", "k1", county="south"))
    back = not_summaries(two.b(move("m2", "k1", county="north", earliest=day_iso(6))))
    assert back == []
    (transfer,) = two.sent(two.b)
    two.deliver(transfer)
    (answer,) = two.sent(two.a)
    (event,) = two.deliver(answer)
    assert isinstance(event, Moved) and (event.rev, event.county) == (3, "north")
    assert view(two.a, "k1").state == "held" and view(two.b, "k1").state == MOVED_OUT
    assert slot_ids(event)[0] == slot_id("n1", "vx", 6)
    assert isinstance(two.a.one(confirm("f1", "k1")), Confirmed)


def test_the_old_pair_goes_to_the_old_countys_waitlist(two: Partitions) -> None:
    one = Log()
    one(add("a-n", "north", "n1", [slot(0), slot(21)]))
    held = one.held(book("b1", "k1", "ann", "north"))
    one(book("b2", "k2", "bob", "north", waitlist=True))
    one(move("m1", "k1", county="south"))
    (transfer,) = one.core.sends
    two.b(transfer)
    (answer,) = two.b.core.sends
    events = not_summaries(one(answer))
    assert [type(e) for e in events] == [Moved, Offered]
    assert slot_ids(events[1]) == slot_ids(held)  # type: ignore[arg-type]


def test_a_county_on_the_same_partition_is_moved_to_in_one_step(two: Partitions) -> None:
    two.a(add("a-e", "east", "e1", daily(range(40))))
    two.a.held(book("b1", "k1", "ann", "north"))
    (event,) = not_summaries(two.a(move("m1", "k1", county="east")))
    assert isinstance(event, Moved) and event.county == "east"
    assert two.sent(two.a) == []
    assert view(two.a, "k1").county == "east"
    counties = two.a.core.summaries()[0].counties
    assert (counties["north"].held, counties["east"].held) == (0, 1)
    assert isinstance(two.a.one(confirm("f1", "k1")), Confirmed)


def test_a_county_unknown_everywhere_fails_also_when_it_hashes_to_the_same_partition(
    two: Partitions,
) -> None:
    two.home["west"] = two.a  # no inventory anywhere; its key lands on north's partition
    two.a.held(book("b1", "k1", "ann", "north"))
    (event,) = two.round_trip(move("m1", "k1", county="west"))
    assert isinstance(event, Failed) and event.reason == "unknown_county"
    assert isinstance(two.a.one(confirm("f1", "k1")), Confirmed)


def test_a_snapshot_in_the_middle_of_a_move_finishes_it_the_same_way(
    two: Partitions,
) -> None:
    two.a.held(book("b1", "k1", "ann", "north"))
    two.a(move("m1", "k1", county="south"))
    (transfer,) = two.sent(two.a)
    restored = Allocator.restore(two.a.core.snapshot())
    assert restored.snapshot() == two.a.core.snapshot()
    two.deliver(transfer)
    (answer,) = two.sent(two.b)
    offset = two.a.offset
    assert restored.apply(offset, T0_MS, answer) == two.a(answer)
    assert restored.snapshot() == two.a.core.snapshot()


def test_events_of_the_new_county_outrank_the_move_by_rev(two: Partitions) -> None:
    held = two.a.held(book("b1", "k1", "ann", "north"))
    (moved,) = two.round_trip(move("m1", "k1", county="south"))
    confirmed = two.b.one(confirm("f1", "k1"))
    assert isinstance(moved, Moved) and isinstance(confirmed, Confirmed)
    assert held.rev < moved.rev < confirmed.rev  # a gateway may read them in any order
    assert isinstance(held, Held)


# -- random interleavings ------------------------------------------------------------------

COUNTIES = ("north", "east", "south")  # north and east on partition 0, south on 1
PARTITION_OF = {"north": 0, "east": 0, "south": 1}

moves = st.tuples(
    st.just("move"), st.integers(0, 11), st.sampled_from((None, *COUNTIES)), st.integers(0, 3)
)
deliveries = st.tuples(st.sampled_from(("deliver", "deliver", "repeat")), st.integers(0, 5))
actions = st.lists(
    st.one_of(
        st.tuples(st.just("book"), st.sampled_from(COUNTIES), st.booleans()),
        moves,
        deliveries,
        st.tuples(st.sampled_from(("confirm", "cancel")), st.integers(0, 11), st.booleans()),
        moves,
        deliveries,
        st.tuples(st.just("tick"), st.integers(1, 400_000)),
        st.tuples(st.just("to_expiry")),
        st.tuples(st.just("restore"), st.integers(0, 1)),
    ),
    min_size=10,
    max_size=60,
)


class Cluster:
    """Two partitions' allocators fed like the service feeds them, the sends of each
    kept pending until the test delivers them (in any order, or twice)."""

    def __init__(self, capacity: int) -> None:
        self.cores = [Allocator(), Allocator()]
        self.inputs: list[list[tuple[int, int, Command]]] = [[], []]
        self.outputs: list[list[bytes]] = [[], []]
        self.pending: list[Transfer] = []
        self.now_ms = T0_MS
        self.county_of: dict[str, str] = {}  # booking id -> county, as a gateway learns it
        self.answers: dict[str, int] = {}  # command id -> answers seen
        self.expiries: dict[str, int] = {}  # booking id -> the hold's expiry, from its events
        for i, county in enumerate(COUNTIES):
            # dose 1 on day 0 or 2 only: a few pairs per county, so moves compete for them
            slots = [slot(d, capacity=capacity) for d in range(0, 26, 2)]
            self.feed(add(f"a{i}", county, f"{county}-1", slots))

    def feed(self, command: AddInventory | Book) -> None:
        self.apply(PARTITION_OF[command.county], command)

    def apply(self, p: int, command: Command) -> None:
        core = self.cores[p]
        record = (len(self.inputs[p]), self.now_ms, command)
        self.inputs[p].append(record)
        events = core.apply(*record)
        sends = list(core.sends)
        core.sends.clear()
        self.outputs[p] += [m.pack() for m in (*events, *sends)]
        self.pending += sends
        for e in events:
            if not isinstance(e, Summary | Expired | Offered):
                self.answers[e.command_id] = self.answers.get(e.command_id, 0) + 1
            if isinstance(e, Held | Offered):
                self.expiries[e.booking_id] = e.hold_expires_at_ms
            if isinstance(e, Held | Waitlisted) or (isinstance(e, Moved) and e.county):
                self.county_of[e.booking_id] = e.county  # type: ignore[assignment]

    def deliver(self, i: int, keep: bool = False) -> None:
        if self.pending:
            message = self.pending[i % len(self.pending)]
            if not keep:
                self.pending.remove(message)
            self.apply(PARTITION_OF[message.county], message)

    def to_expiry(self) -> None:
        """Let time pass to the next expiry of a hold, exactly: the next record (a move's
        TransferIn or TransferAnswer, say) comes at that millisecond."""
        later = [e for e in self.expiries.values() if e > self.now_ms]
        if later:
            self.now_ms = min(later)

    def check(self) -> None:
        for core in self.cores:  # a hold runs out at the first record reaching its expiry
            for v in core.bookings():
                if v.state == "held" and not v.moving:
                    assert self.expiries[v.booking_id] > core.now_ms, (v, core.now_ms)
        placed = 0
        for core in self.cores:
            for u in core.slot_usage():
                assert u.used <= u.capacity, u
                placed += u.used
        by_booking: dict[str, list[BookingView]] = {}
        for core in self.cores:
            for v in core.bookings():
                by_booking.setdefault(v.booking_id, []).append(v)
        pairs = 0
        for views in by_booking.values():
            live = [v for v in views if v.state in ("held", "confirmed", "waitlisted")]
            # in two partitions only in the middle of a move, the old one frozen
            assert len(live) <= 1 or (len(live) == 2 and sum(v.moving for v in live) == 1)
            pairs += sum(1 for v in live if v.slots)
        assert placed == 2 * pairs  # no place lost or leaked by a move
        for p, core in enumerate(self.cores):
            for summary in core.summaries():
                for county, counts in summary.counties.items():
                    here = [v for vs in by_booking.values() for v in vs if v.county == county]
                    held = sum(v.state == "held" for v in here)
                    confirmed = sum(v.state == "confirmed" for v in here)
                    assert (counts.held, counts.confirmed) == (held, confirmed), (p, county)


def play(actions: list[tuple[Any, ...]], capacity: int) -> Cluster:
    """Run ``actions`` on a Cluster, checking every invariant after each step and once
    every pending message is delivered; returns the cluster."""
    cluster = Cluster(capacity)
    booked: list[str] = []
    for n, action in enumerate(actions):
        kind = action[0]
        if kind == "book":
            booking_id = f"k{len(booked)}"
            booked.append(booking_id)
            cluster.feed(book(f"b{n}", booking_id, booking_id, action[1], waitlist=action[2]))
        elif kind in ("confirm", "cancel", "move") and booked:
            booking_id = booked[action[1] % len(booked)]
            county = cluster.county_of.get(booking_id)
            if county is not None:
                p = PARTITION_OF[county]
                if kind != "move" and action[2]:
                    p = 1 - p  # a gateway that has not seen the booking move yet
                command = (
                    confirm(f"f{n}", booking_id)
                    if kind == "confirm"
                    else cancel(f"x{n}", booking_id)
                    if kind == "cancel"
                    else move(f"m{n}", booking_id, county=action[2], earliest=day_iso(action[3]))
                )
                cluster.apply(p, command)
        elif kind in ("deliver", "repeat"):
            cluster.deliver(action[1], keep=kind == "repeat")
        elif kind == "tick":
            cluster.now_ms += action[1]
            for p in (0, 1):
                cluster.apply(p, Tick(f"t{n}-{p}"))
        elif kind == "to_expiry":
            cluster.to_expiry()
        elif kind == "restore":
            p = action[1]
            cluster.cores[p] = Allocator.restore(cluster.cores[p].snapshot())
        cluster.check()
    while cluster.pending:
        cluster.deliver(0)
        cluster.check()
    return cluster


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions=actions, capacity=st.integers(1, 2))
def test_moves_across_partitions_keep_every_invariant_in_any_interleaving(
    actions: list[tuple[Any, ...]], capacity: int
) -> None:
    cluster = play(actions, capacity)
    assert all(n == 1 for n in cluster.answers.values()), cluster.answers
    for p in (0, 1):  # the output of each partition is a pure function of its input
        fresh = Allocator()
        again: list[bytes] = []
        for record in cluster.inputs[p]:
            again += [e.pack() for e in fresh.apply(*record)]
            again += [m.pack() for m in fresh.sends]
            fresh.sends.clear()
        assert again == cluster.outputs[p]
