"""``fairq up`` supervises its children: a SIGKILLed allocator is restarted, resumes
from its snapshot and the log, and the rest of the system never stops serving."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shlex
import signal
import stat
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import psutil
import pytest

from fairq import envfile
from fairq.cli import main
from fairq.demo import demo_campaign
from fairq.devservices import free_port
from fairq.processes import Component, wait_http_ready
from fairq.stacksecrets import SECRETS_FILE, stack_secrets
from fairq.topics import DEFAULT_PARTITIONS
from loadtest.bench_recovery import OPERATOR_KEY, ROOM, Bench, launch_up
from tests.conftest import consecutive_free_ports, until_status

pytestmark = pytest.mark.timeout(240)


async def test_a_killed_allocator_is_restarted_while_the_rest_serves(tmp_path: Path) -> None:
    port = free_port()
    up, _ = launch_up(port, str(tmp_path))
    assert up.stdout is not None
    log: list[str] = []
    reader = threading.Thread(target=lambda: log.extend(up.stdout or []), daemon=True)
    reader.start()
    try:
        base = f"http://127.0.0.1:{port}"
        children = psutil.Process(up.pid).children(recursive=True)
        async with aiohttp.ClientSession() as session:
            bench = Bench(session, base, up.pid)
            await bench.admit(visitors=1)
            booking_id, token = await bench.book()
            assert await bench.answer(booking_id, token) == "held"
            gateway = [c for c in children if c.cmdline()[-1:] == ["gateway"]]
            victim = bench.allocator()
            assert victim is not None and len(gateway) == 1
            victim.send_signal(signal.SIGKILL)
            # The gateway answers all along: its view of the booking, the room.
            status, view = await bench.call("GET", f"/api/bookings/{booking_id}", token)
            assert (status, view["state"]) == (200, "held")
            status, _ = await bench.call("GET", f"/api/rooms/{ROOM}", OPERATOR_KEY)
            assert status == 200
            restarted = await bench.restarted(victim.pid)
            assert gateway[0].is_running()
            # The new allocator knows the booking made before the kill: it cancels it.
            status, _ = await bench.call("POST", f"/api/bookings/{booking_id}/cancel", token)
            assert status in (200, 202)
            assert await bench.answer(booking_id, token, past="held") == "cancelled"
        assert any(
            f"allocator (pid {victim.pid}) exited with signal SIGKILL" in line
            and "restarting it in 0.5s" in line
            for line in log
        ), "".join(log)
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0
        _, alive = psutil.wait_procs([*children, restarted], timeout=10)
        assert alive == []
    finally:
        stop_all(up)


def stop_all(up: subprocess.Popen[str]) -> None:
    """Kill ``fairq up`` and its children if a failure left them running."""
    if up.poll() is None:
        for process in psutil.Process(up.pid).children(recursive=True):
            process.kill()
        up.kill()
        up.wait()


# -- several of each, the secrets, one more process ------------------------------------


def drain(up: subprocess.Popen[str]) -> list[str]:
    """Read ``fairq up``'s output on (its supervision log) so that it never blocks."""
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(up.stdout or []), daemon=True).start()
    return lines


def stop_up(up: subprocess.Popen[str]) -> None:
    up.send_signal(signal.SIGINT)
    assert up.wait(timeout=60) == 0


def banner_values(text: str, label: str) -> list[str]:
    """What the banner's lines ``  <label>  <value> ...`` say."""
    lines = [x for x in text.splitlines() if x.startswith(f"  {label} ")]
    return [line.split()[len(label.split())] for line in lines]


def banner_value(text: str, label: str) -> str:
    (value,) = banner_values(text, label)
    return value


async def assigned_partitions(
    logs: list[Path], partitions: int, watch: tuple[subprocess.Popen[bytes], ...] = ()
) -> None:
    """Wait until the allocators logging to ``logs`` share every partition, each holding
    some (their logs' last ``partitions assigned`` lines); fail if one of ``watch`` exits."""
    while True:
        for process, log in zip(watch, logs[len(logs) - len(watch) :], strict=True):
            assert process.poll() is None, log.read_text()
        held = []
        for log in logs:
            lines = log.read_text(errors="replace").splitlines()
            last = [x for x in lines if "partitions assigned: " in x][-1:]
            held.append(
                set(json.loads(last[0].split("partitions assigned: ")[1])) if last else set()
            )
        if all(held) and sum(map(len, held)) == partitions == len(set().union(*held)):
            return
        await asyncio.sleep(0.1)


def counter_total(metrics: str, name: str) -> float:
    return sum(float(x.split()[-1]) for x in metrics.splitlines() if x.startswith(name + "{"))


async def test_a_stack_of_two_gateways_admitters_and_allocators_books_end_to_end(
    tmp_path: Path,
) -> None:
    port = consecutive_free_ports(2)
    up, text = launch_up(
        port, str(tmp_path), FAIRQ_GATEWAYS="2", FAIRQ_ADMITTERS="2", FAIRQ_ALLOCATORS="2"
    )
    drain(up)
    try:
        bases = [f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}"]
        assert [v for v in banner_values(text, "gateway") if v.startswith("http")] == bases
        children = [c for c in psutil.Process(up.pid).children() if "fairq.cli" in c.cmdline()]
        kinds = sorted(c.cmdline()[-1] for c in children)
        assert kinds == ["admitter"] * 2 + ["allocator"] * 2 + ["gateway"] * 2
        allocators = [c for c in children if c.cmdline()[-1] == "allocator"]
        instances = {c.environ()["FAIRQ_ALLOCATOR_INSTANCE"] for c in allocators}
        assert instances == {"allocator-1", "allocator-2"}
        names = ["allocator-1", "allocator-2"]
        logs = [tmp_path / "logs" / f"{name}.log" for name in names]
        await assigned_partitions(logs, DEFAULT_PARTITIONS)
        counties = [c["id"] for c in demo_campaign(dt.date.today())["counties"]]
        async with aiohttp.ClientSession() as session:
            bench = Bench(session, bases[0], up.pid)
            await bench.admit(visitors=len(counties))
            booked = []
            for i, county in enumerate(counties):  # in turn through each gateway
                bench.base = bases[i % 2]
                token = next(bench.tokens)
                status, body = await bench.call(
                    "POST", f"/api/rooms/{ROOM}/bookings", token, json={"county": county}
                )
                assert status in (201, 202), (status, body)
                booked.append((str(body["booking_id"]), token))
            for i, (booking_id, token) in enumerate(booked):  # seen through the other
                bench.base = bases[(i + 1) % 2]
                assert await bench.answer(booking_id, token) == "held", booking_id
            # Both allocators decided bookings: the partitions are shared, not idle.
            for name in names:
                health = banner_value(text, name).removesuffix("/readyz")
                async with session.get(f"{health}/metrics") as response:
                    metrics = await response.text()
                assert counter_total(metrics, "fairq_allocator_commands_total") > 0, name
        stop_up(up)
        _, alive = psutil.wait_procs(children, timeout=10)
        assert alive == []
    finally:
        stop_all(up)


def printed_command(text: str, kind: str) -> list[str]:
    """The banner's command that starts one more ``kind`` process, split as a shell would."""
    (line,) = [x for x in text.splitlines() if x.startswith(f"  {kind:<10} fairq {kind}")]
    return shlex.split(line.split(None, 1)[1])


def start_printed(argv: list[str], log: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """Run a printed ``fairq ...`` command with nothing of the stack in the environment
    (the env file says it all), logging to ``log``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FAIRQ_", "REDIS_URL", "KAFKA_BOOTSTRAP"))
    }
    assert argv[0] == "fairq"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "fairq.cli", *argv[1:]], env=env, stdout=out, stderr=out
        )
    return process, log


def health_url(log: Path) -> str:
    """Where a service that logs ``... health on http://host:port`` serves it (0 if not yet)."""
    for line in log.read_text(errors="replace").splitlines():
        if " health on http://" in line:
            return line.split(" health on ", 1)[1].split()[0]
    return ""


def join_ticket(base: str) -> str:
    request = urllib.request.Request(f"{base}/api/rooms/{ROOM}/join", method="POST")
    with urllib.request.urlopen(request) as response:
        return str(json.loads(response.read())["ticket"])


def status_code(base: str, ticket: str) -> int:
    request = urllib.request.Request(
        f"{base}/api/rooms/{ROOM}/status", headers={"Authorization": f"Bearer {ticket}"}
    )
    try:
        with urllib.request.urlopen(request) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return e.code


def test_secrets_are_kept_private_and_the_tokens_verify_after_a_restart(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    state = tmp_path / "state"
    up, text = launch_up(port, str(state), FAIRQ_OPERATOR_KEY="")  # every secret generated
    try:
        ticket = join_ticket(base)
        assert status_code(base, ticket) == 200
        operator_key = banner_value(text, "operator key")
        stop_up(up)
    finally:
        stop_all(up)
    secrets_file = state / SECRETS_FILE
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    stored = envfile.read(secrets_file)
    assert stored["FAIRQ_OPERATOR_KEY"] == operator_key
    up, text = launch_up(port, str(state), FAIRQ_OPERATOR_KEY="")
    try:
        assert status_code(base, ticket) == 200  # signed before the restart, verified after
        assert status_code(base, ticket[:-4] + "AAAA") == 401  # (a forged one is not)
        assert banner_value(text, "operator key") == operator_key
        stop_up(up)
    finally:
        stop_all(up)
    assert envfile.read(secrets_file) == stored


def test_up_refuses_a_secrets_file_others_may_read(tmp_path: Path) -> None:
    stack_secrets(tmp_path, {})
    (tmp_path / SECRETS_FILE).chmod(0o644)
    with pytest.raises(RuntimeError, match="exited with 2") as refused:
        up, _ = launch_up(free_port(), str(tmp_path))
        stop_all(up)  # only if it started after all
    assert "other users may read it (mode 0644)" in str(refused.value)


async def test_one_more_gateway_started_as_printed_serves_the_first_ones_tokens(
    tmp_path: Path,
) -> None:
    port = consecutive_free_ports(2)
    up, text = launch_up(port, str(tmp_path))
    drain(up)
    more: subprocess.Popen[bytes] | None = None
    try:
        stack_file = tmp_path / "stack.env"
        assert stat.S_IMODE(stack_file.stat().st_mode) == 0o600
        argv = printed_command(text, "gateway")
        assert argv == [
            "fairq",
            "gateway",
            "--env-file",
            str(stack_file.resolve()),
            "--port",
            str(port + 1),
        ]
        more, log = start_printed(argv, tmp_path / "more.log")
        first, second = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}"
        await asyncio.to_thread(wait_http_ready, Component("more", more, log), f"{second}/readyz")
        async with aiohttp.ClientSession() as session:
            bench = Bench(session, first, up.pid)
            await bench.admit(visitors=1)  # the ticket and the booking token: the first's
            bench.base = second
            booking_id, token = await bench.book()
            assert await bench.answer(booking_id, token) == "held"
            bench.base = first
            assert await bench.answer(booking_id, token) == "held"
        more.send_signal(signal.SIGTERM)
        assert more.wait(timeout=30) == 0
        stop_up(up)
        assert not stack_file.exists()  # the stack is gone: so is its settings file
    finally:
        if more is not None and more.poll() is None:
            more.kill()
        stop_all(up)


@pytest.mark.parametrize(
    "args,env,message",
    [
        (["--gateways", "0"], {}, "FAIRQ_GATEWAYS must be at least 1, got 0"),
        (["--admitters", "many"], {}, "FAIRQ_ADMITTERS must be an integer, got 'many'"),
        ([], {"FAIRQ_ALLOCATORS": "65"}, "FAIRQ_ALLOCATORS must be at most 64, got 65"),
        (["--allocators", "9"], {}, "FAIRQ_ALLOCATORS 9 is more than the partitions (8"),
        (["--gateway-workers", "0"], {}, "FAIRQ_GATEWAY_WORKERS must be at least 1"),
        (["--gateways", "3"], {"FAIRQ_HTTP_PORT": "65534"}, "leaves no room for 3 gateways"),
    ],
)
def test_up_names_a_bad_count(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    args: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    monkeypatch.setenv("FAIRQ_STATE_DIR", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["up", *args]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # refused before anything was made


async def test_one_more_allocator_and_admitter_started_as_printed_join_the_stack(
    tmp_path: Path,
) -> None:
    """The printed allocator joins the group under its own name and takes its share of
    the partitions (bookings in every county are then answered, by both); the printed
    admitter starts and is ready."""
    port = free_port()
    up, text = launch_up(port, str(tmp_path))
    drain(up)
    added: list[subprocess.Popen[bytes]] = []
    try:
        argv = printed_command(text, "allocator")
        assert argv[-2:] == ["--instance", "allocator-2"]
        allocator, allocator_log = start_printed(argv, tmp_path / "more-allocator.log")
        admitter, admitter_log = start_printed(
            printed_command(text, "admitter"), tmp_path / "more-admitter.log"
        )
        added += [allocator, admitter]
        logs = [tmp_path / "logs" / "allocator.log", allocator_log]
        await assigned_partitions(logs, DEFAULT_PARTITIONS, watch=(allocator,))
        while not health_url(admitter_log):
            assert admitter.poll() is None, admitter_log.read_text()
            await asyncio.sleep(0.1)
        await until_status(f"{health_url(admitter_log)}/readyz", 200)
        counties = [c["id"] for c in demo_campaign(dt.date.today())["counties"]]
        async with aiohttp.ClientSession() as session:
            bench = Bench(session, f"http://127.0.0.1:{port}", up.pid)
            await bench.admit(visitors=len(counties))
            booked = []
            for county in counties:
                token = next(bench.tokens)
                status, body = await bench.call(
                    "POST", f"/api/rooms/{ROOM}/bookings", token, json={"county": county}
                )
                assert status in (201, 202), (status, body)
                booked.append((str(body["booking_id"]), token))
            for booking_id, token in booked:
                assert await bench.answer(booking_id, token) == "held", booking_id
            (first,) = [v for v in banner_values(text, "allocator") if v.startswith("http")]
            for health in (first, health_url(allocator_log)):
                async with session.get(health.replace("/readyz", "") + "/metrics") as response:
                    metrics = await response.text()
                assert counter_total(metrics, "fairq_allocator_commands_total") > 0, health
        for process in added:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
        stop_up(up)
    finally:
        for process in added:
            if process.poll() is None:
                process.kill()
        stop_all(up)
