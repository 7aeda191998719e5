"""Each gateway's in-memory copy of its rooms' counters, refreshed a few times a second.

A status check or an event stream is answered from here: no Redis round trip per
visitor. The refresh loop reads every room's snapshot (one pipeline per room),
computes the pre-queue order once when a room opens, measures the admission
rate, and wakes the streams of a room when what they show can have changed
(state, sold-out, cursor, opening, configuration, the operator's message), not for
every join.

Each refresh also asks the restorer whether Redis lost its state (one EXISTS) and
restores it from the state log if so, and raises durable rooms' ticket ceilings
ahead of need (``RoomStore.top_up``). A room Redis lost keeps its view meanwhile:
its visitors' status checks go on answering from memory.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import redis.asyncio as aioredis

from fairq.tasks import stopped_within
from waitingroom import keys
from waitingroom.durable import AdmissionFloor
from waitingroom.errors import WaitingRoomError
from waitingroom.lottery import prequeue_order
from waitingroom.rooms import RoomSnapshot, RoomStore
from waitingroom.status import RateMeter, Status, status_of
from waitingroom.tickets import Ticket

if TYPE_CHECKING:
    from gateway.statusstreams import StatusStreams
    from waitingroom.durable import Restorer

logger = logging.getLogger(__name__)

UNKNOWN_ROOM_TTL_S = 1.0
# Said ``turn_passed`` only this long after the admission window, seen from here: the
# admitter's clock may run a little ahead of this gateway's.
TURN_MARGIN_S = 2.0
MAX_UNKNOWN_ROOMS = 10_000  # names remembered as unknown; forgotten all at once beyond
CAMPAIGN_REFRESH_S = 5.0


@dataclass(slots=True)
class RoomView:
    snap: RoomSnapshot
    order: Sequence[int] | None = None
    meter: RateMeter = field(default_factory=RateMeter)
    campaign: dict[str, Any] | None = None
    campaign_loaded_at_s: float = 0.0
    version: int = 0
    streams: StatusStreams | None = None  # its visitors' event streams, once one opened
    # places up to here were admitted longer than the admission window ago (as seen here)
    passed_to: int = 0
    # (when this gateway saw it, cursor) each time the cursor moved, from the oldest not
    # yet known to have passed
    _cursors: collections.deque[tuple[float, int]] = field(default_factory=collections.deque)
    # the same, for as long as a place admitted then may still be active (its window, a
    # hold and a grace), and never set back: what a restore needs of the admission
    # (``admission_floor``) if Redis forgets it
    _admissions: collections.deque[tuple[float, int]] = field(default_factory=collections.deque)
    _admitted_before: int = 0  # places up to here can no longer be active
    _changed: asyncio.Future[None] | None = None

    def status(self, ticket: Ticket, now_s: float) -> Status:
        snap, meter = self.snap, self.meter
        return status_of(
            ticket, snap, self.order, now_s, meter.rate_per_s, self.passed_to, meter.dwell_s
        )

    def saw(self, now_s: float, snap: RoomSnapshot) -> None:
        """Note the cursor of ``snap`` at ``now_s`` and move ``passed_to``.

        A place under a cursor seen at ``t`` was admitted at ``t`` or before, so its
        window has passed once ``t`` is older than the window (and a margin): never too
        early, at most a refresh late (or, for the places admitted before this gateway
        started, one window after its start).
        """
        cursors = self._cursors
        if cursors and snap.cursor < cursors[-1][1]:  # the room was set back: start over
            cursors.clear()
            self.passed_to = 0
        if not cursors or snap.cursor > cursors[-1][1]:
            cursors.append((now_s, snap.cursor))
        limit_s = now_s - snap.config.admit_window_s - TURN_MARGIN_S
        while len(cursors) > 1 and cursors[1][0] <= limit_s:
            cursors.popleft()
        if cursors[0][0] <= limit_s:
            self.passed_to = cursors[0][1]

    def saw_admissions(self, now_s: float, snap: RoomSnapshot, active_for_s: float) -> None:
        """Note the cursor of ``snap`` at ``now_s`` for ``admission_floor``: a place
        admitted by then may be active until ``active_for_s`` after it."""
        admissions = self._admissions
        if not admissions or snap.cursor > admissions[-1][1]:
            admissions.append((now_s, snap.cursor))
        while len(admissions) > 1 and admissions[0][0] + active_for_s <= now_s:
            self._admitted_before = admissions.popleft()[1]

    def admission_floor(self, active_for_s: float) -> AdmissionFloor:
        """The admission this gateway saw: the cursor, and each range of places with the
        latest deadline it can have (``active_for_s`` after the gateway saw it)."""
        recent, before = [], self._admitted_before
        for seen_at_s, cursor in self._admissions:
            if cursor > before:
                recent.append((before + 1, cursor, seen_at_s + active_for_s))
                before = cursor
        return AdmissionFloor(before, tuple(recent))

    async def next_change(self, version: int) -> int:
        """Wait until the view's version passes ``version``; returns the new version."""
        while self.version <= version:
            if self._changed is None or self._changed.done():
                self._changed = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._changed)
        return self.version

    def notify(self) -> None:
        self.version += 1
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)


def _seen_by_streams(snap: RoomSnapshot) -> tuple[object, ...]:
    """What a waiting visitor's state or position depends on.

    Joins change the counts at every refresh; waking every open stream for them
    would cost O(streams) per refresh during a launch. A stream still picks up
    count-driven changes (its chance) at its next wake-up or keep-alive.
    """
    return (snap.config, snap.state, snap.sold_out, snap.cursor, snap.opened_at_s, snap.message)


class RoomCache:
    def __init__(
        self,
        redis: aioredis.Redis,
        store: RoomStore,
        refresh_s: float,
        clock: Callable[[], float] = time.time,
        booking_grace_s: float = 0.0,
    ) -> None:
        self._redis = redis
        self._store = store
        self._booking_grace_s = booking_grace_s
        self._refresh_s = refresh_s
        self._clock = clock
        self._rooms: dict[str, RoomView] = {}
        self._unknown: dict[str, float] = {}
        # one load-and-install of a room at a time: a refresh and an operator's reload
        # running together could otherwise install the older snapshot last (a visitor
        # would see the line move back)
        self._loading: dict[str, asyncio.Lock] = {}

    def known(self) -> dict[str, RoomView]:
        return self._rooms

    async def get(self, name: str) -> RoomView | None:
        """The room's view; an unknown name is looked up at most once a second."""
        view = self._rooms.get(name)
        if view is not None:
            return view
        now = time.monotonic()
        if self._unknown.get(name, 0.0) > now:
            return None
        view = await self.reload(name)
        if view is None:
            self._loading.pop(name, None)
            if len(self._unknown) >= MAX_UNKNOWN_ROOMS:  # made-up names must not pile up
                self._unknown.clear()
            self._unknown[name] = now + UNKNOWN_ROOM_TTL_S
        return view

    async def reload(self, name: str) -> RoomView | None:
        """Re-read one room now (after an operator changed it through this gateway)."""
        lock = self._loading.get(name)
        if lock is None:
            lock = self._loading[name] = asyncio.Lock()
        async with lock:
            snap = await self._store.load(name)
            if snap is None:
                return None
            return await self._install(name, snap)

    def _active_for_s(self, snap: RoomSnapshot) -> float:
        """How long after its admission a place may be active: its window, then a
        booking's hold and grace (``gateway.bookings``)."""
        config = snap.config
        return config.admit_window_s + config.hold_s + self._booking_grace_s

    def admission_floors(self) -> dict[str, AdmissionFloor]:
        """The admission of every room this gateway knows (``durable.Floors``)."""
        return {
            name: view.admission_floor(self._active_for_s(view.snap))
            for name, view in self._rooms.items()
        }

    async def run(self, stop: asyncio.Event, restorer: Restorer | None = None) -> None:
        """Refresh every known room until ``stop`` is set; first, each time, ``restorer``
        restores Redis if it lost its state."""
        while not stop.is_set():
            try:
                if restorer is not None:
                    await restorer.ensure()
            except (aioredis.RedisError, WaitingRoomError) as e:
                logger.warning("restoring Redis from the state log failed: %s", e)
            for name in list(self._rooms):
                try:
                    view = await self.reload(name)
                    if view is not None:
                        await self._store.top_up(view.snap)
                    elif restorer is not None:
                        await self._lost(name, restorer)
                except (aioredis.RedisError, WaitingRoomError) as e:
                    logger.warning("refreshing room %s failed: %s", name, e)
            await stopped_within(stop, self._refresh_s)

    async def _lost(self, name: str, restorer: Restorer) -> None:
        """A room this gateway knew is gone from Redis although the state marker is
        there (a loss the marker did not show): restore now. A room the restore does not
        bring back (not in the state log: created before it, or without one) is dropped
        from this cache, so that it is not restored again at every refresh."""
        durable = self._rooms[name].snap.durable
        logger.warning("room %s is gone from Redis (durable: %s)", name, durable)
        if durable:
            await restorer.restore_now()
            if await self.reload(name) is not None:
                return
        logger.error("room %s is gone from Redis and not in the state log", name)
        self._rooms.pop(name, None)

    async def _install(self, name: str, snap: RoomSnapshot) -> RoomView:
        view = self._rooms.get(name)
        new = view is None
        if view is None:  # published once whole: a request never sees it without its campaign
            view = RoomView(snap)
        now = self._clock()
        view.meter.observe(now, snap)
        view.saw(now, snap)
        view.saw_admissions(now, snap, self._active_for_s(snap))
        if snap.opened and view.order is None and snap.seed is not None:
            view.order = await asyncio.to_thread(prequeue_order, snap.seed, snap.prequeue_size)
            logger.info("room %s opened: pre-queue of %d ordered", name, snap.prequeue_size)
        await self._load_campaign(view, snap.config.campaign)
        wake = view.version == 0 or _seen_by_streams(view.snap) != _seen_by_streams(snap)
        view.snap = snap
        if new:
            self._rooms[name] = view
            self._unknown.pop(name, None)
        if wake:
            view.notify()
        return view

    async def _load_campaign(self, view: RoomView, campaign: str) -> None:
        now = time.monotonic()
        if view.campaign is not None and now - view.campaign_loaded_at_s < CAMPAIGN_REFRESH_S:
            return
        raw = await self._redis.get(keys.campaign(campaign))
        view.campaign = orjson.loads(raw) if raw else None
        view.campaign_loaded_at_s = now
