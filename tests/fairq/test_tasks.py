"""Tasks that talk to Redis end when they are cancelled (see ``fairq.tasks``)."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from fairq.tasks import cancel_and_wait

ROUNDS = 300
TURNS = 60  # the task is cancelled after 0, 1, ..., TURNS - 1 turns of the event loop
END_BOUND_S = 5.0


async def test_a_task_calling_redis_ends_whenever_it_is_cancelled(redis: aioredis.Redis) -> None:
    """Cancelled at every point of a call (the end of its send included, where redis-py 8
    on Python 3.11 can drop a single cancellation), the task always ends.

    ``redis`` is made as the services make theirs (``Redis.from_url``, the defaults).
    """
    calls = 0

    async def busy() -> None:
        nonlocal calls
        while True:
            await redis.zcard("k")
            calls += 1

    for turns in range(ROUNDS):
        task = asyncio.create_task(busy())
        for _ in range(turns % TURNS):
            await asyncio.sleep(0)
        await asyncio.wait_for(cancel_and_wait([task], recancel_s=0.001), END_BOUND_S)
        assert task.cancelled()
    assert calls > ROUNDS  # the cancellations came in the middle of the calls


async def test_outcomes_are_left_to_read() -> None:
    async def fails() -> None:
        raise ValueError("boom")

    async def waits() -> None:
        await asyncio.Event().wait()

    failed, waiting = asyncio.create_task(fails()), asyncio.create_task(waits())
    await asyncio.sleep(0)  # ``fails`` has run and ended
    await cancel_and_wait([failed, waiting])
    assert isinstance(failed.exception(), ValueError) and waiting.cancelled()
    await cancel_and_wait([])  # nothing to do


async def test_a_task_that_goes_on_is_cancelled_again() -> None:
    ignored = 0

    async def stubborn() -> None:  # drops two cancellations, as a library might
        nonlocal ignored
        while True:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                if ignored == 2:
                    raise
                ignored += 1

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)  # it waits
    await asyncio.wait_for(cancel_and_wait([task], recancel_s=0.001), END_BOUND_S)
    assert task.cancelled() and ignored == 2
