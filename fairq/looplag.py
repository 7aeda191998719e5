"""How late a process's event loop runs what is due: ``fairq_event_loop_lag_seconds``.

Every fairq process is one asyncio loop: a request, a fetched batch of records or a
produce acknowledgement waits while the loop runs something else (or the process
waits for a core). A timer due every ``TICK_S`` measures it: how late it fired. The
gauge is the worst lateness over the last ``WINDOW_S`` (a scrape once a second sees
every stall), so a rehearsal can tell a slow broker hop from a process that could not
run (``loadtest.click_path``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator

from prometheus_client import CollectorRegistry, Gauge

from fairq.tasks import cancel_and_wait

TICK_S = 0.02  # 50 wake-ups a second: ~1 ms of a core a second
WINDOW_S = 1.0
METRIC = "fairq_event_loop_lag_seconds"


class LoopLag:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._lags: collections.deque[tuple[float, float]] = collections.deque()  # (at, lag)
        self.gauge = Gauge(
            METRIC,
            f"Worst lateness of a {TICK_S * 1000:g} ms timer over the last {WINDOW_S:g} s",
            registry=registry,
        )
        self.gauge.set_function(self.worst)

    def worst(self) -> float:
        since = time.monotonic() - WINDOW_S
        return max((lag for at, lag in self._lags if at >= since), default=0.0)

    async def run(self) -> None:
        while True:
            due = time.monotonic() + TICK_S
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            self._lags.append((now, max(0.0, now - due)))
            while self._lags and self._lags[0][0] < now - WINDOW_S:
                self._lags.popleft()


@contextlib.asynccontextmanager
async def watching(registry: CollectorRegistry) -> AsyncIterator[None]:
    """The loop's lag in ``registry`` while the block runs."""
    lag = LoopLag(registry)
    task = asyncio.create_task(lag.run(), name="loop-lag")
    try:
        yield
    finally:
        await cancel_and_wait([task])
        registry.unregister(lag.gauge)
