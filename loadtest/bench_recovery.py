"""How long bookings go unanswered after the allocator is SIGKILLed under ``fairq up``.

Runs ``fairq up`` (its own Redis and Tansu broker, on free ports), opens the demo
room, admits a few visitors, and for each round SIGKILLs the allocator child, puts
a booking in right after, and times from the kill to the booking's answer (held or
rejected, as the gateway shows it). "Two kills" SIGKILLs the restarted allocator as
soon as ``fairq up`` has started it, then measures from the first kill. Not a test;
run it:

    python -m loadtest.bench_recovery [--rounds 3] [--session-timeout-ms 6000] [--no-evict]

``--no-evict`` sets ``FAIRQ_ALLOCATOR_INSTANCE`` empty: a restarted allocator then
waits for the group to drop its dead predecessor (the behaviour before eviction);
``--session-timeout-ms 10000 --no-evict`` is the setup of the earlier releases.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import psutil

from fairq.devservices import free_port
from gateway.ratelimit import LOADTEST_HEADER
from loadtest.bench_allocator_core import print_header

OPERATOR_KEY = "bench-recovery-operator-key-0123"
LOADTEST_KEY = "bench-recovery-loadtest-key-0123"  # its visitors are exempt from the limits
ROOM = "demo"
COUNTY = "stuttgart"
ANSWER_POLL_S = 0.05
ANSWER_WAIT_S = 120.0  # a round that has no answer by then is reported as such


class Bench:
    def __init__(self, session: aiohttp.ClientSession, base: str, up_pid: int) -> None:
        self.session = session
        self.base = base
        self.up_pid = up_pid
        self.tokens: Iterator[str] = iter(())

    async def call(self, method: str, path: str, token: str, **kw: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}", LOADTEST_HEADER: LOADTEST_KEY}
        async with self.session.request(method, self.base + path, headers=headers, **kw) as r:
            return r.status, await r.json()

    async def admit(self, visitors: int) -> None:
        """Open the demo room wide and collect ``visitors`` booking tokens."""
        admission = {"rate_per_s": 1000, "max_active": 10_000}
        await self.call("PUT", f"/api/admin/rooms/{ROOM}/admission", OPERATOR_KEY, json=admission)
        await self.call("POST", f"/api/admin/rooms/{ROOM}/open", OPERATOR_KEY)
        tickets = []
        for _ in range(visitors):
            status, body = await self.call("POST", f"/api/rooms/{ROOM}/join", "")
            assert status == 200, body
            tickets.append(body["ticket"])
        tokens = []
        for ticket in tickets:
            while True:
                _, body = await self.call("GET", f"/api/rooms/{ROOM}/status", ticket)
                if body.get("booking_token"):
                    tokens.append(body["booking_token"])
                    break
                await asyncio.sleep(0.1)
        self.tokens = iter(tokens)

    async def book(self) -> tuple[str, str]:
        """Put a booking in with the next booking token; its id and the token."""
        token = next(self.tokens)
        status, body = await self.call(
            "POST", f"/api/rooms/{ROOM}/bookings", token, json={"county": COUNTY}
        )
        assert status in (201, 202), (status, body)
        return str(body["booking_id"]), token

    async def answer(self, booking_id: str, token: str, *, past: str = "pending") -> str:
        """Wait for the booking's state to move on from ``past``; its state then."""
        deadline = time.monotonic() + ANSWER_WAIT_S
        while time.monotonic() < deadline:
            _, view = await self.call("GET", f"/api/bookings/{booking_id}", token)
            if view.get("state") not in (None, past):
                return str(view["state"])
            await asyncio.sleep(ANSWER_POLL_S)
        return "no answer"

    async def book_and_wait(self) -> str:
        """Put a booking in and wait for the allocator's answer; its state."""
        return await self.answer(*await self.book())

    def allocator(self) -> psutil.Process | None:
        for child in psutil.Process(self.up_pid).children():
            try:
                if child.cmdline()[-1:] == ["allocator"]:
                    return child
            except psutil.Error:  # gone, or dead and not yet reaped by fairq up
                continue
        return None

    async def restarted(self, old_pid: int) -> psutil.Process:
        while True:
            child = self.allocator()
            if child is not None and child.pid != old_pid:
                return child
            await asyncio.sleep(0.01)

    async def round(self, kills: int) -> float:
        """Seconds from the first of ``kills`` SIGKILLs to the first answer after it."""
        assert await self.book_and_wait() == "held"  # the allocator is up and answering
        victim = self.allocator()
        assert victim is not None
        killed_s = time.monotonic()
        victim.send_signal(signal.SIGKILL)
        for _ in range(kills - 1):
            victim = await self.restarted(victim.pid)
            victim.send_signal(signal.SIGKILL)
        state = await self.book_and_wait()
        gap_s = time.monotonic() - killed_s
        if state == "no answer":
            raise RuntimeError(f"no answer within {ANSWER_WAIT_S}s of the kill")
        await self.restarted(victim.pid)
        await asyncio.sleep(35.0)  # past fairq up's stable period: the backoff starts over
        return gap_s


async def measure(base: str, up_pid: int, rounds: int) -> None:
    async with aiohttp.ClientSession() as session:
        bench = Bench(session, base, up_pid)
        await bench.admit(visitors=4 * rounds + 2)
        for kills, label in ((1, "one kill"), (2, "two kills in a row")):
            gaps = [await bench.round(kills) for _ in range(rounds)]
            figures = " ".join(f"{g:.1f}" for g in gaps)
            print(
                f"{label:>18}: kill to first answer {statistics.median(gaps):.1f} s median"
                f" ({figures} s)",
                flush=True,
            )


def launch_up(port: int, state_dir: str, **settings: str) -> tuple[subprocess.Popen[str], str]:
    """``fairq up`` on ``port`` with ``settings`` (and no other FAIRQ_ variable, no Redis
    or broker of the environment), its output and log merged; returns once its banner
    is printed, with the banner."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FAIRQ_", "REDIS_URL", "KAFKA_BOOTSTRAP"))
    }
    env |= {
        "FAIRQ_HTTP_PORT": str(port),
        "FAIRQ_STATE_DIR": state_dir,
        "FAIRQ_OPERATOR_KEY": OPERATOR_KEY,
        "FAIRQ_DEMO_OPENS_IN_S": "600",
        "FAIRQ_LOADTEST_KEY": LOADTEST_KEY,
    } | settings
    up = subprocess.Popen(
        [sys.executable, "-m", "fairq.cli", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert up.stdout is not None
    banner = []
    for line in up.stdout:
        banner.append(line)
        if line.startswith("Stop: Ctrl-C"):
            return up, "".join(banner)
    up.wait()
    output = "".join(banner)[-3000:]
    raise RuntimeError(f"fairq up exited with {up.returncode} before it was up:\n{output}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--session-timeout-ms", type=int, default=None)
    parser.add_argument("--no-evict", action="store_true")
    args = parser.parse_args()
    print_header("loadtest.bench_recovery")
    port = free_port()
    settings = {}
    if args.session_timeout_ms is not None:
        settings["FAIRQ_ALLOCATOR_SESSION_TIMEOUT_MS"] = str(args.session_timeout_ms)
    if args.no_evict:
        settings["FAIRQ_ALLOCATOR_INSTANCE"] = ""
    with tempfile.TemporaryDirectory(prefix="fairq-bench-recovery-") as state_dir:
        up, _ = launch_up(port, state_dir, **settings)
        try:
            # fairq up's own log (restarts) goes on in the pipe: drain it.
            threading.Thread(target=up.communicate, daemon=True).start()
            asyncio.run(measure(f"http://127.0.0.1:{port}", up.pid, args.rounds))
        finally:
            up.send_signal(signal.SIGINT)
            up.wait(timeout=60)


if __name__ == "__main__":
    main()
