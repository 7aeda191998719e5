"""Snapshots: restore + the rest of the log gives the events of an uninterrupted run."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocator.core import Allocator
from allocator.errors import SnapshotError
from allocator.snapshot import VERSION
from schemas.commands import Command, Tick
from schemas.events import Event, Offered
from tests.allocator import (
    T0_MS,
    add,
    book,
    cancel,
    confirm,
    day_iso,
    move,
    not_summaries,
    reserve,
    slot,
)
from tests.allocator.test_core_properties import Record, busy_logs, logs


def packed(events: list[list[Event]]) -> list[bytes]:
    return [e.pack() for batch in events for e in batch]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(logs(), busy_logs()), st.integers(1, 8))
def test_restoring_a_snapshot_at_every_kth_record_continues_byte_identically(
    records: list[Record], k: int
) -> None:
    assert_restoring_at_every_kth_record_continues(records, k)


def assert_restoring_at_every_kth_record_continues(records: list[Record], k: int) -> None:
    """A run restored from its own snapshot every ``k`` records emits the events, and ends
    in the state, of an uninterrupted run."""
    plain = Allocator()
    whole = [plain.apply(o, t, c) for o, t, c in records]
    core = Allocator()
    resumed: list[list[Event]] = []
    for i, (offset, timestamp_ms, command) in enumerate(records):
        if i % k == 0:
            data = core.snapshot()
            core = Allocator.restore(data)
            assert core.snapshot() == data
        resumed.append(core.apply(offset, timestamp_ms, command))
    assert packed(resumed) == packed(whole)
    assert core.snapshot() == plain.snapshot()
    assert list(core.slot_usage()) == list(plain.slot_usage())
    assert list(core.bookings()) == list(plain.bookings())
    assert core.summaries() == plain.summaries()


def test_a_snapshot_keeps_the_clock_offset_holds_and_dedup() -> None:
    core = Allocator()
    core.apply(0, T0_MS, add("a1", "north", "c1", [slot(d, 9, 1) for d in (0, 21, 22)]))
    core.apply(1, T0_MS + 5, book("b1", "k1", "ann", "north", hold_s=60))
    restored = Allocator.restore(core.snapshot())
    assert (restored.now_ms, restored.next_offset) == (T0_MS + 5, 2)
    assert restored.apply(2, T0_MS + 6, book("b1", "k1", "ann", "north")) == []  # redelivery
    assert restored.apply(3, T0_MS + 7, add("a1", "north", "c1", [slot(1)])) == []
    assert [e.TYPE for e in restored.apply(4, T0_MS + 61_000, confirm("f1", "k1"))] == [
        "expired",
        "failed",
    ]


def test_a_snapshot_keeps_the_waitlist_order_wishes_and_groups() -> None:
    core = Allocator()
    core.apply(0, T0_MS, add("a1", "north", "c1", [slot(d, 9, 1) for d in (0, 1, 21, 22)]))
    core.apply(1, T0_MS, book("b1", "k1", "ann", "north", group="nurses"))
    core.apply(2, T0_MS, book("b2", "k2", "bob", "north"))
    waiting = [
        ("b3", "k3", "cat", None),
        ("b4", "k4", "dan", day_iso(1)),
        ("b5", "k5", "eve", None),
    ]
    for i, (command_id, booking_id, identity, earliest) in enumerate(waiting):
        core.apply(3 + i, T0_MS, book(command_id, booking_id, identity, "north", earliest=earliest,
                                      hold_s=60 + i, waitlist=True))  # fmt: skip
    restored = Allocator.restore(core.snapshot())
    assert restored.snapshot() == core.snapshot()
    campaign = restored._campaigns["spring"]
    assert campaign.bookings["k1"].group == "nurses"
    assert campaign.counties["north"].waitlist.booking_ids() == ["k3", "k4", "k5"]
    assert restored.summaries() == core.summaries()
    events = restored.apply(6, T0_MS + 1, cancel("x1", "k1"))  # day 0: not for dan
    assert [(e.TYPE, getattr(e, "booking_id", None)) for e in events] == [
        ("cancelled", "k1"),
        ("offered", "k3"),
    ]
    events = restored.apply(7, T0_MS + 2, move("m1", "k2", earliest=day_iso(0)))
    assert [e.TYPE for e in events] == ["failed"]
    events = restored.apply(8, T0_MS + 3, cancel("x2", "k2"))
    assert [(e.TYPE, getattr(e, "booking_id", None)) for e in events] == [
        ("cancelled", "k2"),
        ("offered", "k4"),
    ]
    offered = events[1]
    assert isinstance(offered, Offered) and offered.hold_expires_at_ms == T0_MS + 3 + 61_000


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",
        msgpack.packb({"format": "other", "v": 1}),
        msgpack.packb({"format": "fairq-allocator-snapshot", "v": 99}),
        msgpack.packb({"format": "fairq-allocator-snapshot", "v": 1, "now_ms": 1}),
        msgpack.packb({"format": "fairq-allocator-snapshot", "v": VERSION, "now_ms": 1}),
        msgpack.packb([1, 2]),
    ],
)
def test_unreadable_snapshots_are_refused(data: bytes) -> None:
    with pytest.raises(SnapshotError):
        Allocator.restore(data)


def test_a_snapshot_of_an_older_version_is_refused_by_name() -> None:
    data = msgpack.packb({"format": "fairq-allocator-snapshot", "v": 1})
    with pytest.raises(SnapshotError, match="unsupported snapshot version 1"):
        Allocator.restore(data)


def as_version_4(data: bytes) -> bytes:
    """A snapshot without a rejected Book kept compactly, written as version 4 wrote it:
    campaigns without that list."""
    state = msgpack.unpackb(data, raw=False, strict_map_key=False)
    assert state["v"] == VERSION == 5
    state["v"] = 4
    for campaign in state["campaigns"]:
        assert campaign.pop() == []
    return msgpack.packb(state, use_bin_type=True)  # type: ignore[no-any-return]


def as_version_3(data: bytes) -> bytes:
    """A snapshot with no booking moving to another county, written as version 3 wrote
    it: bookings without the move they are in the middle of."""
    state = msgpack.unpackb(as_version_4(data), raw=False, strict_map_key=False)
    state["v"] = 3
    for campaign in state["campaigns"]:
        for booking in campaign[8]:
            assert booking.pop() is None
    return msgpack.packb(state, use_bin_type=True)  # type: ignore[no-any-return]


def as_version_2(data: bytes) -> bytes:
    """A snapshot with at most one reserve per center and day, written as version 2
    wrote it: releases without the group, and each slot's reserve entry as
    ``[slot index, held_back, res_used]``."""
    state = msgpack.unpackb(as_version_3(data), raw=False, strict_map_key=False)
    state["v"] = 2
    state["releases"] = [r[:4] for r in state["releases"]]
    for campaign in state["campaigns"]:
        for center in campaign[7]:
            for line in center[4]:
                line[17] = [[i, *parts[0][1:]] for i, parts in line[17] if len(parts) == 1]
                del line[18]  # the per-view remembered failures (version 2 rebuilt them)
    return msgpack.packb(state, use_bin_type=True)  # type: ignore[no-any-return]


def unpacked(data: bytes) -> dict[str, Any]:
    state = msgpack.unpackb(data, raw=False, strict_map_key=False)
    assert isinstance(state, dict)
    return state


def one_reserve_per_day_log() -> list[Record]:
    """Members of "care" hold places out of its reserves (one per day), others hold
    open ones; one reserve was handed over and one removed (stale releases)."""
    commands: list[Command] = [
        add("a1", "north", "c1", [slot(d, 9, 4) for d in (0, 1, 21, 22)]),
        reserve("r0", "north", "c1", 0, "care", 50, mode="minimum_guarantee"),
        reserve("r21", "north", "c1", 21, "care", 50, mode="minimum_guarantee"),
        reserve("r1", "north", "c1", 1, "teachers", 50, release_at_ms=T0_MS + 60_000),
        reserve("r1b", "north", "c1", 1, "teachers", 0),
        reserve("r22", "north", "c1", 22, "care", 25, release_at_ms=T0_MS + 7_200_000),
        book("b1", "k1", "ann", "north", group="care", hold_s=60),
        book("b2", "k2", "bob", "north", group="care", hold_s=7200),
        book("b3", "k3", "cat", "north", hold_s=7200),
    ]
    return [(i, T0_MS + i, c) for i, c in enumerate(commands)]


def later_log(start: int) -> list[Record]:
    commands: list[Command] = [
        cancel("x2", "k2"),  # back to care's reserve
        book("b4", "k4", "dan", "north", hold_s=7200),
        book("b5", "k5", "eve", "north", group="care", hold_s=7200),
        book("b6", "k6", "fay", "north", hold_s=7200),
    ]
    records = [(start + i, T0_MS + 100 + i, c) for i, c in enumerate(commands)]
    return [*records, (start + 4, T0_MS + 3_600_000, Tick("t1"))]  # care's release


def test_a_version_2_snapshot_is_read_and_continues_like_the_run_it_was_taken_of() -> None:
    core = Allocator()
    for offset, timestamp_ms, command in one_reserve_per_day_log():
        core.apply(offset, timestamp_ms, command)
    data = core.snapshot()
    old = as_version_2(data)
    assert msgpack.unpackb(old, strict_map_key=False)["v"] == 2
    restored = Allocator.restore(old)
    again, state = unpacked(restored.snapshot()), unpacked(data)
    # a stale release (its reserve removed) cannot name its group in version 2
    stale = [[*r[:4], ""] if r[4] == "teachers" else r for r in state.pop("releases")]
    assert again.pop("releases") == stale
    for campaign in (*state["campaigns"], *again["campaigns"]):
        for center in campaign[7]:
            for line in center[4]:
                line[18] = []  # not in version 2: rebuilt
    assert again == state
    rest = later_log(core.next_offset)
    whole = [core.apply(o, t, c) for o, t, c in rest]
    resumed = [restored.apply(o, t, c) for o, t, c in rest]
    assert packed(resumed) == packed(whole)
    assert [e.TYPE for e in not_summaries(whole[-1])] == ["expired"]
    assert restored.snapshot() == core.snapshot()


def test_a_version_3_snapshot_is_read_and_continues_like_the_run_it_was_taken_of() -> None:
    core = Allocator()
    for offset, timestamp_ms, command in one_reserve_per_day_log():
        core.apply(offset, timestamp_ms, command)
    restored = Allocator.restore(as_version_3(core.snapshot()))
    assert restored.snapshot() == core.snapshot()
    rest = later_log(core.next_offset)
    whole = [core.apply(o, t, c) for o, t, c in rest]
    assert packed([restored.apply(o, t, c) for o, t, c in rest]) == packed(whole)


def test_a_version_2_snapshot_holding_places_back_without_a_reserve_is_refused() -> None:
    core = Allocator()
    for offset, timestamp_ms, command in one_reserve_per_day_log():
        core.apply(offset, timestamp_ms, command)
    state = msgpack.unpackb(as_version_2(core.snapshot()), raw=False, strict_map_key=False)
    state["campaigns"][0][7][0][3] = []  # the center's reserves, gone
    with pytest.raises(SnapshotError, match="malformed snapshot"):
        Allocator.restore(msgpack.packb(state, use_bin_type=True))


def test_rejected_books_survive_a_snapshot_of_either_layout() -> None:
    """Version 5 keeps a rejected Book compactly; version 4 kept a whole booking, which
    a later command on it still makes (here a Confirm): both continue alike."""
    core = Allocator()
    core.apply(0, T0_MS, add("a1", "north", "c1", [slot(0, 9, 1), slot(21, 9, 1)]))
    core.apply(1, T0_MS, book("b1", "k1", "ann", "north"))
    core.apply(2, T0_MS, book("b2", "k2", "bob", "north"))  # sold out
    core.apply(3, T0_MS, book("b3", "k3", "cat", "north"))
    core.apply(4, T0_MS, confirm("f3", "k3"))  # a whole booking again
    state = unpacked(core.snapshot())
    assert state["campaigns"][0][10] == [["k2", "b2", "bob", "north"]]
    compact = Allocator.restore(core.snapshot())
    rest: list[Record] = [
        (5, T0_MS, book("b2", "k2", "bob", "north")),
        (6, T0_MS, confirm("f3", "k3")),
        (7, T0_MS, confirm("f2", "k2")),
        (8, T0_MS, book("b4", "k3", "dan", "north")),
    ]
    whole = [core.apply(o, t, c) for o, t, c in rest]
    assert [len(events) for events in whole] == [0, 0, 1, 1]
    assert [compact.apply(o, t, c) for o, t, c in rest] == whole
    assert compact.snapshot() == core.snapshot()
    without_compact = Allocator()
    first: list[Command] = [
        add("a1", "north", "c1", [slot(0, 9, 1), slot(21, 9, 1)]),
        book("b1", "k1", "ann", "north"),
        book("b3", "k3", "cat", "north"),
        confirm("f3", "k3"),
    ]
    for offset, command in enumerate(first):
        without_compact.apply(offset, T0_MS, command)
    old = Allocator.restore(as_version_4(without_compact.snapshot()))
    assert old.apply(4, T0_MS, confirm("f3", "k3")) == []
    assert [(v.booking_id, v.state) for v in old.bookings()] == [
        ("k1", "held"),
        ("k3", "rejected"),
    ]
