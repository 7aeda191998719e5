"""Surviving a Redis that forgot: detecting the loss and restoring from the state log.

What is durable where:

- in the state log (``schemas.state``, written by ``statelog.StateLog`` before the
  operation is acknowledged): campaigns' public descriptions, rooms and every change of
  their settings and state, openings (lottery seed, pre-queue size, time), issued
  access-code hashes, identity claims, and the ticket counters' ceilings;
- in gateways' memories (``AdmissionFloor``): the admission cursor and the places
  admitted recently, which a gateway's restore puts back (the cursor never goes back;
  recent places count as active until the latest deadline they can have);
- in Redis only, rebuilt or left to lapse: booking records and the booking read model
  (read again from ``booking-events`` by the gateways: ``gateway.readmodel``), admission leases and
  fences, rate limits, the inventory summaries (the allocator sends them again) and the
  ``sold_out`` flag (set again by the next summary).

Why ceilings and not an epoch in tickets: a ticket's number is its place on the room's
one timeline (the lottery and the admission cursor count in it); an epoch would need
the length of every earlier epoch, which is exactly what a loss forgets. A counter
that hands out numbers only below a ceiling the log had first (hi/lo) restarts at the
last ceiling: every number it handed out is below it, so none is handed out twice;
the numbers it skips that nobody held are gaps the admitter admits to nobody (at most
one ``RoomStore.ceiling_block`` per counter and restore).

Detecting the loss: the state marker (``keys.state_marker``) holds the run id of the
Redis server the state was last restored into. A flush or an empty restart loses it;
a restart from an older copy or a promoted replica has another run id, which every
new connection compares (``check_on_connect``: a restart or failover breaks every
connection) and then deletes the marker. While it is missing, durable rooms hand out
no number, admit nobody and take no claim (the scripts answer 'restoring', the
gateway 503), and the first process that notices restores (``Restorer.ensure``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection

from schemas.state import (
    AdmissionSet,
    CampaignStored,
    CeilingRaised,
    ClaimTaken,
    CodesIssued,
    MessageSet,
    RestoreStarted,
    RoomOpened,
    RoomStateSet,
    RoomStored,
    StateRecord,
)
from waitingroom import keys
from waitingroom.bookingrecord import BookingRecord
from waitingroom.errors import StateUnavailable
from waitingroom.rooms import RoomStore, text
from waitingroom.scripts import CHECK_MARKER
from waitingroom.statelog import StateLog

logger = logging.getLogger(__name__)

LOCK_MS = 120_000  # one restorer at a time; a crashed one's lock lapses after this
WAIT_POLL_S = 0.2  # how often a process that does not restore looks for the marker
CODES_PER_PIPELINE = 5_000
# How long a restored claim's booking counts as alive without an answer in the views
# (``gateway.identities.has_ended``: a booking record without a view is alive): its
# Book may be in the log, unanswered yet, when Redis forgot; or it never went there
# (its send was refused after the claim was logged), and then the person may book
# again once this has passed, rather than when the claim itself would lapse.
RESTORED_RECORD_TTL_S = 15 * 60


async def state_lost(redis: aioredis.Redis) -> bool:
    """Whether Redis lost its durable state and it is not restored yet (no marker): a
    name Redis does not know may then be one the state log has."""
    return not await redis.exists(keys.state_marker())


async def server_run_id(redis: aioredis.Redis) -> str:
    info = await redis.info("server")
    return str(info["run_id"])


async def check_on_connect(conn: AbstractConnection) -> None:
    """A connection's setup (``redis_connect_func``): the usual handshake, then the
    marker is compared with this server's run id and deleted if it is another's."""
    await conn.on_connect()
    await conn.send_command("INFO", "server")
    info = text(await conn.read_response())
    run_id = next(
        (line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("run_id:")),
        "",
    )
    await conn.send_command("EVAL", CHECK_MARKER, 1, keys.state_marker(), run_id)
    if int(await conn.read_response()) == 0:
        logger.warning("Redis server %s does not have the restored state marker", run_id)


@dataclass(frozen=True, slots=True)
class AdmissionFloor:
    """What a gateway saw of a room's admission, which the state log does not keep.

    Every place up to ``cursor`` was admitted; each of ``recent`` (first place, last
    place, deadline) was admitted recently enough that it may still be active until
    ``deadline``: its admission window, a booking's hold and grace after the gateway saw
    it admitted (an upper bound: a restored place counts against the cap for as long as
    it could, never shorter).
    """

    cursor: int
    recent: tuple[tuple[int, int, float], ...] = ()


# The admission floors of the rooms a process has seen (a gateway's room cache), by room.
Floors = Callable[[], Mapping[str, AdmissionFloor]]


@dataclass(slots=True)
class RoomRecord:
    """A room as the state log has it."""

    config: dict[str, Any] = field(default_factory=dict)
    state: str = ""  # the operator's last state, '' for none
    message: MessageSet | None = None  # the operator's last message (or its removal)
    opened: RoomOpened | None = None
    ceilings: dict[str, int] = field(default_factory=lambda: {"pre": 0, "post": 0})


@dataclass(slots=True)
class Fold:
    """The state log read so far (codes go to Redis as they are read, not kept here)."""

    campaigns: dict[str, str] = field(default_factory=dict)
    rooms: dict[str, RoomRecord] = field(default_factory=dict)
    claims: dict[tuple[str, str], ClaimTaken] = field(default_factory=dict)
    codes: int = 0

    @property
    def empty(self) -> bool:
        return not (self.campaigns or self.rooms or self.claims or self.codes)

    def add(self, record: StateRecord) -> None:
        if isinstance(record, CampaignStored):
            self.campaigns.setdefault(record.campaign, record.public)  # the first one stands
        elif isinstance(record, ClaimTaken):
            self.claims[record.campaign, record.identity] = record  # the last holder
        elif isinstance(record, CodesIssued):
            self.codes += len(record.hashes)
        elif not isinstance(record, RestoreStarted):
            self._add_room(record)

    def _add_room(self, record: StateRecord) -> None:
        room = self.rooms.setdefault(record.room, RoomRecord())  # type: ignore[union-attr]
        if isinstance(record, RoomStored):
            skip = ("v", "type", "room")
            room.config = {
                k: v for k, v in record.to_map().items() if k not in skip and v is not None
            }
        elif isinstance(record, AdmissionSet):
            changed = {k: v for k, v in record.to_map().items() if v is not None}
            room.config.update({k: changed[k] for k in changed if k not in ("v", "type", "room")})
        elif isinstance(record, RoomStateSet):
            room.state = record.state
        elif isinstance(record, MessageSet):
            room.message = record
        elif isinstance(record, RoomOpened):
            room.opened = room.opened or record  # opening happens once
        elif isinstance(record, CeilingRaised):
            room.ceilings[record.kind] = max(room.ceilings[record.kind], record.ceiling)


class Restorer:
    """Restores Redis from the state log when the marker is missing; one at a time.

    A gateway's restorer has its room cache's ``floors``: the admission cursor and the
    recently admitted places, which only gateways' memories keep. A restorer without
    them (the admitter's) leaves a loss to the gateways for ``defer_s`` first.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        store: RoomStore,
        ledger: StateLog,
        clock: Callable[[], float] = time.time,
        on_restore: Callable[[], None] | None = None,
        floors: Floors | None = None,
        defer_s: float = 0.0,
    ) -> None:
        self._redis = redis
        self._store = store
        self._ledger = ledger
        self._clock = clock
        self._on_restore = on_restore
        self._floors = floors
        self._defer_s = defer_s
        self._noticed_at_s: float | None = None  # when this restorer first saw no marker
        self._id = uuid.uuid4().hex
        self._running: asyncio.Lock = asyncio.Lock()

    async def ensure(self) -> bool:
        """Restore if Redis lost the state (no marker); whether this call restored.

        Returns once the marker is back (restored here or by another process), or at
        once while a loss is deferred to others (``defer_s``).
        """
        if await self._redis.exists(keys.state_marker()):
            self._noticed_at_s = None
            return False
        now = self._clock()
        if self._noticed_at_s is None:
            self._noticed_at_s = now
        if now - self._noticed_at_s < self._defer_s:
            return False
        async with self._running:  # one restore per process at a time
            restored = False
            while not await self._redis.exists(keys.state_marker()):
                lock = keys.state_restore_lock()
                if await self._redis.set(lock, self._id, nx=True, px=LOCK_MS):
                    try:
                        await self.restore()
                        restored = True
                    finally:
                        await self._store.scripts.release(keys=[lock], args=[self._id])
                else:  # another process restores: wait for its marker
                    await asyncio.sleep(WAIT_POLL_S)
            return restored

    async def ensure_at_start(self) -> None:
        """``ensure`` for a process that starts: Redis or the broker may be away, and then
        its refresh or tick tries again (meanwhile durable rooms hand out nothing)."""
        try:
            await self.ensure()
        except (aioredis.RedisError, StateUnavailable) as e:
            logger.warning("restoring Redis from the state log at start failed: %s", e)

    async def restore_now(self) -> bool:
        """Restore whatever the marker says (a loss found some other way): the marker goes,
        so durable rooms hand out nothing meanwhile, then as ``ensure`` (not deferred)."""
        await self._redis.delete(keys.state_marker())
        self._noticed_at_s = self._clock() - self._defer_s
        return await self.ensure()

    async def restore(self) -> Fold:
        """Read the whole state log into Redis, then set the marker (hold the lock)."""
        started = self._clock()
        run_id = await server_run_id(self._redis)
        fold = Fold()
        codes: list[CodesIssued] = []
        own = RestoreStarted(uuid.uuid4().hex, started)
        async for record in self._ledger.read_through(own):
            fold.add(record)
            if isinstance(record, CodesIssued):
                codes.append(record)
                if sum(len(c.hashes) for c in codes) >= CODES_PER_PIPELINE:
                    await self._put_codes(codes)
                    codes.clear()
        await self._put_codes(codes)
        await self._put_campaigns(fold)
        await self._put_rooms(fold, started)
        await self._put_claims(fold, started)
        await self._redis.set(keys.state_marker(), run_id)
        if fold.empty:  # a new deployment: nothing was lost
            logger.info("the state log is empty: Redis %s starts without durable state", run_id)
            return fold
        logger.warning(
            "Redis had lost its state: restored from the state log %d rooms, %d campaigns,"
            " %d access codes and %d identity claims",
            len(fold.rooms),
            len(fold.campaigns),
            fold.codes,
            len(fold.claims),
        )
        if self._on_restore is not None:
            self._on_restore()
        return fold

    async def _put_codes(self, records: list[CodesIssued]) -> None:
        if not records:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for r in records:
                for code_hash in r.hashes:
                    pipe.hsetnx(keys.campaign_codes(r.campaign), code_hash, r.group)
            await pipe.execute()

    async def _put_campaigns(self, fold: Fold) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for name, public in fold.campaigns.items():
                pipe.set(keys.campaign(name), public, nx=True)
            await pipe.execute()

    async def _put_rooms(self, fold: Fold, now_s: float) -> None:
        floors = {} if self._floors is None else self._floors()
        for name, room in fold.rooms.items():
            if not room.config:  # records of a room whose creation is not in the log
                logger.error("state log has changes of room %s but not its creation", name)
                continue
            opened = room.opened
            floor = floors.get(name, AdmissionFloor(0))
            recent = [r for r in floor.recent if r[2] > now_s]
            pairs: list[Any] = [floor.cursor, len(recent)]
            for first, last, deadline in recent:
                pairs += [first, last, deadline]
            config = dict(room.config)
            if room.message is not None and room.message.message is not None:
                config["message"] = room.message.message
            for k, v in config.items():
                pairs += [k, v]
            await self._store.scripts.restore_room(
                keys=[keys.room(name), keys.rooms(), keys.room_active(name)],
                args=[
                    name,
                    now_s,
                    room.state,
                    "" if opened is None else opened.seed,
                    0 if opened is None else opened.prequeue_size,
                    0 if opened is None else opened.opened_at_s,
                    room.ceilings["pre"],
                    room.ceilings["post"],
                    *pairs,
                ],
            )
            if room.message is not None and room.message.message is None:  # cleared since
                await self._redis.hdel(keys.room(name), "message")

    async def _put_claims(self, fold: Fold, now_s: float) -> None:
        """Each identity's last claim, unless Redis has one; with a booking record when
        Redis lost it, so that a booking whose answer is not in the views yet counts as
        alive for ``RESTORED_RECORD_TTL_S`` (its views decide once it is answered)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for claim in fold.claims.values():
                if claim.expires_at_s <= now_s:
                    continue
                expires = int(claim.expires_at_s)
                pipe.set(
                    keys.identity_claim(claim.campaign, claim.identity),
                    claim.booking_id,
                    nx=True,
                    exat=expires,
                )
                record = keys.booking(claim.booking_id)
                restored = BookingRecord(
                    campaign=claim.campaign, identity=claim.identity, at_s=int(claim.at_s)
                )
                for name, value in restored.to_hash().items():
                    pipe.hsetnx(record, name, value)
                pipe.expireat(record, min(expires, int(now_s) + RESTORED_RECORD_TTL_S), nx=True)
            await pipe.execute()
