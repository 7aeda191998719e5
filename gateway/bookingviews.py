"""The latest state of every booking, kept in gateway memory from ``booking-events``.

Every gateway reads the whole events topic (no consumer group), so any gateway can
answer ``GET /api/bookings/{id}`` and push changes to the streams it holds. Events
are applied only when their ``rev`` is higher than the one held: a replayed or
duplicated event changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from fairq import kafkaclient
from fairq.config import Kafka
from fairq.topics import partitions_of
from schemas import SchemaError
from schemas.events import (
    Appointment,
    BookingEvent,
    Cancelled,
    Confirmed,
    CountySummary,
    Event,
    Expired,
    Held,
    InventoryAdded,
    Moved,
    Offered,
    Rejected,
    Summary,
    Waitlisted,
    decode_event,
)

logger = logging.getLogger(__name__)

POLL_MS = 200  # how long one fetch waits before the stop flag is looked at again
# How long the broker may hold a fetch of events that found nothing new: Tansu holds it
# that long even when an event arrives meanwhile, so it is this hop's share of
# click-to-held (with the allocator's FAIRQ_ALLOCATOR_FETCH_MAX_WAIT_MS, see there).
FETCH_MAX_WAIT_MS = 25
FINAL_STATES = frozenset({"confirmed", "rejected", "expired", "cancelled"})  # streams end
# states of a booking that holds no pair and never will again (a confirmed one holds one)
ENDED_STATES = frozenset({"rejected", "expired", "cancelled"})
_STATE_OF: dict[type, str] = {
    Held: "held",
    Offered: "held",
    Confirmed: "confirmed",
    Rejected: "rejected",
    Expired: "expired",
    Cancelled: "cancelled",
    Waitlisted: "waitlisted",
}


def iso_ms(epoch_ms: int) -> str:
    return dt.datetime.fromtimestamp(epoch_ms / 1000, dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass(slots=True)
class BookingView:
    booking_id: str
    state: str = "pending"
    rev: int = 0
    campaign: str | None = None
    county: str | None = None
    county_rev: int = 0  # the rev of the event that named ``county``
    appointments: tuple[Appointment, ...] = ()
    hold_expires_at_ms: int | None = None
    reason: str | None = None
    offered: bool = False  # the pair was offered from the waitlist
    moves: int = 0  # times the booking was moved to another pair

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def to_json(self) -> dict[str, Any]:
        held = self.state == "held" and self.hold_expires_at_ms is not None
        return {
            "booking_id": self.booking_id,
            "campaign": self.campaign,
            "state": self.state,
            "appointments": [
                {
                    "dose": a.dose,
                    "center": a.center,
                    "center_name": a.center_name,
                    "vaccine": a.vaccine,
                    "start": a.start,
                }
                for a in self.appointments
            ],
            "hold_expires_at": iso_ms(self.hold_expires_at_ms)
            if held and self.hold_expires_at_ms
            else None,
            "reason": self.reason,
            "offered": self.offered,
            "moves": self.moves,
        }


@dataclass(slots=True)
class BookingViews:
    """Booking states, waiting streams and pending command answers of one gateway."""

    views: dict[str, BookingView] = field(default_factory=dict)
    summaries: dict[str, dict[str, CountySummary]] = field(default_factory=dict)
    pairs_left: dict[str, int] = field(default_factory=dict)  # per campaign, all counties
    seen: Counter[str] = field(default_factory=Counter)  # events read, by type
    # booking events applied (a duplicate or replay not counted), by campaign and type:
    # the console's holds, confirmations and expiries, the same on every gateway
    tally: dict[str, Counter[str]] = field(default_factory=dict)
    # the first answer to each inventory command: a delivery sent again (same command
    # ids) is answered from here for what the allocator applied before
    inventory_answers: dict[str, InventoryAdded] = field(default_factory=dict)
    _watchers: dict[str, set[asyncio.Queue[BookingView]]] = field(default_factory=dict)
    _answers: dict[str, asyncio.Future[Event]] = field(default_factory=dict)

    def get(self, booking_id: str) -> BookingView | None:
        return self.views.get(booking_id)

    def apply(self, event: Event) -> None:
        self.seen[event.TYPE] += 1
        if isinstance(event, Summary):
            counties = self.summaries.setdefault(event.campaign, {})
            counties.update(event.counties)
            self.pairs_left[event.campaign] = sum(c.pairs_left for c in counties.values())
            return
        if isinstance(event, BookingEvent):
            self._apply_change(event)
        elif isinstance(event, InventoryAdded):
            self.inventory_answers.setdefault(event.command_id, event)
        self._answer(event.command_id, event)

    def _apply_change(self, event: BookingEvent) -> None:
        view = self.views.get(event.booking_id)
        if view is None:
            view = self.views[event.booking_id] = BookingView(event.booking_id)
        county = event.county if isinstance(event, Held | Waitlisted | Moved) else None
        if county is not None and event.rev > view.county_rev:
            # where its commands go; also from a Moved read after a later event of the
            # new county (another partition of the topic, read in its own order)
            view.county, view.county_rev = county, event.rev
        if event.rev <= view.rev:
            return
        view.rev = event.rev
        tally = self.tally.get(event.campaign)
        if tally is None:
            tally = self.tally[event.campaign] = Counter()
        tally[event.TYPE] += 1
        view.state = _STATE_OF.get(type(event), view.state)  # a move keeps the state
        view.campaign = event.campaign
        if isinstance(event, Held | Offered | Moved | Confirmed):
            view.appointments = event.appointments
        if isinstance(event, Held | Offered | Moved):
            view.hold_expires_at_ms = event.hold_expires_at_ms
        if isinstance(event, Offered):
            view.offered = True
        elif isinstance(event, Moved):
            view.moves += 1
        elif isinstance(event, Rejected):
            view.reason = event.reason
        for queue in self._watchers.get(event.booking_id, ()):
            queue.put_nowait(view)

    def _answer(self, command_id: str, event: Event) -> None:
        future = self._answers.pop(command_id, None)
        if future is not None and not future.done():
            future.set_result(event)

    @contextlib.contextmanager
    def watch(self, booking_id: str) -> Iterator[asyncio.Queue[BookingView]]:
        """A queue that receives the view after every change of that booking."""
        queue: asyncio.Queue[BookingView] = asyncio.Queue()
        self._watchers.setdefault(booking_id, set()).add(queue)
        try:
            yield queue
        finally:
            watchers = self._watchers.get(booking_id)
            if watchers is not None:
                watchers.discard(queue)
                if not watchers:
                    del self._watchers[booking_id]

    @contextlib.contextmanager
    def expect(self, command_ids: list[str]) -> Iterator[dict[str, asyncio.Future[Event]]]:
        """Futures resolved by the answers to these commands (register before producing)."""
        loop = asyncio.get_running_loop()
        futures = {cid: loop.create_future() for cid in command_ids}
        self._answers.update(futures)
        try:
            yield futures
        finally:
            for cid in command_ids:
                self._answers.pop(cid, None)

    @property
    def streams(self) -> int:
        return sum(len(w) for w in self._watchers.values())


async def consume_events(
    kafka: Kafka, topic: str, views: BookingViews, caught_up: asyncio.Event, stop: asyncio.Event
) -> None:
    """Read the whole events topic into ``views`` until ``stop`` is set.

    ``caught_up`` is set once the reader has reached the end the topic had at start.
    """
    consumer = kafkaclient.consumer(kafka, fetch_max_wait_ms=FETCH_MAX_WAIT_MS)
    await consumer.start()
    try:
        partitions = await _wait_for_partitions(consumer, topic)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        targets = await consumer.end_offsets(tps)
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=POLL_MS, max_records=5000)
            for records in batch.values():
                for record in records:
                    _apply_record(views, record.value, record.offset)
            if not caught_up.is_set() and await _reached(consumer, targets):
                caught_up.set()
                logger.info("booking views caught up: %d bookings", len(views.views))
    finally:
        await consumer.stop()


async def _reached(consumer: AIOKafkaConsumer, targets: dict[TopicPartition, int]) -> bool:
    for tp, end in targets.items():
        if await consumer.position(tp) < end:
            return False
    return True


async def _wait_for_partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    while True:  # the gateway does not serve until this returns (see app._wait_caught_up)
        partitions = await partitions_of(consumer, topic)
        if partitions:
            return partitions
        logger.warning("topic %s has no partitions yet; waiting for it", topic)
        await asyncio.sleep(0.5)


def _apply_record(views: BookingViews, value: bytes | None, offset: int) -> None:
    if value is None:
        return
    try:
        event = decode_event(value)
    except SchemaError as e:
        logger.error("skipping undecodable event at offset %d: %s", offset, e)
        return
    views.apply(event)
