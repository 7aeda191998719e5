"""The fair order: a seeded, auditable lottery among those who joined before opening.

At opening the room records a seed (logged, stored in the room) and freezes the
number of pre-queue tickets ``n``. Anyone can recompute the order from those two
values with this exact procedure (a Fisher-Yates shuffle)::

    rng = random.Random(seed)          # seed: the hex string, as stored
    order = list(range(n))
    for i in range(n - 1, 0, -1):
        j = rng.randrange(i + 1)
        order[i], order[j] = order[j], order[i]

Pre ticket number ``k`` (1-based) then stands at position ``order[k - 1] + 1``;
post-opening tickets follow in arrival order after the whole pre-queue.
"""

from __future__ import annotations

import random
import secrets
from array import array
from collections.abc import Sequence
from typing import TYPE_CHECKING

from waitingroom.errors import InvalidTicket, WrongRoom
from waitingroom.tickets import Ticket

if TYPE_CHECKING:  # rooms imports draw_seed from here
    from waitingroom.rooms import RoomSnapshot

SEED_BYTES = 16


def draw_seed() -> str:
    """A fresh lottery seed: 128 bits from the OS, as hex."""
    return secrets.token_hex(SEED_BYTES)


def prequeue_order(seed: str, n: int) -> array[int]:
    """``order[k - 1]`` is the 0-based position of pre ticket ``k`` (see the module doc)."""
    if n < 0:
        raise ValueError(f"the pre-queue size cannot be negative, got {n}")
    rng = random.Random(seed)
    randrange = rng.randrange
    order = array("I", range(n))
    for i in range(n - 1, 0, -1):
        j = randrange(i + 1)
        order[i], order[j] = order[j], order[i]
    return order


def audit(seed: str, prequeue_size: int) -> list[int]:
    """The 1-based positions of pre tickets 1..n, for publishing and checking by hand."""
    return [p + 1 for p in prequeue_order(seed, prequeue_size)]


def position_of(ticket: Ticket, snap: RoomSnapshot, order: Sequence[int] | None) -> int | None:
    """The ticket's place on the room's timeline, or None before the room opened.

    ``order`` is ``prequeue_order(snap.seed, snap.prequeue_size)``, computed once per
    opening by the caller; it is needed for pre tickets only.
    """
    if ticket.room != snap.config.name:
        raise WrongRoom(f"ticket for room {ticket.room!r}, not {snap.config.name!r}")
    if snap.opened_at_s is None:  # not opened yet
        return None
    if ticket.kind == "post":
        return snap.prequeue_size + ticket.number
    if ticket.number > snap.prequeue_size:
        # Cannot happen for a ticket of this room's life: opening froze the pre count.
        raise InvalidTicket(f"pre ticket {ticket.number} beyond the pre-queue of this opening")
    if order is None or len(order) != snap.prequeue_size:
        raise ValueError("the pre-queue order of this opening is needed for a pre ticket")
    return order[ticket.number - 1] + 1
