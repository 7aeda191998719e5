"""Restoring Redis from the state log: real Redis, real broker.

The storm tests (Redis killed and started again, empty or from an older copy, with a
gateway and an admitter running) are in ``tests/gateway/test_redis_loss.py``; these
check the restorer's own promises: what comes back, idempotence, one restorer at a
time, the fence on ticket counters, and a marker of another server found on connect.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from fairq.devservices import Server
from waitingroom import keys
from waitingroom.admitter import Admitter
from waitingroom.codes import find_code, issue_codes
from waitingroom.durable import (
    AdmissionFloor,
    Restorer,
    check_on_connect,
    server_run_id,
    state_lost,
)
from waitingroom.errors import RoomNotFound, StateRestoring
from waitingroom.rooms import AdmissionChange, RoomConfig, RoomMessage, RoomStore
from waitingroom.statelog import StateLog

T0 = 1_700_000_000.0
CONFIG = RoomConfig(name="demo", campaign="flu", opens_at_s=T0 + 3600, rate_per_s=3.0)
SECRET = b"codes-secret-for-the-tests"
BLOCK = 10


@pytest.fixture
async def store(redis: aioredis.Redis, ledger: StateLog) -> RoomStore:
    return RoomStore(redis, ledger, ceiling_block=BLOCK)


@pytest.fixture
async def restorer(redis: aioredis.Redis, store: RoomStore, ledger: StateLog) -> Restorer:
    restored = await Restorer(redis, store, ledger).ensure()  # a fresh Redis: nothing yet
    assert restored
    return Restorer(redis, store, ledger)


async def joins(store: RoomStore, count: int, now_s: float) -> list[int]:
    tickets = await asyncio.gather(*(store.join("demo", now_s) for _ in range(count)))
    return [t.ticket.number for t in tickets]


async def test_a_flushed_redis_gets_rooms_codes_and_openings_back(
    redis: aioredis.Redis, store: RoomStore, restorer: Restorer
) -> None:
    await store.put_room(CONFIG)
    await store.set_admission("demo", AdmissionChange(max_active=7, admission_mode="auto"))
    codes = await issue_codes(redis, "flu", "80plus", 3, SECRET, store.ledger)
    pre = await joins(store, 25, T0)
    opened = await store.open_now("demo", T0 + 1)
    await store.set_state("demo", "paused")
    await store.set_message("demo", RoomMessage(en="Doors open at nine"))
    post = await joins(store, 5, T0 + 2)
    before = await store.load("demo")
    assert before is not None and before.opening_logged

    await redis.flushall()
    assert await state_lost(redis)
    with pytest.raises(RoomNotFound):  # the gateway answers 503 for a room it knew
        await store.join("demo", T0 + 3)
    assert await restorer.ensure()

    after = await store.load("demo")
    assert after is not None
    assert after.config == before.config
    assert (after.state, after.seed, after.prequeue_size, after.opened_at_s) == (
        "paused",
        opened.seed,
        25,
        opened.opened_at_s,
    )
    assert after.restored_at_s is not None
    assert after.message == RoomMessage(en="Doors open at nine")
    for code in codes:
        assert await find_code(redis, "flu", code, SECRET) is not None
    # the counters restart at their last ceilings: no number is handed out twice
    again = await joins(store, 5, T0 + 4)
    assert min(again) > max(post)
    assert sorted(pre) == list(range(1, 26))


async def test_the_admission_comes_back_as_a_gateway_saw_it(
    redis: aioredis.Redis, store: RoomStore, ledger: StateLog, restorer: Restorer
) -> None:
    """The cursor does not go back, and places admitted recently count as active (until
    the latest deadline they can have), so the cap holds for people who were booking."""
    await store.put_room(CONFIG)
    now = time.time()
    seen = AdmissionFloor(40, ((1, 20, now - 1), (21, 30, now + 500), (31, 40, now + 600)))
    await redis.flushall()
    assert await Restorer(redis, store, ledger, floors=lambda: {"demo": seen}).ensure()
    snap = await store.load("demo")
    assert snap is not None
    assert (snap.cursor, snap.active) == (40, 20)  # 1-20 could no longer be active
    assert await redis.zscore(keys.room_active("demo"), "21") == pytest.approx(now + 500)
    assert await redis.zscore(keys.room_active("demo"), "40") == pytest.approx(now + 600)


async def test_restoring_again_changes_nothing(
    redis: aioredis.Redis, store: RoomStore, restorer: Restorer
) -> None:
    await store.put_room(CONFIG)
    await joins(store, 3, T0)
    await redis.delete(keys.state_marker())
    await restorer.ensure()
    first = await redis.hgetall(keys.room("demo"))
    await redis.delete(keys.state_marker())
    await restorer.ensure()
    second = await redis.hgetall(keys.room("demo"))
    first.pop(b"restored_at_s")
    second.pop(b"restored_at_s")
    assert first == second


async def test_one_restorer_at_a_time(
    redis: aioredis.Redis, store: RoomStore, ledger: StateLog, restorer: Restorer
) -> None:
    await store.put_room(CONFIG)
    await redis.flushall()
    restorers = [Restorer(redis, store, ledger) for _ in range(4)]
    done = await asyncio.gather(*(r.ensure() for r in restorers))
    assert sorted(done) == [False, False, False, True]
    assert not await state_lost(redis)


async def test_the_counter_never_passes_a_ceiling_the_log_does_not_have(
    redis: aioredis.Redis, store: RoomStore, restorer: Restorer
) -> None:
    await store.put_room(CONFIG)
    numbers = await joins(store, 3 * BLOCK, T0)
    snap = await store.load("demo")
    assert snap is not None
    assert snap.pre_count == 3 * BLOCK <= snap.ceilings[0]
    # what the log says the ceiling is, read back by a restore after a loss
    await redis.hset(keys.room("demo"), "pre_count", 0)  # a rolled-back counter
    await redis.delete(keys.state_marker())  # as check_on_connect does on another server
    with pytest.raises(StateRestoring):  # nothing is handed out until restored
        await store.join("demo", T0)
    await restorer.ensure()
    restored = await store.load("demo")
    assert restored is not None
    assert restored.pre_count == snap.ceilings[0] >= max(numbers)


async def test_a_marker_of_another_server_goes_on_connect(
    redis: aioredis.Redis, redis_srv: Server, restorer: Restorer
) -> None:
    assert not await state_lost(redis)
    await redis.set(keys.state_marker(), "a-server-that-was-replaced")
    fresh = aioredis.Redis.from_url(redis_srv.url, redis_connect_func=check_on_connect)
    try:
        await fresh.ping()
    finally:
        await fresh.aclose()
    assert await state_lost(redis)
    await redis.set(keys.state_marker(), await server_run_id(redis))
    same = aioredis.Redis.from_url(redis_srv.url, redis_connect_func=check_on_connect)
    try:
        await same.ping()
    finally:
        await same.aclose()
    assert not await state_lost(redis)


async def test_a_durable_room_admits_nobody_before_its_opening_is_logged(
    redis: aioredis.Redis, store: RoomStore, restorer: Restorer
) -> None:
    await store.put_room(CONFIG)
    await joins(store, 4, T0)
    admitter = Admitter(redis, "admitter-1", 10.0, RoomStore(redis))  # no state log
    fence = await admitter.lead("demo")
    assert fence is not None
    step = await admitter.admit("demo", CONFIG.opens_at_s, fence)
    assert step.opened and not step.snapshot.opening_logged
    waiting = await admitter.admit("demo", CONFIG.opens_at_s + 1, fence)
    assert waiting.admitted == 0  # a second at 3 per second, but no opening in the log
    assert await store.log_opening(waiting.snapshot)
    later = await admitter.admit("demo", CONFIG.opens_at_s + 2, fence)
    assert later.admitted == 3
