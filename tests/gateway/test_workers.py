"""``fairq gateway --workers N``: N processes serve one port, each is scraped on a port of
its own, a crashed one comes back, and SIGTERM (or the parent's death) ends them all."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import psutil
import pytest

from fairq.cli import main
from fairq.config import Connections
from fairq.devservices import free_port
from fairq.processes import Component, spawn, stop, wait_http_ready
from gateway.workers import WorkerSettings, machine_cores
from tests.conftest import consecutive_free_ports, metrics_text
from tests.harness import fairq_env

pytestmark = pytest.mark.timeout(180)

TwoWorkers = tuple[Component, int, int]  # the parent, the shared port, the first own port


@pytest.fixture
def two_workers(connections: Connections, tmp_path: Path) -> Iterator[TwoWorkers]:
    """``fairq gateway --workers 2`` on a free port, ready; stopped on exit."""
    port, own = free_port(), consecutive_free_ports(2)
    env = fairq_env(connections, FAIRQ_HTTP_PORT=str(port), FAIRQ_SHUTDOWN_DRAIN_S="1")
    env |= {"FAIRQ_GATEWAY_WORKERS": "2", "FAIRQ_WORKER_PORTS_FROM": str(own)}
    gateway = spawn("gateway", "gateway", env, tmp_path)
    try:
        wait_http_ready(gateway, f"http://127.0.0.1:{port}/readyz")
        yield gateway, port, own
    finally:
        stop([gateway])
        for worker in workers_of(gateway):  # only if the test failed half way
            worker.kill()


def workers_of(gateway: Component) -> list[psutil.Process]:
    try:
        children: list[psutil.Process] = psutil.Process(gateway.process.pid).children()
        return children
    except psutil.NoSuchProcess:
        return []


def worker_number(worker: psutil.Process) -> str:
    return str(worker.environ()["FAIRQ_GATEWAY_WORKER"])


def listening(worker: psutil.Process) -> set[int]:
    """The TCP ports ``worker`` listens on."""
    return {c.laddr.port for c in worker.net_connections("tcp") if c.status == psutil.CONN_LISTEN}


async def until_workers_listen(gateway: Component, port: int, count: int) -> dict[str, int]:
    """Wait until ``count`` workers listen on ``port`` and one port of their own each;
    their own ports by worker number."""
    while True:
        own: dict[str, int] = {}
        for worker in workers_of(gateway):
            try:
                ports = listening(worker)
                if port in ports and len(ports) == 2:
                    own[worker_number(worker)] = (ports - {port}).pop()
            except psutil.Error:  # starting or ending
                continue
        if len(own) == count:
            return own
        await asyncio.sleep(0.05)


async def scraped_worker(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url) as response:
        text = await response.text()
    (line,) = [x for x in text.splitlines() if x.startswith("fairq_gateway_worker_info{")]
    return line.split('worker="', 1)[1].split('"', 1)[0]


async def test_two_workers_serve_one_port_each_scraped_on_its_own(
    two_workers: TwoWorkers,
) -> None:
    gateway, port, own_from = two_workers
    own = await until_workers_listen(gateway, port, 2)
    assert own == {"1": own_from, "2": own_from + 1}  # FAIRQ_WORKER_PORTS_FROM + i - 1
    pids = {w.pid for w in workers_of(gateway)}
    assert len(pids) == 2 and gateway.process.pid not in pids
    # New connections to the shared port reach both workers (the kernel spreads them).
    seen: set[str] = set()
    while seen != {"1", "2"}:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
            seen.add(await scraped_worker(s, f"http://127.0.0.1:{port}/metrics"))
    # Each worker's own port gives that worker's metrics, and its own counters.
    async with aiohttp.ClientSession() as session:
        for number, own_port in own.items():
            base = f"http://127.0.0.1:{own_port}"
            for _ in range(3):
                async with session.get(f"{base}/livez") as response:
                    assert response.status == 200
            assert await scraped_worker(session, f"{base}/metrics") == number
        one = await metrics_text(f"http://127.0.0.1:{own['1']}/metrics")
        two = await metrics_text(f"http://127.0.0.1:{own['2']}/metrics")
    livez = 'fairq_gateway_requests_total{route="/livez",status="200"}'
    counts = [
        float(x.split()[-1]) for t in (one, two) for x in t.splitlines() if x.startswith(livez)
    ]
    assert counts[0] >= 3 and counts[1] >= 3


async def test_sigterm_stops_every_worker_after_its_drain(
    two_workers: TwoWorkers,
) -> None:
    gateway, port, _ = two_workers
    await until_workers_listen(gateway, port, 2)
    workers = workers_of(gateway)
    gateway.process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(gateway.process.wait, 30) == 0
    # The parent waited for them: none is left draining once it has exited.
    _, alive = psutil.wait_procs(workers, timeout=0)
    assert alive == []
    log = gateway.tail(20_000)
    for worker in workers:
        assert f"INFO {worker.pid} gateway.service: gateway stopping: draining" in log, log
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


async def test_a_killed_worker_is_started_again(two_workers: TwoWorkers) -> None:
    gateway, port, _ = two_workers
    await until_workers_listen(gateway, port, 2)
    (victim,) = [w for w in workers_of(gateway) if worker_number(w) == "1"]
    victim.send_signal(signal.SIGKILL)
    while True:
        own = await until_workers_listen(gateway, port, 2)
        pids = {worker_number(w): w.pid for w in workers_of(gateway)}
        if pids.get("1", victim.pid) != victim.pid and "1" in own:
            break
        await asyncio.sleep(0.05)
    async with aiohttp.ClientSession() as session:
        assert await scraped_worker(session, f"http://127.0.0.1:{own['1']}/metrics") == "1"
    assert f"gateway worker 1 (pid {victim.pid}) exited with signal SIGKILL" in gateway.tail()


async def test_workers_end_when_their_parent_is_killed(two_workers: TwoWorkers) -> None:
    gateway, port, _ = two_workers
    await until_workers_listen(gateway, port, 2)
    workers = workers_of(gateway)
    gateway.process.send_signal(signal.SIGKILL)
    gateway.process.wait()
    _, alive = await asyncio.to_thread(psutil.wait_procs, workers, 30)
    assert alive == []


def test_the_default_is_the_cores_this_process_may_use() -> None:
    assert machine_cores() == len(os.sched_getaffinity(0))
    assert WorkerSettings.from_env({}).workers == machine_cores()
    assert WorkerSettings.from_env({"FAIRQ_GATEWAY_WORKERS": "3"}).workers == 3


GATEWAY_ENV = {
    "REDIS_URL": "redis://127.0.0.1:1",
    "KAFKA_BOOTSTRAP": "127.0.0.1:1",
    "FAIRQ_SIGNING_KEYS": "k:" + "s" * 20,
    "FAIRQ_OPERATOR_KEY": "o" * 20,
}


@pytest.mark.parametrize(
    "args,env,message",
    [
        (["--workers", "0"], {}, "FAIRQ_GATEWAY_WORKERS must be at least 1, got 0"),
        (["--workers", "two"], {}, "FAIRQ_GATEWAY_WORKERS must be an integer, got 'two'"),
        ([], {"FAIRQ_GATEWAY_WORKERS": "-1"}, "FAIRQ_GATEWAY_WORKERS must be at least 1"),
        (["--workers", "2", "--port", "0"], {}, "FAIRQ_HTTP_PORT 0 (any free port) cannot be"),
    ],
)
def test_bad_worker_settings_are_named(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    for name, value in (GATEWAY_ENV | env).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("FAIRQ_GATEWAY_WORKER", raising=False)
    assert main(["gateway", *args]) == 2
    assert message in capsys.readouterr().err


def test_workers_refuse_a_port_another_process_holds(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in GATEWAY_ENV.items():
        monkeypatch.setenv(name, value)
    with socket.create_server(("127.0.0.1", 0)) as holder:
        port = holder.getsockname()[1]
        assert main(["gateway", "--workers", "2", "--port", str(port)]) == 2
    assert f"127.0.0.1:{port} is in use by another process" in capsys.readouterr().err
