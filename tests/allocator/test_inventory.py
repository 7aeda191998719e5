from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocator.errors import InvariantError
from allocator.inventory import Center, Line, Slot, View, day_ordinal
from schemas.commands import SlotSpec
from tests.allocator import BASE_DAY, T0_MS, day_iso, slot, start_ms


def line(min_days: int = 2, max_days: int = 3) -> Line:
    return Center("c1", "Center one", "north").line("vx", min_days, max_days)


def starts(pair: tuple[Slot, Slot] | None) -> list[str]:
    assert pair is not None
    return [s.slot_id for s in pair]


def test_day_ordinal_counts_days() -> None:
    assert day_ordinal(day_iso(3)) - day_ordinal(day_iso(0)) == 3
    assert day_ordinal(BASE_DAY.isoformat()) == BASE_DAY.toordinal()


def test_center_orders_its_lines_by_vaccine() -> None:
    center = Center("c1", "Center one", "north")
    b = center.line("b", 1, 2)
    a = center.line("a", 1, 2)
    assert center.line("b", 1, 2) is b
    assert center.line_list == [a, b]


def test_add_orders_slots_and_counts_free_places() -> None:
    ln = line()
    ln.add([slot(2, 10, 3), slot(0, 9, 1), slot(2, 8, 2)])
    assert [s.start_s for s in ln.slots] == sorted(s.start_s for s in ln.slots)
    assert ln.ordinals == [day_ordinal(day_iso(0)), day_ordinal(day_iso(2))]
    assert [d.free for d in ln.days] == [1, 5]
    assert ln.free == 6
    assert ln.monotone


def test_adding_a_known_slot_raises_its_capacity() -> None:
    ln = line()
    ln.add([slot(0, 9, 1)])
    ln.add([slot(0, 9, 2), slot(0, 9, 1)])
    assert [(s.capacity, s.used) for s in ln.slots] == [(4, 0)]
    assert ln.free == 4


def test_take_and_release_move_the_cursors() -> None:
    ln = line()
    ln.add([slot(0, 9), slot(0, 10)])
    first = ln.head_slot(T0_MS)
    assert first is not None and first.start_s == slot(0, 9).start_s
    ln.take(first)
    second = ln.head_slot(T0_MS)
    assert second is not None and second.start_s == slot(0, 10).start_s
    assert ln.days[0].first_free() is second
    ln.release(first)
    assert ln.head_slot(T0_MS) is first
    assert ln.days[0].first_free() is first


def test_take_of_a_full_slot_and_release_of_an_unused_one_are_bugs() -> None:
    ln = line()
    ln.add([slot(0, 9)])
    s = ln.slots[0]
    with pytest.raises(InvariantError):
        ln.release(s)
    ln.take(s)
    with pytest.raises(InvariantError):
        ln.take(s)


def test_retire_drops_slots_that_start_at_or_before_now() -> None:
    ln = line()
    ln.add([slot(0, 9, 2), slot(0, 10, 1), slot(3, 9, 1)])
    ln.retire(start_ms(0, 9))  # the 9:00 slot starts exactly now: no longer bookable
    assert ln.free == 2
    assert ln.days[0].free == 1
    head = ln.head_slot(start_ms(0, 9))
    assert head is not None and head.start_s == slot(0, 10).start_s
    ln.retire(start_ms(0, 9))  # idempotent
    assert ln.free == 2


def test_release_of_a_retired_slot_frees_nothing() -> None:
    ln = line()
    ln.add([slot(0, 9), slot(3, 9)])
    s = ln.slots[0]
    ln.take(s)
    ln.retire(start_ms(0, 9))
    ln.release(s)
    assert s.used == 0
    assert ln.free == 1
    assert ln.pairs_left(start_ms(0, 9)) == 0


def test_best_pair_takes_the_earliest_dose_1_then_the_earliest_dose_2() -> None:
    ln = line(min_days=2, max_days=3)
    ln.add([slot(0, 11), slot(0, 9), slot(2, 15), slot(3, 8), slot(2, 10)])
    assert starts(ln.best_pair(T0_MS, None)) == [
        f"c1/vx/{slot(0, 9).start}",
        f"c1/vx/{slot(2, 10).start}",
    ]


def test_best_pair_skips_days_without_a_partner_and_respects_earliest() -> None:
    ln = line(min_days=2, max_days=2)
    ln.add([slot(0, 9), slot(1, 9), slot(3, 9), slot(4, 9)])
    # day 0 would need day 2 (none); day 1 pairs with day 3
    assert starts(ln.best_pair(T0_MS, None)) == [
        f"c1/vx/{slot(1, 9).start}",
        f"c1/vx/{slot(3, 9).start}",
    ]
    assert ln.best_pair(T0_MS, day_ordinal(day_iso(2))) is None
    assert starts(ln.best_pair(T0_MS, day_ordinal(day_iso(1))))[0] == f"c1/vx/{slot(1, 9).start}"


def test_partner_in_a_line_whose_days_overlap_in_time_takes_the_earliest_start() -> None:
    ln = line(min_days=1, max_days=2)
    early = slot(1, 8)
    early_on_a_later_day = SlotSpec(day_iso(2), early.start, early.start_s, 1)
    ln.add([slot(0, 9), slot(1, 12), early_on_a_later_day])
    assert not ln.monotone
    partner = ln.partner(day_ordinal(day_iso(0)))
    assert partner is not None and partner.start == early.start and partner.day == ln.ordinals[2]


def test_pairs_left_pairs_days_greedily_inside_the_window() -> None:
    ln = line(min_days=2, max_days=3)
    ln.add([slot(0, 9, 3), slot(2, 9, 1), slot(3, 9, 1), slot(9, 9, 5)])
    # day 0 pairs with day 2 (1) and day 3 (1); day 9 has no partner
    assert ln.pairs_left(T0_MS) == 2
    ln.take(ln.days[1].slots[0])
    ln.take(ln.days[2].slots[0])
    assert ln.pairs_left(T0_MS) == 0
    assert ln.best_pair(T0_MS, None) is None
    assert ln.free == 8


def test_a_search_without_a_pair_is_redone_once_places_come_back() -> None:
    ln = line(min_days=2, max_days=2)
    ln.add([slot(0, 9), slot(2, 9)])
    dose_2 = ln.days[1].slots[0]
    ln.take(dose_2)
    assert ln.best_pair(T0_MS, None) is None
    assert ln.best_pair(T0_MS, None) is None  # remembered
    ln.release(dose_2)
    assert starts(ln.best_pair(T0_MS, None))[1] == dose_2.slot_id
    ln.take(dose_2)
    assert ln.best_pair(T0_MS, None) is None
    ln.add([slot(2, 9, 1)])  # a top-up of the same slot
    assert starts(ln.best_pair(T0_MS, None))[1] == dose_2.slot_id


def test_no_pair_from_a_later_day_says_nothing_about_earlier_days() -> None:
    ln = line(min_days=2, max_days=2)
    ln.add([slot(0, 9), slot(2, 9), slot(3, 9)])
    assert ln.best_pair(T0_MS, day_ordinal(day_iso(1))) is None
    assert ln.best_pair(T0_MS, day_ordinal(day_iso(2))) is None
    assert starts(ln.best_pair(T0_MS, None))[0] == f"c1/vx/{slot(0, 9).start}"


def test_remove_takes_the_places_of_an_unused_slot_out() -> None:
    ln = line(min_days=2, max_days=2)
    ln.add([slot(0, 9, 2), slot(0, 10, 1), slot(2, 9, 3)])
    first = ln.slot_at(slot(0, 9).start_s)
    assert first is not None and ln.slot_at(slot(1, 9).start_s) is None
    ln.remove(first)
    assert (first.capacity, ln.free, ln.days[0].free) == (0, 4, 1)
    head = ln.head_slot(T0_MS)
    assert head is not None and head.start_s == slot(0, 10).start_s
    assert starts(ln.best_pair(T0_MS, None))[0] == f"c1/vx/{slot(0, 10).start}"
    assert ln.pairs_left(T0_MS) == 1
    ln.remove(first)  # idempotent
    assert ln.free == 4


def test_remove_after_the_cursors_passed_the_slot_keeps_them_right() -> None:
    ln = line(min_days=2, max_days=2)
    ln.add([slot(0, 9), slot(0, 10), slot(2, 9), slot(2, 10)])
    a, b = ln.days[0].slots
    ln.take(a)
    assert ln.head_slot(T0_MS) is b
    ln.remove(b)
    assert ln.head_slot(T0_MS) is ln.days[1].slots[0]
    assert ln.best_pair(T0_MS, None) is None
    ln.release(a)
    assert starts(ln.best_pair(T0_MS, None))[0] == a.slot_id
    assert (ln.free, ln.days[0].free, ln.days[1].free) == (3, 1, 2)


def test_remove_of_a_retired_slot_changes_no_free_count() -> None:
    ln = line()
    ln.add([slot(0, 9, 2), slot(3, 9, 1)])
    ln.retire(start_ms(0, 9))
    assert ln.free == 1
    ln.remove(ln.slots[0])
    assert (ln.slots[0].capacity, ln.free, ln.days[0].free) == (0, 1, 0)


def test_remove_of_a_slot_in_use_is_a_bug() -> None:
    ln = line()
    ln.add([slot(0, 9, 2)])
    s = ln.slots[0]
    ln.take(s)
    with pytest.raises(InvariantError):
        ln.remove(s)
    assert (s.capacity, ln.free) == (2, 1)


def test_a_removed_slot_added_again_is_usable() -> None:
    ln = line(min_days=2, max_days=2)
    ln.add([slot(0, 9), slot(2, 9)])
    ln.remove(ln.slots[0])
    assert ln.best_pair(T0_MS, None) is None
    ln.add([slot(0, 9, 1)])
    assert (ln.slots[0].capacity, ln.free) == (1, 2)
    assert starts(ln.best_pair(T0_MS, None))[0] == ln.slots[0].slot_id


# -- time of day and reserves ------------------------------------------------------------------


def reserved_line(share_pct: int = 50, group: str = "care") -> Line:
    """A line of c1 with 2 places at 9:00 and 18:00 on days 0 and 2, ``share_pct`` of
    day 0 and day 2 reserved for ``group``."""
    ln = line(min_days=2, max_days=2)
    ln.add([slot(d, h, 2) for d in (0, 2) for h in (9, 18)])
    for d in (0, 2):
        day = day_ordinal(day_iso(d))
        ln.center.reserve(day, group, share_pct, "over_and_above", T0_MS + 1, T0_MS)
    return ln


def used_of(s: Slot, group: str) -> int:
    """The places members of ``group`` took out of its reserve in ``s``."""
    return s.shares[group].used if s.shares and group in s.shares else 0


def two_group_line(care_pct: int = 50, teachers_pct: int = 25) -> Line:
    """A line of c1 with 4 places at 9:00 and 18:00 on days 0 and 2, each day reserving
    ``care_pct`` for "care" and ``teachers_pct`` for "teachers"."""
    ln = line(min_days=2, max_days=2)
    ln.add([slot(d, h, 4) for d in (0, 2) for h in (9, 18)])
    for d in (0, 2):
        day = day_ordinal(day_iso(d))
        ln.center.reserve(day, "care", care_pct, "over_and_above", T0_MS + 1, T0_MS)
        ln.center.reserve(day, "teachers", teachers_pct, "minimum_guarantee", T0_MS + 2, T0_MS)
    return ln


def test_slots_are_split_by_time_of_day_within_each_day() -> None:
    ln = line()
    ln.add([slot(0, 9), slot(0, 13), slot(0, 18), slot(0, 19)])
    morning, afternoon, evening = ln.days[0].parts
    assert [len(p.slots) for p in (morning, afternoon, evening)] == [1, 1, 2]
    assert all(s.part is evening for s in evening.slots)
    assert [s.part_idx for s in evening.slots] == [0, 1]


def test_a_view_search_reads_only_its_time_of_day() -> None:
    ln = line(min_days=2, max_days=2)
    ln.add([slot(0, 9), slot(0, 18), slot(2, 9), slot(2, 19)])
    assert starts(ln.best_pair_for(T0_MS, None, View(2, None))) == [
        f"c1/vx/{slot(0, 18).start}",
        f"c1/vx/{slot(2, 19).start}",
    ]
    assert ln.best_pair_for(T0_MS, None, View(1, None)) is None
    ln.take(ln.days[1].slots[0])
    assert ln.best_pair_for(T0_MS, None, View(0, None)) is None
    assert starts(ln.best_pair(T0_MS, None)) == [
        f"c1/vx/{slot(0, 9).start}",
        f"c1/vx/{slot(2, 19).start}",
    ]


def test_a_view_search_of_a_line_whose_days_overlap_takes_the_earliest_dose_1() -> None:
    ln = line(min_days=1, max_days=1)
    early = slot(0, 8)
    ln.add([slot(0, 20), SlotSpec(day_iso(1), early.start, early.start_s, 1), slot(2, 20)])
    assert not ln.monotone
    pair = ln.best_pair_for(T0_MS, None, View(None, None, everyone=True))
    assert starts(pair) == [f"c1/vx/{early.start}", f"c1/vx/{slot(2, 20).start}"]


def test_a_reserve_holds_places_back_from_everybody_but_its_group() -> None:
    ln = reserved_line()
    assert (ln.free, ln.reserved, ln.days[0].free, ln.days[0].reserved) == (4, 4, 2, 2)
    assert [(s.capacity, s.held_back, s.limit) for s in ln.days[0].slots] == [(2, 1, 1)] * 2
    assert ln.pairs_left(T0_MS) == 4  # held-back places count
    for s in ln.slots:
        ln.take(s)
    assert ln.best_pair(T0_MS, None) is None
    assert ln.head_slot(T0_MS) is None
    assert ln.best_pair_for(T0_MS, None, View(None, "teachers")) is None
    assert ln.has_place_for(T0_MS, View(None, "care"))
    assert not ln.has_place_for(T0_MS, View(None, "teachers"))
    assert starts(ln.best_pair_for(T0_MS, None, View(2, "care"))) == [
        f"c1/vx/{slot(0, 18).start}",
        f"c1/vx/{slot(2, 18).start}",
    ]


def test_taking_and_giving_back_a_reserved_place_keeps_the_counts() -> None:
    ln = reserved_line()
    s = ln.days[0].slots[0]
    ln.take_reserved(s, "care")
    assert (s.used, s.held_back, used_of(s, "care"), s.limit) == (1, 0, 1, 2)
    assert (ln.free, ln.reserved, ln.days[0].reserved) == (4, 3, 1)
    with pytest.raises(InvariantError):
        ln.take_reserved(s, "care")
    ln.release_reserved(s, "care")
    assert (s.used, s.held_back, used_of(s, "care"), s.limit) == (0, 1, 0, 1)
    assert (ln.free, ln.reserved) == (4, 4)
    with pytest.raises(InvariantError):
        ln.release_reserved(s, "care")


def test_an_open_place_taken_on_a_reserved_day_comes_back_open() -> None:
    ln = reserved_line()
    s = ln.days[0].slots[0]
    ln.take(s)
    with pytest.raises(InvariantError):
        ln.take(s)  # the other place is held back
    ln.release(s)
    assert (s.held_back, ln.free, ln.reserved) == (1, 4, 4)


def test_releasing_a_reserve_opens_its_places_and_moves_the_cursors_back() -> None:
    ln = reserved_line()
    for s in ln.slots:
        ln.take(s)
    assert ln.head_slot(T0_MS) is None
    opened = ln.center.release(day_ordinal(day_iso(0)), "care", T0_MS)
    assert opened == 2
    assert (ln.free, ln.reserved) == (2, 2)
    head = ln.head_slot(T0_MS)
    assert head is not None and head.start_s == slot(0, 9).start_s
    assert ln.best_pair(T0_MS, None) is None  # day 2 still holds its places back
    ln.center.release(day_ordinal(day_iso(2)), "care", T0_MS)
    assert starts(ln.best_pair(T0_MS, None))[0] == f"c1/vx/{slot(0, 9).start}"
    assert ln.center.reserves == {} and ln.center.groups == {}


def test_retiring_a_slot_drops_its_held_back_places() -> None:
    ln = reserved_line()
    ln.retire(start_ms(0, 9))
    assert (ln.free, ln.reserved, ln.days[0].reserved) == (3, 3, 1)
    assert ln.member_head(start_ms(0, 9)) is ln.days[0].slots[1]


def test_removing_a_reserved_slot_drops_its_held_back_places() -> None:
    ln = reserved_line()
    ln.remove(ln.days[0].slots[0])
    assert (ln.free, ln.reserved, ln.days[0].free, ln.days[0].reserved) == (3, 3, 1, 1)


def test_a_failed_view_search_is_remembered_per_view() -> None:
    ln = line(min_days=2, max_days=2)
    ln.add([slot(0, 9), slot(2, 9), slot(0, 18)])
    assert ln.best_pair_for(T0_MS, None, View(2, None)) is None
    assert View(2, None) in ln._barren_for
    assert ln.best_pair_for(T0_MS, None, View(0, None)) is not None
    ln.add([slot(2, 18)])
    assert ln.best_pair_for(T0_MS, None, View(2, None)) is not None


def test_two_groups_hold_back_their_own_places_on_one_day() -> None:
    ln = two_group_line()
    s = ln.days[0].slots[0]
    assert (s.held_back, s.limit, s.held_for("care"), s.held_for("teachers")) == (3, 1, 2, 1)
    assert (ln.free, ln.reserved) == (4, 12)
    assert set(ln.days[0].rsvs) == {"care", "teachers"}
    assert ln.center.groups == {"care": 2, "teachers": 2}
    ln.take_reserved(s, "teachers")
    with pytest.raises(InvariantError):
        ln.take_reserved(s, "teachers")  # care's places are not the teachers'
    ln.take_reserved(s, "care")
    assert (s.used, s.held_for("care"), s.held_for("teachers"), s.limit) == (2, 1, 0, 3)


def test_a_member_search_uses_only_its_own_groups_places() -> None:
    ln = two_group_line()
    for s in ln.slots:
        ln.take(s)  # the open place of every slot
    assert ln.best_pair(T0_MS, None) is None
    for s in ln.slots:  # the teachers' one place of every slot
        ln.take_reserved(s, "teachers")
    assert ln.best_pair_for(T0_MS, None, View(None, "teachers")) is None
    assert not ln.has_place_for(T0_MS, View(None, "teachers"))
    assert ln.has_place_for(T0_MS, View(None, "care"))
    assert starts(ln.best_pair_for(T0_MS, None, View(None, "care"))) == [
        f"c1/vx/{slot(0, 9).start}",
        f"c1/vx/{slot(2, 9).start}",
    ]
    assert ln.best_pair_for(T0_MS, None, View(2, "teachers")) is None


def test_changing_one_groups_reserve_leaves_the_others_places_alone() -> None:
    ln = two_group_line()
    day0 = day_ordinal(day_iso(0))
    s = ln.days[0].slots[0]
    ln.take_reserved(s, "care")
    held, opened = ln.center.reserve(day0, "care", 25, "over_and_above", T0_MS + 1, T0_MS)
    assert (held, opened) == (1, 2)  # in s, care's 1 place is the one in use
    assert (s.held_for("care"), used_of(s, "care"), s.held_for("teachers")) == (0, 1, 1)
    ln.release_reserved(s, "care")  # back to care: its share is 1, nothing in use now
    assert (s.held_for("care"), s.held_for("teachers"), s.limit) == (1, 1, 2)


def test_releasing_one_groups_reserve_keeps_the_other() -> None:
    ln = two_group_line()
    day0 = day_ordinal(day_iso(0))
    assert ln.center.release(day0, "care", T0_MS) == 4
    s = ln.days[0].slots[0]
    assert (s.held_back, s.held_for("care"), s.held_for("teachers"), s.limit) == (1, 0, 1, 3)
    assert set(ln.days[0].rsvs) == {"teachers"}
    assert ln.center.groups == {"care": 1, "teachers": 2}
    assert ln.center.release(day0, "teachers", T0_MS) == 2
    assert ln.days[0].rsvs == {} and s.shares is None and day0 not in ln.center.reserves


def test_places_added_to_a_day_of_two_groups_never_hold_back_a_used_place() -> None:
    ln = line(min_days=2, max_days=2)
    ln.add([slot(0, 9, 3)])
    day0 = day_ordinal(day_iso(0))
    for group in ("care", "teachers"):
        ln.center.reserve(day0, group, 50, "over_and_above", T0_MS + 1, T0_MS)
    s = ln.slots[0]
    assert (s.held_for("care"), s.held_for("teachers"), s.limit) == (1, 1, 1)
    ln.take(s)
    ln.add([slot(0, 9, 1)])  # both shares grow to 2, but only 1 place is left open
    assert (s.capacity, s.used, s.held_for("care"), s.held_for("teachers")) == (4, 1, 2, 1)
    assert (s.held_back, s.limit, ln.free, ln.reserved) == (3, 1, 0, 3)


def test_a_slot_keeps_its_appointments_only_while_it_has_a_place_left() -> None:
    ln = line()
    ln.add([slot(0, 9, 2)])
    s = ln.slots[0]
    ln.take(s)
    first = s.appointment(1)
    assert s.appointment(1) is first  # kept: the slot has a place left
    assert (first.dose, first.slot, s.appointment(2).dose) == (1, s.slot_id, 2)
    ln.take(s)
    assert s.appointment(1) is first  # the last booking still gets the one built
    again = s.appointment(1)
    assert again == first and again is not first  # full: built anew, not kept
    ln.release(s)
    assert s.appointment(2) is s.appointment(2)  # a place again: kept again


@settings(max_examples=200, deadline=None)
@given(
    capacities=st.lists(st.integers(0, 3), min_size=1, max_size=24),
    window=st.tuples(st.integers(1, 3), st.integers(0, 3)),
)
def test_the_remembered_plain_answer_follows_each_pair_taken(
    capacities: list[int], window: tuple[int, int]
) -> None:
    """Taking the plain answer's pair again and again (which carries the remembered
    answer on past a slot it fills, ``Line.take_pair``) gives the pairs a fresh search
    gives, until none is left; two slots a day at 9 and 11."""
    min_days, extra = window
    ln = line(min_days, min_days + extra)
    ln.add([slot(i // 2, 9 + 2 * (i % 2), c) for i, c in enumerate(capacities) if c])
    while True:
        remembered = ln.plain(T0_MS)
        cached = ln.plain_best
        ln.plain_best = None  # forget it: what does a search from the head say?
        fresh = ln.plain(T0_MS)
        ln.plain_best = cached
        assert (remembered.head, remembered.pair, remembered.key) == (
            fresh.head,
            fresh.pair,
            fresh.key,
        )
        if remembered.pair is None:
            break
        ln.take_pair(*remembered.pair)
    assert ln.pairs_left(T0_MS) == 0
