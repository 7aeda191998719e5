"""RemoveInventory: unused slots leave the inventory, all named slots or none."""

from __future__ import annotations

import pytest

from schemas.commands import RemoveInventory, Tick
from schemas.events import InventoryRemoved
from schemas.states import RejectReason
from tests.allocator import (
    CAMPAIGN,
    T0_MS,
    Log,
    add,
    book,
    cancel,
    confirm,
    remove,
    slot,
    slot_id,
    slot_ids,
    start_ms,
)


@pytest.fixture
def log() -> Log:
    log = Log()
    log(add("a1", "north", "c1", [slot(0), slot(1, capacity=2), slot(21), slot(22)]))
    log(add("a2", "south", "c9", [slot(0), slot(21)]))
    return log


def refused(reason: str, command_id: str = "r1", center: str = "c1") -> InventoryRemoved:
    return InventoryRemoved(command_id, CAMPAIGN, center, T0_MS, False, 0, RejectReason(reason))


def test_removed_slots_are_no_longer_bookable(log: Log) -> None:
    answer = log.one(remove("r1", "north", "c1", [slot(0), slot(21)]))
    assert answer == InventoryRemoved("r1", CAMPAIGN, "c1", T0_MS, True, 2)
    assert log.usage()[slot_id("c1", "vx", 0)] == (0, 0)
    assert log.usage()[slot_id("c1", "vx", 21)] == (0, 0)
    summary = log.core.summaries()[0].counties["north"]
    assert (summary.free, summary.pairs_left) == (3, 1)
    held = log.held(book("b1", "k1", "alice", "north"))
    assert slot_ids(held) == [slot_id("c1", "vx", 1), slot_id("c1", "vx", 22)]
    assert log.reason(book("b2", "k2", "bob", "north")) == RejectReason.NO_PAIR_IN_WINDOW


def test_refusals_remove_nothing(log: Log) -> None:
    log.held(book("b1", "k1", "alice", "north"))
    log.held(book("b2", "k2", "bob", "north"))
    log.one(confirm("f2", "k2"))
    before = (log.usage(), log.core.summaries())
    unknown = [slot(1), slot(2)]
    assert log.one(remove("r1", "north", "c1", unknown)) == refused("unknown_slot")
    assert log.one(remove("r2", "north", "c1", [slot(1)], vaccine="other")) == refused(
        "unknown_slot", "r2"
    )
    held = [slot(1), slot(0)]  # day 0 is alice's (held)
    assert log.one(remove("r3", "north", "c1", held)) == refused("slot_in_use", "r3")
    confirmed = [slot(22)]  # bob's (confirmed) dose 2
    assert log.one(remove("r4", "north", "c1", confirmed)) == refused("slot_in_use", "r4")
    assert log.one(remove("r5", "south", "c1", [slot(1)])) == refused("center_mismatch", "r5")
    assert log.one(remove("r6", "north", "c7", [slot(1)])) == refused("unknown_center", "r6", "c7")
    other = remove("r7", "north", "c1", [slot(1)], campaign="autumn")
    assert log.one(other) == InventoryRemoved(
        "r7", "autumn", "c1", T0_MS, False, 0, RejectReason.UNKNOWN_CENTER
    )
    assert (log.usage(), log.core.summaries()) == before


def test_a_slot_freed_by_a_cancel_can_be_removed(log: Log) -> None:
    log.held(book("b1", "k1", "alice", "north"))
    log.one(cancel("x1", "k1"))
    answer = log.one(remove("r1", "north", "c1", [slot(0)]))
    assert isinstance(answer, InventoryRemoved) and answer.accepted


def test_a_slot_named_twice_is_removed_once(log: Log) -> None:
    command = RemoveInventory(
        "r1", CAMPAIGN, "north", "c1", "vx", (slot(1).start_s, slot(1).start_s, slot(0).start_s)
    )
    answer = log.one(command)
    assert isinstance(answer, InventoryRemoved) and answer.slots_removed == 2
    assert log.core.summaries()[0].counties["north"].free == 2


def test_a_redelivered_removal_gets_no_second_answer(log: Log) -> None:
    command = remove("r1", "north", "c1", [slot(1)])
    log.one(command)
    log(add("a3", "north", "c1", [slot(1)]))
    assert log(command) == []
    assert log.usage()[slot_id("c1", "vx", 1)] == (1, 0)


def test_a_removed_slot_added_again_gets_places_again(log: Log) -> None:
    log.one(remove("r1", "north", "c1", [slot(0), slot(1), slot(21), slot(22)]))
    assert log.reason(book("b1", "k1", "alice", "north")) == "sold_out"
    log(add("a3", "north", "c1", [slot(0), slot(21)]))
    assert slot_ids(log.held(book("b2", "k2", "bob", "north")))[0] == slot_id("c1", "vx", 0)


def test_slots_in_the_past_can_be_removed(log: Log) -> None:
    log(Tick("t1"), at_ms=start_ms(1))
    answer = log.one(remove("r1", "north", "c1", [slot(0), slot(1)]))
    assert isinstance(answer, InventoryRemoved) and answer.slots_removed == 2
    summary = log.core.summaries()[0].counties["north"]
    assert (summary.free, summary.pairs_left) == (2, 0)


def test_an_empty_removal_is_accepted(log: Log) -> None:
    answer = log.one(remove("r1", "north", "c1", []))
    assert answer == InventoryRemoved("r1", CAMPAIGN, "c1", T0_MS, True, 0)
