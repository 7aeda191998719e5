"""The services' event loop: uvloop by default where installed, asyncio when asked,
reported by every service (a log line and ``fairq_event_loop_info``)."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from fairq import eventloop
from fairq.config import ConfigError, Connections
from fairq.devservices import free_port
from fairq.eventloop import LOOP_REGISTRY, EventLoop
from fairq.processes import Component, running, spawn, wait_http_ready
from tests.harness import fairq_env


def test_uvloop_is_the_default_where_installed_and_asyncio_when_asked() -> None:
    assert eventloop.uvloop_installed()  # a dependency on every platform but Windows
    assert eventloop.from_env({}) is EventLoop.UVLOOP
    assert eventloop.from_env({"FAIRQ_EVENT_LOOP": "asyncio"}) is EventLoop.ASYNCIO
    assert eventloop.from_env({"FAIRQ_EVENT_LOOP": " UVLOOP "}) is EventLoop.UVLOOP


def test_an_unknown_loop_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="FAIRQ_EVENT_LOOP must be one of asyncio, uvloop"):
        eventloop.from_env({"FAIRQ_EVENT_LOOP": "trio"})


@pytest.mark.parametrize("choice", list(EventLoop))
def test_run_runs_on_the_chosen_loop_and_the_metric_says_which(choice: EventLoop) -> None:
    async def scrape() -> tuple[EventLoop, bytes]:
        return eventloop.running(), generate_latest(LOOP_REGISTRY)

    running_on, metrics = eventloop.run(scrape(), choice)
    assert running_on is choice
    assert f'fairq_event_loop_info{{loop="{choice}"}} 1.0' in metrics.decode()
    assert eventloop.run(asyncio.sleep(0, "done"), choice) == "done"


def loop_metric(url: str) -> list[str]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    return [line for line in text.splitlines() if line.startswith("fairq_event_loop_info{")]


def started(
    command: str, env: dict[str, str], port_var: str, tmp_path: Path
) -> tuple[str, Component]:
    port = free_port()
    component = spawn(command, command, env | {port_var: str(port)}, tmp_path)
    return f"http://127.0.0.1:{port}", component


async def test_every_service_process_runs_on_uvloop_by_default(
    connections: Connections, tmp_path: Path
) -> None:
    env = fairq_env(connections)
    env.pop("FAIRQ_EVENT_LOOP", None)
    services = [
        started("gateway", env, "FAIRQ_HTTP_PORT", tmp_path),
        started("admitter", env, "FAIRQ_HEALTH_PORT", tmp_path),
        started("allocator", env, "FAIRQ_HEALTH_PORT", tmp_path),
    ]
    with running([c for _, c in services]):
        for url, component in services:
            await asyncio.to_thread(wait_http_ready, component, f"{url}/livez")
        loops = {c.name: await asyncio.to_thread(loop_metric, url) for url, c in services}
        logged = {c.name: "event loop: uvloop" in c.tail(100_000) for _, c in services}
    every = {"gateway", "admitter", "allocator"}
    assert loops == {name: ['fairq_event_loop_info{loop="uvloop"} 1.0'] for name in every}
    assert logged == dict.fromkeys(every, True)


async def test_a_gateway_asked_for_asyncio_runs_on_it(
    connections: Connections, tmp_path: Path
) -> None:
    url, gateway = started(
        "gateway", fairq_env(connections, FAIRQ_EVENT_LOOP="asyncio"), "FAIRQ_HTTP_PORT", tmp_path
    )
    with running([gateway]):
        await asyncio.to_thread(wait_http_ready, gateway, f"{url}/livez")
        assert await asyncio.to_thread(loop_metric, url) == [
            'fairq_event_loop_info{loop="asyncio"} 1.0'
        ]
