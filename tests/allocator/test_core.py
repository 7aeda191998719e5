from __future__ import annotations

from schemas.commands import Tick
from schemas.events import (
    Cancelled,
    Confirmed,
    CountySummary,
    Event,
    Expired,
    Failed,
    InventoryAdded,
    InventoryRemoved,
    Rejected,
    Summary,
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
    daily,
    day_iso,
    not_summaries,
    remove,
    slot,
    slot_id,
    slot_ids,
    start_ms,
)

# -- choosing the pair -----------------------------------------------------------------------


def test_book_holds_the_earliest_pair_with_the_earliest_dose_2(log: Log) -> None:
    log(add("a1", "north", "c1", daily(range(30), (9, 10))))
    held = log.held(book("b1", "k1", "alice", "north"))
    assert slot_ids(held) == [slot_id("c1", "vx", 0, 9), slot_id("c1", "vx", 21, 9)]
    assert [a.dose for a in held.appointments] == [1, 2]
    assert held.appointments[0].center_name == "Center c1"
    assert held.appointments[0].start == slot(0, 9).start
    assert (held.rev, held.at_ms, held.hold_expires_at_ms) == (1, T0_MS, T0_MS + 600_000)
    assert (held.identity, held.county, held.command_id) == ("alice", "north", "b1")
    second = log.held(book("b2", "k2", "bob", "north"))
    assert slot_ids(second) == [slot_id("c1", "vx", 0, 10), slot_id("c1", "vx", 21, 10)]


def test_dose_2_takes_the_first_free_day_of_the_window(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0), slot(23, 15), slot(25, 8)]))
    held = log.held(book("b1", "k1", "alice", "north"))
    assert slot_ids(held)[1] == slot_id("c1", "vx", 23, 15)


def test_earliest_dose_1_wins_over_center_order(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(1), slot(22)]))
    log(add("a2", "north", "c2", [slot(0), slot(21)]))
    assert slot_ids(log.held(book("b1", "k1", "alice", "north")))[0] == slot_id("c2", "vx", 0)


def test_equal_dose_1_times_go_to_the_lower_center_then_the_lower_vaccine(log: Log) -> None:
    log(add("a1", "north", "c2", [slot(0), slot(21)], vaccine="aa"))
    log(add("a2", "north", "c1", [slot(0), slot(21)], vaccine="zz"))
    log(add("a3", "north", "c1", [slot(0), slot(21)], vaccine="mm"))
    firsts = [slot_ids(log.held(book(f"b{i}", f"k{i}", f"p{i}", "north")))[0] for i in range(3)]
    assert firsts == [
        slot_id("c1", "mm", 0),
        slot_id("c1", "zz", 0),
        slot_id("c2", "aa", 0),
    ]


def test_window_edges_are_inclusive(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0), slot(21)], min_days=21, max_days=28))
    log(add("a2", "north", "c2", [slot(0), slot(28)], min_days=21, max_days=28))
    log(add("a3", "north", "c3", [slot(0), slot(20), slot(29)], min_days=21, max_days=28))
    assert slot_ids(log.held(book("b1", "k1", "p1", "north")))[1] == slot_id("c1", "vx", 21)
    assert slot_ids(log.held(book("b2", "k2", "p2", "north")))[1] == slot_id("c2", "vx", 28)
    assert log.reason(book("b3", "k3", "p3", "north")) == "no_pair_in_window"


def test_earliest_bounds_dose_1(log: Log) -> None:
    log(add("a1", "north", "c1", daily(range(40))))
    held = log.held(book("b1", "k1", "alice", "north", earliest=day_iso(5)))
    assert slot_ids(held) == [slot_id("c1", "vx", 5), slot_id("c1", "vx", 26)]
    assert log.reason(book("b2", "k2", "bob", "north", earliest=day_iso(35))) == (
        "no_pair_in_window"
    )


def test_slots_that_start_at_or_before_now_are_skipped(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0, 9), slot(0, 10), slot(0, 11), slot(21), slot(22)]))
    held = log.held(book("b1", "k1", "alice", "north", hold_s=7200), at_ms=start_ms(0, 10))
    assert slot_ids(held)[0] == slot_id("c1", "vx", 0, 11)
    assert log.reason(book("b2", "k2", "bob", "north"), at_ms=start_ms(0, 11)) == (
        "no_pair_in_window"
    )


def test_book_at_a_center_takes_only_from_it(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0), slot(21)]))
    log(add("a2", "north", "c2", [slot(1), slot(22)]))
    held = log.held(book("b1", "k1", "alice", "north", center="c2"))
    assert slot_ids(held)[0] == slot_id("c2", "vx", 1)
    assert log.reason(book("b2", "k2", "bob", "north", center="c2")) == "sold_out"


# -- rejections ------------------------------------------------------------------------------


def test_every_reject_reason(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0), slot(21)]))
    log(add("a2", "south", "c9", [slot(0), slot(40)]))
    assert log.reason(book("r1", "k1", "p1", "north", campaign="other")) == "unknown_county"
    assert log.reason(book("r2", "k2", "p2", "west")) == "unknown_county"
    assert log.reason(book("r3", "k3", "p3", "north", center="nope")) == "unknown_center"
    assert log.reason(book("r4", "k4", "p4", "north", center="c9")) == "not_eligible"
    assert log.reason(book("r5", "k5", "p5", "south")) == "no_pair_in_window"
    log.held(book("r6", "k6", "alice", "north"))
    assert log.reason(book("r7", "k7", "alice", "north")) == "already_booked"
    assert log.reason(book("r8", "k8", "bob", "north")) == "sold_out"
    rejected = log.one(book("r9", "k9", "carol", "north"))
    assert isinstance(rejected, Rejected)
    assert (rejected.rev, rejected.booking_id, rejected.campaign) == (1, "k9", CAMPAIGN)
    assert log.usage() == {
        slot_id("c1", "vx", 0): (1, 1),
        slot_id("c1", "vx", 21): (1, 1),
        slot_id("c9", "vx", 0): (1, 0),
        slot_id("c9", "vx", 40): (1, 0),
    }


def test_already_booked_is_per_campaign(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0), slot(21)]))
    log(add("a2", "north", "c1", [slot(0), slot(21)], campaign="autumn"))
    log.held(book("b1", "k1", "alice", "north"))
    log.held(book("b2", "k1", "alice", "north", campaign="autumn"))


# -- confirm, cancel, expire -----------------------------------------------------------------


def test_confirm_then_cancel_frees_the_pair_for_someone_else(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0), slot(21)]))
    held = log.held(book("b1", "k1", "alice", "north"))
    confirmed = log.one(confirm("f1", "k1"))
    assert isinstance(confirmed, Confirmed)
    assert (confirmed.rev, confirmed.command_id) == (2, "f1")
    assert confirmed.appointments == held.appointments
    assert log.reason(confirm("f2", "k1")) == "not_held"
    cancelled = log.one(cancel("x1", "k1"))
    assert isinstance(cancelled, Cancelled)
    assert cancelled.rev == 3
    assert log.reason(cancel("x2", "k1")) == "already_final"
    assert set(log.usage().values()) == {(1, 0)}
    again = log.held(book("b2", "k2", "alice", "north"))
    assert slot_ids(again) == slot_ids(held)


def test_cancel_of_a_hold_frees_it(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0), slot(21)]))
    log.held(book("b1", "k1", "alice", "north"))
    assert isinstance(log.one(cancel("x1", "k1")), Cancelled)
    assert log.reason(confirm("f1", "k1")) == "not_held"
    log.held(book("b2", "k2", "bob", "north"))


def test_unknown_bookings_fail(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0), slot(21)]))
    assert log.reason(confirm("f1", "nope")) == "unknown_booking"
    assert log.reason(cancel("x1", "nope")) == "unknown_booking"
    assert log.reason(confirm("f2", "nope", campaign="other")) == "unknown_booking"
    log.reason(book("b1", "k1", "alice", "west"))
    assert log.reason(confirm("f3", "k1")) == "not_held"
    assert log.reason(cancel("x3", "k1")) == "already_final"


def test_a_hold_expires_when_the_log_clock_reaches_it(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0), slot(21)]))
    held = log.held(book("b1", "k1", "alice", "north", hold_s=60))
    assert not_summaries(log(Tick("t1"), at_ms=held.hold_expires_at_ms - 1)) == []
    events = log(confirm("f1", "k1"), at_ms=held.hold_expires_at_ms)
    assert events == [
        Expired("b1", "k1", CAMPAIGN, 2, held.hold_expires_at_ms),
        Failed("f1", "k1", CAMPAIGN, held.hold_expires_at_ms, RejectReason.HOLD_EXPIRED),
    ]
    assert log.reason(cancel("x1", "k1")) == "already_final"
    assert slot_ids(log.held(book("b2", "k2", "alice", "north"))) == slot_ids(held)


def test_a_confirmed_pair_does_not_expire(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0), slot(21)]))
    held = log.held(book("b1", "k1", "alice", "north", hold_s=60))
    log.one(confirm("f1", "k1"))
    assert not_summaries(log(Tick("t1"), at_ms=held.hold_expires_at_ms + 1)) == []
    assert set(log.usage().values()) == {(1, 1)}


def test_holds_expire_in_order_of_time_then_booking_id(log: Log) -> None:
    log(add("a1", "north", "c1", daily(range(30), (8, 9, 10))))
    log.held(book("b1", "k-b", "p1", "north", hold_s=60))
    log.held(book("b2", "k-a", "p2", "north", hold_s=60))
    log.held(book("b3", "k-0", "p3", "north", hold_s=30))
    events = log(Tick("t1"), at_ms=T0_MS + 60_000)
    assert [(e.booking_id, e.command_id) for e in events if isinstance(e, Expired)] == [
        ("k-0", "b3"),
        ("k-a", "b2"),
        ("k-b", "b1"),
    ]


def test_the_log_clock_never_goes_back(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0), slot(21)]), at_ms=T0_MS + 10_000)
    held = log.held(book("b1", "k1", "alice", "north"), at_ms=T0_MS)
    assert held.at_ms == T0_MS + 10_000
    assert log.core.now_ms == T0_MS + 10_000


# -- duplicates ------------------------------------------------------------------------------


def test_a_redelivered_book_gets_no_second_answer(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0), slot(21), slot(1), slot(22)]))
    b = book("b1", "k1", "alice", "north")
    log.held(b)
    assert log(b) == []
    assert log.reason(book("b2", "k1", "bob", "north")) == "duplicate_booking_id"
    assert log(book("b2", "k1", "bob", "north")) == []
    rejected = book("b3", "k3", "zed", "west")
    log.reason(rejected)
    assert log(rejected) == []
    assert sum(used for _, used in log.usage().values()) == 2


def test_redelivered_confirm_and_cancel_get_no_second_answer(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0), slot(21)]))
    log.held(book("b1", "k1", "alice", "north"))
    log.one(confirm("f1", "k1"))
    assert log(confirm("f1", "k1")) == []
    log.one(cancel("x1", "k1"))
    assert log(cancel("x1", "k1")) == []
    assert log(confirm("f1", "k1")) == []
    log.one(confirm("f9", "nope"))
    assert log(confirm("f9", "nope")) == []


def test_a_redelivered_add_inventory_adds_nothing(log: Log) -> None:
    a = add("a1", "north", "c1", [slot(0, capacity=2), slot(21, capacity=2)])
    log(a)
    assert log(a) == []
    assert set(log.usage().values()) == {(2, 0)}


# -- inventory -------------------------------------------------------------------------------


def test_add_inventory_adds_and_tops_up_slots(log: Log) -> None:
    first = log.one(add("a1", "north", "c1", [slot(0), slot(21)]))
    assert first == InventoryAdded("a1", CAMPAIGN, "c1", T0_MS, True, 2)
    log(add("a2", "north", "c1", [slot(0, capacity=2), slot(22)]))
    assert log.usage() == {
        slot_id("c1", "vx", 0): (3, 0),
        slot_id("c1", "vx", 21): (1, 0),
        slot_id("c1", "vx", 22): (1, 0),
    }
    for i in range(2):
        log.held(book(f"b{i}", f"k{i}", f"p{i}", "north"))
    assert log.reason(book("b9", "k9", "p9", "north")) == "no_pair_in_window"


def test_top_up_makes_a_sold_out_county_bookable(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0), slot(21)]))
    log.held(book("b1", "k1", "alice", "north"))
    assert log.reason(book("b2", "k2", "bob", "north")) == "sold_out"
    log(add("a2", "north", "c1", [slot(0), slot(21)]))
    assert slot_ids(log.held(book("b3", "k3", "bob", "north")))[0] == slot_id("c1", "vx", 0)


def test_add_inventory_refusals_change_nothing(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0), slot(21)]))
    before = log.usage()
    window = log.one(add("a2", "north", "c2", [slot(0), slot(10)], min_days=7, max_days=14))
    assert window == InventoryAdded(
        "a2", CAMPAIGN, "c2", T0_MS, False, 0, RejectReason.WINDOW_MISMATCH
    )
    county = log.one(add("a3", "south", "c1", [slot(1), slot(22)]))
    assert county == InventoryAdded(
        "a3", CAMPAIGN, "c1", T0_MS, False, 0, RejectReason.CENTER_MISMATCH
    )
    assert log.usage() == before
    assert log.reason(book("b1", "k1", "p1", "south")) == "unknown_county"
    assert log.reason(book("b2", "k2", "p2", "north", center="c2")) == "unknown_center"


def test_the_same_vaccine_window_elsewhere_is_accepted(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0), slot(21)]))
    added = log.one(add("a2", "south", "c2", [slot(0), slot(21)], campaign=CAMPAIGN))
    assert isinstance(added, InventoryAdded) and added.accepted


# -- summaries -------------------------------------------------------------------------------


def summary_of(events: list[Event]) -> Summary:
    (summary,) = [e for e in events if isinstance(e, Summary)]
    return summary


def test_summary_counts_pairs_free_held_and_confirmed(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0, capacity=2), slot(21, capacity=3)]))
    log(add("a2", "south", "c2", [slot(0), slot(40)]))
    log.held(book("b1", "k1", "alice", "north"))
    log.held(book("b2", "k2", "bob", "north"))
    log.one(confirm("f1", "k1"))
    summary = summary_of(log(Tick("t1")))
    assert summary.campaign == CAMPAIGN
    assert summary.counties == {
        "north": CountySummary(0, 1, 1, 1, pairs_left_by_vaccine={"vx": 0}),
        "south": CountySummary(0, 2, 0, 0, pairs_left_by_vaccine={"vx": 0}),
    }
    assert log.core.summaries() == [summary]


def test_pairs_left_is_zero_exactly_when_books_are_refused(log: Log) -> None:
    log(add("a1", "north", "c1", daily(range(0, 4), (9, 10)), min_days=2, max_days=2))
    assert log.core.summaries()[0].counties["north"].pairs_left == 4
    for i in range(4):
        log.held(book(f"b{i}", f"k{i}", f"p{i}", "north"))
        assert log.core.summaries()[0].counties["north"].pairs_left == 3 - i
    assert log.reason(book("b9", "k9", "p9", "north")) == "sold_out"
    log.one(cancel("x1", "k3"))
    assert log.core.summaries()[0].counties["north"].pairs_left == 1


def test_pairs_left_drops_as_slots_pass(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0), slot(1), slot(21), slot(22)]))
    assert log.core.summaries()[0].counties["north"].pairs_left == 2
    log(Tick("t1"), at_ms=start_ms(0))
    assert log.core.summaries()[0].counties["north"] == CountySummary(1, 3, 0, 0, 0, 0, {"vx": 1})
    log(Tick("t2"), at_ms=start_ms(1))
    assert log.core.summaries()[0].counties["north"].pairs_left == 0
    assert log.reason(book("b1", "k1", "p1", "north")) == "no_pair_in_window"


def pairs_by_vaccine(log: Log) -> dict[str, dict[str, int]]:
    """Each county's pairs left per vaccine, checked to sum to its pairs left."""
    (summary,) = log.core.summaries()
    out = {}
    for name, county in summary.counties.items():
        by_vaccine = county.pairs_left_by_vaccine
        assert by_vaccine is not None and sum(by_vaccine.values()) == county.pairs_left
        out[name] = by_vaccine
    return out


def test_pairs_left_by_vaccine_follow_add_hold_confirm_cancel_expiry_and_remove(
    log: Log,
) -> None:
    # north: c1 has va (4 pairs: days 0+2 and 1+3, twice), c2 has vb (2 pairs); south: vb
    log(add("a1", "north", "c1", daily(range(4), (9, 10)), vaccine="va", min_days=2, max_days=2))
    assert pairs_by_vaccine(log) == {"north": {"va": 4}}
    vb = [slot(0, capacity=2), slot(21, capacity=2)]
    log(add("a2", "north", "c2", vb, vaccine="vb"))
    log(add("a3", "south", "c3", [slot(0), slot(21)], vaccine="vb"))
    assert pairs_by_vaccine(log) == {"north": {"va": 4, "vb": 2}, "south": {"vb": 1}}
    log.held(book("b1", "k1", "alice", "north"))  # c1 before c2 at the same start: va
    log.held(book("b2", "k2", "bob", "north", center="c2", hold_s=60))
    assert pairs_by_vaccine(log)["north"] == {"va": 3, "vb": 1}
    log.one(confirm("f1", "k1"))
    assert pairs_by_vaccine(log)["north"] == {"va": 3, "vb": 1}
    log.one(cancel("x1", "k1"))
    assert pairs_by_vaccine(log)["north"] == {"va": 4, "vb": 1}
    expired = log(Tick("t1"), at_ms=T0_MS + 60_000)
    assert [e.booking_id for e in expired if isinstance(e, Expired)] == ["k2"]
    assert summary_of(expired).counties["north"].pairs_left_by_vaccine == {"va": 4, "vb": 2}
    removed = log.one(remove("r1", "north", "c2", [slot(21)], vaccine="vb"))
    assert isinstance(removed, InventoryRemoved) and removed.accepted
    # a vaccine the county has no pair of left is still named, with 0: sold out
    assert pairs_by_vaccine(log) == {"north": {"va": 4, "vb": 0}, "south": {"vb": 1}}
    assert summary_of(log(Tick("t2"))).counties["north"] == CountySummary(
        4, 10, 0, 0, 0, 0, {"va": 4, "vb": 0}
    )


def test_pairs_left_by_vaccine_add_up_the_centers_of_a_vaccine(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0), slot(21)], vaccine="vb"))
    log(add("a2", "north", "c2", [slot(0), slot(22)], vaccine="vb"))
    log(add("a3", "north", "c2", [slot(1), slot(3)], vaccine="va", min_days=2, max_days=2))
    assert pairs_by_vaccine(log) == {"north": {"va": 1, "vb": 2}}
    assert list(pairs_by_vaccine(log)["north"]) == ["va", "vb"]  # in order of vaccine id


def test_summaries_come_on_ticks_after_changes_and_every_five_seconds(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0), slot(21)]))
    assert len(log(Tick("t1"))) == 1
    assert log(Tick("t2"), at_ms=T0_MS + 4_999) == []
    log.held(book("b1", "k1", "alice", "north"))
    assert len(log(Tick("t3"))) == 1
    assert log(Tick("t4"), at_ms=T0_MS + 9_998) == []
    again = log(Tick("t5"), at_ms=T0_MS + 9_999)
    assert summary_of(again).at_ms == T0_MS + 9_999


def test_one_summary_per_campaign_in_name_order(log: Log) -> None:
    log(add("a1", "north", "c1", [slot(0), slot(21)], campaign="zeta"))
    log(add("a2", "north", "c1", [slot(0), slot(21)], campaign="alpha"))
    log.reason(book("b1", "k1", "p1", "north", campaign="ghost"))
    events = log(Tick("t1"))
    assert [e.campaign for e in events if isinstance(e, Summary)] == ["alpha", "zeta"]


def test_only_book_confirm_cancel_and_add_inventory_are_answered(log: Log) -> None:
    assert log(Tick("t1")) == []
    assert log.core.next_offset == 1


def test_a_freed_pair_is_found_before_later_free_ones(log: Log) -> None:
    log(add("a1", "north", "c1", daily(range(30), (9, 10))))
    first = log.held(book("b1", "k1", "alice", "north"))
    log.held(book("b2", "k2", "bob", "north"))
    log.one(cancel("x1", "k1"))
    assert slot_ids(log.held(book("b3", "k3", "carol", "north"))) == slot_ids(first)


def test_a_rejected_book_is_kept_compactly_and_answers_each_later_command_once(
    log: Log,
) -> None:
    log(add("a1", "north", "c1", [slot(0), slot(21)]))
    log.held(book("b1", "k1", "alice", "north"))
    rejected = book("b2", "k2", "bob", "north")
    assert log.reason(rejected) == "sold_out"
    campaign = log.core._campaigns[rejected.campaign]
    assert "k2" in campaign.rejected and "k2" not in campaign.bookings
    assert log(rejected) == []  # a redelivery
    again = book("b3", "k2", "bob", "north")  # another Book with its booking id
    assert log.reason(again) == "duplicate_booking_id"
    assert log(again) == []
    assert log.reason(confirm("f2", "k2")) == "not_held"
    assert log(confirm("f2", "k2")) == []
    assert [(v.booking_id, v.identity, v.state) for v in log.core.bookings()] == [
        ("k1", "alice", "held"),
        ("k2", "bob", "rejected"),
    ]
