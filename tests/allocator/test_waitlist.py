"""The waitlist: a Book with ``waitlist`` that finds no pair waits, and is offered one
as soon as places of its county come back or arrive, first come first served."""

from __future__ import annotations

from typing import Any

import pytest

from allocator.core import Allocator
from schemas.commands import Tick
from schemas.events import (
    Cancelled,
    Confirmed,
    Event,
    Expired,
    Failed,
    Held,
    InventoryAdded,
    Moved,
    Offered,
    Rejected,
    Waitlisted,
)
from schemas.states import RejectReason
from tests.allocator import (
    CAMPAIGN,
    T0_MS,
    Log,
    add,
    book,
    cancel,
    confirm,
    day_iso,
    move,
    not_summaries,
    remove,
    reserve,
    slot,
    slot_id,
    slot_ids,
)


def one_pair(log: Log, command_id: str = "a1", center: str = "c1", day: int = 0) -> None:
    log(add(command_id, "north", center, [slot(day), slot(day + 21)]))


def waitlisted(log: Log, command_id: str, booking_id: str, identity: str, **kw: Any) -> None:
    event = log.one(book(command_id, booking_id, identity, "north", waitlist=True, **kw))
    assert isinstance(event, Waitlisted), event


def kinds(events: list[Event]) -> list[tuple[str, str]]:
    return [(e.TYPE, e.booking_id) for e in not_summaries(events) if hasattr(e, "booking_id")]


def state(log: Log, booking_id: str) -> str:
    (found,) = [v.state for v in log.core.bookings() if v.booking_id == booking_id]
    return found


def test_a_book_that_finds_no_pair_waits(log: Log) -> None:
    one_pair(log)
    log.held(book("b1", "k1", "alice", "north"))
    event = log.one(book("b2", "k2", "bob", "north", waitlist=True), at_ms=T0_MS + 5)
    assert event == Waitlisted("b2", "k2", CAMPAIGN, 1, T0_MS + 5, "bob", "north")
    assert state(log, "k2") == "waitlisted"
    assert log.reason(book("b3", "k3", "bob", "north")) == "already_booked"
    summary = log.core.summaries()[0].counties["north"]
    assert (summary.held, summary.waitlisted) == (1, 1)
    assert log.reason(confirm("f1", "k2")) == "not_held"
    assert log(book("b2", "k2", "bob", "north", waitlist=True)) == []


def test_no_pair_in_the_window_waits_too(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0), slot(40)]))
    waitlisted(log, "b1", "k1", "alice")


def test_other_rejections_do_not_wait(log: Log) -> None:
    one_pair(log)
    log(add("a2", "south", "c9", [slot(0), slot(21)]))
    log.held(book("b0", "k0", "zed", "north"))
    for i, kw in enumerate(
        [
            {"county": "west"},
            {"county": "north", "center": "nope"},
            {"county": "north", "center": "c9"},
            {"county": "north", "identity": "zed"},
        ]
    ):
        args: dict[str, Any] = {"identity": f"p{i}"} | kw
        event = log.one(book(f"b{i + 1}", f"k{i + 1}", waitlist=True, **args))
        assert isinstance(event, Rejected), event
    assert log.core.summaries()[0].counties["north"].waitlisted == 0


def test_a_cancelled_pair_is_offered_to_the_first_waiting(log: Log) -> None:
    one_pair(log)
    held = log.held(book("b1", "k1", "alice", "north"))
    waitlisted(log, "b2", "k2", "bob", hold_s=120)
    waitlisted(log, "b3", "k3", "carol")
    events = log(cancel("x1", "k1"), at_ms=T0_MS + 10)
    assert events == [
        Cancelled("x1", "k1", CAMPAIGN, 2, T0_MS + 10),
        Offered("b2", "k2", CAMPAIGN, 2, T0_MS + 10, held.appointments, T0_MS + 10 + 120_000),
    ]
    assert (state(log, "k2"), state(log, "k3")) == ("held", "waitlisted")
    summary = log.core.summaries()[0].counties["north"]
    assert (summary.held, summary.waitlisted, summary.free) == (1, 1, 0)
    confirmed = log.one(confirm("f2", "k2"))
    assert isinstance(confirmed, Confirmed) and confirmed.rev == 3


def test_an_offer_that_runs_out_goes_to_the_next_before_the_command(log: Log) -> None:
    one_pair(log)
    log.held(book("b1", "k1", "alice", "north"))
    waitlisted(log, "b2", "k2", "bob", hold_s=60)
    waitlisted(log, "b3", "k3", "carol")
    offered = log(cancel("x1", "k1"))[1]
    assert isinstance(offered, Offered)
    at = offered.hold_expires_at_ms
    events = log(book("b4", "k4", "dan", "north"), at_ms=at)
    assert events == [
        Expired("b2", "k2", CAMPAIGN, 3, at),
        Offered("b3", "k3", CAMPAIGN, 2, at, offered.appointments, at + 600_000),
        Rejected("b4", "k4", CAMPAIGN, 1, at, RejectReason.SOLD_OUT),
    ]
    assert log.reason(confirm("f2", "k2")) == "hold_expired"


def test_an_expired_hold_is_offered_on_a_tick(log: Log) -> None:
    one_pair(log)
    held = log.held(book("b1", "k1", "alice", "north", hold_s=30))
    waitlisted(log, "b2", "k2", "bob")
    events = log(Tick("t1"), at_ms=held.hold_expires_at_ms)
    assert kinds(events) == [("expired", "k1"), ("offered", "k2")]


def test_new_inventory_is_offered_in_arrival_order(log: Log) -> None:
    one_pair(log)
    log.held(book("b1", "k1", "alice", "north"))
    for i in range(2, 5):
        waitlisted(log, f"b{i}", f"k{i}", f"p{i}")
    events = log(add("a2", "north", "c2", [slot(d) for d in (1, 2, 22, 23)]))
    assert isinstance(events[0], InventoryAdded)
    offers = [e for e in events if isinstance(e, Offered)]
    assert [(e.booking_id, e.command_id) for e in offers] == [("k2", "b2"), ("k3", "b3")]
    assert slot_ids(offers[0]) == [slot_id("c2", "vx", 1), slot_id("c2", "vx", 22)]
    assert state(log, "k4") == "waitlisted"
    assert log.core.summaries()[0].counties["north"].waitlisted == 1


def test_each_waits_for_a_pair_that_fits_its_own_wish(log: Log) -> None:
    one_pair(log)
    one_pair(log, "a2", "c2")
    log.held(book("b1", "k1", "alice", "north", center="c1"))
    log.held(book("b2", "k2", "bob", "north", center="c2"))
    waitlisted(log, "b3", "k3", "carol", center="c2")
    waitlisted(log, "b4", "k4", "dan", earliest=day_iso(3))
    waitlisted(log, "b5", "k5", "erin")
    events = log(cancel("x1", "k1"))
    assert kinds(events) == [("cancelled", "k1"), ("offered", "k5")]
    events = log(add("a3", "north", "c1", [slot(3), slot(24)]))
    assert kinds(events) == [("offered", "k4")]
    events = log(cancel("x2", "k2"))
    assert kinds(events) == [("cancelled", "k2"), ("offered", "k3")]
    assert log.core.summaries()[0].counties["north"].waitlisted == 0


def test_a_cancelled_waitlisting_leaves_the_waitlist(log: Log) -> None:
    one_pair(log)
    log.held(book("b1", "k1", "alice", "north"))
    waitlisted(log, "b2", "k2", "bob")
    waitlisted(log, "b3", "k3", "carol")
    assert log(cancel("x2", "k2"), at_ms=T0_MS + 3) == [
        Cancelled("x2", "k2", CAMPAIGN, 2, T0_MS + 3)
    ]
    assert log.reason(cancel("x3", "k2")) == "already_final"
    assert kinds(log(cancel("x1", "k1"))) == [("cancelled", "k1"), ("offered", "k3")]
    assert state(log, "k2") == "cancelled"
    assert isinstance(log.one(book("b4", "k4", "bob", "north", waitlist=True)), Waitlisted)


def test_a_moved_pair_is_offered_after_the_move(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0), slot(1), slot(21), slot(22)]))
    log.held(book("b1", "k1", "alice", "north", center="c1", earliest=day_iso(0)))
    log.held(book("b2", "k2", "bob", "north"))
    waitlisted(log, "b3", "k3", "carol")
    log(add("a2", "north", "c2", [slot(5), slot(26)]))
    assert state(log, "k3") == "held"
    waitlisted(log, "b4", "k4", "dan", earliest=day_iso(0), center="c1")
    log.one(cancel("x3", "k3"))
    assert state(log, "k4") == "waitlisted"  # c2's pair does not fit dan's wish
    events = log(move("m1", "k1", center="c2"))
    assert [type(e) for e in not_summaries(events)] == [Moved, Offered]
    offered = not_summaries(events)[1]
    assert isinstance(offered, Offered) and offered.booking_id == "k4"
    assert slot_ids(offered) == [slot_id("c1", "vx", 0), slot_id("c1", "vx", 21)]


def test_removed_places_are_not_offered(log: Log) -> None:
    one_pair(log)
    log.held(book("b1", "k1", "alice", "north"))
    waitlisted(log, "b2", "k2", "bob")
    log(add("a2", "north", "c2", [slot(0)]))
    assert state(log, "k2") == "waitlisted"
    log(remove("r1", "north", "c2", [slot(0)]))
    log(add("a3", "north", "c2", [slot(21)]))
    assert state(log, "k2") == "waitlisted"
    log(add("a4", "north", "c2", [slot(0)]))
    assert state(log, "k2") == "held"


def test_an_identity_may_book_again_after_its_offer_expired(log: Log) -> None:
    one_pair(log)
    log.held(book("b1", "k1", "alice", "north"))
    waitlisted(log, "b2", "k2", "bob", hold_s=1)
    log(cancel("x1", "k1"))
    log(Tick("t1"), at_ms=T0_MS + 1000)
    assert state(log, "k2") == "expired"
    held = log.one(book("b3", "k3", "bob", "north"))
    assert isinstance(held, Held)


def test_a_round_searches_once_per_wish_not_per_waiting_booking(
    log: Log, monkeypatch: pytest.MonkeyPatch
) -> None:
    one_pair(log)
    log(add("a2", "north", "c2", [slot(0), slot(1)]))  # free places that never pair
    log.held(book("b0", "k0", "zed", "north"))
    for i in range(300):
        waitlisted(log, f"b{i + 1}", f"k{i + 1}", f"p{i}", earliest=day_iso(i % 3))
    searches = 0
    find_pair = Allocator._find_pair

    def counting(self: Allocator, *args: Any) -> Any:
        nonlocal searches
        searches += 1
        return find_pair(self, *args)

    monkeypatch.setattr(Allocator, "_find_pair", counting)
    log(add("a3", "north", "c2", [slot(5, 9)]))  # places come back, nobody can use them
    assert searches == 3
    searches = 0
    events = log(cancel("x0", "k0"))
    assert kinds(events) == [("cancelled", "k0"), ("offered", "k1")]
    assert searches == 4  # the offer, then one failed search per wish
    assert isinstance(log.one(confirm("f1", "k1")), Confirmed)


def test_a_failed_move_offers_nothing(log: Log) -> None:
    one_pair(log)
    log.held(book("b1", "k1", "alice", "north"))
    waitlisted(log, "b2", "k2", "bob")
    events = log(move("m1", "k1"))
    assert events == [Failed("m1", "k1", CAMPAIGN, T0_MS, RejectReason.SOLD_OUT)]


def test_reserved_places_are_offered_to_members_first_and_to_all_on_release(log: Log) -> None:
    one_pair(log)
    for day in (0, 21):
        log(reserve(f"r{day}", "north", "c1", day, "care", 100, release_at_ms=T0_MS + 60_000))
    log.held(book("b1", "k1", "ann", "north", group="care"))
    waitlisted(log, "b2", "k2", "bob")
    waitlisted(log, "b3", "k3", "cat", group="care")
    assert kinds(log(cancel("x1", "k1"))) == [("cancelled", "k1"), ("offered", "k3")]
    assert kinds(log(cancel("x3", "k3"))) == [("cancelled", "k3")]  # still held back
    events = log(Tick("t1"), at_ms=T0_MS + 60_000)
    assert kinds(events) == [("offered", "k2")]


def test_a_waitlisted_time_of_day_gets_only_that_time(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0, 9), slot(21, 9)]))
    log.held(book("b1", "k1", "ann", "north"))
    waitlisted(log, "b2", "k2", "bob", time_of_day="afternoon")
    waitlisted(log, "b3", "k3", "cat", time_of_day="morning")
    assert kinds(log(cancel("x1", "k1"))) == [("cancelled", "k1"), ("offered", "k3")]
    events = log(add("a2", "north", "c1", [slot(1, 15), slot(22, 15)]))
    assert kinds(events) == [("offered", "k2")]
    offered = events[-1]
    assert isinstance(offered, Offered)
    assert slot_ids(offered) == [slot_id("c1", "vx", 1, 15), slot_id("c1", "vx", 22, 15)]


def test_a_book_with_no_pair_at_its_time_of_day_waits(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0, 9), slot(21, 9)]))
    assert log.reason(book("b1", "k1", "ann", "north", time_of_day="evening")) == (
        "no_pair_at_time_of_day"
    )
    waitlisted(log, "b2", "k2", "bob", time_of_day="evening")
