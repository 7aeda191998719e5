"""The invariants, read from the log itself: ``booking-commands`` and ``booking-events``.

A gateway's view can be wrong in the same way as the code under test, so the tests
that claim an invariant under load or faults check it here, from the records: the
inventory (AddInventory commands the allocator accepted), every Book, and every
event, replayed partition by partition in log order. A restarted or stale allocator
writes again events it wrote before: they come with a ``rev`` the booking has
already, must be the same event as the first (else the log says two things), and
change nothing.

What ``audit`` finds, each as a sentence naming the booking, slot or identity:
- a booking's history that is not one path to one final state (a gap in its revs,
  two different events with one rev, a change after a final state);
- a slot over its capacity;
- an identity (access code, ticket or identity key) with two pairs at once;
- a pair that is not whole (dose 1 and 2, one center, one vaccine, dose 2 inside
  the vaccine's interval);
- a Book rejected for want of a pair while the log shows a whole pair free for it.

Not modelled (``audit`` refuses such a log rather than judging it wrongly): moves
to another county (their pair is taken on another partition) and priority reserves.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer

from fairq.config import Connections
from fairq.topics import partitions_of
from gateway.readmodel import ENDED_STATES, FINAL_STATES
from schemas.commands import AddInventory, Book, decode_command
from schemas.events import (
    Appointment,
    Cancelled,
    Confirmed,
    Event,
    Expired,
    Failed,
    Held,
    InventoryAdded,
    Moved,
    Offered,
    Rejected,
    ReserveSet,
    Waitlisted,
    decode_event,
)
from tests.allocator.eventlogs import read_topic as read_records

# state before -> the states an event may lead to from it ("" is a booking not yet answered)
TRANSITIONS: dict[str, frozenset[str]] = {
    "": frozenset({"held", "rejected", "waitlisted"}),
    "held": frozenset({"held", "confirmed", "expired", "cancelled"}),  # held -> held: a move
    "confirmed": frozenset({"confirmed", "cancelled"}),
    "waitlisted": frozenset({"held", "cancelled"}),
}
BOOKING_EVENTS = (Held, Offered, Confirmed, Rejected, Expired, Cancelled, Waitlisted, Moved)
NO_PAIR_REASONS = frozenset({"sold_out", "no_pair_in_window"})


@dataclass(frozen=True, slots=True)
class Log:
    """Both topics, each as records per partition in offset order."""

    commands: dict[int, list[Any]]
    events: dict[int, list[Event]]


async def read_topic(
    bootstrap: str, topic: str, decode: Callable[[bytes], Any]
) -> dict[int, list[Any]]:
    """Every record of ``topic`` up to its end now, decoded, per partition: read by
    ``tests.allocator.eventlogs.read_topic`` (which asks for the end again, as a broker
    may report a stale one, and is bounded in time), whatever the topic's partitions."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        partitions = len(await partitions_of(consumer, topic))
    finally:
        await consumer.stop()
    records = await read_records(bootstrap, topic, partitions)
    return {p: [decode(r.value) for r in rs if r.value is not None] for p, rs in records.items()}


async def read_log(connections: Connections) -> Log:
    bootstrap, topics = connections.kafka_bootstrap, connections.topics
    return Log(
        commands=await read_topic(bootstrap, topics.commands, decode_command),
        events=await read_topic(bootstrap, topics.events, decode_event),
    )


@dataclass(slots=True)
class Slot:
    center: str
    county: str
    vaccine: str
    day: dt.date
    capacity: int = 0
    used: int = 0


@dataclass(slots=True)
class Booking:
    """A booking as the log tells it."""

    booking_id: str
    partition: int
    state: str = ""
    identity: str | None = None
    revs: dict[int, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    pair: tuple[Slot, ...] = ()
    holds_since_ms: int | None = None  # when it took its pair (held or waitlisted)
    ended_at_ms: int | None = None  # when it ended (rejected, expired or cancelled)
    reason: str | None = None  # why it was rejected

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


@dataclass(slots=True)
class Audit:
    bookings: dict[str, Booking] = field(default_factory=dict)
    slots: dict[tuple[str, str, str], Slot] = field(default_factory=dict)
    books: Counter[str] = field(default_factory=Counter)  # Book commands per booking id
    failed: dict[str, list[str]] = field(default_factory=dict)  # Failed reasons per booking id
    bad_histories: list[str] = field(default_factory=list)
    over_capacity: list[str] = field(default_factory=list)
    two_pairs: list[str] = field(default_factory=list)
    broken_pairs: list[str] = field(default_factory=list)
    false_rejections: list[str] = field(default_factory=list)

    def findings(self) -> dict[str, list[str]]:
        """Every broken invariant, by name (empty lists when the log is sound)."""
        return {
            "bad_histories": self.bad_histories,
            "over_capacity": self.over_capacity,
            "two_pairs": self.two_pairs,
            "broken_pairs": self.broken_pairs,
            "false_rejections": self.false_rejections,
        }

    def trace(self, booking_id: str) -> str:
        """What the log has of a booking: its state, its Books, its Failed answers."""
        booking = self.bookings.get(booking_id)
        state = booking.state if booking else "no booking event"
        failed = ", ".join(self.failed.get(booking_id, [])) or "none"
        return f"{state}; {self.books[booking_id]} Book(s) in the log, failed: {failed}"

    def used(self) -> dict[str, int]:
        """Places in use (held or confirmed) per slot, by ``center vaccine start``."""
        return {" ".join(k): s.used for k, s in self.slots.items() if s.used}


@dataclass(slots=True)
class _Line:
    min_days: int
    max_days: int


def audit(log: Log) -> Audit:
    """Replay the log and report every broken invariant (see the module's docstring)."""
    result = Audit()
    inventory: dict[str, AddInventory] = {}
    books: dict[str, Book] = {}
    for commands in log.commands.values():
        for c in commands:
            if isinstance(c, AddInventory):
                inventory[c.command_id] = c
            elif isinstance(c, Book):
                books.setdefault(c.booking_id, c)
                result.books[c.booking_id] += 1
    lines: dict[tuple[str, str], _Line] = {}
    applied: set[str] = set()
    for partition in sorted(log.events):
        for event in log.events[partition]:
            if isinstance(event, InventoryAdded):
                if event.accepted and event.command_id not in applied:
                    applied.add(event.command_id)
                    _add_inventory(result, lines, inventory[event.command_id])
            elif isinstance(event, ReserveSet) and event.accepted:
                raise ValueError("the audit does not model priority reserves")
            elif isinstance(event, Failed):
                result.failed.setdefault(event.booking_id, []).append(event.reason)
            elif isinstance(event, BOOKING_EVENTS):
                _apply(result, lines, books, partition, event)
    _check_identities(result)
    return result


def _add_inventory(result: Audit, lines: dict[tuple[str, str], _Line], c: AddInventory) -> None:
    lines[(c.center, c.vaccine)] = _Line(c.min_days, c.max_days)
    for spec in c.slots:
        slot = result.slots.setdefault(
            (c.center, c.vaccine, spec.start),
            Slot(c.center, c.county, c.vaccine, dt.date.fromisoformat(spec.day)),
        )
        slot.capacity += spec.capacity


def _apply(
    result: Audit,
    lines: dict[tuple[str, str], _Line],
    books: dict[str, Book],
    partition: int,
    event: Any,
) -> None:
    booking = result.bookings.setdefault(event.booking_id, Booking(event.booking_id, partition))
    appointments: tuple[Appointment, ...] = getattr(event, "appointments", ())
    seen = (event.TYPE, tuple(a.slot for a in appointments))
    if event.rev in booking.revs:  # written again (a replay or a stale allocator)
        if booking.revs[event.rev] != seen:
            result.bad_histories.append(
                f"{event.booking_id}: rev {event.rev} is both {booking.revs[event.rev]} and {seen}"
            )
        return
    booking.revs[event.rev] = seen
    if event.rev != len(booking.revs):
        result.bad_histories.append(f"{event.booking_id}: rev {event.rev} follows a gap")
    if isinstance(event, Moved):
        if event.county is not None:
            raise ValueError("the audit does not model moves to another county")
        new_state = booking.state  # a move keeps the state
    else:
        new_state = "held" if isinstance(event, Offered) else event.TYPE  # a state's name
    if new_state not in TRANSITIONS.get(booking.state, frozenset()):
        result.bad_histories.append(
            f"{event.booking_id}: {event.TYPE} (rev {event.rev}) after {booking.state or 'nothing'}"
        )
    if isinstance(event, Held | Waitlisted):
        booking.identity = event.identity
    if new_state in ("held", "waitlisted") and booking.holds_since_ms is None:
        booking.holds_since_ms = event.at_ms
    if new_state in ENDED_STATES:
        booking.ended_at_ms = event.at_ms
    if isinstance(event, Rejected):
        booking.reason = event.reason
        if event.reason in NO_PAIR_REASONS:
            _check_no_pair_was_free(result, lines, books.get(event.booking_id), event)
    if isinstance(event, Held | Offered | Moved | Confirmed):
        _take_pair(result, lines, booking, appointments)
    elif new_state in ENDED_STATES:
        _release(booking)
    booking.state = new_state


def _take_pair(
    result: Audit,
    lines: dict[tuple[str, str], _Line],
    booking: Booking,
    appointments: tuple[Appointment, ...],
) -> None:
    slots = tuple(result.slots.get((a.center, a.vaccine, a.start)) for a in appointments)
    known = tuple(s for s in slots if s is not None)
    if len(known) != len(appointments):
        result.broken_pairs.append(f"{booking.booking_id}: a place in a slot never added")
        return
    if {id(s) for s in known} == {id(s) for s in booking.pair}:
        return  # a confirm: the same pair
    _check_whole(result, lines, booking.booking_id, appointments)
    _release(booking)
    booking.pair = known
    for slot in known:
        slot.used += 1
        if slot.used > slot.capacity:
            result.over_capacity.append(
                f"{slot.center} {slot.vaccine} {slot.day}: {slot.used} places used of"
                f" {slot.capacity} (by {booking.booking_id})"
            )


def _release(booking: Booking) -> None:
    for slot in booking.pair:
        slot.used -= 1
    booking.pair = ()


def _check_whole(
    result: Audit,
    lines: dict[tuple[str, str], _Line],
    booking_id: str,
    appointments: tuple[Appointment, ...],
) -> None:
    doses = sorted(appointments, key=lambda a: a.dose)
    if [a.dose for a in doses] != [1, 2]:
        result.broken_pairs.append(f"{booking_id}: doses {[a.dose for a in doses]}")
        return
    d1, d2 = doses
    if (d1.center, d1.vaccine) != (d2.center, d2.vaccine):
        result.broken_pairs.append(
            f"{booking_id}: {d1.center}/{d1.vaccine} with {d2.center}/{d2.vaccine}"
        )
        return
    line = lines[(d1.center, d1.vaccine)]
    gap = (dt.date.fromisoformat(d2.start[:10]) - dt.date.fromisoformat(d1.start[:10])).days
    if not line.min_days <= gap <= line.max_days:
        result.broken_pairs.append(
            f"{booking_id}: dose 2 {gap} days after dose 1, outside {line.min_days}-{line.max_days}"
        )


def _check_no_pair_was_free(
    result: Audit, lines: dict[tuple[str, str], _Line], book: Book | None, event: Rejected
) -> None:
    """A Book refused for want of a pair: no whole pair it could take was free then."""
    if book is None:
        result.bad_histories.append(f"{event.booking_id}: rejected, but its Book is not in the log")
        return
    if book.time_of_day is not None:
        return  # a strict time of day: any free pair may be at another time; not judged
    earliest = dt.date.fromisoformat(book.earliest) if book.earliest else dt.date.min
    free = [
        s
        for s in result.slots.values()
        if s.county == book.county
        and (book.center is None or s.center == book.center)
        and s.used < s.capacity
    ]
    for d1 in free:
        if d1.day < earliest:
            continue
        line = lines[(d1.center, d1.vaccine)]
        for d2 in free:
            gap = (d2.day - d1.day).days
            if (d2.center, d2.vaccine) == (d1.center, d1.vaccine) and (
                line.min_days <= gap <= line.max_days
            ):
                result.false_rejections.append(
                    f"{event.booking_id} ({book.county}): rejected {event.reason} while"
                    f" {d1.center} {d1.vaccine} {d1.day} + {d2.day} was free"
                )
                return


def _check_identities(result: Audit) -> None:
    """No identity holds two pairs at once (across partitions, by log time)."""
    by_identity: dict[str, list[Booking]] = defaultdict(list)
    for b in result.bookings.values():
        if b.identity is not None and b.holds_since_ms is not None:
            by_identity[b.identity].append(b)
    for identity, held in by_identity.items():
        held.sort(key=lambda b: b.holds_since_ms or 0)
        for earlier, later in _pairs(held):
            ended = earlier.ended_at_ms
            if ended is None or (later.holds_since_ms or 0) < ended:
                result.two_pairs.append(
                    f"{identity}: {earlier.booking_id} ({earlier.state}, partition"
                    f" {earlier.partition}) and {later.booking_id} ({later.state}, partition"
                    f" {later.partition})"
                )


def _pairs(items: list[Booking]) -> Iterable[tuple[Booking, Booking]]:
    for i, a in enumerate(items):
        for b in items[i + 1 :]:
            yield a, b
