"""Ending asyncio tasks for sure.

On Python 3.11 ``asyncio.wait_for`` drops a cancellation that arrives just as the
operation it awaits completes (CPython gh-86296, fixed in 3.12), and libraries await
under it: redis-py 8 sends every command so (its default socket timeout is 5 s). A
task cancelled once may then go on as if nothing had happened, and whoever awaits it
waits for ever. ``cancel_and_wait`` cancels again until the task has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Iterable
from typing import Any

logger = logging.getLogger(__name__)

RECANCEL_S = 0.1  # how long a cancelled task may take to end before it is cancelled again


async def cancel_and_wait(
    tasks: Iterable[asyncio.Task[Any]], recancel_s: float = RECANCEL_S
) -> None:
    """Cancel ``tasks`` and return once every one has ended, cancelling again, every
    ``recancel_s``, those that go on. Their outcomes are not looked at (as with
    ``gather(..., return_exceptions=True)``): the caller may read them afterwards."""
    tasks = list(tasks)
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=recancel_s)
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" at exit


DEFAULT_DRAIN_S = 5.0  # how long a service told to stop may take before the rest is cancelled


async def run_until_stopped(
    main: Coroutine[Any, Any, None], stop: asyncio.Event, drain_s: float
) -> None:
    """Run ``main`` (a service that ends by itself once ``stop`` is set); once ``stop``
    is set, give it ``drain_s`` to end, then cancel what is left of it.

    A service drains by waiting for its dependencies (the broker acknowledging, Redis
    answering); with one of them paused that wait has no end, and the process would
    ignore SIGTERM. The bound makes a stop take ``drain_s`` at most whatever they do.
    Raises ``main``'s error, if it failed; ``UnaskedCancellation`` if it ended on a
    cancellation this did not make, even while draining: a library future cancelled under it
    (awaiting one raises CancelledError), which would otherwise end the process with
    exit code 0 and not a line in its log.
    """
    task = asyncio.ensure_future(main)
    told = asyncio.ensure_future(stop.wait())
    cancelled_here = False  # whether this cancelled ``main`` (its drain ran out, or this was)
    try:
        await asyncio.wait({task, told}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            _, pending = await asyncio.wait({task}, timeout=drain_s)
            if pending:
                logger.warning("not stopped within %.1fs of being told to: cancelling", drain_s)
                cancelled_here = True
                await cancel_and_wait(pending)
    finally:
        cancelled_here = cancelled_here or not task.done()
        await cancel_and_wait([task, told])
    try:
        task.result()
    except asyncio.CancelledError as e:  # the original, with where it was raised
        if not cancelled_here:
            raise UnaskedCancellation(
                "the service ended on a cancellation it did not ask for"
            ) from e


class UnaskedCancellation(RuntimeError):
    """A service ended because something it awaited was cancelled, not because it was
    told to stop."""


async def stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    """Wait until ``stop`` is set or ``seconds`` pass; whether it is set: the pause of a
    loop that runs until told to stop."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()
