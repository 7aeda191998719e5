"""Tasks that talk to Redis end when they are cancelled (see ``fairq.tasks``)."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from fairq.tasks import UnaskedCancellation, cancel_and_wait, run_until_stopped

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


async def test_a_service_that_does_not_end_is_cancelled_after_its_drain_time() -> None:
    """A service stuck on a dependency after ``stop`` (here: a wait that never ends) is
    cancelled once its drain time is over; one that ends by itself is left to end."""
    stop, drained = asyncio.Event(), asyncio.Event()
    cancelled = False

    async def stuck() -> None:
        nonlocal cancelled
        await stop.wait()
        try:
            await asyncio.Event().wait()  # a broker that never answers
        except asyncio.CancelledError:
            cancelled = True
            raise

    async def polite() -> None:
        await stop.wait()
        drained.set()

    for service in (stuck, polite):
        stop.clear()
        runner = asyncio.create_task(run_until_stopped(service(), stop, drain_s=0.01))
        await asyncio.sleep(0)
        stop.set()
        await asyncio.wait_for(runner, END_BOUND_S)
    assert cancelled and drained.is_set()


async def test_a_service_that_fails_raises_its_error() -> None:
    async def fails() -> None:
        raise ValueError("broken")

    with pytest.raises(ValueError, match="broken"):
        await run_until_stopped(fails(), asyncio.Event(), drain_s=1.0)


async def test_a_service_ended_by_a_cancellation_it_did_not_ask_for_fails_loudly() -> None:
    """Awaiting a future that something else cancelled raises CancelledError in the
    service; that must not look like a clean stop (exit code 0, nothing logged)."""

    async def awaits_a_cancelled_future() -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.cancel()
        await future

    with pytest.raises(UnaskedCancellation) as raised:
        await run_until_stopped(awaits_a_cancelled_future(), asyncio.Event(), drain_s=1.0)
    assert isinstance(raised.value.__cause__, asyncio.CancelledError)
    assert raised.value.__cause__.__traceback__ is not None  # where it came from
