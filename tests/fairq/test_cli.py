"""The ``fairq`` command: configuration errors are clear, and ``fairq up`` runs and stops."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from fairq.cli import main
from fairq.config import Connections
from fairq.devservices import Server, free_port
from fairq.processes import spawn, wait_http_ready
from gateway.ratelimit import RateLimitSettings
from loadtest.bench_recovery import OPERATOR_KEY, launch_up
from tests.conftest import paused, until_status
from tests.harness import fairq_env


@pytest.mark.parametrize(
    "env,message",
    [
        ({}, "FAIRQ_SIGNING_KEYS is required"),
        (
            {"FAIRQ_SIGNING_KEYS": "k:" + "s" * 20, "FAIRQ_OPERATOR_KEY": "o" * 20},
            "REDIS_URL is required",
        ),
        (
            {
                "REDIS_URL": "redis://x",
                "KAFKA_BOOTSTRAP": "x:1",
                "FAIRQ_SIGNING_KEYS": "nokid",
                "FAIRQ_OPERATOR_KEY": "o" * 20,
            },
            "FAIRQ_SIGNING_KEYS must look like",
        ),
        (
            {
                "REDIS_URL": "redis://x",
                "KAFKA_BOOTSTRAP": "x:1",
                "FAIRQ_SIGNING_KEYS": "k:" + "s" * 20,
                "FAIRQ_OPERATOR_KEY": "o" * 20,
                "FAIRQ_HTTP_PORT": "eighty",
            },
            "FAIRQ_HTTP_PORT must be an integer",
        ),
    ],
)
def test_gateway_refuses_bad_configuration(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    message: str,
) -> None:
    for name in list(os.environ):
        if name.startswith(("FAIRQ_", "REDIS_URL", "KAFKA_BOOTSTRAP")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["gateway"]) == 2
    assert message in capsys.readouterr().err


def post_status(url: str) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="POST")) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return e.code


@pytest.mark.both_brokers
def test_up_serves_the_demo_and_stops_every_child(tmp_path: Path, broker: str) -> None:
    port = free_port()
    up, text = launch_up(port, str(tmp_path), FAIRQ_LOADTEST_KEY="", FAIRQ_BROKER=broker)
    try:
        assert "fairq is up." in text and OPERATOR_KEY in text, text
        assert f"({broker})" in text, text
        children = psutil.Process(up.pid).children(recursive=True)
        assert len(children) >= 5  # redis, the broker, allocator, admitter, gateway
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/rooms/demo") as r:
            room = json.loads(r.read())
        assert len(room["counties"]) == 15 and len(room["centers"]) == 28
        # its gateway has the default per-client limits: a join burst, then 429
        assert "no FAIRQ_LOADTEST_KEY" in text
        burst = RateLimitSettings().join.burst
        joins = [
            post_status(f"http://127.0.0.1:{port}/api/rooms/demo/join") for _ in range(2 * burst)
        ]
        assert joins[:burst] == [200] * burst and 429 in joins, joins
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0
        _, alive = psutil.wait_procs(children, timeout=10)
        assert alive == []
    finally:
        if up.poll() is None:
            up.kill()


DRAIN_S = 1.0
STOP_MARGIN_S = 20.0  # start-up of the interpreter aside, a stop takes the drain at most


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "service,dependency",
    [
        ("allocator", "broker"),
        ("admitter", "broker"),
        ("admitter", "redis"),
        ("gateway", "broker"),
        ("gateway", "redis"),
    ],
)
def test_a_service_stops_within_its_drain_time_whatever_its_dependencies_do(
    connections: Connections,
    redis_srv: Server,
    kafka_srv: Server,
    tmp_path: Path,
    service: str,
    dependency: str,
) -> None:
    """SIGTERMed while its broker or Redis is paused (SIGSTOP: it answers nothing), a
    service still exits, within its drain time and a margin (before, an allocator so
    left ignored SIGTERM for more than 60 s)."""
    port = free_port()
    env = fairq_env(
        connections,
        FAIRQ_HTTP_PORT=str(port),
        FAIRQ_HEALTH_PORT=str(port),
        FAIRQ_SHUTDOWN_DRAIN_S=str(DRAIN_S),
    )
    component = spawn(service, service, env, tmp_path)
    try:
        wait_http_ready(component, f"http://127.0.0.1:{port}/readyz")
        with paused(kafka_srv if dependency == "broker" else redis_srv):
            # It has noticed, and has calls in hand that the paused server will not answer.
            asyncio.run(until_status(f"http://127.0.0.1:{port}/readyz", 503))
            component.process.send_signal(signal.SIGTERM)
            returncode = component.process.wait(timeout=DRAIN_S + STOP_MARGIN_S)
        assert returncode == 0, component.tail()
    finally:
        if component.process.poll() is None:
            component.process.kill()
            component.process.wait()


VALID_GATEWAY_ENV = {
    "REDIS_URL": "redis://x",
    "KAFKA_BOOTSTRAP": "x:1",
    "FAIRQ_SIGNING_KEYS": "k:" + "s" * 20,
    "FAIRQ_OPERATOR_KEY": "o" * 20,
}


@pytest.mark.parametrize(
    "file_text,args,message",
    [
        # the file's settings win over the environment's ...
        ("FAIRQ_HTTP_PORT=eighty\n", [], "FAIRQ_HTTP_PORT must be an integer, got 'eighty'"),
        # ... and the flags over the file's
        ("FAIRQ_HTTP_PORT=8080\n", ["--port", "x"], "FAIRQ_HTTP_PORT must be an integer, got 'x'"),
        ("FAIRQ_HTTP_PORT\n", [], "stack.env:1: expected NAME=value"),
        (None, [], "cannot read the environment file"),
    ],
)
def test_an_env_file_is_read_over_the_environment_and_under_the_flags(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    file_text: str | None,
    args: list[str],
    message: str,
) -> None:
    for name, value in VALID_GATEWAY_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("FAIRQ_HTTP_PORT", "8080")
    path = tmp_path / "stack.env"
    if file_text is not None:
        path.write_text(file_text)
    assert main(["gateway", "--env-file", str(path), *args]) == 2
    assert message in capsys.readouterr().err
