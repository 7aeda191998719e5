"""One gateway process against a bare aiohttp handler: joins/s, status/s, SSE waiters, Redis memory.

Starts a private redis-server and Tansu broker, one gateway process (``fairq
gateway``) and one bare aiohttp server (same AppRunner/TCPSite settings, a handler
that only answers a small JSON document), all on 127.0.0.1. Load comes from
separate generator processes (aiohttp clients; this file with ``--role load`` or
``--role waiters``). The gateway runs with rate limits on; the generators carry
the load-test key, so the figures measure the gateway, not the limiter.

Figures printed:

- joins/s and status checks/s of the gateway vs the bare handler (the same client,
  the same connection count), and requests per CPU-second of the server process
  (independent of whether the client was the bottleneck);
- concurrent event-stream waiters held by the gateway, its RSS before and with
  them, and the time from one cursor move in Redis until every waiter got its
  new status (this includes up to one refresh interval, ``FAIRQ_REFRESH_S``);
- Redis ``used_memory`` per waiting visitor after N anonymous joins (the join Lua
  script called directly in pipelines), and per visitor with an access code.

Not a test; run it (about two minutes on two cores):

    python -m loadtest.bench_gateway [--seconds 5] [--connections 64]
        [--waiters 15000] [--redis-visitors 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import redis.asyncio as aioredis
from aiohttp import web

from fairq.config import Topics
from fairq.devservices import free_port, kafka_broker, redis_server
from fairq.topics import ensure_topics
from waitingroom import keys
from waitingroom.rooms import RoomConfig, RoomStore

ROOM = "bench"
LOADTEST_KEY = "bench-loadtest-key-0123456789"
OPERATOR_KEY = "bench-operator-key-0123456789"
LOADTEST_HEADERS = {"X-Fairq-Loadtest-Key": LOADTEST_KEY}
READY_TIMEOUT_S = 60.0
WAITERS_PER_PROCESS = 9000  # each process holds one fd per waiter (ulimit -n is often 20000)
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- the bare reference server ----------------------------------------------------------


async def bare_handler(request: web.Request) -> web.Response:
    await request.read()
    body = {"room": ROOM, "state": "waiting", "position": 1234, "eta_s": 12.5}
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def serve_bare(port: int) -> None:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", bare_handler)
    runner = web.AppRunner(app, access_log=None)  # as gateway.service.run
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


# -- load generators (separate processes) ----------------------------------------------


async def load(url: str, method: str, seconds: float, connections: int, token: str) -> None:
    """Hit ``url`` from ``connections`` workers; print counts of the measured window."""
    headers = dict(LOADTEST_HEADERS)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    counts = {"ok": 0, "other": 0}
    stop = False

    async def worker(session: aiohttp.ClientSession) -> None:
        while not stop:
            async with session.request(method, url, headers=headers) as r:
                await r.read()
                counts["ok" if r.status == 200 else "other"] += 1

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [asyncio.create_task(worker(session)) for _ in range(connections)]
        await asyncio.sleep(0.5)  # warm-up
        start, ok0 = time.perf_counter(), counts["ok"]
        await asyncio.sleep(seconds)
        elapsed, ok = time.perf_counter() - start, counts["ok"] - ok0
        stop = True
        await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps({"per_s": ok / elapsed, "total_ok": counts["ok"], "other": counts["other"]}))


async def _waiter(
    session: aiohttp.ClientSession, base: str, gate: asyncio.Semaphore, armed: asyncio.Event
) -> tuple[aiohttp.ClientResponse, asyncio.Future[float]]:
    async with gate:
        async with session.post(f"{base}/api/rooms/{ROOM}/join", headers=LOADTEST_HEADERS) as r:
            ticket = (await r.json())["ticket"]
        response = await session.get(
            f"{base}/api/rooms/{ROOM}/events", params={"ticket": ticket}, headers=LOADTEST_HEADERS
        )
        while not (await response.content.readline()).startswith(b"data:"):
            pass
    got: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    async def follow() -> None:
        with contextlib.suppress(aiohttp.ClientError):  # closed at the end of the run
            while line := await response.content.readline():
                if line.startswith(b"data:") and armed.is_set() and not got.done():
                    got.set_result(time.time())

    asyncio.get_running_loop().create_task(follow())
    return response, got


async def waiters(base: str, count: int) -> None:
    """Join and hold ``count`` event streams; print ``ready``, then when each got one event."""
    armed = asyncio.Event()
    gate = asyncio.Semaphore(100)
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        held = await asyncio.gather(*(_waiter(session, base, gate, armed) for _ in range(count)))
        armed.set()
        print("ready", flush=True)
        received = await asyncio.gather(*(got for _, got in held))
        print(json.dumps({"last_event_at": max(received), "received": len(received)}), flush=True)
        for response, _ in held:
            response.close()


# -- the orchestrator --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Proc:
    pid: int

    def cpu_s(self) -> float:
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def rss_mb(self) -> float:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise RuntimeError(f"no VmRSS for pid {self.pid}")


@contextlib.asynccontextmanager
async def child(*argv: str, log: str, env: dict[str, str] | None = None) -> AsyncIterator[Proc]:
    with open(log, "wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *argv, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=err
        )
    try:
        yield Proc(proc.pid)
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                print(f"pid {proc.pid} did not stop within 30s of SIGTERM; killing it")
                proc.kill()
                await proc.wait()


async def wait_http(url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    async with aiohttp.ClientSession() as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as r:
                    if r.status == 200:
                        return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {READY_TIMEOUT_S}s")
            await asyncio.sleep(0.2)


async def run_load(
    server: Proc, url: str, method: str, args: argparse.Namespace, token: str = ""
) -> dict[str, float]:
    cpu0 = server.cpu_s()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "loadtest.bench_gateway",
        "--role=load",
        f"--url={url}",
        f"--method={method}",
        f"--seconds={args.seconds}",
        f"--connections={args.connections}",
        f"--token={token}",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    result: dict[str, float] = json.loads(out)
    result["per_cpu_s"] = result["total_ok"] / max(1e-9, server.cpu_s() - cpu0)
    return result


async def hold_waiters(gateway: Proc, base: str, redis: aioredis.Redis, n: int) -> dict[str, Any]:
    rss_before = gateway.rss_mb()
    sizes = [min(WAITERS_PER_PROCESS, n - i) for i in range(0, n, WAITERS_PER_PROCESS)]
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "loadtest.bench_gateway",
            "--role=waiters",
            f"--url={base}",
            f"--count={size}",
            stdout=asyncio.subprocess.PIPE,
        )
        for size in sizes
    ]
    setup_start = time.perf_counter()
    for p in procs:
        assert p.stdout is not None
        line = await asyncio.wait_for(p.stdout.readline(), 600)
        if line.strip() != b"ready":
            raise RuntimeError(f"a waiter process failed: {line!r}")
    setup_s = time.perf_counter() - setup_start
    await asyncio.sleep(1.0)  # let the RSS settle after the last streams opened
    rss_with = gateway.rss_mb()
    moved_at = time.time()
    await redis.hincrby(keys.room(ROOM), "cursor", 1)
    results = []
    for p in procs:
        out, _ = await asyncio.wait_for(p.communicate(), 120)
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    return {
        "waiters": sum(r["received"] for r in results),
        "setup_s": setup_s,
        "rss_before_mb": rss_before,
        "rss_with_mb": rss_with,
        "fanout_s": max(r["last_event_at"] for r in results) - moved_at,
    }


async def redis_memory(redis: aioredis.Redis, visitors: int, with_codes: bool) -> float:
    """Bytes of Redis used_memory per join, joining ``visitors`` times via the Lua script."""
    store = RoomStore(redis)
    name = "mem-codes" if with_codes else "mem"
    await store.put_room(RoomConfig(name=name, campaign="bench", opens_at_s=0.0))
    await store.open_now(name, time.time())
    await redis.memory_purge()
    before = int((await redis.info("memory"))["used_memory"])
    room_keys = [keys.room(name), keys.room_code_tickets(name)]
    batch = 10_000
    for first in range(0, visitors, batch):
        async with redis.pipeline(transaction=False) as pipe:
            for i in range(first, min(first + batch, visitors)):
                code = f"{i:064x}" if with_codes else ""  # a code hash is 64 hex chars
                await store.scripts.join(
                    keys=room_keys, args=[time.time(), f"t{i:022d}", code, 3600], client=pipe
                )
            await pipe.execute()
    after = int((await redis.info("memory"))["used_memory"])
    return (after - before) / visitors


def gateway_env(redis_url: str, kafka: str, port: int) -> dict[str, str]:
    return os.environ | {
        "REDIS_URL": redis_url,
        "KAFKA_BOOTSTRAP": kafka,
        "FAIRQ_HTTP_PORT": str(port),
        "FAIRQ_OPERATOR_KEY": OPERATOR_KEY,
        "FAIRQ_SIGNING_KEYS": "k1:bench-signing-secret-0123456789",
        "FAIRQ_LOADTEST_KEY": LOADTEST_KEY,
        "FAIRQ_JOIN_RATE_PER_S": "1",
        "FAIRQ_STATUS_RATE_PER_S": "5",
        "FAIRQ_LOG_LEVEL": "WARNING",
    }


def machine() -> str:
    model = "unknown cpu"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_gb = int(f.readline().split()[1]) / 1024 / 1024
    return (
        f"{platform.node()}: {os.cpu_count()} x {model}, {mem_gb:.0f} GB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


async def orchestrate(args: argparse.Namespace) -> None:
    print(f"machine: {machine()}")
    print(f"gateway log: {args.gateway_log}")
    print(f"command: {' '.join([sys.executable, '-m', 'loadtest.bench_gateway', *sys.argv[1:]])}")
    with redis_server() as rs, kafka_broker() as kb:
        await ensure_topics(kb.url, Topics(), 2, 1)
        redis = aioredis.Redis.from_url(rs.url)
        store = RoomStore(redis)
        await store.put_room(RoomConfig(name=ROOM, campaign="bench", opens_at_s=0.0, rate_per_s=0))
        await store.open_now(ROOM, time.time())
        gw_port, bare_port = free_port(), free_port()
        gw_base, bare = f"http://127.0.0.1:{gw_port}", f"http://127.0.0.1:{bare_port}"
        env = gateway_env(rs.url, kb.url, gw_port)
        async with (
            child("-m", "fairq.cli", "gateway", env=env, log=args.gateway_log) as gateway,
            child(
                "-m",
                "loadtest.bench_gateway",
                "--role=bare",
                f"--port={bare_port}",
                log=args.gateway_log + ".bare",
            ) as ref,
        ):
            await wait_http(f"{gw_base}/healthz")
            await wait_http(f"{bare}/")
            figures = await measure(args, gateway, ref, gw_base, bare, redis)
        figures["redis_bytes_per_anonymous_visitor"] = await redis_memory(
            redis, args.redis_visitors, with_codes=False
        )
        figures["redis_bytes_per_visitor_with_code"] = await redis_memory(
            redis, args.redis_visitors // 10, with_codes=True
        )
        await redis.aclose()
    report(args, figures)


async def measure(
    args: argparse.Namespace,
    gateway: Proc,
    ref: Proc,
    gw_base: str,
    bare: str,
    redis: aioredis.Redis,
) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    figures["bare_post"] = await run_load(ref, f"{bare}/join", "POST", args)
    figures["gw_join"] = await run_load(gateway, f"{gw_base}/api/rooms/{ROOM}/join", "POST", args)
    figures["bare_get"] = await run_load(ref, f"{bare}/status", "GET", args)
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{gw_base}/api/rooms/{ROOM}/join", headers=LOADTEST_HEADERS) as r,
    ):
        ticket = (await r.json())["ticket"]
    figures["gw_status"] = await run_load(
        gateway, f"{gw_base}/api/rooms/{ROOM}/status", "GET", args, ticket
    )
    figures["waiters"] = await hold_waiters(gateway, gw_base, redis, args.waiters)
    return figures


def report(args: argparse.Namespace, f: dict[str, Any]) -> None:
    def line(label: str, gw: dict[str, float], ref: dict[str, float], target: float) -> None:
        ratio, cpu_ratio = gw["per_s"] / ref["per_s"], gw["per_cpu_s"] / ref["per_cpu_s"]
        print(
            f"{label:<16} gateway {gw['per_s']:>8.0f}/s  bare {ref['per_s']:>8.0f}/s  "
            f"ratio {ratio:.2f} (target >= {target})   per server CPU-s: gateway "
            f"{gw['per_cpu_s']:>6.0f}  bare {ref['per_cpu_s']:>6.0f}  ratio {cpu_ratio:.2f}"
            f"   [non-200: {gw['other']:.0f}]"
        )

    print(f"\n{args.connections} client connections, {args.seconds}s per measurement")
    line("joins", f["gw_join"], f["bare_post"], 0.6)
    line("status checks", f["gw_status"], f["bare_get"], 0.8)
    w = f["waiters"]
    per_waiter_kb = (w["rss_with_mb"] - w["rss_before_mb"]) * 1024 / max(1, w["waiters"])
    at_50k_gb = (w["rss_before_mb"] + per_waiter_kb * 50_000 / 1024) / 1024
    print(
        f"SSE waiters      {w['waiters']} held (set up in {w['setup_s']:.1f}s); gateway RSS "
        f"{w['rss_before_mb']:.0f} MB -> {w['rss_with_mb']:.0f} MB = {per_waiter_kb:.1f} KB/waiter;"
        f" extrapolated to 50,000 waiters: {at_50k_gb:.2f} GB (target <= 1.5 GB)"
    )
    print(f"cursor move -> all {w['waiters']} waiters notified in {w['fanout_s']:.2f}s")
    print(
        f"Redis memory     {f['redis_bytes_per_anonymous_visitor']:.2f} B per anonymous visitor "
        f"at {args.redis_visitors:,} joins; {f['redis_bytes_per_visitor_with_code']:.0f} B per "
        f"visitor with an access code at {args.redis_visitors // 10:,}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--role", choices=["bench", "bare", "load", "waiters"], default="bench")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--waiters", type=int, default=15_000)
    parser.add_argument("--redis-visitors", type=int, default=1_000_000)
    parser.add_argument("--gateway-log", default="/tmp/fairq-bench-gateway.log")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--url", default="")
    parser.add_argument("--method", default="GET")
    parser.add_argument("--token", default="")
    parser.add_argument("--count", type=int, default=0)
    args = parser.parse_args()
    if args.role == "bare":
        asyncio.run(serve_bare(args.port))
    elif args.role == "load":
        asyncio.run(load(args.url, args.method, args.seconds, args.connections, args.token))
    elif args.role == "waiters":
        asyncio.run(waiters(args.url, args.count))
    else:
        asyncio.run(orchestrate(args))


if __name__ == "__main__":
    main()
