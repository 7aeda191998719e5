"""End-to-end allocator throughput through the broker, against a bare consume-and-produce loop.

Puts the inventory and Book commands on a fresh commands topic in advance (keyed
by county), then starts the allocator process (``python -m fairq.cli allocator``)
and follows the events topic until every command is answered. The figure is
answers per second from the first answer to the last (and pairs held per second).

The reference, on the same broker in the same run, is a process running a bare
loop over the same commands topic: consume a batch, produce every record's value
unchanged (same count and sizes) to another topic on the same partition, wait for
the acks, commit — the allocator's loop without the allocation. The ratio is
allocator answers/s over bare records/s. Not a test; run it:

    python -m loadtest.bench_allocator_e2e [--campaign demo] [--books 100000] [--partitions 4]

Without ``--bootstrap`` it starts a private Tansu broker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from fairq.config import Topics
from fairq.devservices import kafka_broker
from fairq.topics import ensure_topics
from loadtest.bench_allocator_core import add_workload_args, print_header, workload
from schemas.commands import Command
from schemas.events import Held, Summary, decode_event

FOLLOW_TIMEOUT_S = 600.0


@contextlib.contextmanager
def broker(bootstrap: str | None) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
        return
    with kafka_broker() as server:
        yield server.url


async def produce_all(bootstrap: str, topic: str, commands: Sequence[tuple[str, Command]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=10
    )
    await producer.start()
    try:
        for i in range(0, len(commands), 10_000):
            futures = [
                await producer.send(topic, c.pack(), key=county.encode())
                for county, c in commands[i : i + 10_000]
            ]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def follow(bootstrap: str, topic: str, partitions: int, answers: int) -> tuple[float, int]:
    """Seconds from the first answer to the ``answers``-th, and the Held events among them."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen = held = 0
        first = 0.0
        while seen < answers:
            batch = await consumer.getmany(timeout_ms=500, max_records=20_000)
            for records in batch.values():
                for r in records:
                    event = decode_event(r.value or b"")
                    if isinstance(event, Summary):
                        continue
                    if not seen:
                        first = time.perf_counter()
                    seen += 1
                    held += isinstance(event, Held)
        return time.perf_counter() - first, held
    finally:
        await consumer.stop()


async def bare_loop(bootstrap: str, source: str, sink: str, records: int) -> float:
    """Consume ``records`` records of ``source`` and produce each to ``sink``, like the allocator.

    Returns the seconds from the first record in hand to the last commit.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=f"bare-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    await consumer.start()
    try:
        consumer.subscribe([source])
        done = 0
        first = 0.0
        while done < records:
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            if batch and not done:
                first = time.perf_counter()
            futures = []
            offsets = {}
            for tp, rs in batch.items():
                for r in rs:
                    futures.append(
                        await producer.send(sink, r.value, key=r.key, partition=tp.partition)
                    )
                    offsets[tp] = r.offset + 1
                done += len(rs)
            await asyncio.gather(*futures)
            if offsets:
                await consumer.commit(offsets)
        return time.perf_counter() - first
    finally:
        await consumer.stop()
        await producer.stop()


def spawn(argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, *argv], env=env, stderr=subprocess.DEVNULL)


async def measure(args: argparse.Namespace, bootstrap: str) -> None:
    adds, books, places = workload(args)
    books = books[: args.books]
    commands = [(a.county, a) for a in adds] + [(b.county, b) for b in books]
    prefix = f"bench{uuid.uuid4().hex[:6]}-"
    topics = Topics(f"{prefix}booking-commands", f"{prefix}booking-events")
    bare = Topics(topics.commands, f"{prefix}bare-out")
    await ensure_topics(bootstrap, topics, args.partitions)
    await ensure_topics(bootstrap, bare, args.partitions)
    started = time.perf_counter()
    await produce_all(bootstrap, topics.commands, commands)
    print(f"slot places: {places}, commands: {len(commands)} ({len(books)} books)")
    print(f"produced in advance in {time.perf_counter() - started:.1f} s")

    env = dict(os.environ) | {
        "REDIS_URL": "redis://unused",
        "KAFKA_BOOTSTRAP": bootstrap,
        "FAIRQ_TOPIC_PREFIX": prefix,
        "FAIRQ_ALLOCATOR_GROUP": f"bench-{uuid.uuid4().hex[:8]}",
        "FAIRQ_LOG_LEVEL": "WARNING",
    }
    allocator = spawn(["-m", "fairq.cli", "allocator"], env)
    try:
        alloc_s, held = await asyncio.wait_for(
            follow(bootstrap, topics.events, args.partitions, len(commands)), FOLLOW_TIMEOUT_S
        )
    finally:
        allocator.terminate()
        allocator.wait()
    bare_s = await asyncio.wait_for(
        bare_loop(bootstrap, topics.commands, bare.events, len(commands)), FOLLOW_TIMEOUT_S
    )
    alloc_rate = len(commands) / alloc_s
    bare_rate = len(commands) / bare_s
    print(
        f"allocator: {alloc_rate:,.0f} answers/s, {held / alloc_s:,.0f} pairs held/s "
        f"({held} pairs in {alloc_s:.2f} s, first to last answer)"
    )
    print(f"bare consume-and-produce loop: {bare_rate:,.0f} records/s ({bare_s:.2f} s)")
    print(f"allocator / bare: {alloc_rate / bare_rate:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_workload_args(parser)
    parser.add_argument("--books", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP"))
    args = parser.parse_args()
    print_header(__spec__.name if __spec__ else __name__)
    with broker(args.bootstrap) as bootstrap:
        asyncio.run(measure(args, bootstrap))


if __name__ == "__main__":
    main()
