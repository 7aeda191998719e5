"""The log audit of the fault suite and the e2e test finds each broken invariant.

Each test writes a small log by hand, from the real command and event types: a
sound one gives no finding, and each kind of breakage is named.
"""

from __future__ import annotations

from typing import Any

import pytest

from schemas.commands import AddInventory, Book, SlotSpec
from schemas.events import (
    Appointment,
    Cancelled,
    Confirmed,
    Expired,
    Held,
    InventoryAdded,
    Moved,
    Rejected,
)
from tests.eventlog import Log, audit

CAMPAIGN = "camp"
D1 = ("2031-03-03", "2031-03-03T09:00:00+01:00")
D2 = ("2031-03-24", "2031-03-24T09:00:00+01:00")  # 21 days later
LATE = ("2031-05-05", "2031-05-05T09:00:00+02:00")  # 63 days later: outside 21-42


def inventory(
    county: str = "a", center: str = "a-1", capacity: int = 1
) -> tuple[AddInventory, InventoryAdded]:
    slots = tuple(SlotSpec(day, start, 0, capacity) for day, start in (D1, D2, LATE))
    add = AddInventory(
        command_id=f"inv-{center}",
        campaign=CAMPAIGN,
        county=county,
        center=center,
        center_name=center,
        vaccine="comirnaty",
        min_days=21,
        max_days=42,
        slots=slots,
    )
    answer = InventoryAdded(
        command_id=add.command_id,
        campaign=CAMPAIGN,
        center=center,
        at_ms=1,
        accepted=True,
        slots_added=len(slots),
    )
    return add, answer


def pair(center: str = "a-1", second: tuple[str, str] = D2) -> tuple[Appointment, ...]:
    return tuple(
        Appointment(dose, center, center, "comirnaty", start, f"{center}/comirnaty/{start}")
        for dose, (_, start) in ((1, D1), (2, second))
    )


def held(
    booking: str, identity: str, at_ms: int, appointments: tuple[Appointment, ...] | None = None
) -> Held:
    return Held(
        command_id=f"c-{booking}",
        booking_id=booking,
        campaign=CAMPAIGN,
        rev=1,
        at_ms=at_ms,
        identity=identity,
        county="a",
        appointments=appointments or pair(),
        hold_expires_at_ms=at_ms + 600_000,
    )


def change(kind: Any, booking: str, rev: int, at_ms: int, **fields: Any) -> Any:
    return kind(
        command_id=f"c{rev}-{booking}",
        booking_id=booking,
        campaign=CAMPAIGN,
        rev=rev,
        at_ms=at_ms,
        **fields,
    )


def book(booking: str, county: str = "a") -> Book:
    return Book(
        command_id=f"c-{booking}",
        booking_id=booking,
        campaign=CAMPAIGN,
        identity=f"ticket:{booking}",
        county=county,
    )


def log(*partitions: list[Any], capacity: int = 1) -> Log:
    """Partition 0 gets the inventory of county a and its Books; events as given."""
    add, added = inventory(capacity=capacity)
    books = [e for p in partitions for e in p if isinstance(e, Book)]
    events = [[e for e in p if not isinstance(e, Book)] for p in partitions]
    events[0] = [added, *events[0]]
    return Log(commands={0: [add, *books]}, events=dict(enumerate(events)))


def broken(found: dict[str, list[str]]) -> dict[str, list[str]]:
    return {check: items for check, items in found.items() if items}


def test_a_sound_log_has_no_finding_and_counts_the_places_in_use() -> None:
    result = audit(
        log(
            [
                book("b1"),
                held("b1", "code:x", 10),
                change(Confirmed, "b1", 2, 11, appointments=pair()),
                held("b1", "code:x", 10),  # written again by a restarted allocator
                book("b2"),
                change(Rejected, "b2", 1, 12, reason="sold_out"),
            ]
        )
    )
    assert broken(result.findings()) == {}
    assert sorted(result.used().values()) == [1, 1]
    assert result.bookings["b1"].state == "confirmed"
    assert result.bookings["b2"].reason == "sold_out"


def test_a_slot_over_capacity_is_found() -> None:
    result = audit(log([held("b1", "code:x", 10), held("b2", "code:y", 11)]))
    assert list(broken(result.findings())) == ["over_capacity"]
    assert "by b2" in result.over_capacity[0]


def test_an_identity_holding_two_pairs_on_two_partitions_is_found() -> None:
    found = audit(log([held("b1", "code:x", 10)], [held("b2", "code:x", 11)], capacity=2))
    assert list(broken(found.findings())) == ["two_pairs"]
    assert found.two_pairs[0].startswith("code:x: b1")


def test_a_second_pair_after_the_first_ended_is_one_pair_at_a_time() -> None:
    first = [held("b1", "code:x", 10), change(Cancelled, "b1", 2, 20)]
    found = audit(log(first, [held("b2", "code:x", 20)], capacity=2))
    assert broken(found.findings()) == {}


def test_a_pair_outside_the_vaccines_interval_is_not_whole() -> None:
    found = audit(log([held("b1", "code:x", 10, pair(second=LATE))]))
    assert list(broken(found.findings())) == ["broken_pairs"]
    assert "63 days" in found.broken_pairs[0]


@pytest.mark.parametrize(
    "events",
    [
        # one rev, two different events: the log says two things
        [held("b1", "code:x", 10), change(Rejected, "b1", 1, 10, reason="sold_out")],
        # a change after a final state
        [held("b1", "code:x", 10), change(Expired, "b1", 2, 20), change(Cancelled, "b1", 3, 21)],
        # a gap in the revs
        [held("b1", "code:x", 10), change(Cancelled, "b1", 3, 21)],
    ],
)
def test_a_history_that_is_not_one_path_to_one_final_state_is_found(events: list[Any]) -> None:
    assert list(broken(audit(log(events)).findings())) == ["bad_histories"]


def test_a_booking_refused_for_want_of_a_pair_while_one_was_free_is_found() -> None:
    found = audit(log([book("b1"), change(Rejected, "b1", 1, 10, reason="sold_out")]))
    assert list(broken(found.findings())) == ["false_rejections"]


def test_a_move_to_another_county_is_refused_rather_than_judged() -> None:
    moved = change(Moved, "b1", 2, 11, appointments=pair(), county="b")
    with pytest.raises(ValueError, match="another county"):
        audit(log([held("b1", "code:x", 10), moved]))
