import itertools
import random
from collections import Counter

import pytest

from waitingroom.errors import InvalidTicket, WrongRoom
from waitingroom.lottery import audit, draw_seed, position_of, prequeue_order
from waitingroom.rooms import RoomConfig, RoomSnapshot
from waitingroom.tickets import Ticket

# Upper 0.1% points of the chi-squared distribution.
CHI2_CRITICAL_DF23 = 49.728
CHI2_CRITICAL_DF9 = 27.877
SEEDS = [f"fixed-seed-{i}" for i in range(24_000)]


def chi2(counts: Counter[tuple[int, ...]] | Counter[int], cells: int, total: int) -> float:
    expected = total / cells
    assert len(counts) <= cells
    missing = cells - len(counts)
    return sum((c - expected) ** 2 / expected for c in counts.values()) + missing * expected


def test_order_is_a_permutation_determined_by_the_seed() -> None:
    seed = draw_seed()
    order = prequeue_order(seed, 1000)
    assert sorted(order) == list(range(1000))
    assert prequeue_order(seed, 1000) == order
    assert prequeue_order(draw_seed(), 1000) != order
    assert list(prequeue_order(seed, 0)) == []
    assert list(prequeue_order(seed, 1)) == [0]


def test_every_order_of_four_is_equally_likely() -> None:
    counts = Counter(tuple(prequeue_order(s, 4)) for s in SEEDS)
    assert set(counts) <= set(itertools.permutations(range(4)))
    assert chi2(counts, 24, len(SEEDS)) < CHI2_CRITICAL_DF23


def test_each_ticket_lands_anywhere_equally_often() -> None:
    seeds = SEEDS[:10_000]
    for ticket in (0, 5, 9):
        counts = Counter(prequeue_order(s, 10)[ticket] for s in seeds)
        assert chi2(counts, 10, len(seeds)) < CHI2_CRITICAL_DF9


def test_audit_recomputes_the_documented_shuffle() -> None:
    seed, n = "3f2a9c", 50
    rng = random.Random(seed)
    order = list(range(n))
    for i in range(n - 1, 0, -1):
        j = rng.randrange(i + 1)
        order[i], order[j] = order[j], order[i]
    assert audit(seed, n) == [p + 1 for p in order]
    assert sorted(audit(seed, n)) == list(range(1, n + 1))


def snapshot(opened: bool, prequeue_size: int = 5, post_count: int = 3) -> RoomSnapshot:
    return RoomSnapshot(
        config=RoomConfig(name="demo", campaign="c", opens_at_s=1000.0),
        state="open" if opened else "scheduled",
        sold_out=False,
        prequeue_size=prequeue_size,
        post_count=post_count if opened else 0,
        cursor=0,
        active=0,
        seed="s" if opened else None,
        opened_at_s=1000.0 if opened else None,
    )


def ticket(kind: str, number: int, room: str = "demo") -> Ticket:
    return Ticket(room=room, ticket_id=f"{kind}{number}", kind=kind, number=number, issued_at_s=1.0)


def test_positions_cover_the_timeline_once() -> None:
    snap = snapshot(opened=True)
    order = prequeue_order("s", 5)
    pre = [position_of(ticket("pre", k), snap, order) for k in range(1, 6)]
    post = [position_of(ticket("post", k), snap, None) for k in range(1, 4)]
    assert pre == [p + 1 for p in order]
    assert sorted(p or 0 for p in pre) == [1, 2, 3, 4, 5]
    assert post == [6, 7, 8]


def test_no_position_before_opening() -> None:
    assert position_of(ticket("pre", 1), snapshot(opened=False), None) is None


def test_position_refuses_impossible_input() -> None:
    snap = snapshot(opened=True)
    with pytest.raises(InvalidTicket):
        position_of(ticket("pre", 6), snap, prequeue_order("s", 5))
    with pytest.raises(WrongRoom):
        position_of(ticket("post", 1, room="other"), snap, None)
    with pytest.raises(ValueError, match="order"):
        position_of(ticket("pre", 1), snap, None)
