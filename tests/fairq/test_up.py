"""``fairq up`` supervises its children: a SIGKILLed allocator is restarted, resumes
from its snapshot and the log, and the rest of the system never stops serving."""

from __future__ import annotations

import signal
import subprocess
import threading
from pathlib import Path

import aiohttp
import psutil
import pytest

from fairq.devservices import free_port
from loadtest.bench_recovery import OPERATOR_KEY, ROOM, Bench, launch_up

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
