"""Snapshots: restore + the rest of the log gives the events of an uninterrupted run."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocator.core import Allocator
from allocator.errors import SnapshotError
from allocator.snapshot import VERSION
from schemas.events import Event, Offered
from tests.allocator import T0_MS, add, book, cancel, confirm, day_iso, move, slot
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
    data = msgpack.packb({"format": "fairq-allocator-snapshot", "v": VERSION - 1})
    with pytest.raises(SnapshotError, match=f"unsupported snapshot version {VERSION - 1}"):
        Allocator.restore(data)
