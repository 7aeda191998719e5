"""What a visitor is told: state, place in line and estimated wait, from memory only."""

from __future__ import annotations

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
    """Admission rate smoothed over successive (time, cursor) observations.

    An exponentially weighted mean of the rates between observations; an
    observation's weight grows with the time it covers, so the mean halves its
    memory every ``half_life_s`` however often it is fed. Reads no clock.

    Only an interval at both ends of which the room was admitting
    (``RoomSnapshot.admitting``: open, not sold out, people in line not yet admitted)
    measures the admission rate. Over any other interval the cursor's speed is a lower bound at
    best (an empty line admits no one, however fast the room could admit; a room not
    yet open or paused admits no one, whatever it will admit once it does): it may
    raise the rate, never lower it. Else a quiet spell before opening or between
    waves would drag the estimate to zero, and the first people in line would be told
    to wait many times longer than they will.

    ``rate_per_s`` is the measured rate: None until an admitting interval was seen (the
    configured rate stands in for it, and the first measurement moves on from there,
    so that the estimate shown does not jump when measuring begins; an attribute, read
    on every status check; only ``observe`` sets it).
    """

    __slots__ = ("_half_life_s", "_last", "rate_per_s")

    def __init__(self, half_life_s: float = DEFAULT_HALF_LIFE_S) -> None:
        if not half_life_s > 0:
            raise ValueError(f"half_life_s must be positive, got {half_life_s}")
        self._half_life_s = half_life_s
        self._last: tuple[float, int, bool] | None = None
        self.rate_per_s: float | None = None

    def observe(self, now_s: float, snap: RoomSnapshot) -> None:
        """Take the room as ``snap`` shows it at ``now_s``."""
        cursor, admitting = snap.cursor, snap.admitting
        last = self._last
        if last is None or cursor < last[1]:  # first sight, or the room was reset
            self._last, self.rate_per_s = (now_s, cursor, admitting), None
            return
        dt = now_s - last[0]
        if dt <= 0:
            return
        self._last = (now_s, cursor, admitting)
        sample = (cursor - last[1]) / dt
        rate = self.rate_per_s
        if not (last[2] and admitting) and (rate is None or sample <= rate):
            return  # a lower bound that says nothing new
        if rate is None:
            rate = snap.rate_at(now_s)  # the stand-in shown until now
        self.rate_per_s = rate + (1.0 - 2.0 ** (-dt / self._half_life_s)) * (sample - rate)


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
) -> Status:
    """The ticket's status; ``rate_per_s`` is the measured rate (None: the configured one now);
    the places up to ``passed_to`` were admitted longer ago than the room's admission
    window: their turn has passed (``turn_passed``: booked, or lapsed and given on)."""
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
    eta = None if state == "paused" or rate <= 0 else ahead / rate
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
