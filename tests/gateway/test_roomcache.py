"""A gateway's copy of its rooms: loads of one room never overlap, unknown names are
remembered briefly and boundedly."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import orjson
import pytest
import redis.asyncio as aioredis

from gateway import roomcache
from gateway.roomcache import TURN_MARGIN_S, RoomCache, RoomView
from waitingroom import keys
from waitingroom.durable import AdmissionFloor
from waitingroom.rooms import RoomConfig, RoomSnapshot, RoomStore

T0 = 1_700_000_000.0


async def test_a_refresh_and_a_reload_of_one_room_do_not_overlap(
    redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Else the older snapshot could be installed last and the line seem to move back."""
    store = RoomStore(redis)
    await store.put_room(RoomConfig(name="demo", campaign="flu", opens_at_s=T0))
    cache = RoomCache(redis, store, refresh_s=0.001)
    load = store.load
    running, most = 0, 0

    async def counted_load(name: str) -> RoomSnapshot | None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            await asyncio.sleep(0)  # let the other loader in, if it may come
            return await load(name)
        finally:
            running -= 1

    monkeypatch.setattr(store, "load", counted_load)
    assert await cache.get("demo") is not None
    stop = asyncio.Event()
    refresher = asyncio.create_task(cache.run(stop))
    for _ in range(50):
        await asyncio.gather(cache.reload("demo"), cache.reload("demo"))
    stop.set()
    await refresher
    assert most == 1


async def test_made_up_room_names_do_not_pile_up(
    redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(roomcache, "MAX_UNKNOWN_ROOMS", 10)
    cache = RoomCache(redis, RoomStore(redis), refresh_s=1.0)
    for i in range(25):
        assert await cache.get(f"nope-{i}") is None
    assert len(cache._unknown) <= 10 and not cache._loading


async def test_turns_pass_one_admission_window_after_this_gateway_saw_them(
    redis: aioredis.Redis,
) -> None:
    store = RoomStore(redis)
    await store.put_room(RoomConfig(name="demo", campaign="flu", opens_at_s=T0, admit_window_s=60))
    snap = await store.load("demo")
    assert snap is not None
    view = RoomView(snap)
    window_s = 60 + TURN_MARGIN_S
    view.saw(T0, replace(snap, cursor=3))  # a gateway starting: 1-3 admitted by now
    view.saw(T0 + 10, replace(snap, cursor=5))
    view.saw(T0 + 20, replace(snap, cursor=5))
    view.saw(T0 + window_s - 1, replace(snap, cursor=8))
    assert view.passed_to == 0
    view.saw(T0 + window_s, replace(snap, cursor=8))
    assert view.passed_to == 3
    view.saw(T0 + window_s + 10, replace(snap, cursor=8))
    assert view.passed_to == 5  # 6-8 were seen admitted only later
    view.saw(T0 + window_s + 100, replace(snap, cursor=2))  # the room was set back
    assert view.passed_to == 0


async def test_the_admission_floor_keeps_what_may_still_be_active(
    redis: aioredis.Redis,
) -> None:
    """What a restore gets back if Redis forgets the admission: the cursor never set
    back, and each range seen admitted with the latest deadline it can have."""
    store = RoomStore(redis)
    await store.put_room(RoomConfig(name="demo", campaign="flu", opens_at_s=T0))
    snap = await store.load("demo")
    assert snap is not None
    view, active_for_s = RoomView(snap), 100.0
    for at_s, cursor in ((T0, 3), (T0 + 10, 5), (T0 + 20, 5), (T0 + 50, 9)):
        view.saw_admissions(at_s, replace(snap, cursor=cursor), active_for_s)
    assert view.admission_floor(active_for_s) == AdmissionFloor(
        9, ((1, 3, T0 + 100), (4, 5, T0 + 110), (6, 9, T0 + 150))
    )
    view.saw_admissions(T0 + 115, replace(snap, cursor=2), active_for_s)  # Redis forgot
    assert view.admission_floor(active_for_s) == AdmissionFloor(9, ((6, 9, T0 + 150),))


async def test_a_quiet_pre_queue_leaves_the_first_in_line_an_estimate(
    redis: aioredis.Redis,
) -> None:
    """Until the room admits, the cursor's standing still measures nothing: at opening
    the wait is estimated from the configured rate, not 'unknown' or far too long."""
    store = RoomStore(redis)
    config = RoomConfig(name="demo", campaign="flu", opens_at_s=T0 + 10, rate_per_s=2.0)
    await store.put_room(config)
    tickets = [(await store.join("demo", T0 + i)).ticket for i in range(3)]
    now_s = T0
    cache = RoomCache(redis, store, refresh_s=1.0, clock=lambda: now_s)
    for i in range(10):  # the pre-queue fills while nobody can be admitted
        now_s = T0 + i
        assert await cache.reload("demo") is not None
    await store.open_now("demo", T0 + 10)
    now_s = T0 + 10.2
    view = await cache.reload("demo")
    assert view is not None and view.meter.rate_per_s is None
    for ticket in tickets:
        status = view.status(ticket, now_s)
        assert status.state == "waiting" and status.position is not None
        assert status.eta_s == pytest.approx((status.position - 1) / 2.0)


async def test_a_room_is_seen_only_with_its_campaign(
    redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gateway that just started loads a room on its first request; a second request
    meanwhile waits for the whole room, never gets one without its campaign (its
    counties: a valid booking would be refused as ``unknown_county``)."""
    store = RoomStore(redis)
    await store.put_room(RoomConfig(name="demo", campaign="flu", opens_at_s=T0))
    await redis.set(keys.campaign("flu"), orjson.dumps({"name": "flu", "counties": []}))
    cache = RoomCache(redis, store, refresh_s=1.0)
    get = redis.get
    campaign_asked, go_on = asyncio.Event(), asyncio.Event()
    campaign_reads = 0

    async def slow_get(key: str) -> bytes | str | None:
        nonlocal campaign_reads
        if key == keys.campaign("flu"):
            campaign_reads += 1
            campaign_asked.set()
            await go_on.wait()
        return await get(key)

    monkeypatch.setattr(redis, "get", slow_get)
    first = asyncio.create_task(cache.get("demo"))
    await campaign_asked.wait()
    second = asyncio.create_task(cache.get("demo"))
    await asyncio.sleep(0)  # the second request runs as far as it can
    assert not second.done() and "demo" not in cache.known()
    go_on.set()
    for view in await asyncio.gather(first, second):
        assert view is not None and view.campaign is not None
    assert campaign_reads == 1  # the second waited for the first's load, made none of its own
