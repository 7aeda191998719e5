"""Priority reserves: SetReserve, the two modes, giving places back, the release date."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocator.core import Allocator
from schemas.commands import Book, SetReserve, Tick
from schemas.events import CountySummary, Held, Moved, Rejected, ReserveSet, Summary
from schemas.states import RejectReason
from tests.allocator import (
    T0_MS,
    WINDOW_EDGE_DAYS,
    Log,
    add,
    book,
    cancel,
    confirm,
    day_iso,
    move,
    reserve,
    slot,
    slot_id,
    slot_ids,
    start_ms,
    window_edges,
)
from tests.allocator.test_core_properties import Record, reserve_logs, shared_day_logs
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


def accepted(log: Log, command: SetReserve) -> bool:
    answer = log.one(command)
    assert isinstance(answer, ReserveSet)
    return answer.accepted


def held_for(log: Log, group: str) -> dict[str, int]:
    """The places every slot holds back for ``group``."""
    return {
        s.slot_id: s.held_for(group)
        for c in log.core._campaigns.values()
        for center in c.centers.values()
        for line in center.line_list
        for s in line.slots
    }


def summary(log: Log) -> CountySummary:
    (s,) = log.core.summaries()
    return s.counties["north"]


# -- the worked example of docs/operators.md -----------------------------------------------------

ARRIVALS = [member(n) for n in range(4)] + [other(n) for n in range(10)]
LATE = [member(n) for n in range(4, 7)]


def test_over_and_above_puts_the_reserve_on_top_of_what_members_win_in_the_open(
    log: Log,
) -> None:
    stock(log, mode="over_and_above")
    assert summary(log) == CountySummary(10, 14, 0, 0, 0, 6, {"vx": 10})
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
    assert summary(log) == CountySummary(2, 2, 0, 0, 0, 2, {"vx": 2})


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
    assert s.counties["north"] == CountySummary(3, 6, 7, 0, 0, 0, {"vx": 3})
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
    assert summary(log) == CountySummary(0, 0, 2, 0, 0, 0, {"vx": 0})


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


def test_setting_a_reserve_for_another_group_leaves_the_first_one_alone(log: Log) -> None:
    stock(log, capacity=4, share_pct=50, mode="minimum_guarantee")
    log.held(member(0))  # out of the "care" reserve
    for day in (0, 21):
        answer = log.one(reserve(f"t{day}", "north", "c1", day, "teachers", 50))
        # 2 places of 4: care holds 1 back and its member uses 1, so 2 are left
        assert isinstance(answer, ReserveSet) and answer.places_reserved == 2
    assert held_for(log, "care") == {DOSE_1: 1, DOSE_2: 1}
    assert held_for(log, "teachers") == {DOSE_1: 2, DOSE_2: 2}
    assert log.reason(other(0)) == "reserved_for_priority_group"  # no open place left
    log.one(cancel("x1", "km0"))  # back to care's reserve, which is still there
    assert held_for(log, "care") == {DOSE_1: 2, DOSE_2: 2}
    log.held(member(1))
    log.held(member(2))
    assert log.reason(member(3)) == "reserved_for_priority_group"  # the teachers' places
    log.held(other(1, group="teachers"))
    log.held(other(2, group="teachers"))
    assert log.reason(other(3, group="teachers")) == "sold_out"


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
    assert answer == ReserveSet("r1", "spring", center, T0_MS, False, 0, RejectReason(reason))
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


# -- several groups on one day ----------------------------------------------------------------

MEDICAL_RELEASE_MS = RELEASE_MS + 1_800_000  # before the first holds run out


def two_groups(log: Log, capacity: int = 10) -> None:
    """Center c1 with one slot on day 0 and one on day 21; each day reserves 30 % for
    "care" (over and above, released at RELEASE_MS) and 20 % for "medical" (minimum
    guarantee, released an hour later)."""
    log(add("a1", "north", "c1", [slot(0, 9, capacity), slot(21, 9, capacity)]))
    for day in (0, 21):
        care = log.one(reserve(f"rc{day}", "north", "c1", day, "care", 30))
        medical = log.one(
            reserve(f"rm{day}", "north", "c1", day, "medical", 20, mode="minimum_guarantee",
                    release_at_ms=MEDICAL_RELEASE_MS)
        )  # fmt: skip
        assert isinstance(care, ReserveSet) and isinstance(medical, ReserveSet)
        places = (care.places_reserved, medical.places_reserved)
        assert places == (capacity * 30 // 100, capacity * 20 // 100)


def medic(n: int, hold_s: int = HOLD_S) -> Book:
    return book(f"bd{n}", f"kd{n}", f"medic{n}", "north", group="medical", hold_s=hold_s)


def test_two_groups_reserve_on_one_day_each_in_its_own_mode(log: Log) -> None:
    two_groups(log)
    assert summary(log) == CountySummary(10, 10, 0, 0, 0, 10, {"vx": 10})
    log.held(medic(0))  # minimum guarantee: out of medical's reserve first
    log.held(medic(1))
    assert held_for(log, "medical") == {DOSE_1: 0, DOSE_2: 0}
    log.held(member(0))  # over and above: an open place first
    assert held_for(log, "care") == {DOSE_1: 3, DOSE_2: 3}
    assert outcome(log, [other(n) for n in range(5)]) == {
        ("other", "held"): 4,
        ("other", "reserved_for_priority_group"): 1,
    }
    # medical's reserve is gone and no place is open: care's places are not for medics
    assert log.reason(medic(2)) == "reserved_for_priority_group"
    assert outcome(log, [member(n) for n in range(1, 5)]) == {
        ("member", "held"): 3,
        ("member", "sold_out"): 1,
    }
    assert held_back(log) == {DOSE_1: 0, DOSE_2: 0}


def test_a_medic_keeps_taking_open_places_once_its_reserve_is_used(log: Log) -> None:
    two_groups(log)
    for n in range(7):  # 2 out of medical's reserve, then the 5 open places
        log.held(medic(n))
    assert held_for(log, "care") == {DOSE_1: 3, DOSE_2: 3}
    assert log.reason(medic(7)) == "reserved_for_priority_group"
    assert log.reason(other(0)) == "reserved_for_priority_group"
    for n in range(3):
        log.held(member(n))


def test_releasing_one_groups_reserve_leaves_the_others_in_place(log: Log) -> None:
    two_groups(log)
    for n in range(5):
        log.held(other(n))
    assert log.reason(other(5)) == "reserved_for_priority_group"
    events = log(Tick("t1"), at_ms=RELEASE_MS)  # care's release
    (s,) = [e for e in events if isinstance(e, Summary)]
    assert s.counties["north"] == CountySummary(5, 6, 5, 0, 0, 4, {"vx": 5})
    assert held_for(log, "care") == {DOSE_1: 0, DOSE_2: 0}
    assert held_for(log, "medical") == {DOSE_1: 2, DOSE_2: 2}
    assert outcome(log, [other(n) for n in range(6, 10)]) == {
        ("other", "held"): 3,
        ("other", "reserved_for_priority_group"): 1,
    }
    assert log.reason(member(0)) == "reserved_for_priority_group"  # care is nobody now
    log.held(medic(0))
    log(Tick("t2"), at_ms=MEDICAL_RELEASE_MS)
    log.held(other(10))
    assert log.reason(other(11)) == "sold_out"


def test_a_place_given_back_goes_to_the_reserve_it_came_out_of(log: Log) -> None:
    two_groups(log, capacity=5)  # care 1, medical 1, open 3
    log.held(medic(0))  # medical's place
    log.held(medic(1, hold_s=60))  # an open place
    for n in range(2):
        log.held(other(n))  # the last open places
    log.held(member(0))  # care's place: no open one is left
    assert held_back(log) == {DOSE_1: 0, DOSE_2: 0}
    log.one(cancel("x1", "km0"))
    assert held_for(log, "care") == {DOSE_1: 1, DOSE_2: 1}
    log.one(cancel("x2", "kd0"))
    assert held_for(log, "medical") == {DOSE_1: 1, DOSE_2: 1}
    log(Tick("t1"), at_ms=T0_MS + 60_000)  # medic 1's open place runs out: to everybody
    assert held_back(log) == {DOSE_1: 2, DOSE_2: 2}
    log.held(other(2))
    assert log.reason(other(3)) == "reserved_for_priority_group"
    log.held(medic(2))
    log.held(member(1))


def test_a_moved_booking_gives_its_reserved_places_back_to_its_group(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(d, 9, 4) for d in (0, 1, 21, 22)]))
    for day in (0, 21):
        for group, share_pct in (("care", 25), ("medical", 50)):
            log.one(reserve(f"r{group}{day}", "north", "c1", day, group, share_pct,
                            mode="minimum_guarantee"))  # fmt: skip
    log.held(medic(0))
    assert held_for(log, "medical")[DOSE_1] == 1
    moved = log.one(move("m1", "kd0", earliest=day_iso(1)))
    assert isinstance(moved, Moved)
    assert {k: v for k, v in held_for(log, "medical").items() if v} == {DOSE_1: 2, DOSE_2: 2}
    assert {k: v for k, v in held_for(log, "care").items() if v} == {DOSE_1: 1, DOSE_2: 1}


def test_a_group_removed_then_set_again_does_not_get_old_places_back(log: Log) -> None:
    two_groups(log, capacity=5)
    log.held(medic(0))  # out of medical's reserve
    for day in (0, 21):
        log.one(reserve(f"x{day}", "north", "c1", day, "medical", 0))
        log.one(reserve(f"y{day}", "north", "c1", day, "medical", 20,
                        mode="minimum_guarantee", release_at_ms=MEDICAL_RELEASE_MS))  # fmt: skip
    assert held_for(log, "medical") == {DOSE_1: 1, DOSE_2: 1}  # a new reserve, 1 place
    assert held_for(log, "care") == {DOSE_1: 1, DOSE_2: 1}
    log.one(cancel("x1", "kd0"))  # not out of this reserve: the place goes to everybody
    assert held_for(log, "medical") == {DOSE_1: 1, DOSE_2: 1}
    assert summary(log).free == 2 * 3


@pytest.mark.parametrize(
    ("care_pct", "medical_pct", "fits"),
    [(60, 40, True), (60, 50, False), (100, 1, False), (0, 100, True), (99, 1, True)],
)
def test_the_shares_of_one_day_may_not_sum_to_more_than_100(
    log: Log, care_pct: int, medical_pct: int, fits: bool
) -> None:
    log(add("a1", "north", "c1", [slot(0, 9, 10), slot(21, 9, 10)]))
    log.one(reserve("r1", "north", "c1", 0, "care", care_pct))
    answer = log.one(reserve("r2", "north", "c1", 0, "medical", medical_pct))
    assert isinstance(answer, ReserveSet)
    if fits:
        assert answer.accepted and answer.places_reserved == 10 * medical_pct // 100
        return
    assert answer == ReserveSet(
        "r2", "spring", "c1", T0_MS, False, 0, RejectReason.RESERVE_SHARES_OVER_100
    )
    assert held_for(log, "medical") == {DOSE_1: 0, DOSE_2: 0}
    assert held_back(log) == {DOSE_1: care_pct // 10, DOSE_2: 0}
    # changing a group's own share counts only the others; removing is always allowed
    assert accepted(log, reserve("r3", "north", "c1", 0, "care", 100 - medical_pct))
    assert accepted(log, reserve("r4", "north", "c1", 0, "medical", medical_pct))
    assert not accepted(log, reserve("r5", "north", "c1", 0, "care", 101 - medical_pct))
    assert accepted(log, reserve("r6", "north", "c1", 0, "care", 0))
    assert accepted(log, reserve("r7", "north", "c1", 21, "care", 100))  # another day


def test_a_snapshot_keeps_every_groups_reserve_of_a_day(log: Log) -> None:
    two_groups(log, capacity=5)
    log.held(medic(0))  # out of medical's reserve
    log.held(member(0))  # an open place
    restored = Log()
    restored.core = Allocator.restore(log.core.snapshot())
    restored.offset, restored.now_ms = log.offset, log.now_ms
    assert restored.core.snapshot() == log.core.snapshot()
    for replay in (log, restored):
        replay.one(cancel("x1", "kd0"))  # back to medical's reserve
        assert held_for(replay, "medical") == {DOSE_1: 1, DOSE_2: 1}
        assert held_for(replay, "care") == {DOSE_1: 1, DOSE_2: 1}
        replay(Tick("t1"), at_ms=RELEASE_MS)  # care's release, medical's stays
        assert held_back(replay) == {DOSE_1: 1, DOSE_2: 1}
        assert isinstance(replay.one(other(1)), Held)
    assert restored.core.snapshot() == log.core.snapshot()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shared_day_logs(), st.integers(1, 6))
def test_replay_from_any_snapshot_of_a_log_of_shared_days_gives_the_same_events(
    records: list[Record], k: int
) -> None:
    assert_restoring_at_every_kth_record_continues(records, k)


def test_the_window_edges_hold_for_a_member_of_a_group(log: Log) -> None:
    """Dose 2 on the first or the last day of the window pairs, a day outside it never
    does: in the search of a group's member (reserved places too), not only the plain one."""
    for command in window_edges(capacity=2):
        log(command)
    for center, days in WINDOW_EDGE_DAYS.items():
        for day in days:
            assert accepted(log, reserve(f"r-{center}-{day}", "north", center, day, "care", 50))
    for n, (center, edge) in enumerate((("c1", 21), ("c2", 28))):
        held = log.held(book(f"b{n}", f"k{n}", f"p{n}", "north", center=center, group="care"))
        assert slot_ids(held) == [slot_id(center, "vx", 0), slot_id(center, "vx", edge)]
    outside = book("b3", "k3", "p3", "north", center="c3", group="care")
    assert log.reason(outside) == "no_pair_in_window"  # not day 20 nor day 29
