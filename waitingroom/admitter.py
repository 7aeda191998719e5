"""The admitter process: moves each room's admission cursor, and listens to booking events.

Every tick, for each room, an instance holds or takes the room's lead (a Redis
lease plus a fencing token) and, as leader, runs one atomic admission step (see
``scripts.ADMIT``). Any number of instances may run; a room is admitted by one
at a time, and a stale leader's step is refused by the fence.

The step's rate ramps up after the opening when the room has ``ramp_s``. A room in
``auto`` admission mode also never has more active bookers (admitted, not yet
finished) than the pairs its campaign has left, less the active bookers of the
campaign's other rooms: the leader reads the stored summaries before each step.

Independently, the instances share the ``booking-events`` topic as one consumer
group: a booking's final event frees its room position, and inventory summaries
set or clear the rooms' ``sold_out`` flag. Summaries are kept in Redis
(``keys.campaign_inventory``) because each instance sees only some partitions.

Redis may forget (``waitingroom.durable``): an instance restores it from the state
log when a tick finds the state marker gone and no gateway restored it within
``RESTORE_DEFER_S``; a durable room admits nobody until its opening (seed and
pre-queue size) is in the state log, which the leader writes right after the step
that opened it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError

from fairq import kafkaclient
from fairq.groups import group_member
from fairq.health import serving
from fairq.tasks import cancel_and_wait, stopped_within
from schemas.errors import SchemaError
from schemas.events import Cancelled, Confirmed, Event, Expired, Rejected, Summary, decode_event
from waitingroom import keys
from waitingroom.bookingrecord import from_hash
from waitingroom.durable import Restorer, check_on_connect
from waitingroom.errors import LeadershipLost, RoomNotFound, StateRestoring, WaitingRoomError
from waitingroom.lottery import draw_seed
from waitingroom.metrics import AdmitterMetrics
from waitingroom.rooms import (
    RAMP_START_FRACTION,
    RoomSnapshot,
    RoomStore,
    parse_flat_snapshot,
    text,
)
from waitingroom.settings import AdmitterSettings
from waitingroom.statelog import StateLog

logger = logging.getLogger(__name__)

FINAL_EVENTS = (Rejected, Confirmed, Expired, Cancelled)
POLL_MS = 200
REDIS_RETRY_S = 0.5
# How long a loss of Redis's state is left to the gateways: their restores bring the
# admission back as they saw it (``durable.Restorer``); the admitter has not seen it.
RESTORE_DEFER_S = 5.0


@dataclass(frozen=True, slots=True)
class Admission:
    """One room's admission step."""

    snapshot: RoomSnapshot  # after the step
    admitted: int  # positions admitted by this step
    opened: bool  # this step opened the room


class Admitter:
    """Leadership and admission steps; time is always passed in, so tests can drive it."""

    def __init__(
        self,
        redis: aioredis.Redis,
        instance_id: str,
        leader_ttl_s: float,
        store: RoomStore | None = None,
    ) -> None:
        self._redis = redis
        self._store = store or RoomStore(redis)
        self._scripts = self._store.scripts
        self._id = instance_id
        self._ttl_ms = max(1, round(leader_ttl_s * 1000))
        self._fences: dict[str, int] = {}

    def leading(self) -> int:
        """How many rooms this instance believes it leads."""
        return len(self._fences)

    def fence(self, name: str) -> int | None:
        """The fencing token this instance holds for the room, if it believes it leads."""
        return self._fences.get(name)

    async def step(self, now_s: float) -> dict[str, Admission]:
        """One tick: every room this instance leads (or now takes) gets one admission step."""
        done: dict[str, Admission] = {}
        for name in await self._store.room_names():
            fence = await self.lead(name)
            if fence is None:
                continue
            try:
                done[name] = await self.admit(name, now_s, fence)
            except WaitingRoomError as e:  # lost the lead, or a missing or malformed room
                logger.warning("admission step for room %s skipped: %s", name, e)
        return done

    async def lead(self, name: str) -> int | None:
        """Renew the room's lease if held, else try to take it; the fence, or None."""
        fence = self._fences.get(name)
        leader = keys.room_leader(name)
        if fence is not None:
            if await self._scripts.renew(keys=[leader], args=[self._id, self._ttl_ms]) == 1:
                return fence
            del self._fences[name]
            logger.warning("lost the lead of room %s (fence %d)", name, fence)
        taken = await self._scripts.acquire(
            keys=[leader, keys.room_fence(name)], args=[self._id, self._ttl_ms]
        )
        if taken is None:
            return None
        self._fences[name] = int(taken)
        logger.info("leading room %s with fence %d", name, self._fences[name])
        return self._fences[name]

    async def admit(self, name: str, now_s: float, fence: int) -> Admission:
        """The atomic admission step; raises LeadershipLost if ``fence`` is stale."""
        limit = await self.auto_limit(name)
        reply = await self._scripts.admit(
            keys=[
                keys.room(name),
                keys.room_active(name),
                keys.room_fence(name),
                keys.state_marker(),
            ],
            args=[fence, now_s, draw_seed(), RAMP_START_FRACTION, "" if limit is None else limit],
        )
        status = text(reply[0])
        if status == "fenced":
            if self._fences.get(name) == fence:
                del self._fences[name]
            raise LeadershipLost(f"fence {fence} of room {name} is no longer current")
        if status == "not_found":
            raise RoomNotFound(name)
        if status == "restoring":
            raise StateRestoring(name)
        result = Admission(
            snapshot=parse_flat_snapshot(name, reply[3], reply[4]),
            admitted=int(reply[1]),
            opened=int(reply[2]) == 1,
        )
        if result.opened:
            snap = result.snapshot
            logger.info(
                "room %s opened at %s: prequeue_size=%d seed=%s",
                name,
                snap.opened_at_s,
                snap.prequeue_size,
                snap.seed,
            )
        await self._store.log_opening(result.snapshot)  # until it is in the log: no admission
        return result

    async def auto_limit(self, name: str) -> int | None:
        """For a room in auto mode, the most active bookers its inventory can serve; else None.

        That is the pairs left in the room's campaign (summed over the counties the
        allocator has reported; none reported yet counts as 0) less the active
        bookers of the campaign's other rooms. It is read before the step's script,
        not in it (a campaign's rooms live on different shards): when two rooms of
        one campaign are led by different instances, each may admit against the
        other's count from just before the other's concurrent step, so together
        they can overshoot by that step's admissions (the allocator still never
        overbooks; the people admitted in excess are told "no pair").
        """
        mode, campaign = await self._redis.hmget(keys.room(name), ["admission_mode", "campaign"])
        if mode is None or campaign is None or text(mode) != "auto":
            return None
        others = [r for r in await self._store.rooms_of_campaign(text(campaign)) if r != name]
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.campaign_inventory(text(campaign)))
            for other in others:
                pipe.zcard(keys.room_active(other))
            inventory, *active = await pipe.execute()
        pairs_left = sum(unconfirmed_pairs_left(inventory).values())
        return max(0, pairs_left - sum(int(a) for a in active))

    async def release_all(self) -> None:
        """Give up every lead this instance holds (on shutdown)."""
        for name in list(self._fences):
            await self._scripts.release(keys=[keys.room_leader(name)], args=[self._id])
            del self._fences[name]
            logger.info("released the lead of room %s", name)


def sold_out_verdict(county_ids: Sequence[str], pairs_left: Mapping[str, int]) -> bool | None:
    """True when every county has 0 pairs left, False when any has some, else None (unknown)."""
    if not county_ids:
        return None
    known = [pairs_left.get(c) for c in county_ids]
    if any(p is not None and p > 0 for p in known):
        return False
    if all(p == 0 for p in known):
        return True
    return None


# what freeing a finished booking's place reads of its record (not the packed Book)
DONE_FIELDS = ("room", "position", "county")


class EventHandler:
    """Applies booking events to the rooms: frees positions, sets ``sold_out``."""

    def __init__(self, redis: aioredis.Redis, store: RoomStore) -> None:
        self._redis = redis
        self._store = store

    async def handle(self, event: Event) -> None:
        if isinstance(event, FINAL_EVENTS):
            await self.booking_done(event)
        elif isinstance(event, Summary):
            await self.summary(event)

    async def booking_done(self, event: Rejected | Confirmed | Expired | Cancelled) -> None:
        """Free the booking's place; a confirmation is also counted against its county's
        pairs left until the county's next summary (see ``auto_limit``)."""
        booking_id = event.booking_id
        values = await self._redis.hmget(keys.booking(booking_id), DONE_FIELDS)
        try:  # only what this needs: a field it does not use cannot hold the place up
            record = from_hash({k: v for k, v in zip(DONE_FIELDS, values, strict=True) if v})
        except SchemaError as e:
            logger.error("booking %s has a malformed record: %s", booking_id, e)
            return
        if isinstance(event, Confirmed) and record.county is not None:
            await self._redis.hincrby(
                keys.campaign_inventory(event.campaign), f"confirmed:{record.county}", 1
            )
        if record.room is None or record.position is None:  # not from a room (or gone)
            return
        await self._store.booking_finished(record.room, record.position)

    async def summary(self, event: Summary) -> None:
        args: list[str | int] = [event.at_ms]
        for county, s in event.counties.items():
            args += [county, s.pairs_left]
        seq, flat = await self._store.scripts.update_inventory(
            keys=[keys.campaign_inventory(event.campaign)], args=args
        )
        counties = await self.campaign_counties(event.campaign)
        if counties is None:
            return
        verdict = sold_out_verdict(
            counties, pairs_left_of(dict(zip(flat[::2], flat[1::2], strict=True)))
        )
        if verdict is None:
            return
        for room in await self._store.rooms_of_campaign(event.campaign):
            if await self._store.set_sold_out(room, verdict, seq=int(seq)):
                logger.info("room %s is %s", room, "sold out" if verdict else "no longer sold out")

    async def campaign_counties(self, campaign: str) -> list[str] | None:
        """The counties of the campaign that can have inventory; None if it is not known.

        A county without a center never gets inventory, so the allocator never
        reports on it: it has no pairs, and is left out rather than waited for
        (``parse_campaign`` refuses such a county; a description stored before may
        still have one). A county with a center stays unknown until reported.
        """
        raw = await self._redis.get(keys.campaign(campaign))
        if raw is None:
            return None
        try:
            doc = orjson.loads(raw)
            served = {str(c["county"]) for c in doc["centers"]}
            return [str(c["id"]) for c in doc["counties"] if str(c["id"]) in served]
        except (orjson.JSONDecodeError, KeyError, TypeError) as e:
            logger.error("campaign %s has a malformed description: %r", campaign, e)
            return None


def unconfirmed_pairs_left(inventory: Mapping[Any, Any]) -> dict[str, int]:
    """Pairs left per county less the confirmations counted since its last summary.

    A confirmation frees its booker's place at once, while the summary that no longer
    counts its pair comes at the allocator's next tick: without this, auto mode would
    admit against that pair in between. A confirmation whose hold came before the
    summary is subtracted twice, until the next one: auto mode errs on the side of
    fewer admissions. Not for the sold-out verdict, which must not err so.
    """
    fields = {text(k): text(v) for k, v in inventory.items()}
    return {
        county: max(0, left - int(fields.get(f"confirmed:{county}", "0")))
        for county, left in pairs_left_of(fields).items()  # decoded already: text() is str's
    }


def pairs_left_of(inventory: Mapping[Any, Any]) -> dict[str, int]:
    """Pairs left per county from a campaign inventory hash (as HGETALL returns it)."""
    fields = {text(k): text(v) for k, v in inventory.items()}
    return {k.removeprefix("pairs:"): int(v) for k, v in fields.items() if k.startswith("pairs:")}


async def admit_loop(
    admitter: Admitter,
    restorer: Restorer,
    tick_s: float,
    stop: asyncio.Event,
    metrics: AdmitterMetrics,
) -> None:
    while not stop.is_set():
        try:
            await restorer.ensure()
            for name, admission in (await admitter.step(time.time())).items():
                if admission.admitted:
                    metrics.admitted_total.labels(name).inc(admission.admitted)
            metrics.ticks_total.inc()
        except (aioredis.RedisError, WaitingRoomError) as e:
            metrics.tick_failures_total.inc()
            logger.warning("admission tick failed, retrying next tick: %s", e)
        metrics.rooms_led.set(admitter.leading())
        await stopped_within(stop, tick_s)


async def _handle_record(
    handler: EventHandler,
    record: ConsumerRecord[Any, Any],
    stop: asyncio.Event,
    metrics: AdmitterMetrics,
) -> bool:
    """Apply one record, retrying while Redis fails; False if stopped before it was applied."""
    try:
        event = decode_event(record.value)
    except SchemaError as e:
        logger.warning("skipping malformed event at offset %d: %s", record.offset, e)
        return True
    while True:
        try:
            await handler.handle(event)
            metrics.events_total.labels(event.TYPE).inc()
            return True
        except aioredis.RedisError as e:
            metrics.event_retries_total.inc()
            logger.warning("applying event at offset %d failed, retrying: %s", record.offset, e)
            if await stopped_within(stop, REDIS_RETRY_S):
                return False


async def _consume_batch(
    handler: EventHandler,
    batch: Mapping[TopicPartition, Sequence[ConsumerRecord[Any, Any]]],
    stop: asyncio.Event,
    metrics: AdmitterMetrics,
) -> dict[TopicPartition, int]:
    """Apply records in order; the offsets to commit (next to read) per partition."""
    done: dict[TopicPartition, int] = {}
    for tp, records in batch.items():
        for record in records:
            if record.value is not None and not await _handle_record(
                handler, record, stop, metrics
            ):
                return done
            done[tp] = record.offset + 1
    return done


async def event_loop(
    consumer: AIOKafkaConsumer,
    handler: EventHandler,
    stop: asyncio.Event,
    metrics: AdmitterMetrics,
) -> None:
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=POLL_MS)
            offsets = await _consume_batch(handler, batch, stop, metrics)
            if offsets:
                try:
                    await consumer.commit(offsets)
                except CommitFailedError as e:  # rebalanced: the new owner re-applies them
                    logger.warning("event offsets not committed: %s", e)
    finally:
        await kafkaclient.stop(consumer)


async def _first_failure(*coros: Coroutine[Any, Any, None]) -> None:
    """Run until all finish; if one fails, cancel the others and raise its error."""
    tasks = [asyncio.create_task(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        await cancel_and_wait(tasks)
    for t in done:
        error = t.exception()
        if error is not None:
            raise error


async def run(settings: AdmitterSettings, stop: asyncio.Event) -> None:
    """The admitter process's main loop, until ``stop`` is set.

    Its health port answers ``/readyz`` 200 while Redis and the broker answer.
    """
    conn = settings.connections
    redis = aioredis.Redis.from_url(conn.redis_url, redis_connect_func=check_on_connect)
    producer = kafkaclient.producer(conn.kafka)  # state records only, each awaited alone
    await producer.start()
    ledger = StateLog(producer, conn.kafka, conn.topics.state)
    store = RoomStore(redis, ledger)
    admitter = Admitter(redis, settings.instance_id, settings.leader_ttl_s, store)
    restorer = Restorer(redis, store, ledger, defer_s=RESTORE_DEFER_S)
    metrics = AdmitterMetrics()
    consumer = group_member(
        conn.kafka, settings.group_id, settings.session_timeout_ms, conn.topics.events
    )
    checks = {"redis": redis.ping, "broker": consumer.topics}
    logger.info("admitter %s starting", settings.instance_id)
    try:
        async with serving(settings.health, "admitter", checks, metrics.registry):
            await restorer.ensure_at_start()
            await _first_failure(
                admit_loop(admitter, restorer, settings.tick_s, stop, metrics),
                event_loop(consumer, EventHandler(redis, store), stop, metrics),
            )
    finally:
        try:
            await admitter.release_all()
        except aioredis.RedisError as e:
            logger.warning("could not release leads (they lapse by themselves): %s", e)
        await producer.stop()
        await redis.aclose()
        logger.info("admitter %s stopped", settings.instance_id)
