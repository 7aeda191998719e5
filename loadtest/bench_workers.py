"""Status checks per second of ``fairq gateway --workers 1`` and ``--workers 2``.

Starts a private redis-server and Tansu broker, one room open in Redis, and two
gateways side by side: one with one worker, one with two workers sharing a port
(``gateway.workers``). The load is ``loadtest.bench_gateway``'s: a separate process
(raw asyncio client, keep-alive, one request in flight per connection, each
connection from a 127.0.0.x of its own so the kernel's SO_REUSEPORT hash spreads
them), ``GET /api/rooms/{room}/status`` with a ticket each. Rounds alternate which
gateway goes first; each round gives the ratio (2 workers / 1 worker, measured back
to back) and the median ratio is reported with its spread.

Each line says what every process took in CPU-seconds per second over the window:
the load generator, each worker, Redis. Two workers can double the rate only with
two idle cores beside the load generator and Redis: on a 2-core machine the cores
are the limit, and the figures say how far from it each process was.

Not a test; run it:

    python -m loadtest.bench_workers [--rounds 5] [--seconds 3] [--connections 64]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
from typing import Any

import psutil

from fairq.devservices import free_port, kafka_broker, redis_server
from loadtest.bench_gateway import (
    HOST,
    LOADTEST_HEADERS,
    ROOM,
    child,
    gateway_env,
    machine,
    open_bench_room,
    raise_fd_limit,
    run_load,
    tickets_for,
    wait_http,
)
from loadtest.rawhttp import request_bytes

WORKERS = (1, 2)


async def worker_pids(parent: int, workers: int) -> list[int]:
    """The serving processes of a gateway started with ``workers``: itself for one."""
    if workers == 1:
        return [parent]
    while len(children := psutil.Process(parent).children()) < workers:
        await asyncio.sleep(0.1)
    return [c.pid for c in children]


def status_spec(
    port: int, pids: list[int], redis_pid: int, tickets: list[str], seconds: float
) -> dict[str, Any]:
    requests = [
        request_bytes(
            "GET",
            f"/api/rooms/{ROOM}/status",
            f"{HOST}:{port}",
            LOADTEST_HEADERS | {"Authorization": f"Bearer {t}"},
        ).decode("latin-1")
        for t in tickets
    ]
    return {
        "port": port,
        "server_pid": pids[0],
        "extra_pids": [*pids[1:], redis_pid],
        "own_addresses": True,
        "seconds": seconds,
        "requests": requests,
    }


def line(workers: int, r: dict[str, Any]) -> str:
    busy = r["busy_by_pid"]
    each = " + ".join(f"{b:.2f}" for b in busy[:-1])
    return (
        f"{workers} worker{'s' if workers > 1 else ' '}: {r['per_s']:>6.0f} statuses/s"
        f"  [CPU-s/s: workers {each} = {sum(busy[:-1]):.2f}, redis {busy[-1]:.2f},"
        f" load generator {r['client_busy']:.2f}; non-200 {r['other']:.0f}]"
    )


async def orchestrate(args: argparse.Namespace) -> None:
    print(f"machine: {machine()}; load average {load_average()}")
    print(f"command: {' '.join([sys.executable, '-m', 'loadtest.bench_workers', *sys.argv[1:]])}")
    raise_fd_limit()
    with redis_server() as rs, kafka_broker() as kb:
        await (await open_bench_room(rs.url, kb.url)).aclose()
        ports = {w: free_port() for w in WORKERS}
        async with contextlib.AsyncExitStack() as stack:
            pids: dict[int, list[int]] = {}
            for w in WORKERS:
                env = gateway_env(rs.url, kb.url, ports[w], False, workers=w)
                log = f"{args.gateway_log}.{w}"
                parent = await stack.enter_async_context(
                    child("-m", "fairq.cli", "gateway", env=env, log=log)
                )
                await wait_http(f"http://{HOST}:{ports[w]}/readyz")
                pids[w] = await worker_pids(parent, w)
            tickets = await tickets_for(ports[1], args.connections)
            specs = {
                w: status_spec(ports[w], pids[w], rs.process.pid, tickets, args.seconds)
                for w in WORKERS
            }
            rounds: list[dict[int, dict[str, Any]]] = []
            for r in range(args.rounds):
                order = WORKERS if r % 2 == 0 else WORKERS[::-1]
                results = {w: await run_load(specs[w]) for w in order}
                rounds.append(results)
                print(f"round {r + 1}/{args.rounds}:", flush=True)
                for w in WORKERS:
                    print(f"  {line(w, results[w])}", flush=True)
    report(args, rounds)
    print(f"load average at the end {load_average()} (other jobs on the machine count)")


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def report(args: argparse.Namespace, rounds: list[dict[int, dict[str, Any]]]) -> None:
    def med(w: int, key: str) -> float:
        return float(statistics.median(r[w][key] for r in rounds))

    ratios = [r[2]["per_s"] / r[1]["per_s"] for r in rounds]
    print(
        f"\n{args.rounds} rounds x {args.seconds}s, {args.connections} keep-alive connections"
        " (an address each), one status check in flight each, one load process"
    )
    for w in WORKERS:
        workers_busy = statistics.median(sum(r[w]["busy_by_pid"][:-1]) for r in rounds)
        per_cpu_s = statistics.median(r[w]["per_s"] / workers_busy_of(r[w]) for r in rounds)
        print(
            f"{w} worker{'s' if w > 1 else ' '}  {med(w, 'per_s'):>6.0f} statuses/s (median),"
            f" {per_cpu_s:>6.0f} per worker CPU-s; CPU-s/s: workers {workers_busy:.2f},"
            f" load generator {med(w, 'client_busy'):.2f}"
        )
    per_cpu = [
        (r[2]["per_s"] / workers_busy_of(r[2])) / (r[1]["per_s"] / workers_busy_of(r[1]))
        for r in rounds
    ]
    print(
        f"2 workers / 1 worker: statuses/s median {statistics.median(ratios):.2f}"
        f" (min {min(ratios):.2f}, max {max(ratios):.2f}); per worker CPU-s median"
        f" {statistics.median(per_cpu):.2f} (min {min(per_cpu):.2f}, max {max(per_cpu):.2f})"
    )


def workers_busy_of(result: dict[str, Any]) -> float:
    """CPU-seconds per second the workers took (all but the last pid, Redis)."""
    return max(float(sum(result["busy_by_pid"][:-1])), 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--gateway-log", default="/tmp/fairq-bench-workers.log")
    asyncio.run(orchestrate(parser.parse_args()))


if __name__ == "__main__":
    main()
