"""The booking read model in a real Redis: events applied once, in any order across
partitions, never past a gap, and the appointments export in order."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest
import redis.asyncio as aioredis

from gateway.readmodel import ReadModel, Record
from schemas.events import Appointment, Cancelled, Confirmed, Event, Held, Moved

TOPIC = "events"
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
EVENTS: list[tuple[int, Event]] = [
    (0, Held("b1", "k1", "spring", 1, 10, "ann", "north", DOSES, 600_000)),
    (0, Moved("m1", "k1", "spring", 2, 20, MOVED, 600_000, "south")),
    (1, Confirmed("f1", "k1", "spring", 3, 30, MOVED)),
]


def model(redis: aioredis.Redis) -> ReadModel:
    return ReadModel(redis, TOPIC, retention_s=3600)


def records(first: int, events: Sequence[Event]) -> list[Record]:
    return [Record(first + i, e.pack(), e) for i, e in enumerate(events)]


@pytest.mark.parametrize("order", list(itertools.permutations(range(len(EVENTS)))))
async def test_the_county_of_a_moved_booking_holds_whatever_order_the_partitions_are_read_in(
    redis: aioredis.Redis, order: tuple[int, ...]
) -> None:
    await redis.flushdb()
    m = model(redis)
    next_offset = {0: 0, 1: 0}
    for i in order:
        partition, event = EVENTS[i]
        offset = next_offset[partition]
        await m.project(partition, offset, 0, records(offset, [event]))
        next_offset[partition] += 1
    view = await m.get("k1")
    assert view is not None
    assert (view.state, view.rev, view.county) == ("confirmed", 3, "south")
    assert view.appointments == MOVED


async def test_a_later_move_back_is_not_undone_by_an_earlier_move_read_late(
    redis: aioredis.Redis,
) -> None:
    back = Moved("m2", "k1", "spring", 4, 40, DOSES, None, "north")
    m = model(redis)
    await m.project(0, 0, 0, records(0, [EVENTS[0][1], back]))
    await m.project(1, 0, 0, records(0, [EVENTS[2][1]]))
    await m.project(2, 0, 0, records(0, [EVENTS[1][1]]))
    view = await m.get("k1")
    assert view is not None and (view.rev, view.county) == (4, "north")


async def test_records_read_by_several_gateways_are_applied_once(redis: aioredis.Redis) -> None:
    """Two gateways read the same records: the second's call applies nothing, and both
    learn the same tally."""
    first, second = model(redis), model(redis)
    read = records(0, [e for _, e in EVENTS])
    one = await first.project(0, 0, 0, read)
    two = await second.project(0, 0, 0, read)
    assert (one.applied, two.applied) == (3, 0)
    assert one.tally == two.tally == {"spring": {"held": 1, "moved": 1, "confirmed": 1}}
    start = await second.start()
    assert start.offsets == {0: 3}


async def test_a_projection_that_lost_records_is_read_again_from_where_it_stopped(
    redis: aioredis.Redis,
) -> None:
    """Redis came back without the last records' changes (an older copy): a gateway that
    read past them is told where to read again, and nothing is applied out of order."""
    m = model(redis)
    await m.project(0, 0, 0, records(0, [EVENTS[0][1]]))
    await redis.hset(f"fq:readmodel:{{{TOPIC}}}:offsets", "0", 0)  # as before that call
    late = await m.project(0, 1, 0, records(1, [EVENTS[1][1]]))
    assert late.gap == 0 and late.applied == 0
    view = await m.get("k1")
    assert view is not None and view.moves == 0


async def test_the_export_lists_confirmed_appointments_in_order_and_by_center_and_day(
    redis: aioredis.Redis,
) -> None:
    m = model(redis)

    def pair(center: str, day: int) -> tuple[Appointment, ...]:
        return tuple(
            Appointment(
                dose,
                center,
                center.upper(),
                "vx",
                f"2030-03-{day + 21 * (dose - 1):02d}T09:00:00+00:00",
                f"{center}/{day}/{dose}",
            )
            for dose in (1, 2)
        )

    events: list[Event] = [
        Held("c1", "b-late", "spring", 1, 1, "i1", "north", pair("n1", 3), 9),
        Confirmed("c2", "b-late", "spring", 2, 2, pair("n1", 3)),
        Held("c3", "b-early", "spring", 1, 3, "i2", "north", pair("n1", 1), 9),
        Confirmed("c4", "b-early", "spring", 2, 4, pair("n1", 1)),
        Held("c5", "b-held", "spring", 1, 5, "i3", "north", pair("n1", 2), 9),  # not confirmed
        Held("c6", "b-gone", "spring", 1, 6, "i4", "north", pair("a1", 1), 9),
        Confirmed("c7", "b-gone", "spring", 2, 7, pair("a1", 1)),
        Cancelled("c8", "b-gone", "spring", 3, 8),  # confirmed, then cancelled: not listed
        Held("c9", "b-a", "spring", 1, 9, "i5", "north", pair("a1", 2), 9),
        Confirmed("c10", "b-a", "spring", 2, 10, pair("a1", 2)),
    ]
    await m.project(0, 0, 0, records(0, events))

    async def rows(center: str | None, day: str | None) -> list[tuple[str, str, int, str]]:
        return [(r[0], r[3], r[4], r[6]) async for r in m.appointments("spring", center, day)]

    assert await rows(None, None) == [
        ("a1", "2030-03-02T09:00:00+00:00", 1, "b-a"),
        ("a1", "2030-03-23T09:00:00+00:00", 2, "b-a"),
        ("n1", "2030-03-01T09:00:00+00:00", 1, "b-early"),
        ("n1", "2030-03-03T09:00:00+00:00", 1, "b-late"),
        ("n1", "2030-03-22T09:00:00+00:00", 2, "b-early"),
        ("n1", "2030-03-24T09:00:00+00:00", 2, "b-late"),
    ]
    assert await rows("n1", "2030-03-03") == [("n1", "2030-03-03T09:00:00+00:00", 1, "b-late")]
    assert await rows(None, "2030-03-23") == [("a1", "2030-03-23T09:00:00+00:00", 2, "b-a")]
    assert await rows("n", None) == []  # a center's id, not a prefix of one
    assert [r async for r in m.appointments("autumn", None, None)] == []
