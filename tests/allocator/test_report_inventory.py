"""ReportInventory: a county's places per center and day, read from the allocator's state."""

from __future__ import annotations

from allocator.core import Allocator
from schemas.commands import ReportInventory
from schemas.events import DayInventory, InventoryReport
from tests.allocator import (
    CAMPAIGN,
    T0_MS,
    Log,
    add,
    book,
    cancel,
    confirm,
    day_iso,
    reserve,
    slot,
)

DAY_0, DAY_21 = day_iso(0), day_iso(21)


def report(log: Log, county: str = "north", campaign: str = CAMPAIGN) -> InventoryReport:
    answer = log.one(ReportInventory(f"report-{log.offset}", campaign, county))
    assert isinstance(answer, InventoryReport), answer
    assert (answer.campaign, answer.county, answer.at_ms) == (campaign, county, log.now_ms)
    return answer


def loaded(log: Log) -> None:
    """c1 (north): 3 places at 9:00 and 2 at 14:00 on day 0, 3 on day 21; c2 (north): 2 on
    day 0 and day 21; s1 (south): 4 on day 0 and day 21."""
    log(add("a1", "north", "c1", [slot(0, 9, 3), slot(0, 14, 2), slot(21, 9, 3)]))
    log(add("a2", "north", "c2", [slot(0, 9, 2), slot(21, 9, 2)]))
    log(add("a3", "south", "s1", [slot(0, 9, 4), slot(21, 9, 4)]))


def figures(
    capacity: int, free: int, held: int = 0, confirmed: int = 0, reserved: int = 0
) -> DayInventory:
    return DayInventory(capacity, free, held, confirmed, reserved)


def test_after_loading_every_center_and_day_of_the_county_is_reported(log: Log) -> None:
    loaded(log)
    answer = report(log)
    assert answer.reason is None
    assert answer.centers == {
        "c1": {DAY_0: figures(5, 5), DAY_21: figures(3, 3)},
        "c2": {DAY_0: figures(2, 2), DAY_21: figures(2, 2)},
    }
    assert report(log, "south").centers == {"s1": {DAY_0: figures(4, 4), DAY_21: figures(4, 4)}}


def test_a_hold_a_confirmation_and_a_cancel_move_places_between_the_figures(log: Log) -> None:
    loaded(log)
    log.held(book("b1", "k1", "alice", "north", center="c1"))
    log.held(book("b2", "k2", "bob", "north", center="c1"))
    log.held(book("b3", "k3", "carol", "south"))
    c1 = report(log).centers["c1"]
    assert c1 == {DAY_0: figures(5, 3, held=2), DAY_21: figures(3, 1, held=2)}
    log(confirm("c-b1", "k1"))
    c1 = report(log).centers["c1"]
    assert c1 == {DAY_0: figures(5, 3, held=1, confirmed=1), DAY_21: figures(3, 1, 1, 1)}
    log(cancel("x-b2", "k2"))
    log(cancel("x-b1", "k1"))
    answer = report(log)
    assert answer.centers["c1"] == {DAY_0: figures(5, 5), DAY_21: figures(3, 3)}
    assert answer.centers["c2"] == {DAY_0: figures(2, 2), DAY_21: figures(2, 2)}
    south = report(log, "south").centers["s1"]
    assert south == {DAY_0: figures(4, 3, held=1), DAY_21: figures(4, 3, held=1)}


def test_a_reserve_holds_back_free_places_of_its_day(log: Log) -> None:
    loaded(log)
    log(reserve("r1", "north", "c1", 0, "care", 50))
    # 50 % of 3 places is 1, of 2 places is 1: two held back on day 0
    assert report(log).centers["c1"][DAY_0] == figures(5, 3, reserved=2)
    log.held(book("b1", "k1", "dana", "north", center="c1", group="care"))
    c1 = report(log).centers["c1"]
    assert c1[DAY_0] == figures(5, 2, held=1, reserved=2)  # an open place first
    log.held(book("b2", "k2", "emil", "north", center="c1", group="care"))
    log.held(book("b3", "k3", "finn", "north", center="c1", group="care"))
    # 9:00's open places are gone, so its reserved one is the member's earliest
    assert report(log).centers["c1"][DAY_0] == figures(5, 1, held=3, reserved=1)


def test_held_and_confirmed_places_are_the_places_slots_use(log: Log) -> None:
    loaded(log)
    for n in range(4):
        log.held(book(f"b{n}", f"k{n}", f"person-{n}", "north"))
    log(confirm("c-b0", "k0"))
    log(confirm("c-b3", "k3"))
    answer = report(log)
    booked = sum(f.held + f.confirmed for days in answer.centers.values() for f in days.values())
    used = sum(u.used for u in log.core.slot_usage() if not u.slot.startswith("s1/"))
    assert booked == used == 8
    confirmed = sum(f.confirmed for days in answer.centers.values() for f in days.values())
    assert confirmed == 4


def test_a_started_slot_counts_its_free_places_no_more(log: Log) -> None:
    loaded(log)
    log.held(book("b1", "k1", "alice", "north", center="c1"))
    log(confirm("c-b1", "k1"))
    after_nine = slot(0, 9).start_s * 1000 + 1
    answer = log.one(ReportInventory("late", CAMPAIGN, "north"), at_ms=after_nine)
    assert isinstance(answer, InventoryReport)
    assert answer.centers["c1"][DAY_0] == figures(5, 2, confirmed=1)  # the 9:00 slot has started


def test_an_unknown_county_or_campaign_is_answered_with_a_reason(log: Log) -> None:
    loaded(log)
    for answer in (report(log, "east"), report(log, campaign="autumn")):
        assert (answer.centers, answer.reason) == ({}, "unknown_county")


def test_a_report_changes_nothing_and_is_answered_each_time(log: Log) -> None:
    loaded(log)
    log(reserve("r1", "north", "c1", 0, "care", 50))
    log.held(book("b1", "k1", "alice", "north", center="c1", group="care"))
    log.held(book("b2", "k2", "bob", "north"))
    log(confirm("c-b2", "k2"))
    log(book("b3", "k3", "carol", "north", center="c2", waitlist=True, earliest=day_iso(1)))
    before = log.core.snapshot()
    first = log.one(ReportInventory("same-id", CAMPAIGN, "north"))
    again = log.one(ReportInventory("same-id", CAMPAIGN, "north"))
    log.one(ReportInventory("other-campaign", "autumn", "north"))
    assert first == again
    unchanged = Allocator.restore(before)
    unchanged.next_offset = log.core.next_offset  # the offset read is the one change
    assert log.core.snapshot() == unchanged.snapshot()
    assert log.core.summaries() == unchanged.summaries()
    # and the log goes on as if the reports were not in it
    then = T0_MS + 1000
    assert log(book("b4", "k4", "dora", "north"), then) == unchanged.apply(
        log.offset, then, book("b4", "k4", "dora", "north")
    )
