"""What a visitor is told: state, place in line and estimated wait, from memory only."""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import NamedTuple

from waitingroom.lottery import position_of
from waitingroom.rooms import RoomSnapshot
from waitingroom.tickets import Ticket

DEFAULT_HALF_LIFE_S = 10.0


class Status(NamedTuple):
    """A visitor's status; a NamedTuple, built on every status check at about half the
    cost of a frozen dataclass."""

    state: str  # prequeue | waiting | admitted | turn_passed | sold_out | closed
    position: int | None  # people ahead + 1 while waiting; 0 once admitted; None in prequeue
    eta_s: float | None  # seconds to admission (to opening, in prequeue); 0 admitted; None unknown
    position_abs: int | None  # position on the room's timeline


class RateMeter:
    """What a room's admission does, measured from successive (time, snapshot) views:
    the rate it admits at while nothing but the rate holds it back, and how long an
    admitted visitor stays active. Reads no clock.

    **The free rate** (``rate_per_s``): an exponentially weighted mean of the cursor's
    speed; an observation's weight grows with the time it covers, so the mean halves
    its memory every ``half_life_s`` however often it is fed. Only an interval at both
    ends of which the room was admitting (``RoomSnapshot.admitting``: open, not sold
    out, people in line not yet admitted) and below its cap on active bookers measures
    it. Over any other interval the cursor's speed is a lower bound at best (an empty
    line admits no one, however fast the room could admit; a room not yet open or
    paused admits no one, whatever it will admit once it does; a room at its cap admits
    only as bookers leave): it may raise the rate, never lower it. Else a quiet spell,
    a pause or a stretch at the cap would drag the estimate down, and the people in
    line would be told to wait many times longer than they will once it ends.
    ``rate_per_s`` is None until a free interval was seen (the configured rate stands
    in for it, and the first measurement moves on from there, so that the estimate
    shown does not jump when measuring begins).

    **The dwell** (``dwell_s``): how long an admitted visitor stays active (booking,
    or until the admission window lapses), smoothed the same way. The people who left
    the active set so far number ``cursor - active``; had they left in the order they
    were admitted, the last of them left now, so the time since the cursor passed that
    place is the dwell. Departures are not in order (a quick booker leaves before a
    slow one), yet with a steady admission this is the mean dwell all the same (Little's
    law: active = rate x dwell); before anyone has left it is the time since the
    opening, a lower bound. The cap on active bookers then allows ``max_active / dwell``
    admissions a second, which ``wait_s`` uses once the cap holds admission back.
    """

    __slots__ = ("_half_life_s", "_last", "_passed", "dwell_s", "rate_per_s")

    def __init__(self, half_life_s: float = DEFAULT_HALF_LIFE_S) -> None:
        if not half_life_s > 0:
            raise ValueError(f"half_life_s must be positive, got {half_life_s}")
        self._half_life_s = half_life_s
        self._last: tuple[float, int, bool, bool] | None = None  # time, cursor, admitting, capped
        # (time, cursor) each time the cursor was seen moving, from the last one at or
        # before the place of the latest departure
        self._passed: collections.deque[tuple[float, int]] = collections.deque()
        self.rate_per_s: float | None = None
        self.dwell_s: float | None = None

    def observe(self, now_s: float, snap: RoomSnapshot) -> None:
        """Take the room as ``snap`` shows it at ``now_s``."""
        cursor = snap.cursor
        capped = snap.active >= snap.config.max_active
        admitting = snap.admitting
        last = self._last
        if last is None or cursor < last[1]:  # first sight, or the room was reset
            self._last = (now_s, cursor, admitting, capped)
            self.rate_per_s, self.dwell_s = None, None
            self._passed.clear()
            self._passed.append((now_s, cursor))
            return
        dt = now_s - last[0]
        if dt <= 0:
            return
        self._last = (now_s, cursor, admitting, capped)
        weight = 1.0 - 2.0 ** (-dt / self._half_life_s)
        self._observe_dwell(now_s, snap, weight)
        if (last[2] or admitting) and (last[3] or capped):
            return  # admitting as bookers leave: says nothing of the free rate
        sample = (cursor - last[1]) / dt
        rate = self.rate_per_s
        if not (last[2] and admitting) and (rate is None or sample <= rate):
            return  # a lower bound that says nothing new
        if rate is None:
            rate = snap.rate_at(now_s)  # the stand-in shown until now
        self.rate_per_s = rate + weight * (sample - rate)

    @property
    def sightings(self) -> int:
        """How many of the cursor's moves the meter holds: those since the place of the
        latest departure (its memory is bounded by the active bookers, not the room)."""
        return len(self._passed)

    def _observe_dwell(self, now_s: float, snap: RoomSnapshot, weight: float) -> None:
        passed = self._passed
        if snap.cursor > passed[-1][1]:
            passed.append((now_s, snap.cursor))
        departed = snap.cursor - snap.active  # places 1..departed have left (as if in order)
        while len(passed) > 1 and passed[1][1] <= departed:
            passed.popleft()  # kept: from the latest departure's place on, whatever else
        opened_at_s = snap.opened_at_s
        if opened_at_s is None or snap.active <= 0:
            return  # not open, or nobody active: nothing says how long they stay
        t0, c0 = passed[0]
        if departed <= 0 or c0 > departed:
            # Nobody has left yet, or the last to leave was admitted before this meter
            # first saw the room: they stayed at least since the opening, or since then.
            # A lower bound, taken as it is rather than smoothed in as a measurement.
            since_s = opened_at_s if departed <= 0 else max(t0, opened_at_s)
            self.dwell_s = max(0.0, now_s - since_s)
            return
        if len(passed) > 1 and c0 < departed:  # the cursor passed ``departed`` in between
            t1, c1 = passed[1]
            t0 += (t1 - t0) * (departed - c0) / (c1 - c0)
        dwell = max(0.0, now_s - max(t0, opened_at_s))
        self.dwell_s = (
            dwell if self.dwell_s is None else self.dwell_s + weight * (dwell - self.dwell_s)
        )


def wait_s(
    ahead: int, snap: RoomSnapshot, rate_per_s: float, dwell_s: float | None
) -> float | None:
    """Seconds until ``ahead`` more people are admitted, at ``rate_per_s`` while the cap
    on active bookers leaves room, and as bookers leave once it does not.

    The active bookers leave at ``active / dwell`` a second (each stays ``dwell_s``),
    so the cap holds admission back only if ``rate x dwell`` exceeds it: then the
    room admits at the rate until the active set fills up to the cap, and at
    ``max_active / dwell`` from there on. Over the cap (an operator lowered it), nobody
    is admitted until enough bookers have left. Without a dwell (nobody has been
    active yet) the cap is taken as not holding anyone back. None: nobody will be
    admitted (a cap of 0, until an operator raises it).
    """
    cap, active = snap.config.max_active, snap.active
    if cap <= 0:
        return None
    if dwell_s is None or dwell_s <= 0:
        return ahead / rate_per_s
    capped_per_s = min(rate_per_s, cap / dwell_s)
    if active >= cap:  # wait until enough have left, then admit as they leave
        return (active - cap) * dwell_s / active + ahead / capped_per_s
    if capped_per_s == rate_per_s:
        return ahead / rate_per_s  # the rate alone holds admission back
    leaving_per_s = active / dwell_s  # < cap / dwell < rate
    filling_s = (cap - active) / (rate_per_s - leaving_per_s)
    admitted_meanwhile = rate_per_s * filling_s
    if ahead <= admitted_meanwhile:
        return ahead / rate_per_s
    return filling_s + (ahead - admitted_meanwhile) / capped_per_s


# A NamedTuple's own __new__ is a Python function; tuple.__new__ builds the same
# Status at half the cost (a Status is built on every status check).
_status = tuple.__new__


def status_of(
    ticket: Ticket,
    snap: RoomSnapshot,
    order: Sequence[int] | None,
    now_s: float,
    rate_per_s: float | None,
    passed_to: int = 0,
    dwell_s: float | None = None,
) -> Status:
    """The ticket's status; ``rate_per_s`` is the measured free rate (None: the configured
    one now) and ``dwell_s`` the measured dwell (``RateMeter``); the places up to
    ``passed_to`` were admitted longer ago than the room's admission window: their turn
    has passed (``turn_passed``: booked, or lapsed and given on)."""
    pos = position_of(ticket, snap, order)  # None until the room opens
    state = snap.state
    if state == "closed":
        return _status(Status, ("closed", None, None, pos))
    if pos is None:
        return _status(Status, ("prequeue", None, max(0.0, snap.config.opens_at_s - now_s), None))
    cursor = snap.cursor
    if pos <= cursor:
        if pos <= passed_to:
            return _status(Status, ("turn_passed", 0, None, pos))
        return _status(Status, ("admitted", 0, 0.0, pos))
    if snap.sold_out:
        return _status(Status, ("sold_out", pos - cursor, None, pos))
    ahead = pos - cursor - 1
    rate = snap.rate_at(now_s) if rate_per_s is None else rate_per_s
    eta = None if state == "paused" or rate <= 0 else wait_s(ahead, snap, rate, dwell_s)
    return _status(Status, ("waiting", ahead + 1, eta, pos))


def chance_of(status: Status, snap: RoomSnapshot, pairs_left: int | None) -> str | None:
    """An honest estimate: the people who would book before this visitor vs pairs left.

    Ahead of a waiting visitor are the active bookers (admitted, not yet done) and
    the people before them in line; in the pre-queue, the whole pre-queue (the
    lottery may put the visitor last). ``likely`` when they are fewer than the
    pairs left, ``unlikely`` otherwise, ``none`` when the room is sold out or
    closed; None when unknown (no inventory summary yet, or the summaries say no
    pair is left while the room is not sold out) or once the visitor is admitted.
    """
    if status.state in ("sold_out", "closed"):
        return "none"
    if status.state in ("admitted", "turn_passed") or pairs_left is None:
        return None
    if pairs_left <= 0:
        # No pair left by this gateway's summaries, yet the room is not sold out: the
        # two disagree for a moment (supply just came, or sold out is being set), so
        # the honest answer is "not known", never a stale "none".
        return None
    if status.state == "prequeue":
        ahead = max(0, snap.prequeue_size - 1)  # worst case: everyone else ahead
    else:
        ahead = (status.position or 1) - 1
    return "likely" if snap.active + ahead < pairs_left else "unlikely"
