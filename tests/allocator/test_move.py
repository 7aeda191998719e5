"""Move: a held or confirmed booking gets another pair in one step, or nothing changes."""

from __future__ import annotations

import pytest

from allocator.core import BookingView
from schemas.commands import Tick
from schemas.events import Cancelled, Confirmed, CountySummary, Event, Expired, Moved
from tests.allocator import (
    CAMPAIGN,
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
    reserve,
    slot,
    slot_id,
    slot_ids,
)


def moved(log: Log, events: list[Event]) -> Moved:
    (event,) = not_summaries(events)
    assert isinstance(event, Moved), event
    return event


def view(log: Log, booking_id: str) -> BookingView:
    (found,) = [v for v in log.core.bookings() if v.booking_id == booking_id]
    return found


def test_a_held_booking_moves_and_stays_held_with_the_same_expiry(log: Log) -> None:
    log(add("a1", "north", "c1", daily(range(40))))
    held = log.held(book("b1", "k1", "alice", "north", hold_s=300))
    event = moved(log, log(move("m1", "k1", earliest=day_iso(5)), at_ms=T0_MS + 7))
    assert event == Moved(
        "m1",
        "k1",
        CAMPAIGN,
        2,
        T0_MS + 7,
        event.appointments,
        held.hold_expires_at_ms,
    )
    assert slot_ids(event) == [slot_id("c1", "vx", 5), slot_id("c1", "vx", 26)]
    assert [a.dose for a in event.appointments] == [1, 2]
    assert view(log, "k1") == BookingView(
        CAMPAIGN, "k1", "alice", "north", "held", 2, tuple(slot_ids(event))
    )
    usage = log.usage()
    assert [usage[s][1] for s in slot_ids(held)] == [0, 0]
    assert [usage[s][1] for s in slot_ids(event)] == [1, 1]
    confirmed = log.one(confirm("f1", "k1"))
    assert isinstance(confirmed, Confirmed)
    assert (confirmed.rev, confirmed.appointments) == (3, event.appointments)


def test_a_confirmed_booking_moves_and_stays_confirmed(log: Log) -> None:
    log(add("a1", "north", "c1", daily(range(40))))
    log.held(book("b1", "k1", "alice", "north"))
    log.one(confirm("f1", "k1"))
    event = moved(log, log(move("m1", "k1", earliest=day_iso(3))))
    assert (event.rev, event.hold_expires_at_ms) == (3, None)
    assert view(log, "k1").state == "confirmed"
    assert log.reason(confirm("f2", "k1")) == "not_held"
    assert log.core.summaries()[0].counties["north"].confirmed == 1
    assert isinstance(log.one(cancel("x1", "k1")), Cancelled)
    assert {used for _, used in log.usage().values()} == {0}


def test_a_moved_hold_still_expires_and_frees_the_new_pair(log: Log) -> None:
    log(add("a1", "north", "c1", daily(range(40))))
    held = log.held(book("b1", "k1", "alice", "north", hold_s=60))
    log(move("m1", "k1", earliest=day_iso(2)))
    events = log(Tick("t1"), at_ms=held.hold_expires_at_ms)
    assert not_summaries(events) == [Expired("b1", "k1", CAMPAIGN, 3, held.hold_expires_at_ms)]
    assert {used for _, used in log.usage().values()} == {0}


def test_the_new_pair_never_reuses_the_old_places(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0), slot(1), slot(21), slot(22)]))
    held = log.held(book("b1", "k1", "alice", "north"))
    event = moved(log, log(move("m1", "k1")))
    assert slot_ids(event) == [slot_id("c1", "vx", 1), slot_id("c1", "vx", 22)]
    assert slot_ids(event)[0] not in slot_ids(held)
    again = moved(log, log(move("m2", "k1")))
    assert slot_ids(again) == slot_ids(held)


def test_a_place_of_the_same_slot_may_be_taken_when_the_slot_has_more(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0, capacity=2), slot(21, capacity=2)]))
    held = log.held(book("b1", "k1", "alice", "north"))
    event = moved(log, log(move("m1", "k1")))
    assert slot_ids(event) == slot_ids(held)
    assert set(log.usage().values()) == {(2, 1)}


def test_a_move_to_a_center_of_the_county(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0), slot(21)]))
    log(add("a2", "north", "c2", [slot(3), slot(24)]))
    log.held(book("b1", "k1", "alice", "north"))
    event = moved(log, log(move("m1", "k1", center="c2")))
    assert slot_ids(event) == [slot_id("c2", "vx", 3), slot_id("c2", "vx", 24)]
    assert event.appointments[0].center_name == "Center c2"


def test_failures_change_nothing(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0), slot(21), slot(30)]))
    log(add("a2", "north", "c2", [slot(1), slot(22)]))
    log(add("a3", "south", "c9", [slot(0), slot(21)]))
    log.held(book("b1", "k1", "alice", "north", center="c1"))
    log.held(book("b2", "k2", "bob", "north", center="c2"))
    before = (log.usage(), list(log.core.bookings()), log.core.summaries())
    assert log.reason(move("m1", "k1", center="nope")) == "unknown_center"
    assert log.reason(move("m2", "k1", center="c9")) == "not_eligible"
    assert log.reason(move("m3", "k1", center="c2")) == "sold_out"
    assert log.reason(move("m4", "k1", center="c1")) == "no_pair_in_window"
    assert log.reason(move("m5", "k1", earliest=day_iso(25))) == "no_pair_in_window"
    assert log.reason(move("m6", "nope")) == "unknown_booking"
    assert log.reason(move("m7", "k1", campaign="other")) == "unknown_booking"
    assert (log.usage(), list(log.core.bookings()), log.core.summaries()) == before


@pytest.mark.parametrize("end", ["rejected", "expired", "cancelled", "waitlisted"])
def test_only_held_or_confirmed_bookings_move(log: Log, end: str) -> None:
    log(add("a1", "north", "c1", [slot(0), slot(21), slot(1), slot(22)]))
    if end == "rejected":
        log(book("b1", "k1", "alice", "west"))
    elif end == "expired":
        log.held(book("b1", "k1", "alice", "north", hold_s=1))
        log(Tick("t1"), at_ms=T0_MS + 1000)
    elif end == "cancelled":
        log.held(book("b1", "k1", "alice", "north"))
        log(cancel("x1", "k1"))
    else:
        log.held(book("b0", "k0", "zed", "north"))
        log.held(book("b9", "k9", "yan", "north"))
        log(book("b1", "k1", "alice", "north", waitlist=True))
    assert view(log, "k1").state == end
    before = log.usage()
    assert log.reason(move("m1", "k1")) == "not_movable"
    assert log.usage() == before


def test_a_redelivered_move_gets_no_second_answer(log: Log) -> None:
    log(add("a1", "north", "c1", daily(range(40))))
    log.held(book("b1", "k1", "alice", "north"))
    m = move("m1", "k1", earliest=day_iso(4))
    first = moved(log, log(m))
    assert log(m) == []
    assert view(log, "k1").slots == tuple(slot_ids(first))
    failing = move("m2", "nope")
    log.reason(failing)
    assert log(failing) == []


def test_a_move_keeps_the_counts_of_the_summary(log: Log) -> None:
    log(add("a1", "north", "c1", daily(range(40))))
    log.held(book("b1", "k1", "alice", "north"))
    before = log.core.summaries()[0].counties["north"]
    log(move("m1", "k1", earliest=day_iso(10)))
    after = log.core.summaries()[0].counties["north"]
    assert after == before
    assert after == CountySummary(after.pairs_left, 38, 1, 0, 0, 0, {"vx": after.pairs_left})


def test_a_move_searches_for_the_booking_s_priority_group(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0), slot(21), slot(1, capacity=2), slot(22, capacity=2)]))
    for day in (0, 21):
        log(reserve(f"r{day}", "north", "c1", day, "care", 100))
    log.held(book("b1", "k1", "ann", "north", group="care", earliest=day_iso(1)))
    log.held(book("b2", "k2", "bob", "north"))
    assert log.reason(move("m1", "k2")) == "reserved_for_priority_group"
    event = moved(log, log(move("m2", "k1")))
    assert slot_ids(event) == [slot_id("c1", "vx", 0), slot_id("c1", "vx", 21)]


def test_a_move_to_another_time_of_day(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(d, h) for d in (0, 21) for h in (9, 15)]))
    log.held(book("b1", "k1", "ann", "north"))
    event = moved(log, log(move("m1", "k1", time_of_day="afternoon")))
    assert slot_ids(event) == [slot_id("c1", "vx", 0, 15), slot_id("c1", "vx", 21, 15)]
    assert log.reason(move("m2", "k1", time_of_day="evening")) == "no_pair_at_time_of_day"
