"""Admitter failover between processes: the leader is SIGKILLed, another takes over
within a few seconds, and the cap on active bookers holds throughout.

Two real admitter processes (``fairq admitter``) on the test's Redis and broker; the
test plays the bookers (finishing bookings frees their places) and watches the room.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from fairq.config import Connections
from fairq.processes import Component, spawn, stop
from fairq.tasks import cancel_and_wait
from tests.conftest import TEST_SESSION_TIMEOUT_MS
from waitingroom import keys
from waitingroom.rooms import RoomConfig, RoomStore

pytestmark = [pytest.mark.e2e, pytest.mark.both_brokers, pytest.mark.timeout(120)]

MAX_ACTIVE = 5
LEADER_TTL_S = 1.0
TAKEOVER_BOUND_S = 5.0  # "another takes over within a few seconds"
START_TIMEOUT_S = 30.0


async def until(check: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> float:
    """Poll what other processes bring about; returns the seconds it took."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < timeout_s, f"{what}: not within {timeout_s}s"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


class Watch:
    """Samples the room's active bookers while the test runs; keeps the most seen."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.most = 0
        self.samples = 0
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.most = max(self.most, await self.redis.zcard(keys.room_active("demo")))
            self.samples += 1
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        await cancel_and_wait([self._task])


def admitter_env(connections: Connections, instance: str) -> dict[str, str]:
    return dict(os.environ) | {
        "REDIS_URL": connections.redis_url,
        **connections.kafka_env(),
        "FAIRQ_TOPIC_PREFIX": connections.topics.commands.removesuffix("booking-commands"),
        "FAIRQ_ADMITTER_GROUP": f"failover-{uuid.uuid4().hex[:8]}",
        "FAIRQ_ADMIT_TICK_S": "0.05",
        "FAIRQ_ADMITTER_SESSION_TIMEOUT_MS": str(TEST_SESSION_TIMEOUT_MS),
        "FAIRQ_LEADER_TTL_S": str(LEADER_TTL_S),
        "FAIRQ_INSTANCE_ID": instance,
    }


async def leader(redis: aioredis.Redis) -> str | None:
    value = await redis.get(keys.room_leader("demo"))
    return value.decode() if isinstance(value, bytes) else value


async def cursor(store: RoomStore) -> int:
    snap = await store.load("demo")
    assert snap is not None
    return snap.cursor


async def test_a_killed_leader_is_replaced_and_the_cap_holds(
    connections: Connections, redis: aioredis.Redis, tmp_path: Path
) -> None:
    store = RoomStore(redis)
    now = time.time()
    config = RoomConfig(
        name="demo", campaign="flu", opens_at_s=now, rate_per_s=1000.0, max_active=MAX_ACTIVE
    )
    await store.put_room(config)
    for _ in range(4 * MAX_ACTIVE):
        await store.join("demo", now)
    watch = Watch(redis)
    admitters: dict[str, Component] = {}
    try:
        for name in ("admitter-a", "admitter-b"):
            admitters[name] = spawn("admitter", name, admitter_env(connections, name), tmp_path)
        await until(lambda: _is(cursor(store), MAX_ACTIVE), START_TIMEOUT_S, "first admissions")
        first = await leader(redis)
        assert first in admitters
        survivor = next(name for name in admitters if name != first)

        admitters[first].process.send_signal(signal.SIGKILL)
        admitters[first].process.wait()
        # The first bookers finish: their places are free for the next in line.
        for position in range(1, MAX_ACTIVE + 1):
            await store.booking_finished("demo", position)
        took_s = await until(
            lambda: _is(cursor(store), 2 * MAX_ACTIVE), TAKEOVER_BOUND_S, "the takeover"
        )
        assert await leader(redis) == survivor
        # Nobody finishes now: the new leader admits nobody beyond the cap.
        seen = watch.samples
        await until(lambda: _true(watch.samples >= seen + 200), 10.0, "watching the room")
        assert await cursor(store) == 2 * MAX_ACTIVE
    finally:
        stop(list(admitters.values()))
        await watch.stop()
    assert watch.most == MAX_ACTIVE and watch.samples > 200
    assert took_s < TAKEOVER_BOUND_S


async def _is(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def _true(value: bool) -> bool:
    return value
