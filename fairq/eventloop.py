"""The event loop every fairq process runs on: uvloop where the platform has it.

The event loop is the largest fixed cost per request (the gateway) and per record
(the allocator, the admitter): uvloop (libuv, in Cython) does the same work as
asyncio's pure-Python loop in less CPU. It is a dependency wherever it installs
(``sys_platform != 'win32'``) and the default when importable.

``FAIRQ_EVENT_LOOP`` chooses: ``uvloop`` (the default when installed; an error when
it is not, rather than a silent fallback) or ``asyncio`` (the standard loop, e.g. to
compare, or to debug with asyncio's own tools). Every service started by the
``fairq`` command runs on the chosen loop (``run``), logs which at start, and
reports it in its metrics: ``fairq_event_loop_info{loop="uvloop"} 1``
(``LOOP_REGISTRY``, served by ``fairq.health.metrics_response``).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import importlib.util
from collections.abc import Callable, Coroutine, Iterator, Mapping
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from fairq.config import ConfigError

T = TypeVar("T")
ENV = "FAIRQ_EVENT_LOOP"


class EventLoop(enum.StrEnum):
    ASYNCIO = "asyncio"
    UVLOOP = "uvloop"


def uvloop_installed() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def from_env(env: Mapping[str, str]) -> EventLoop:
    """``FAIRQ_EVENT_LOOP``, or uvloop when it is installed, else asyncio."""
    value = env.get(ENV, "").strip().lower()
    if not value:
        return EventLoop.UVLOOP if uvloop_installed() else EventLoop.ASYNCIO
    try:
        choice = EventLoop(value)
    except ValueError:
        choices = ", ".join(e.value for e in EventLoop)
        raise ConfigError(f"{ENV} must be one of {choices}, not {value!r}") from None
    if choice is EventLoop.UVLOOP and not uvloop_installed():
        raise ConfigError(
            f"{ENV}=uvloop but uvloop is not installed (pip install uvloop; it has no"
            f" Windows build): install it, or set {ENV}=asyncio"
        )
    return choice


def loop_factory(choice: EventLoop) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """What makes a new loop of ``choice`` (None: asyncio's default)."""
    if choice is EventLoop.UVLOOP:
        import uvloop

        return uvloop.new_event_loop
    return None


def run(main: Coroutine[Any, Any, T], choice: EventLoop) -> T:
    """``asyncio.run(main)``, on a new loop of ``choice``."""
    with asyncio.Runner(loop_factory=loop_factory(choice)) as runner:
        return runner.run(main)


def running() -> EventLoop:
    """Which kind of loop the caller runs on."""
    module = type(asyncio.get_running_loop()).__module__
    return EventLoop.UVLOOP if module.partition(".")[0] == "uvloop" else EventLoop.ASYNCIO


class LoopCollector(Collector):
    """``fairq_event_loop_info{loop}``: the loop that serves the scrape (the process's)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "fairq_event_loop_info", "The event loop this process runs on", labels=["loop"]
        )
        with contextlib.suppress(RuntimeError):  # collected outside a loop: none to report
            family.add_metric([running().value], 1)
        yield family


# every service's /metrics adds this registry's (fairq.health.metrics_response)
LOOP_REGISTRY = CollectorRegistry()
LOOP_REGISTRY.register(LoopCollector())
