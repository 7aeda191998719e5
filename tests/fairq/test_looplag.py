"""The event loop's lag: a loop blocked for a while shows it in the gauge."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import CollectorRegistry

from fairq.looplag import METRIC, TICK_S, watching

BLOCKED_S = 0.2


def lag(registry: CollectorRegistry) -> float:
    value = registry.get_sample_value(METRIC)
    assert value is not None
    return value


async def test_a_blocked_loop_shows_as_lag_and_the_gauge_goes_with_the_watcher() -> None:
    registry = CollectorRegistry()
    async with watching(registry):
        await asyncio.sleep(0)  # the watcher arms its timer
        time.sleep(BLOCKED_S)  # the loop runs nothing else meanwhile
        for _ in range(1000):  # the timer fires on the loop's next turn
            if lag(registry) > 0:
                break
            await asyncio.sleep(0)
        assert lag(registry) >= BLOCKED_S - TICK_S
    assert registry.get_sample_value(METRIC) is None  # unregistered: a restart registers again
    async with watching(registry):
        assert lag(registry) < BLOCKED_S - TICK_S  # a new watcher: nothing seen yet
