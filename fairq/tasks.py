"""Ending asyncio tasks for sure.

On Python 3.11 ``asyncio.wait_for`` drops a cancellation that arrives just as the
operation it awaits completes (CPython gh-86296, fixed in 3.12), and libraries await
under it: redis-py 8 sends every command so (its default socket timeout is 5 s). A
task cancelled once may then go on as if nothing had happened, and whoever awaits it
waits for ever. ``cancel_and_wait`` cancels again until the task has ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

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
