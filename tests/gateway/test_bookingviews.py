"""The gateway's booking views, applied from events in any order across partitions."""

from __future__ import annotations

import itertools

import pytest

from gateway.bookingviews import BookingViews
from schemas.events import Appointment, Confirmed, Event, Held, Moved

DOSES = (
    Appointment(1, "n1", "North", "vx", "2030-03-01T09:00:00+00:00", "n1/vx/1"),
    Appointment(2, "n1", "North", "vx", "2030-03-22T09:00:00+00:00", "n1/vx/2"),
)
MOVED = (
    Appointment(1, "s1", "South", "vx", "2030-03-02T09:00:00+00:00", "s1/vx/1"),
    Appointment(2, "s1", "South", "vx", "2030-03-23T09:00:00+00:00", "s1/vx/2"),
)
# Held in north, moved to south (answered by north's partition), confirmed in south (by
# south's): a gateway reads the two partitions in its own order.
EVENTS: list[Event] = [
    Held("b1", "k1", "spring", 1, 10, "ann", "north", DOSES, 600_000),
    Moved("m1", "k1", "spring", 2, 20, MOVED, 600_000, "south"),
    Confirmed("f1", "k1", "spring", 3, 30, MOVED),
]


@pytest.mark.parametrize("order", list(itertools.permutations(range(len(EVENTS)))))
def test_the_county_of_a_moved_booking_holds_whatever_order_the_partitions_are_read_in(
    order: tuple[int, ...],
) -> None:
    views = BookingViews()
    for i in order:
        views.apply(EVENTS[i])
    view = views.get("k1")
    assert view is not None
    assert (view.state, view.rev, view.county) == ("confirmed", 3, "south")
    assert view.appointments == MOVED


def test_a_later_move_back_is_not_undone_by_an_earlier_move_read_late() -> None:
    back = Moved("m2", "k1", "spring", 4, 40, DOSES, None, "north")
    views = BookingViews()
    for event in (EVENTS[0], back, EVENTS[2], EVENTS[1]):
        views.apply(event)
    view = views.get("k1")
    assert view is not None and (view.rev, view.county) == (4, "north")
