"""The waiting room's exceptions; the gateway maps each to an HTTP answer."""

from __future__ import annotations


class WaitingRoomError(Exception):
    """Base of every error raised by the waitingroom package."""


class TicketError(WaitingRoomError):
    """A ticket or booking token that cannot be accepted."""


class InvalidTicket(TicketError):
    """Malformed, forged, of the wrong type, or signed with an unknown key id."""


class WrongRoom(TicketError):
    """A genuine ticket or booking token, but for another room."""


class TicketExpired(TicketError):
    """A genuine ticket or booking token whose lifetime is over."""


class RoomNotFound(WaitingRoomError):
    """No room of that name has been created."""


class RoomClosed(WaitingRoomError):
    """The room is closed: it takes no joins."""


class TooEarly(WaitingRoomError):
    """The room's pre-queue is not open yet: come back at ``prequeue_opens_at_s``."""

    def __init__(self, room: str, prequeue_opens_at_s: float) -> None:
        super().__init__(f"the pre-queue of room {room!r} opens at {prequeue_opens_at_s}")
        self.room = room
        self.prequeue_opens_at_s = prequeue_opens_at_s


class InvalidRoomConfig(WaitingRoomError, ValueError):
    """A room name, state or admission setting that is out of range."""


class InvalidAccessCode(WaitingRoomError):
    """An access code that was not issued for the campaign."""


class TooManyAttempts(WaitingRoomError):
    """Too many wrong access codes in this window from the client (``limit`` 'client') or
    with the code's prefix ('prefix'): no code is looked up until the window ends."""

    def __init__(self, limit: str) -> None:
        super().__init__(f"too many wrong access codes per {limit}")
        self.limit = limit


class LeadershipLost(WaitingRoomError):
    """An admitter's fencing token is no longer the room's current one."""


class StateUnavailable(WaitingRoomError):
    """The durable state cannot be written or read now; the caller answers 503."""


class StateNotAccepted(StateUnavailable):
    """The broker did not acknowledge a state record (it may still be in the log)."""


class StateRestoring(StateUnavailable):
    """Redis lost the durable state (a flush, a restart, a failover) and it is not
    restored from the state log yet: nothing durable is handed out meanwhile."""


class CounterFenced(StateUnavailable):
    """A room's ticket counter reached its ceiling: the state log must have a higher one
    before the counter hands out ``needed``."""

    def __init__(self, room: str, kind: str, needed: int) -> None:
        super().__init__(f"the {kind} counter of room {room!r} needs a ceiling of {needed}")
        self.room = room
        self.kind = kind
        self.needed = needed
