"""A gateway's start over a booking history: time to ready and memory, by history size.

For each history size N it writes N bookings (each a Held then a Confirmed event, so
2N records, keyed by county over the topic's partitions) to the events topic of a
real Tansu broker, then starts a gateway process (``fairq gateway``) on a real Redis
twice: the first start finds the history new (the read model has none of it), the
second is a restart over it (what a gateway restarted in the middle of a launch
does). Each start is timed from the process's spawn to ``/readyz`` answering 200,
and its resident memory (RSS) is read then. Redis's ``used_memory`` is printed after
the first start (the read model lives there). Not a test; run it:

    python -m loadtest.bench_gateway_start [--bookings 0,100000,1000000] [--code DIR]
    python -m loadtest.bench_gateway_start --projection 10000

``--projection N`` measures the read model's projection alone, in this process (no
broker, no gateway): N bookings' records decoded and applied to a real Redis, with
the CPU this process and Redis spent on them.

``--code DIR`` runs the gateway from another checkout's sources (e.g. the commit
before the read model, extracted with ``git archive``) with this environment's
packages, to print the figures before and after in one run on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from fairq.config import Kafka, Topics
from fairq.devservices import free_port, kafka_broker, redis_server
from fairq.topics import DEFAULT_PARTITIONS, ensure_topics
from gateway.readmodel import ReadModel, Record
from loadtest.bench_allocator_core import print_header
from schemas.events import Appointment, Confirmed, Held, decode_event

OPERATOR_KEY = "bench-gateway-start-operator-key"
SIGNING_KEYS = "k1:bench-gateway-start-signing-key"
COUNTIES = 16
READY_TIMEOUT_S = 1800.0
SEND_WINDOW = 20_000  # records in flight while writing the history


def booking(i: int) -> tuple[str, list[bytes]]:
    """Booking ``i``'s county and its two records (held, then confirmed)."""
    county = f"county-{i % COUNTIES + 1}"
    pair = tuple(
        Appointment(
            dose,
            f"{county}-center-{i % 7 + 1}",
            f"Center {i % 7 + 1}",
            "vx",
            f"2030-03-{(i // 1000) % 20 + 1 + 21 * (dose - 1):02d}T{8 + i % 10:02d}:00:00+00:00",
            f"slot-{i}-{dose}",
        )
        for dose in (1, 2)
    )
    booking_id = f"bench-{i:08d}"
    held = Held(f"h{i}", booking_id, "camp", 1, i, f"id-{i}", county, pair, 10**13)
    return county, [held.pack(), Confirmed(f"c{i}", booking_id, "camp", 2, i, pair).pack()]


async def write_history(bootstrap: str, topic: str, bookings: int) -> float:
    """Write the bookings' records; returns the seconds it took."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=50, max_batch_size=1 << 20, acks=1
    )
    await producer.start()
    began = time.perf_counter()
    try:
        pending: list[asyncio.Future[object]] = []
        for i in range(bookings):
            county, records = booking(i)
            for value in records:
                pending.append(await producer.send(topic, value, key=county.encode()))
            if len(pending) >= SEND_WINDOW:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - began


@dataclass(frozen=True, slots=True)
class Start:
    ready_s: float
    rss_mb: float


async def start_gateway(env: dict[str, str], code: Path | None) -> Start:
    """Spawn a gateway, wait for ``/readyz`` 200, read its RSS, stop it."""
    port = free_port()
    env = env | {"FAIRQ_HTTP_PORT": str(port)}
    if code is not None:
        env["PYTHONPATH"] = str(code)
    argv = [sys.executable, "-c", "import sys; from fairq.cli import main; sys.exit(main())"]
    began = time.perf_counter()
    process = subprocess.Popen(
        [*argv, "gateway"],
        env=env,
        cwd=code,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with aiohttp.ClientSession() as session:
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"the gateway exited with {process.returncode}")
                if time.perf_counter() - began > READY_TIMEOUT_S:
                    raise RuntimeError("the gateway was not ready in time")
                try:
                    async with session.get(f"http://127.0.0.1:{port}/readyz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)
        ready_s = time.perf_counter() - began
        rss = psutil.Process(process.pid).memory_info().rss
        return Start(ready_s, rss / 2**20)
    finally:
        process.terminate()
        process.wait(30)


async def measure(args: argparse.Namespace, redis_url: str, bootstrap: str) -> None:
    print(
        f"{'bookings':>10} {'records':>9} {'write s':>8} {'1st start s':>12} {'1st RSS MB':>11}"
        f" {'restart s':>10} {'restart RSS MB':>15} {'Redis MB':>9}"
    )
    redis = aioredis.Redis.from_url(redis_url)
    try:
        for bookings in args.bookings:
            await redis.flushall()
            prefix = f"b{uuid.uuid4().hex[:8]}-"
            topics = Topics.from_env({"FAIRQ_TOPIC_PREFIX": prefix})
            await ensure_topics(Kafka(bootstrap), topics, partitions=args.partitions)
            write_s = await write_history(bootstrap, topics.events, bookings)
            env = dict(os.environ) | {
                "REDIS_URL": redis_url,
                "KAFKA_BOOTSTRAP": bootstrap,
                "FAIRQ_TOPIC_PREFIX": prefix,
                "FAIRQ_OPERATOR_KEY": OPERATOR_KEY,
                "FAIRQ_SIGNING_KEYS": SIGNING_KEYS,
            }
            first = await start_gateway(env, args.code)
            used = int((await redis.info("memory"))["used_memory"]) / 2**20
            again = await start_gateway(env, args.code)
            print(
                f"{bookings:>10,} {2 * bookings:>9,} {write_s:>8.1f} {first.ready_s:>12.2f}"
                f" {first.rss_mb:>11.0f} {again.ready_s:>10.2f} {again.rss_mb:>15.0f}"
                f" {used:>9.0f}",
                flush=True,
            )
    finally:
        await redis.aclose()


async def measure_projection(bookings: int, redis_url: str) -> None:
    redis = aioredis.Redis.from_url(redis_url)
    try:
        model = ReadModel(redis, "bench-events", retention_s=86_400)
        raws = [value for i in range(bookings) for value in booking(i)[1]]
        before = await redis.info("cpu")
        began, cpu = time.perf_counter(), time.process_time()
        records = [Record(offset, raw, decode_event(raw)) for offset, raw in enumerate(raws)]
        await model.project(0, 0, 0, records)
        wall_s, cpu_s = time.perf_counter() - began, time.process_time() - cpu
        after = await redis.info("cpu")
        redis_s = sum(after[k] - before[k] for k in ("used_cpu_user", "used_cpu_sys"))
        print(
            f"{len(records):,} records projected in {wall_s:.2f} s"
            f" ({len(records) / wall_s:,.0f}/s): this process {cpu_s:.2f} s CPU"
            f" (decoding included), Redis {redis_s:.2f} s CPU"
        )
    finally:
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--bookings",
        type=lambda s: [int(n) for n in s.split(",")],
        default=[0, 100_000, 1_000_000],
        help="history sizes, comma-separated (default 0,100000,1000000)",
    )
    parser.add_argument("--partitions", type=int, default=DEFAULT_PARTITIONS)
    parser.add_argument("--code", type=Path, help="run the gateway from this checkout")
    parser.add_argument("--projection", type=int, help="only project this many bookings")
    args = parser.parse_args()
    print_header("loadtest.bench_gateway_start")
    if args.projection is not None:
        with redis_server() as redis:
            asyncio.run(measure_projection(args.projection, redis.url))
        return
    print(f"gateway code: {args.code or 'this checkout'}")
    with redis_server() as redis, kafka_broker() as broker:
        asyncio.run(measure(args, redis.url, broker.url))


if __name__ == "__main__":
    main()
