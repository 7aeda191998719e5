"""Priority reserves: SetReserve, the two modes, giving places back, the release date."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocator.core import Allocator
from schemas.commands import Book, Tick
from schemas.events import CountySummary, Held, Rejected, ReserveSet, Summary
from tests.allocator import (
    T0_MS,
    Log,
    add,
    book,
    cancel,
    confirm,
    reserve,
    slot,
    slot_id,
    start_ms,
)
from tests.allocator.test_core_properties import Record, reserve_logs
from tests.allocator.test_snapshot import assert_restoring_at_every_kth_record_continues

RELEASE_MS = T0_MS + 3_600_000
HOLD_S = 7200  # holds outlast the release
DOSE_1 = slot_id("c1", "vx", 0)
DOSE_2 = slot_id("c1", "vx", 21)


def stock(log: Log, capacity: int = 10, share_pct: int = 30, mode: str = "over_and_above") -> None:
    """Center c1 with one slot on day 0 and one on day 21, ``share_pct`` of each for "care"."""
    log(add("a1", "north", "c1", [slot(0, 9, capacity), slot(21, 9, capacity)]))
    for day in (0, 21):
        answer = log.one(reserve(f"r{day}", "north", "c1", day, "care", share_pct, mode=mode))
        assert isinstance(answer, ReserveSet) and answer.accepted


def member(n: int) -> Book:
    return book(f"bm{n}", f"km{n}", f"member{n}", "north", group="care", hold_s=HOLD_S)


def other(n: int, group: str | None = None) -> Book:
    return book(f"bo{n}", f"ko{n}", f"other{n}", "north", group=group, hold_s=HOLD_S)


def outcome(log: Log, commands: list[Book]) -> Counter[tuple[str, str]]:
    """(who, "held" or the reason) for every Book, counted."""
    counts: Counter[tuple[str, str]] = Counter()
    for cmd in commands:
        event = log.one(cmd)
        who = "member" if cmd.group == "care" else "other"
        counts[(who, event.reason if isinstance(event, Rejected) else event.TYPE)] += 1
    return counts


def held_back(log: Log) -> dict[str, int]:
    return {u.slot: u.held_back for u in log.core.slot_usage()}


def summary(log: Log) -> CountySummary:
    (s,) = log.core.summaries()
    return s.counties["north"]


# -- the worked example of the README ----------------------------------------------------------

ARRIVALS = [member(n) for n in range(4)] + [other(n) for n in range(10)]
LATE = [member(n) for n in range(4, 7)]


def test_over_and_above_puts_the_reserve_on_top_of_what_members_win_in_the_open(
    log: Log,
) -> None:
    stock(log, mode="over_and_above")
    assert summary(log) == CountySummary(10, 14, 0, 0, 0, 6)
    # members compete for the 7 open places like everybody: they keep the reserve
    assert outcome(log, ARRIVALS) == {
        ("member", "held"): 4,
        ("other", "held"): 3,
        ("other", "reserved_for_priority_group"): 7,
    }
    assert held_back(log) == {DOSE_1: 3, DOSE_2: 3}
    assert outcome(log, LATE) == {("member", "held"): 3}
    assert held_back(log) == {DOSE_1: 0, DOSE_2: 0}


def test_minimum_guarantee_lets_members_use_up_the_reserve_first(log: Log) -> None:
    stock(log, mode="minimum_guarantee")
    # the first three members take the reserve, the fourth an open place
    assert outcome(log, ARRIVALS) == {
        ("member", "held"): 4,
        ("other", "held"): 6,
        ("other", "sold_out"): 4,
    }
    assert held_back(log) == {DOSE_1: 0, DOSE_2: 0}
    assert outcome(log, LATE) == {("member", "sold_out"): 3}


def test_without_a_reserve_the_same_arrivals_give_members_four(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0, 9, 10), slot(21, 9, 10)]))
    assert outcome(log, ARRIVALS + LATE) == {
        ("member", "held"): 4,
        ("other", "held"): 6,
        ("other", "sold_out"): 4,
        ("member", "sold_out"): 3,
    }


@pytest.mark.parametrize("mode", ["over_and_above", "minimum_guarantee"])
def test_members_who_come_last_get_the_reserve_in_either_mode(log: Log, mode: str) -> None:
    stock(log, mode=mode)
    assert outcome(log, [other(n) for n in range(10)]) == {
        ("other", "held"): 7,
        ("other", "reserved_for_priority_group"): 3,
    }
    assert outcome(log, [member(n) for n in range(4)]) == {
        ("member", "held"): 3,
        ("member", "sold_out"): 1,
    }


def test_members_of_another_group_are_not_members(log: Log) -> None:
    stock(log, capacity=2, share_pct=50)
    assert outcome(log, [other(0, group="teachers")]) == {("other", "held"): 1}
    assert outcome(log, [other(1, group="teachers")]) == {
        ("other", "reserved_for_priority_group"): 1
    }
    assert outcome(log, [member(0)]) == {("member", "held"): 1}


# -- giving places back -----------------------------------------------------------------------


def test_a_cancelled_reserve_place_goes_back_to_the_reserve(log: Log) -> None:
    stock(log, capacity=2, share_pct=50, mode="minimum_guarantee")
    log.held(member(0))  # out of the reserve
    assert held_back(log) == {DOSE_1: 0, DOSE_2: 0}
    log.one(confirm("f1", "km0"))
    log.one(cancel("x1", "km0"))
    assert held_back(log) == {DOSE_1: 1, DOSE_2: 1}
    log.held(other(0))
    assert log.reason(other(1)) == "reserved_for_priority_group"
    log.held(member(1))


def test_an_expired_reserve_place_goes_back_to_the_reserve(log: Log) -> None:
    stock(log, capacity=2, share_pct=50, mode="minimum_guarantee")
    log.held(book("bm0", "km0", "member0", "north", group="care", hold_s=60))
    log(Tick("t1"), at_ms=T0_MS + 60_000)
    assert held_back(log) == {DOSE_1: 1, DOSE_2: 1}
    assert summary(log) == CountySummary(2, 2, 0, 0, 0, 2)


def test_a_cancelled_open_place_goes_back_to_everybody(log: Log) -> None:
    stock(log, capacity=2, share_pct=50, mode="over_and_above")
    log.held(member(0))  # an open place: members take those first here
    assert held_back(log) == {DOSE_1: 1, DOSE_2: 1}
    log.one(cancel("x1", "km0"))
    assert held_back(log) == {DOSE_1: 1, DOSE_2: 1}
    log.held(other(0))


def test_a_place_given_back_after_the_release_goes_to_everybody(log: Log) -> None:
    stock(log, capacity=2, share_pct=50, mode="minimum_guarantee")
    log.held(member(0))
    log(Tick("t1"), at_ms=RELEASE_MS)
    log.one(cancel("x1", "km0"))
    assert held_back(log) == {DOSE_1: 0, DOSE_2: 0}
    log.held(other(0))
    log.held(other(1))


def test_a_reserve_made_smaller_than_its_members_hold_gives_places_back_to_everybody(
    log: Log,
) -> None:
    stock(log, capacity=4, share_pct=50, mode="minimum_guarantee")
    log.held(member(0))
    log.held(member(1))  # both out of the reserve: 2 of 2
    answer = log.one(reserve("r9", "north", "c1", 0, "care", 25, mode="minimum_guarantee"))
    assert isinstance(answer, ReserveSet) and answer.places_reserved == 0  # 1 place, in use
    log.one(cancel("x1", "km0"))
    # day 0's reserve holds 1 place and its members hold 1: the place goes to everybody
    assert held_back(log) == {DOSE_1: 0, DOSE_2: 1}
    assert summary(log).free == 3 + 2  # 4 places less 1 used, and less 1 held back on day 21


# -- the release date ---------------------------------------------------------------------------


def test_the_unused_reserve_opens_to_everybody_at_the_release_time(log: Log) -> None:
    stock(log, mode="over_and_above")
    outcome(log, ARRIVALS)
    assert log.reason(other(20), at_ms=RELEASE_MS - 1) == "reserved_for_priority_group"
    events = log(Tick("t1"), at_ms=RELEASE_MS)
    (s,) = [e for e in events if isinstance(e, Summary)]
    assert s.counties["north"] == CountySummary(3, 6, 7, 0, 0, 0)
    assert held_back(log) == {DOSE_1: 0, DOSE_2: 0}
    assert outcome(log, [other(n) for n in range(21, 25)]) == {
        ("other", "held"): 3,
        ("other", "sold_out"): 1,
    }


def test_the_release_comes_before_the_command_that_reaches_its_time(log: Log) -> None:
    stock(log, capacity=2, share_pct=50)
    log.held(other(0))
    log.held(other(1), at_ms=RELEASE_MS)


def test_a_changed_release_time_is_the_one_that_counts(log: Log) -> None:
    stock(log, capacity=2, share_pct=50)
    later = RELEASE_MS + 60_000
    for day in (0, 21):
        log.one(reserve(f"r{day}b", "north", "c1", day, "care", 50, release_at_ms=later))
    log.held(other(0))
    assert log.reason(other(1), at_ms=RELEASE_MS) == "reserved_for_priority_group"
    log.held(other(2), at_ms=later)


def test_a_removed_reserve_opens_its_places_at_once(log: Log) -> None:
    stock(log, capacity=2, share_pct=50)
    log.held(other(0))
    assert log.reason(other(1)) == "reserved_for_priority_group"
    for day in (0, 21):
        answer = log.one(reserve(f"r{day}b", "north", "c1", day, "care", 0))
        assert answer == ReserveSet(f"r{day}b", "spring", "c1", T0_MS, True, 0)
    assert held_back(log) == {DOSE_1: 0, DOSE_2: 0}
    log.held(other(2))
    log(Tick("t1"), at_ms=RELEASE_MS)  # its old release time: nothing left to release
    assert summary(log) == CountySummary(0, 0, 2, 0, 0, 0)


# -- setting a reserve ------------------------------------------------------------------------


def test_a_reserve_never_takes_a_used_place(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0, 9, 10), slot(21, 9, 10)]))
    for n in range(8):
        log.held(other(n))
    answer = log.one(reserve("r0", "north", "c1", 0, "care", 30))
    assert answer == ReserveSet("r0", "spring", "c1", T0_MS, True, 2)
    log.one(reserve("r21", "north", "c1", 21, "care", 30))
    assert log.reason(other(8)) == "reserved_for_priority_group"
    log.held(member(0))
    log.held(member(1))
    assert log.reason(member(2)) == "sold_out"


def test_setting_again_for_another_group_hands_the_reserve_over(log: Log) -> None:
    stock(log, capacity=4, share_pct=50, mode="minimum_guarantee")
    log.held(member(0))  # out of the "care" reserve
    for day in (0, 21):
        answer = log.one(reserve(f"t{day}", "north", "c1", day, "teachers", 50))
        assert isinstance(answer, ReserveSet) and answer.places_reserved == 2
    log.held(other(0))  # the one open place left
    assert log.reason(member(1)) == "reserved_for_priority_group"
    log.one(cancel("x1", "km0"))  # its reserve is gone: the place goes to everybody
    assert held_back(log) == {DOSE_1: 2, DOSE_2: 2}
    log.held(member(2))
    log.held(other(1, group="teachers"))
    log.held(other(2, group="teachers"))


def test_inventory_added_to_a_reserved_day_is_reserved_too(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0, 9, 4), slot(21, 9, 4)]))
    for day in (0, 21):
        log.one(reserve(f"r{day}", "north", "c1", day, "care", 50))
    log(add("a2", "north", "c1", [slot(0, 9, 4), slot(0, 10, 2), slot(21, 10, 2)]))
    assert held_back(log) == {
        DOSE_1: 4,
        slot_id("c1", "vx", 0, 10): 1,
        DOSE_2: 2,
        slot_id("c1", "vx", 21, 10): 1,
    }
    log(add("a3", "north", "c2", [slot(0, 9, 2), slot(21, 9, 2)], vaccine="vy"))
    assert held_back(log)[slot_id("c2", "vy", 0)] == 0  # another center


def test_a_new_vaccine_line_of_the_center_gets_the_reserve(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0, 9, 2)]))
    log.one(reserve("r0", "north", "c1", 0, "care", 50))
    log(add("a2", "north", "c1", [slot(0, 9, 4)], vaccine="vy"))
    assert held_back(log)[slot_id("c1", "vy", 0)] == 2


@pytest.mark.parametrize(
    ("center", "county", "release_at_ms", "reason"),
    [
        ("c9", "north", RELEASE_MS, "unknown_center"),
        ("c1", "south", RELEASE_MS, "center_mismatch"),
        ("c1", "north", T0_MS, "release_passed"),
    ],
)
def test_a_reserve_is_refused_with_a_reason(
    log: Log, center: str, county: str, release_at_ms: int, reason: str
) -> None:
    log(add("a1", "north", "c1", [slot(0, 9, 2), slot(21, 9, 2)]))
    answer = log.one(reserve("r1", county, center, 0, "care", 50, release_at_ms=release_at_ms))
    assert answer == ReserveSet("r1", "spring", center, T0_MS, False, 0, reason)
    assert held_back(log) == {DOSE_1: 0, DOSE_2: 0}


def test_a_redelivered_set_reserve_is_not_answered_again(log: Log) -> None:
    stock(log, capacity=2, share_pct=50)
    assert log(reserve("r0", "north", "c1", 0, "care", 0)) == []
    assert held_back(log) == {DOSE_1: 1, DOSE_2: 1}


def test_a_reserve_on_a_day_without_slots_reserves_the_slots_added_later(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0, 9, 2)]))
    answer = log.one(reserve("r21", "north", "c1", 21, "care", 50))
    assert isinstance(answer, ReserveSet) and (answer.accepted, answer.places_reserved) == (True, 0)
    log(add("a2", "north", "c1", [slot(21, 9, 2)]))
    assert held_back(log)[DOSE_2] == 1


# -- state that a snapshot carries --------------------------------------------------------------


def test_a_snapshot_keeps_reserves_categories_and_release_times(log: Log) -> None:
    stock(log, capacity=4, share_pct=50, mode="minimum_guarantee")
    log.held(member(0))  # out of the reserve
    log.held(other(0))
    restored = Log()
    restored.core = Allocator.restore(log.core.snapshot())
    restored.offset, restored.now_ms = log.offset, log.now_ms
    assert restored.core.snapshot() == log.core.snapshot()
    for replay in (log, restored):
        replay.one(cancel("x1", "km0"))  # back to the reserve
        assert held_back(replay) == {DOSE_1: 2, DOSE_2: 2}
        assert isinstance(replay.one(other(1)), Held)
        assert replay.reason(other(2)) == "reserved_for_priority_group"
        replay(Tick("t1"), at_ms=RELEASE_MS)
        assert isinstance(replay.one(other(3)), Held)
    assert restored.core.snapshot() == log.core.snapshot()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reserve_logs(), st.integers(1, 6))
def test_replay_from_any_snapshot_of_a_log_with_reserves_gives_the_same_events(
    records: list[Record], k: int
) -> None:
    assert_restoring_at_every_kth_record_continues(records, k)


def test_slots_that_started_count_no_reserved_places(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0, 8, 2), slot(0, 10, 2), slot(21, 9, 2)]))
    rsv = reserve("r0", "north", "c1", 0, "care", 50, release_at_ms=start_ms(21))
    answer = log.one(rsv, at_ms=start_ms(0, 9))
    assert answer == ReserveSet("r0", "spring", "c1", start_ms(0, 9), True, 1)  # not the 8:00
