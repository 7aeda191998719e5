"""A Book's time-of-day preference: both doses start in that part of the local day."""

from __future__ import annotations

import datetime as dt

import pytest

from allocator.inventory import time_of_day_of
from schemas.commands import SlotSpec
from schemas.states import TIMES_OF_DAY
from tests.allocator import (
    Log,
    add,
    book,
    cancel,
    reserve,
    slot,
    slot_id,
    slot_ids,
    window_edges,
)


@pytest.mark.parametrize(
    ("start", "part"),
    [
        ("2030-03-01T00:00:00+00:00", "morning"),
        ("2030-03-01T11:59:00+00:00", "morning"),
        ("2030-03-01T12:00:00+00:00", "afternoon"),
        ("2030-03-01T16:59:59+00:00", "afternoon"),
        ("2030-03-01T17:00:00+00:00", "evening"),
        ("2030-03-01T23:30:00+00:00", "evening"),
        ("2030-03-01T18:00:00+02:00", "evening"),  # 16:00 UTC: the local hour counts
        ("2030-03-01T09:00:00-05:00", "morning"),
    ],
)
def test_a_slot_is_in_the_part_of_the_day_of_its_local_start(start: str, part: str) -> None:
    assert TIMES_OF_DAY[time_of_day_of(start)] == part


def test_a_preference_takes_the_earliest_pair_with_both_doses_at_that_time(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(d, h) for d in (0, 21) for h in (9, 13, 18)]))
    held = log.held(book("b1", "k1", "ann", "north", time_of_day="afternoon"))
    assert slot_ids(held) == [slot_id("c1", "vx", 0, 13), slot_id("c1", "vx", 21, 13)]
    held = log.held(book("b2", "k2", "bob", "north", time_of_day="evening"))
    assert slot_ids(held) == [slot_id("c1", "vx", 0, 18), slot_id("c1", "vx", 21, 18)]
    held = log.held(book("b3", "k3", "cid", "north"))  # no preference: any time
    assert slot_ids(held) == [slot_id("c1", "vx", 0, 9), slot_id("c1", "vx", 21, 9)]


def test_the_preference_holds_for_dose_2_too(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0, 18), slot(21, 9), slot(22, 9), slot(23, 19)]))
    held = log.held(book("b1", "k1", "ann", "north", time_of_day="evening"))
    assert slot_ids(held) == [slot_id("c1", "vx", 0, 18), slot_id("c1", "vx", 23, 19)]


def test_a_pair_only_at_another_time_is_its_own_reason(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0, 9), slot(21, 9), slot(1, 18), slot(22, 10)]))
    assert log.reason(book("b1", "k1", "ann", "north", time_of_day="evening")) == (
        "no_pair_at_time_of_day"
    )
    log.held(book("b2", "k2", "bob", "north", time_of_day="morning"))
    # the pair left starts in the evening and ends in the morning: no time of day has it
    assert log.reason(book("b3", "k3", "cid", "north", time_of_day="morning")) == (
        "no_pair_at_time_of_day"
    )
    held = log.held(book("b4", "k4", "dan", "north"))
    assert slot_ids(held) == [slot_id("c1", "vx", 1, 18), slot_id("c1", "vx", 22, 10)]


def test_a_sold_out_county_is_sold_out_at_any_time(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0, 18), slot(21, 18)]))
    log.held(book("b1", "k1", "ann", "north"))
    assert log.reason(book("b2", "k2", "bob", "north", time_of_day="evening")) == "sold_out"


def test_a_failed_search_at_one_time_does_not_hide_pairs_at_another(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0, 9), slot(21, 9), slot(0, 18), slot(21, 18)]))
    evening = log.held(book("b1", "k1", "ann", "north", time_of_day="evening"))
    assert log.reason(book("b2", "k2", "bob", "north", time_of_day="evening")) == (
        "no_pair_at_time_of_day"
    )
    log.held(book("b3", "k3", "cid", "north", time_of_day="morning"))
    log.one(cancel("x1", "k1"))  # the evening pair comes back
    again = log.held(book("b4", "k4", "dan", "north", time_of_day="evening"))
    assert slot_ids(again) == slot_ids(evening)


def test_the_earliest_preferred_pair_wins_across_centers(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0, 9), slot(21, 9), slot(2, 13), slot(23, 13)]))
    log(add("a2", "north", "c2", [slot(1, 14), slot(22, 14)]))
    held = log.held(book("b1", "k1", "ann", "north", time_of_day="afternoon"))
    assert slot_ids(held) == [slot_id("c2", "vx", 1, 14), slot_id("c2", "vx", 22, 14)]


def test_a_slot_with_an_offset_counts_by_its_local_hour(log: Log) -> None:
    def local(day: dt.date, hour: int) -> SlotSpec:
        start = dt.datetime(
            day.year, day.month, day.day, hour, tzinfo=dt.timezone(dt.timedelta(hours=2))
        )
        return SlotSpec(day.isoformat(), start.isoformat(), int(start.timestamp()), 1)

    first = dt.date(2030, 3, 1)
    log(add("a1", "north", "c1", [local(first, 18), local(first + dt.timedelta(days=21), 17)]))
    held = log.held(book("b1", "k1", "ann", "north", time_of_day="evening"))
    assert [a.start for a in held.appointments] == [
        "2030-03-01T18:00:00+02:00",
        "2030-03-22T17:00:00+02:00",
    ]


def test_a_member_with_a_preference_may_take_reserved_places_at_that_time(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(d, h, 2) for d in (0, 21) for h in (9, 18)]))
    for day in (0, 21):
        log.one(reserve(f"r{day}", "north", "c1", day, "care", 50))
    log.held(book("b0", "k0", "p0", "north", time_of_day="evening"))
    assert log.reason(book("b1", "k1", "p1", "north", time_of_day="evening")) == (
        "no_pair_at_time_of_day"
    )
    held = log.held(book("b3", "k3", "p3", "north", time_of_day="evening", group="care"))
    assert slot_ids(held) == [slot_id("c1", "vx", 0, 18), slot_id("c1", "vx", 21, 18)]


def test_the_window_edges_hold_at_a_time_of_day(log: Log) -> None:
    """Dose 2 on the first or the last day of the window pairs, a day outside it never
    does: in the search for a time of day too, not only in the plain one."""
    for command in window_edges(hour=18):
        log(command)
    for n, (center, edge) in enumerate((("c1", 21), ("c2", 28))):
        held = log.held(
            book(f"b{n}", f"k{n}", f"p{n}", "north", center=center, time_of_day="evening")
        )
        assert slot_ids(held) == [slot_id(center, "vx", 0, 18), slot_id(center, "vx", edge, 18)]
    outside = book("b3", "k3", "p3", "north", center="c3", time_of_day="evening")
    assert log.reason(outside) == "no_pair_in_window"  # not day 20 nor day 29
