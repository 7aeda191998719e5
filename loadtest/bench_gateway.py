"""One gateway process against a bare aiohttp handler: joins/s, status/s, SSE waiters, Redis memory.

Starts a private redis-server and Tansu broker, one gateway process (``fairq
gateway``) and one bare aiohttp server (the same ``AppRunner(access_log=None)``
and ``TCPSite`` defaults as ``gateway.service.run``; a handler that reads the body
and answers a small JSON document), all on 127.0.0.1. The gateway runs with rate
limits on. By default each load connection comes from an address of its own
(127.0.0.2, .3, ...) and the limits are high enough never to refuse: the path of
ordinary visitors (one token bucket per request). With ``--loadtest-exempt`` all
load comes from one address over low limits and carries the load-test key: every
request is then over its limit and exempted (the bucket and the key check).

How the throughput is measured, and why it can be trusted on a noisy 2-core box:

- the load comes from a separate process using :mod:`loadtest.rawhttp` (bare
  asyncio protocols, prebuilt requests, keep-alive, one request in flight per
  connection): it costs a few microseconds per request, so it is not the limit;
  each line prints the client's and the server's CPU use over the window (a
  server near 100 % of a core means the server was the limit);
- bare and gateway runs are interleaved, ``--rounds`` times, alternating which
  goes first; each round gives a ratio (gateway / bare, measured back to back)
  and the median ratio is reported with the spread over rounds;
- besides requests per wall-second, requests per server CPU-second (read from
  ``/proc`` at the edges of the measured window), which does not depend on what
  else the machine was doing.

The gateway and the bare server run on the event loop ``FAIRQ_EVENT_LOOP`` chooses
(``fairq.eventloop``: uvloop by default where installed), both on the same one; the
load generator always on asyncio's own, so that runs on either loop are loaded alike.

Other figures: concurrent event-stream waiters held by the gateway (raw client
sockets in separate processes; the fd limit of every process is raised to its
hard limit), the gateway's RSS before and with them, and the time from one
cursor move in Redis until every waiter got its new status (this includes up to
one refresh interval, ``FAIRQ_REFRESH_S``, 0.2 s); Redis ``used_memory`` per
waiting visitor after N anonymous joins (the batched join script, as the gateway
calls it) and per visitor with an access code.

Not a test; run it (a few minutes on two cores):

    python -m loadtest.bench_gateway [--rounds 5] [--seconds 3] [--connections 64]
        [--waiters 50000] [--redis-visitors 1000000] [--profile /tmp/gw.prof]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from itertools import chain
from typing import Any

import aiohttp
import orjson
import redis.asyncio as aioredis
from aiohttp import web

from fairq import eventloop
from fairq.config import Kafka, Topics
from fairq.devservices import free_port, kafka_broker, redis_server
from fairq.topics import ensure_topics
from loadtest.rawhttp import EventStream, Repeater, Tally, request_bytes
from waitingroom import keys
from waitingroom.guesses import NO_LIMIT, Guesser
from waitingroom.rooms import DEFAULT_PREQUEUE_S, RoomConfig, RoomStore, code_join_call

ROOM = "bench"
HOST = "127.0.0.1"
LOADTEST_KEY = "bench-loadtest-key-0123456789"
OPERATOR_KEY = "bench-operator-key-0123456789"
LOADTEST_HEADERS = {"X-Fairq-Loadtest-Key": LOADTEST_KEY}
READY_TIMEOUT_S = 60.0
WARMUP_S = 0.5
FD_RESERVE = 200  # fds a process needs besides its event streams (Redis pool, Kafka, files)
OPEN_IN_FLIGHT = 100  # event streams being opened at once (the listen backlog is 128)
JOIN_BATCH = 500  # as waitingroom.joinbatch.DEFAULT_MAX_BATCH
BENCH_GUESSER = Guesser(client=HOST, prefix="bench", limit=NO_LIMIT)
CLK_TCK = os.sysconf("SC_CLK_TCK")
LABELS = {"join": "joins", "status": "statuses"}


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to its hard limit; return the new limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def cpu_times_s(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far."""
    return sum(cpu_times_s(pid))


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


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
    await web.TCPSite(runner, HOST, port).start()  # default backlog, as gateway.service.run
    await asyncio.Event().wait()


# -- the load generator (a separate process; spec on stdin, figures on stdout) ------------


async def load(spec: dict[str, Any]) -> dict[str, Any]:
    """Keep one request in flight on each connection; count the answers of the window.

    ``spec``: ``port``, ``requests`` (one request per connection, latin-1 text),
    ``own_addresses`` (each connection from a 127.0.0.x of its own), ``seconds``,
    ``server_pid`` and ``extra_pids`` (whose CPU use is reported too).
    """
    loop = asyncio.get_running_loop()
    tally = Tally()
    conns = []
    for i, request in enumerate(req.encode("latin-1") for req in spec["requests"]):
        source = (f"127.0.0.{2 + i % 250}", 0) if spec["own_addresses"] else None
        factory = partial(Repeater, request, tally)
        conns.append(
            (await loop.create_connection(factory, HOST, spec["port"], local_addr=source))[1]
        )
    await asyncio.sleep(WARMUP_S)
    pids = [spec["server_pid"], *spec["extra_pids"]]
    ok0, other0, client0 = tally.ok, tally.other, time.process_time()
    sys0, cpu0, start = cpu_times_s(pids[0])[1], [cpu_s(p) for p in pids], time.perf_counter()
    await asyncio.sleep(spec["seconds"])
    sys1, cpu1, elapsed = (
        cpu_times_s(pids[0])[1],
        [cpu_s(p) for p in pids],
        time.perf_counter() - start,
    )
    ok, other, client = tally.ok - ok0, tally.other - other0, time.process_time() - client0
    tally.running = False
    await asyncio.wait([c.closed for c in conns], timeout=5)
    server = cpu1[0] - cpu0[0]
    return {
        "per_s": ok / elapsed,
        "per_cpu_s": ok / max(server, 1e-9),
        "other": other,
        "server_busy": server / elapsed,
        "server_sys_share": (sys1 - sys0) / max(server, 1e-9),
        "client_busy": client / elapsed,
        "extra_busy": sum(b - a for a, b in zip(cpu0[1:], cpu1[1:], strict=True)) / elapsed,
        "busy_by_pid": [(b - a) / elapsed for a, b in zip(cpu0, cpu1, strict=True)],
    }


async def run_load(spec: dict[str, Any]) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "loadtest.bench_gateway",
        "--role=load",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate(json.dumps(spec).encode())
    if proc.returncode != 0:
        raise RuntimeError(f"the load process failed ({proc.returncode})")
    result: dict[str, Any] = json.loads(out)
    return result


# -- event-stream waiters (separate processes) ----------------------------------------------


async def join_tickets(port: int, count: int, connections: int) -> list[str]:
    """``count`` tickets from the gateway's join route, over keep-alive connections."""
    loop = asyncio.get_running_loop()
    tally, tickets = Tally(), []
    done = loop.create_future()
    request = request_bytes("POST", f"/api/rooms/{ROOM}/join", f"{HOST}:{port}", LOADTEST_HEADERS)

    def on_answer(status: int, body: bytes) -> None:
        if status != 200:
            tally.running = False
            if not done.done():
                done.set_exception(RuntimeError(f"join answered {status}: {body[:200]!r}"))
            return
        tickets.append(orjson.loads(body)["ticket"])
        if len(tickets) >= count and not done.done():
            tally.running = False  # those still in flight add a few more, unused
            done.set_result(None)

    conns = [
        (await loop.create_connection(lambda: Repeater(request, tally, on_answer), HOST, port))[1]
        for _ in range(min(connections, count))
    ]
    await done
    await asyncio.wait([c.closed for c in conns], timeout=5)
    return tickets[:count]


async def open_stream(port: int, ticket: str, gate: asyncio.Semaphore) -> EventStream:
    loop = asyncio.get_running_loop()
    request = request_bytes(
        "GET", f"/api/rooms/{ROOM}/events?ticket={ticket}", f"{HOST}:{port}", LOADTEST_HEADERS
    )
    async with gate:
        _, stream = await loop.create_connection(lambda: EventStream(request), HOST, port)
        await stream.opened
    return stream


async def waiters(port: int, count: int) -> None:
    """Hold ``count`` event streams; print ``ready``, then when the last got its next event."""
    raise_fd_limit()
    tickets = await join_tickets(port, count, 64)
    gate = asyncio.Semaphore(OPEN_IN_FLIGHT)
    streams = await asyncio.gather(*(open_stream(port, t, gate) for t in tickets))
    for s in streams:
        s.arm()
    print("ready", flush=True)
    received = await asyncio.gather(*(s.got for s in streams))
    print(json.dumps({"last_event_at": max(received), "received": len(received)}), flush=True)
    for s in streams:
        if s.transport is not None:
            s.transport.abort()


# -- the orchestrator --------------------------------------------------------------------


@contextlib.asynccontextmanager
async def child(*argv: str, log: str, env: dict[str, str] | None = None) -> AsyncIterator[int]:
    """A child Python process (its fd limit at the hard limit); yields its pid."""
    with open(log, "wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *argv,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=err,
            preexec_fn=raise_fd_limit,
        )
    try:
        yield proc.pid
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


@dataclass(frozen=True, slots=True)
class Servers:
    gateway_pid: int
    gateway_port: int
    bare_pid: int
    bare_port: int
    redis_pid: int


@dataclass(frozen=True, slots=True)
class Held:
    """One gateway's share of the event streams, and what holding them cost it."""

    waiters: int
    rss_before_mb: float
    rss_with_mb: float
    fanout_s: float  # cursor move -> the last of its waiters got the new status
    fanout_cpu_s: float


SpawnGateway = Callable[[contextlib.AsyncExitStack], Awaitable[tuple[int, int]]]


async def waiter_process(port: int, count: int) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "loadtest.bench_gateway",
        "--role=waiters",
        f"--port={port}",
        f"--count={count}",
        stdout=asyncio.subprocess.PIPE,
    )


async def hold_waiters(
    servers: Servers, spawn: SpawnGateway, redis: aioredis.Redis, n: int
) -> dict[str, Any]:
    """Hold ``n`` streams: as many in the first gateway as its fd limit allows, the rest
    in more gateway processes; then move the cursor once and time the fan-out."""
    per_gateway = raise_fd_limit() - FD_RESERVE
    sizes = [min(per_gateway, n - i) for i in range(0, n, per_gateway)]
    async with contextlib.AsyncExitStack() as stack:
        gateways = [(servers.gateway_pid, servers.gateway_port)]
        gateways += [await spawn(stack) for _ in sizes[1:]]
        rss_before = [rss_mb(pid) for pid, _ in gateways]
        setup_start = time.perf_counter()
        procs = [
            await waiter_process(port, size)
            for (_, port), size in zip(gateways, sizes, strict=True)
        ]
        for p in procs:
            assert p.stdout is not None
            line = await asyncio.wait_for(p.stdout.readline(), 1800)
            if line.strip() != b"ready":
                raise RuntimeError(f"a waiter process failed: {line!r}")
        setup_s = time.perf_counter() - setup_start
        await asyncio.sleep(2.0)  # let the RSS settle after the last streams opened
        rss_with = [rss_mb(pid) for pid, _ in gateways]
        cpu0 = [cpu_s(pid) for pid, _ in gateways]
        moved_at = time.time()
        await redis.hincrby(keys.room(ROOM), "cursor", 1)
        results = []
        for p in procs:
            out, _ = await asyncio.wait_for(p.communicate(), 600)
            results.append(json.loads(out.decode().strip().splitlines()[-1]))
        cpu1 = [cpu_s(pid) for pid, _ in gateways]
    held = [
        Held(r["received"], before, with_, r["last_event_at"] - moved_at, c1 - c0)
        for r, before, with_, c0, c1 in zip(results, rss_before, rss_with, cpu0, cpu1, strict=True)
    ]
    return {"requested": n, "fd_limit": per_gateway + FD_RESERVE, "setup_s": setup_s, "held": held}


async def redis_memory(redis: aioredis.Redis, visitors: int, with_codes: bool) -> float:
    """Bytes of Redis used_memory per waiting visitor after ``visitors`` joins.

    Anonymous joins go through JOIN_MANY in batches, as the gateway's batcher sends
    them; joins with an access code through JOIN, one per visitor, pipelined.
    """
    store = RoomStore(redis)
    name = "mem-codes" if with_codes else "mem"
    await store.put_room(RoomConfig(name=name, campaign="bench", opens_at_s=0.0))
    await store.open_now(name, time.time())
    if with_codes:  # the codes are issued before: a code hash is 64 hex chars
        for first in range(0, visitors, 10_000):
            issued = [(f"{i:064x}", "bench") for i in range(first, min(first + 10_000, visitors))]
            await redis.hset(keys.campaign_codes("bench"), items=list(chain(*issued)))
    await redis.memory_purge()
    before = int((await redis.info("memory"))["used_memory"])
    step = 1 if with_codes else JOIN_BATCH
    for first in range(0, visitors, 10_000):
        end = min(first + 10_000, visitors)
        async with redis.pipeline(transaction=False) as pipe:
            for i in range(first, end, step):
                if with_codes:  # each visitor its own code, from one client: none wrong
                    code_keys, one = code_join_call(
                        name,
                        time.time(),
                        "bench",
                        [f"{i:064x}"],
                        BENCH_GUESSER,
                        f"t{i:022d}",
                    )
                    await store.scripts.join(keys=code_keys, args=one, client=pipe)
                else:
                    count = min(JOIN_BATCH, end - i)
                    times = ",".join([repr(time.time())] * count)
                    many: list[int | str] = [DEFAULT_PREQUEUE_S, count, times]
                    await store.scripts.join_many(keys=[keys.room(name)], args=many, client=pipe)
            await pipe.execute()
    after = int((await redis.info("memory"))["used_memory"])
    return (after - before) / visitors


def gateway_env(
    redis_url: str, kafka: str, port: int, exempt: bool, workers: int = 1
) -> dict[str, str]:
    rates = ("1", "5") if exempt else ("1000000", "1000000")  # exempted / never refused
    return os.environ | {
        "REDIS_URL": redis_url,
        "KAFKA_BOOTSTRAP": kafka,
        "FAIRQ_HTTP_PORT": str(port),
        "FAIRQ_GATEWAY_WORKERS": str(workers),
        "FAIRQ_OPERATOR_KEY": OPERATOR_KEY,
        "FAIRQ_SIGNING_KEYS": "k1:bench-signing-secret-0123456789",
        "FAIRQ_LOADTEST_KEY": LOADTEST_KEY,
        "FAIRQ_JOIN_RATE_PER_S": rates[0],
        "FAIRQ_STATUS_RATE_PER_S": rates[1],
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


async def open_bench_room(redis_url: str, bootstrap: str) -> aioredis.Redis:
    """The topics and the open room ``ROOM`` every gateway benchmark serves; a client of
    its Redis (the caller closes it)."""
    await ensure_topics(Kafka(bootstrap), Topics(), 2, 1)
    redis = aioredis.Redis.from_url(redis_url)
    store = RoomStore(redis)
    await store.put_room(RoomConfig(name=ROOM, campaign="bench", opens_at_s=0.0, rate_per_s=0))
    await store.open_now(ROOM, time.time())
    return redis


async def orchestrate(args: argparse.Namespace) -> None:
    print(f"machine: {machine()}")
    print(f"gateway log: {args.gateway_log}")
    loop = eventloop.from_env(os.environ)
    print(f"event loop of the gateway and the bare server: {loop} ({eventloop.ENV})")
    print(f"command: {' '.join([sys.executable, '-m', 'loadtest.bench_gateway', *sys.argv[1:]])}")
    raise_fd_limit()
    with redis_server() as rs, kafka_broker() as kb:
        redis = await open_bench_room(rs.url, kb.url)
        gw_port, bare_port = free_port(), free_port()
        env = gateway_env(rs.url, kb.url, gw_port, args.loadtest_exempt)
        profile = ["-m", "cProfile", "-o", args.profile] if args.profile else []

        async def spawn(stack: contextlib.AsyncExitStack) -> tuple[int, int]:
            """One more gateway process (for event streams beyond one process's fd limit)."""
            port = free_port()
            log = f"{args.gateway_log}.{port}"
            more = gateway_env(rs.url, kb.url, port, args.loadtest_exempt)
            pid = await stack.enter_async_context(
                child("-m", "fairq.cli", "gateway", env=more, log=log)
            )
            await wait_http(f"http://{HOST}:{port}/readyz")
            return pid, port

        async with (
            child(*profile, "-m", "fairq.cli", "gateway", env=env, log=args.gateway_log) as gw,
            child(
                "-m",
                "loadtest.bench_gateway",
                "--role=bare",
                f"--port={bare_port}",
                log=args.gateway_log + ".bare",
            ) as bare,
        ):
            await wait_http(f"http://{HOST}:{gw_port}/readyz")
            await wait_http(f"http://{HOST}:{bare_port}/")
            servers = Servers(gw, gw_port, bare, bare_port, rs.process.pid)
            figures = await measure(args, servers)
            if args.waiters:
                figures["waiters"] = await hold_waiters(servers, spawn, redis, args.waiters)
        if args.redis_visitors:
            figures["redis_anonymous"] = await redis_memory(redis, args.redis_visitors, False)
            figures["redis_with_code"] = await redis_memory(redis, args.redis_visitors, True)
        await redis.aclose()
    report(args, figures)


async def tickets_for(port: int, n: int) -> list[str]:
    async with aiohttp.ClientSession() as s:
        out = []
        for _ in range(n):
            url = f"http://{HOST}:{port}/api/rooms/{ROOM}/join"
            async with s.post(url, headers=LOADTEST_HEADERS) as r:
                out.append((await r.json())["ticket"])
        return out


Specs = dict[tuple[str, str], dict[str, Any]]


def specs(args: argparse.Namespace, servers: Servers, tickets: list[str]) -> Specs:
    """(kind, server) -> load spec; bare and gateway requests carry the same headers."""

    def spec(port: int, pid: int, requests: list[bytes]) -> dict[str, Any]:
        return {
            "port": port,
            "server_pid": pid,
            "extra_pids": [servers.redis_pid],
            "own_addresses": not args.loadtest_exempt,
            "seconds": args.seconds,
            "requests": [r.decode("latin-1") for r in requests],
        }

    def joins(port: int, path: str) -> list[bytes]:
        return [request_bytes("POST", path, f"{HOST}:{port}", LOADTEST_HEADERS)] * len(tickets)

    def statuses(port: int, path: str) -> list[bytes]:
        return [
            request_bytes(
                "GET", path, f"{HOST}:{port}", LOADTEST_HEADERS | {"Authorization": f"Bearer {t}"}
            )
            for t in tickets
        ]

    g, b = (servers.gateway_port, servers.gateway_pid), (servers.bare_port, servers.bare_pid)
    return {
        ("join", "gateway"): spec(*g, joins(g[0], f"/api/rooms/{ROOM}/join")),
        ("join", "bare"): spec(*b, joins(b[0], "/join")),
        ("status", "gateway"): spec(*g, statuses(g[0], f"/api/rooms/{ROOM}/status")),
        ("status", "bare"): spec(*b, statuses(b[0], "/status")),
    }


async def measure(args: argparse.Namespace, servers: Servers) -> dict[str, Any]:
    tickets = await tickets_for(servers.gateway_port, args.connections if args.rounds else 0)
    all_specs = specs(args, servers, tickets)
    rounds: list[dict[tuple[str, str], dict[str, float]]] = []
    for r in range(args.rounds):
        order = ("bare", "gateway") if r % 2 == 0 else ("gateway", "bare")
        results: dict[tuple[str, str], dict[str, float]] = {}
        for kind in args.kinds:
            for server in order:
                results[(kind, server)] = await run_load(all_specs[(kind, server)])
        rounds.append(results)
        print(f"round {r + 1}/{args.rounds}: " + round_line(results), flush=True)
    return {"rounds": rounds}


def round_line(results: dict[tuple[str, str], dict[str, float]]) -> str:
    parts = []
    for kind in sorted({k for k, _ in results}):
        gw, bare = results[(kind, "gateway")], results[(kind, "bare")]
        parts.append(
            f"{kind} {gw['per_s']:.0f}/{bare['per_s']:.0f} = {gw['per_s'] / bare['per_s']:.2f}"
        )
    return "   ".join(parts)


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} (min {min(values):.2f}, max {max(values):.2f})"


def report(args: argparse.Namespace, f: dict[str, Any]) -> None:
    sources = (
        "one address, exempted by the load-test key"
        if args.loadtest_exempt
        else ("an address each, under the rate limits")
    )
    print(
        f"\n{args.rounds} rounds x {args.seconds}s per measurement, {args.connections} keep-alive "
        f"connections ({sources}), one request in flight each (raw asyncio client, one process)"
    )
    for kind, target in (("join", 0.6), ("status", 0.8)):
        if kind in args.kinds and f["rounds"]:
            report_kind(f["rounds"], kind, target)
    if "waiters" in f:
        report_waiters(f["waiters"])
    if "redis_anonymous" in f:
        print(
            f"Redis memory     {f['redis_anonymous']:.3f} B per anonymous waiting visitor, "
            f"{f['redis_with_code']:.0f} B per visitor with an access code "
            f"(used_memory delta / visitors, {args.redis_visitors:,} visitors each)"
        )


def report_kind(
    rounds: list[dict[tuple[str, str], dict[str, float]]], kind: str, target: float
) -> None:
    def col(server: str, key: str) -> list[float]:
        return [r[(kind, server)][key] for r in rounds]

    def ratio(key: str) -> list[float]:
        return [g / b for g, b in zip(col("gateway", key), col("bare", key), strict=True)]

    def med(server: str, key: str) -> float:
        return statistics.median(col(server, key))

    def busy(server: str) -> str:
        kernel = med(server, "server_sys_share")
        return (
            f"server {med(server, 'server_busy'):.2f} (kernel {kernel:.0%})"
            f" client {med(server, 'client_busy'):.2f}"
        )

    print(
        f"{LABELS[kind]:<8} gateway {med('gateway', 'per_s'):>6.0f}/s  "
        f"bare {med('bare', 'per_s'):>6.0f}/s  ratio {spread(ratio('per_s'))}  target >= {target}"
    )
    print(
        f"         per server CPU-s: gateway {med('gateway', 'per_cpu_s'):>6.0f}  "
        f"bare {med('bare', 'per_cpu_s'):>6.0f}  ratio {spread(ratio('per_cpu_s'))}"
    )
    others = sum(col("gateway", "other")) + sum(col("bare", "other"))
    print(
        f"         CPU-s per s (median): gateway {busy('gateway')} redis "
        f"{med('gateway', 'extra_busy'):.2f} | bare {busy('bare')}   [non-200: {others:.0f}]"
    )


def report_waiters(w: dict[str, Any]) -> None:
    held: list[Held] = w["held"]
    first, total = held[0], sum(h.waiters for h in held)
    per_waiter_kb = (first.rss_with_mb - first.rss_before_mb) * 1024 / max(1, first.waiters)
    at_50k_gb = (first.rss_before_mb + per_waiter_kb * 50_000 / 1024) / 1024
    print(
        f"SSE waiters      {first.waiters:,} held by one gateway process; its RSS "
        f"{first.rss_before_mb:.0f} MB -> {first.rss_with_mb:.0f} MB = {per_waiter_kb:.1f} KB per"
        f" waiter (from /proc/PID/status VmRSS)"
    )
    print(
        f"                 cursor move -> all its waiters had their new status in "
        f"{first.fanout_s:.2f}s (its CPU {first.fanout_cpu_s:.2f}s; includes up to one 0.2s"
        " refresh)"
    )
    if len(held) > 1:
        print(
            f"                 one process may open {w['fd_limit']:,} files here (the hard limit;"
            " raising it needs CAP_SYS_RESOURCE), so the rest ran in more gateway processes:"
        )
        print(
            f"                 {total:,} waiters in {len(held)} gateways "
            f"({' + '.join(f'{h.waiters:,}' for h in held)}; set up in {w['setup_s']:.0f}s), RSS "
            f"{' + '.join(f'{h.rss_with_mb:.0f}' for h in held)} MB; cursor move -> all {total:,}"
            f" had their new status in {max(h.fanout_s for h in held):.2f}s"
        )
    if first.waiters < 50_000:
        print(
            f"                 one process holding 50,000 waiters: {first.rss_before_mb:.0f} MB +"
            f" 50,000 x {per_waiter_kb:.1f} KB = {at_50k_gb:.2f} GB (target <= 1.5 GB), fan-out"
            f" ~{first.fanout_s * 50_000 / first.waiters:.1f}s (linear extrapolation)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--role", choices=["bench", "bare", "load", "waiters"], default="bench")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--kinds", type=lambda v: v.split(","), default=["join", "status"], help="join,status"
    )
    parser.add_argument("--waiters", type=int, default=50_000)
    parser.add_argument("--redis-visitors", type=int, default=1_000_000)
    parser.add_argument("--gateway-log", default="/tmp/fairq-bench-gateway.log")
    parser.add_argument(
        "--loadtest-exempt",
        action="store_true",
        help="all load from one address, over the limits, exempted by the load-test key",
    )
    parser.add_argument("--profile", default="", help="run the gateway under cProfile, to here")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--count", type=int, default=0)
    args = parser.parse_args()
    if args.role == "bare":
        eventloop.run(serve_bare(args.port), eventloop.from_env(os.environ))  # as the gateway's
    elif args.role == "load":
        print(json.dumps(asyncio.run(load(json.loads(sys.stdin.read())))))
    elif args.role == "waiters":
        asyncio.run(waiters(args.port, args.count))
    else:
        asyncio.run(orchestrate(args))


if __name__ == "__main__":
    main()
