from dataclasses import replace

import pytest

from waitingroom.lottery import prequeue_order
from waitingroom.rooms import RoomConfig, RoomSnapshot
from waitingroom.status import RateMeter, Status, chance_of, status_of
from waitingroom.tickets import Ticket

T0 = 1000.0
CONFIG = RoomConfig(name="demo", campaign="flu", opens_at_s=T0, rate_per_s=2.0)
OPEN = RoomSnapshot(
    config=CONFIG,
    state="open",
    sold_out=False,
    prequeue_size=4,
    post_count=10,
    cursor=6,
    active=6,
    seed="s",
    opened_at_s=T0,
)
ORDER = prequeue_order("s", 4)


def post(number: int) -> Ticket:
    return Ticket(room="demo", ticket_id="t", kind="post", number=number, issued_at_s=T0)


def test_prequeue_counts_down_to_opening() -> None:
    snap = replace(OPEN, state="scheduled", seed=None, opened_at_s=None, post_count=0, cursor=0)
    ticket = Ticket(room="demo", ticket_id="t", kind="pre", number=3, issued_at_s=T0 - 50)
    assert status_of(ticket, snap, None, T0 - 30, None) == Status("prequeue", None, 30.0, None)
    assert status_of(ticket, snap, None, T0 + 1, None) == Status("prequeue", None, 0.0, None)


def test_pre_ticket_gets_its_lottery_place() -> None:
    snap = replace(OPEN, cursor=0)
    for number in range(1, 5):
        ticket = Ticket(room="demo", ticket_id="t", kind="pre", number=number, issued_at_s=T0)
        place = ORDER[number - 1] + 1
        assert status_of(ticket, snap, ORDER, T0, None).position_abs == place


def test_waiting_eta_uses_measured_then_configured_rate() -> None:
    # post 6 stands at 4 + 6 = 10; cursor 6: 3 ahead.
    assert status_of(post(6), OPEN, ORDER, T0, 1.5) == Status("waiting", 4, 2.0, 10)
    assert status_of(post(6), OPEN, ORDER, T0, None) == Status("waiting", 4, 1.5, 10)
    assert status_of(post(6), OPEN, ORDER, T0, 0.0).eta_s is None
    assert status_of(post(6), replace(OPEN, state="paused"), ORDER, T0, 1.5) == Status(
        "waiting", 4, None, 10
    )
    assert status_of(post(3), OPEN, ORDER, T0, 1.5) == Status("waiting", 1, 0.0, 7)


def test_configured_rate_fallback_follows_the_ramp() -> None:
    ramping = replace(OPEN, config=replace(CONFIG, ramp_s=100))
    # 3 ahead at 10% of 2/s at the opening; at 2/s once the ramp is over.
    assert status_of(post(6), ramping, ORDER, T0, None).eta_s == pytest.approx(15.0)
    assert status_of(post(6), ramping, ORDER, T0 + 100, None).eta_s == pytest.approx(1.5)
    assert status_of(post(6), ramping, ORDER, T0, 1.5).eta_s == pytest.approx(2.0)  # measured


def test_admitted_stays_admitted_when_sold_out() -> None:
    sold = replace(OPEN, sold_out=True)
    assert status_of(post(2), OPEN, ORDER, T0, 1.0) == Status("admitted", 0, 0.0, 6)
    assert status_of(post(2), sold, ORDER, T0, 1.0) == Status("admitted", 0, 0.0, 6)
    assert status_of(post(6), sold, ORDER, T0, 1.0) == Status("sold_out", 4, None, 10)


def test_a_turn_admitted_longer_than_the_window_ago_has_passed() -> None:
    """Places up to ``passed_to`` (within the cursor) had their turn; later ones have it."""
    assert status_of(post(1), OPEN, ORDER, T0, 1.0, passed_to=5) == Status(
        "turn_passed", 0, None, 5
    )
    assert status_of(post(2), OPEN, ORDER, T0, 1.0, passed_to=5).state == "admitted"
    assert status_of(post(3), OPEN, ORDER, T0, 1.0, passed_to=9).state == "waiting"
    passed = status_of(post(1), OPEN, ORDER, T0, 1.0, passed_to=5)
    assert chance_of(passed, OPEN, 100) is None


def test_closed_wins() -> None:
    closed = replace(OPEN, state="closed")
    assert status_of(post(2), closed, ORDER, T0, 1.0) == Status("closed", None, None, 6)
    not_opened = replace(closed, seed=None, opened_at_s=None, post_count=0)
    ticket = Ticket(room="demo", ticket_id="t", kind="pre", number=1, issued_at_s=T0)
    assert status_of(ticket, not_opened, None, T0, 1.0) == Status("closed", None, None, None)


def seen(meter: RateMeter, now_s: float, cursor: int, admitting: bool = True) -> None:
    """``meter`` sees the room open at ``now_s`` with ``cursor``, and somebody waiting
    if ``admitting`` (else everyone in line admitted). The configured rate is 2/s."""
    waiting = 1 if admitting else 0
    meter.observe(now_s, replace(OPEN, prequeue_size=0, post_count=cursor + waiting, cursor=cursor))


def test_rate_meter_follows_the_cursor() -> None:
    meter = RateMeter(half_life_s=1.0)
    assert meter.rate_per_s is None
    seen(meter, T0, 0)
    seen(meter, T0, 5)  # no time passed: ignored
    assert meter.rate_per_s is None
    seen(meter, T0 + 1, 10)  # half way (one half-life) from the configured 2/s to 10/s
    assert meter.rate_per_s == pytest.approx(6.0)
    for i in range(2, 12):  # then 2/s
        seen(meter, T0 + i, 10 + 2 * (i - 1))
    assert meter.rate_per_s == pytest.approx(2.0, abs=0.01)
    seen(meter, T0 + 12, 0)  # the cursor went back: a reset room
    assert meter.rate_per_s is None


def test_rate_meter_weighs_by_time_not_by_calls() -> None:
    often, rarely = RateMeter(half_life_s=4.0), RateMeter(half_life_s=4.0)
    for m in (often, rarely):
        seen(m, T0, 0)
        seen(m, T0 + 1000, 10_000)  # 10/s, for long enough to forget the configured rate
    for i in range(1, 41):
        seen(often, T0 + 1000 + i * 0.1, 10_000)  # then nothing for 4 s, seen 40 times
    seen(rarely, T0 + 1004, 10_000)  # seen once
    assert often.rate_per_s == pytest.approx(5.0, rel=0.02)
    assert rarely.rate_per_s == pytest.approx(5.0)


def test_a_room_not_admitting_does_not_drag_the_rate_down() -> None:
    """Before opening, while the line is empty or the room paused, the cursor stands
    still whatever the room could admit: no measurement of the rate (the configured
    rate stands in until there is one), and a quiet spell keeps the rate it found."""
    meter = RateMeter(half_life_s=1.0)
    before = replace(OPEN, state="scheduled", opened_at_s=None, prequeue_size=30, cursor=0)
    for i in range(20):  # the pre-queue fills; nobody is admitted before opening
        meter.observe(T0 - 20 + i, before)
    assert meter.rate_per_s is None
    seen(meter, T0, 30)  # the interval that opened the room: a lower bound
    assert meter.rate_per_s is None
    for i in range(1, 20):
        seen(meter, T0 + i, 30 + 10 * i)
    assert meter.rate_per_s == pytest.approx(10.0, abs=0.01)
    seen(meter, T0 + 20, 225, admitting=False)  # the line ran empty halfway through
    for i in range(21, 60):  # a quiet spell: nobody waits
        seen(meter, T0 + i, 225, admitting=False)
    paused = replace(OPEN, state="paused", prequeue_size=0, post_count=300, cursor=225)
    for i in range(60, 80):  # people wait, the room is paused
        meter.observe(T0 + i, paused)
    assert meter.rate_per_s == pytest.approx(10.0, abs=0.01)
    seen(meter, T0 + 80, 225, admitting=False)
    seen(meter, T0 + 81, 245, admitting=False)  # 20 came and went in 1 s: at least 20/s
    faster = meter.rate_per_s
    assert faster is not None and 10.0 < faster < 20.0
    for i in range(82, 100):  # people wait, yet no one is let in (the cap on bookers)
        seen(meter, T0 + i, 245)
    assert meter.rate_per_s is not None and meter.rate_per_s < faster / 1000


def test_status_after_a_quiet_pre_queue_has_an_estimate() -> None:
    """At opening the first in line are told the configured rate's wait, not 'unknown',
    and the first measurement moves the estimate on from there (no jump)."""
    meter = RateMeter(half_life_s=10.0)
    before = replace(OPEN, state="scheduled", opened_at_s=None, prequeue_size=0, cursor=0)
    for i in range(50):
        meter.observe(T0 - 10 + i * 0.2, before)
    opened = replace(OPEN, cursor=0)
    meter.observe(T0, opened)
    ticket = Ticket(room="demo", ticket_id="t", kind="post", number=9, issued_at_s=T0)
    status = status_of(ticket, opened, None, T0, meter.rate_per_s)
    assert status == Status("waiting", 13, 6.0, 13)  # 12 ahead at the configured 2/s
    meter.observe(T0 + 0.2, opened)  # the admitter has not run yet: 0/s for 0.2 s
    assert meter.rate_per_s == pytest.approx(2.0 * 2 ** (-0.02))


@pytest.mark.parametrize(
    ("change", "admitting"),
    [
        ({}, True),
        ({"cursor": 14}, False),  # everyone in line admitted
        ({"state": "paused"}, False),
        ({"sold_out": True}, False),
        ({"state": "scheduled", "opened_at_s": None, "cursor": 0}, False),
        ({"state": "closed"}, False),
    ],
)
def test_a_room_admits_while_open_with_someone_waiting(
    change: dict[str, object], admitting: bool
) -> None:
    assert replace(OPEN, **change).admitting is admitting  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "position", "pairs_left", "chance"),
    [
        ("waiting", 5, None, None),  # no inventory summary yet
        ("waiting", 5, 11, "likely"),  # 6 active + 4 ahead = 10 < 11
        ("waiting", 5, 10, "unlikely"),  # 10 people would book first
        ("waiting", 1, 0, None),  # summary and room disagree for a moment: unknown
        ("sold_out", 5, 3, "none"),
        ("closed", None, 3, "none"),
        ("admitted", 0, 3, None),
    ],
)
def test_chance_compares_people_ahead_with_pairs_left(
    state: str, position: int | None, pairs_left: int | None, chance: str | None
) -> None:
    assert chance_of(Status(state, position, None, None), OPEN, pairs_left) == chance


def test_chance_in_prequeue_assumes_the_worst_draw() -> None:
    snap = replace(OPEN, state="scheduled", opened_at_s=None, active=0)  # 4 in the pre-queue
    prequeue = Status("prequeue", None, 30.0, None)
    assert chance_of(prequeue, snap, 4) == "likely"  # even the last draw gets a pair
    assert chance_of(prequeue, snap, 3) == "unlikely"
