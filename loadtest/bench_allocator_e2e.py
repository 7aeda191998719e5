"""End-to-end allocator throughput through the broker, against a bare consume-and-produce loop.

Puts the inventory and Book commands on a fresh commands topic in advance (keyed
by county), then starts the allocator process (``python -m fairq.cli allocator``)
and follows the events topic until every command is answered. The figure is
answers per second from the first answer to the last (and pairs held per second),
with the CPU time the allocator process used in that span (its share of the span,
and per answer: on a shared machine the rate it would reach on a CPU of its own).

The reference, on the same broker in the same run, is a process running a bare
loop over the same commands topic with the allocator's own Kafka plumbing
(``allocator.service``: the same consumer and producer settings, fetch size,
produce batches, acks, yields, and commits in order up to two batches behind): consume a batch,
produce every record's value unchanged (same count and sizes) to another topic
on the same partition, wait for the acks and commit while the next batch is
copied — the allocator's loop without decoding, allocating and encoding. It is
followed the same way (the follower unpacks every record in both runs). The
ratio is allocator answers/s over bare records/s. Each of ``--rounds`` rounds
runs both on fresh topics, which goes first alternating, and the medians are
reported with their spread; besides the ratio of rates (which on a busy machine
depends on what else runs), the ratio per CPU-second (bare loop CPU per record
over allocator CPU per record), which does not. Not a test; run it:

    python -m loadtest.bench_allocator_e2e [--campaign demo] [--books 100000] [--partitions 4]
        [--rounds 3]

The allocator and the bare loop run on the event loop ``FAIRQ_EVENT_LOOP`` chooses
(``fairq.eventloop``: uvloop by default where installed), both on the same one.

Without ``--bootstrap`` it starts a private Tansu broker. ``--profile FILE``
writes a cProfile of the allocator process; ``--allocator-from DIR`` runs the
allocator of another checkout (``git archive <rev> | tar -x -C DIR``) against the
same harness, for before/after figures.

``--snapshot-slots 3400000`` then also measures how long snapshotting a state of
that many slots (half booked) holds up the loop: the old way (dump in a thread,
then write to the snapshots topic, with the batch's lock held throughout) against
the forked dump of ``allocator.snapshotter`` (loop held for the fork; the longest
event-loop stall while the bytes are read and written in the background; the
memory the child copied). It takes a few minutes and several GiB.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import msgpack
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from allocator.core import Allocator
from allocator.outbox import Outbox, Shipper, make_producer
from allocator.service import (
    IN_FLIGHT_BATCHES,
    MAX_BATCH_RECORDS,
    POLL_TIMEOUT_MS,
    YIELD_EVERY_RECORDS,
)
from allocator.snapshotstore import SnapshotStore
from allocator.snapshotter import Dump
from fairq import eventloop
from fairq.config import Kafka, Topics
from fairq.devservices import kafka_broker
from fairq.groups import group_member
from fairq.topics import ensure_topics
from loadtest.bench_allocator_core import (
    CAMPAIGN,
    NOW_MS,
    add_workload_args,
    print_header,
    workload,
)
from loadtest.bench_allocator_memory import COUNTIES, load
from schemas.commands import Book, Command

FOLLOW_TIMEOUT_S = 600.0
PROBE_S = 0.005  # the event-loop lag probe's sleep
MEMORY_EVERY_S = 0.5
SNAPSHOT_DAYS = 170
SNAPSHOT_SLOTS_PER_DAY = 200
CHUNK_BYTES = 512 * 1024  # the allocator's default snapshot_chunk_bytes
SESSION_TIMEOUT_MS = 10_000  # the allocator's default


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


def cpu_s(pid: int) -> float:
    """User plus system CPU seconds a process has used so far (Linux)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Followed:
    records: int = 0  # answers (records other than summaries)
    held: int = 0
    first: float = 0.0  # perf_counter at the first answer
    last: float = 0.0
    cpu_first: float = 0.0  # CPU seconds of the followed process at the first answer
    cpu_last: float = 0.0

    @property
    def seconds(self) -> float:
        return self.last - self.first

    @property
    def cpu_share(self) -> float:
        return (self.cpu_last - self.cpu_first) / self.seconds

    @property
    def cpu_us(self) -> float:
        """CPU microseconds of the followed process per record, first to last."""
        return (self.cpu_last - self.cpu_first) * 1e6 / max(1, self.records - 1)


async def follow(
    bootstrap: str, topic: str, partitions: int, records: int, cpu: Callable[[], float]
) -> Followed:
    """Read ``topic`` until ``records`` answers (records but summaries) are seen.

    Every record is unpacked to look at its type, the same work for events and
    for the bare loop's copies of commands.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out = Followed()
        while out.records < records:
            batch = await consumer.getmany(timeout_ms=500, max_records=20_000)
            for rs in batch.values():
                for r in rs:
                    kind = msgpack.unpackb(r.value or b"", raw=False).get("type")
                    if kind == "summary":
                        continue
                    if not out.records:
                        out.first, out.cpu_first = time.perf_counter(), cpu()
                    out.records += 1
                    out.held += kind == "held"
        out.last, out.cpu_last = time.perf_counter(), cpu()
        return out
    finally:
        await consumer.stop()


async def bare_loop(bootstrap: str, source: str, sink: str, stop: asyncio.Event) -> None:
    """Copy every record of ``source`` to ``sink`` (same partition) with the allocator's
    plumbing, until ``stop``: the allocator's loop without the allocation."""
    consumer = group_member(Kafka(bootstrap), f"bare-{uuid.uuid4().hex[:8]}", SESSION_TIMEOUT_MS)
    producer = make_producer(Kafka(bootstrap))
    await producer.start()
    await consumer.start()

    async def finish(
        before: asyncio.Task[None] | None, outbox: Outbox, offsets: dict[TopicPartition, int]
    ) -> None:
        await outbox.acknowledged()
        if before is not None:
            await before
        if offsets:
            await consumer.commit(offsets)

    shipper = Shipper(producer, sink)
    in_flight: collections.deque[asyncio.Task[None]] = collections.deque()
    try:
        consumer.subscribe([source])
        while not stop.is_set():
            batch = await consumer.getmany(
                timeout_ms=POLL_TIMEOUT_MS, max_records=MAX_BATCH_RECORDS
            )
            if not batch:
                continue
            outbox = shipper.outbox()
            offsets = {}
            for tp, rs in batch.items():
                for i, r in enumerate(rs, 1):
                    if not i % YIELD_EVERY_RECORDS:
                        outbox.release()
                        await asyncio.sleep(0)
                    outbox.add(tp.partition, r.key, r.value or b"")
                offsets[tp] = rs[-1].offset + 1
            outbox.ship()
            while len(in_flight) >= IN_FLIGHT_BATCHES:  # as the allocator
                await in_flight.popleft()
            before = in_flight[-1] if in_flight else None
            in_flight.append(asyncio.create_task(finish(before, outbox, offsets)))
    finally:
        await asyncio.gather(*in_flight, return_exceptions=True)
        await shipper.close()
        await consumer.stop()
        await producer.stop()


async def serve_bare_loop(bootstrap: str, source: str, sink: str) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await bare_loop(bootstrap, source, sink, stop)


def spawn(
    argv: list[str],
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    log: str | None = None,
) -> subprocess.Popen[bytes]:
    with open(log or os.devnull, "ab") as err:
        return subprocess.Popen([sys.executable, *argv], env=env, cwd=cwd, stderr=err)


async def run_followed(
    process: subprocess.Popen[bytes], bootstrap: str, topic: str, partitions: int, records: int
) -> Followed:
    try:
        return await asyncio.wait_for(
            follow(bootstrap, topic, partitions, records, lambda: cpu_s(process.pid)),
            FOLLOW_TIMEOUT_S,
        )
    finally:
        process.terminate()
        process.wait()


@dataclass(frozen=True)
class Round:
    alloc: Followed
    bare: Followed
    records: int

    @property
    def alloc_rate(self) -> float:
        return self.records / self.alloc.seconds

    @property
    def bare_rate(self) -> float:
        return self.records / self.bare.seconds

    @property
    def ratio(self) -> float:
        return self.alloc_rate / self.bare_rate

    @property
    def cpu_ratio(self) -> float:
        """Allocator over bare loop per CPU-second: the ratio on an otherwise idle machine."""
        return self.bare.cpu_us / self.alloc.cpu_us


async def measure(args: argparse.Namespace, bootstrap: str) -> None:
    """``--rounds`` rounds, each on fresh topics, allocator and bare loop in turn (which
    goes first alternates); every round's figures, then the medians."""
    adds, books, places = workload(args)
    books = books[: args.books]
    commands = [(a.county, a) for a in adds] + [(b.county, b) for b in books]
    print(f"slot places: {places}, commands: {len(commands)} ({len(books)} books)")
    rounds = []
    for r in range(args.rounds):
        one = await measure_round(args, bootstrap, commands, bare_first=r % 2 == 1)
        rounds.append(one)
        print(
            f"round {r + 1}/{args.rounds}: allocator {one.alloc_rate:,.0f} answers/s "
            f"({one.alloc.cpu_us:.1f} µs CPU each, on CPU {one.alloc.cpu_share:.0%}), bare "
            f"{one.bare_rate:,.0f} records/s ({one.bare.cpu_us:.1f} µs CPU each, on CPU "
            f"{one.bare.cpu_share:.0%}); ratio {one.ratio:.2f}, per CPU-second {one.cpu_ratio:.2f}"
        )
    report(rounds)


def report(rounds: list[Round]) -> None:
    def med(values: list[float]) -> float:
        return statistics.median(values)

    def spread(values: list[float], fmt: str = ".2f") -> str:
        return f"median {med(values):{fmt}} (min {min(values):{fmt}}, max {max(values):{fmt}})"

    alloc_us = med([r.alloc.cpu_us for r in rounds])
    print(
        f"allocator: {spread([r.alloc_rate for r in rounds], ',.0f')} answers/s, "
        f"{med([r.alloc.held / r.alloc.seconds for r in rounds]):,.0f} pairs held/s "
        f"(first to last answer; {rounds[0].alloc.held} pairs per round)"
    )
    print(
        f"bare consume-and-produce loop: {spread([r.bare_rate for r in rounds], ',.0f')} records/s"
    )
    print(f"allocator / bare: {spread([r.ratio for r in rounds])}")
    print(
        f"CPU per record: allocator {alloc_us:.1f} µs per answer (at most {1e6 / alloc_us:,.0f} "
        f"answers/s on a CPU of its own), bare loop {med([r.bare.cpu_us for r in rounds]):.1f} µs;"
        f" allocator / bare per CPU-second: {spread([r.cpu_ratio for r in rounds])}"
    )


async def measure_round(
    args: argparse.Namespace,
    bootstrap: str,
    commands: Sequence[tuple[str, Command]],
    bare_first: bool,
) -> Round:
    prefix = f"bench{uuid.uuid4().hex[:6]}-"
    topics = Topics(f"{prefix}booking-commands", f"{prefix}booking-events")
    bare = Topics(topics.commands, f"{prefix}bare-out")
    await ensure_topics(Kafka(bootstrap), topics, args.partitions)
    await ensure_topics(Kafka(bootstrap), bare, args.partitions)
    await produce_all(bootstrap, topics.commands, commands)
    env = dict(os.environ) | {
        "REDIS_URL": "redis://unused",
        "KAFKA_BOOTSTRAP": bootstrap,
        "FAIRQ_TOPIC_PREFIX": prefix,
        "FAIRQ_ALLOCATOR_GROUP": f"bench-{uuid.uuid4().hex[:8]}",
        "FAIRQ_LOG_LEVEL": "INFO" if args.allocator_log else "WARNING",
    }
    profile = ["-m", "cProfile", "-o", args.profile] if args.profile else []
    me = __spec__.name if __spec__ else "loadtest.bench_allocator_e2e"

    async def run_allocator() -> Followed:
        # ``-m`` puts the working directory first on the path: another checkout's
        # allocator is run from there, for a before/after comparison.
        argv = [*profile, "-m", "fairq.cli", "allocator"]
        process = spawn(argv, env, args.allocator_from, args.allocator_log)
        return await run_followed(process, bootstrap, topics.events, args.partitions, len(commands))

    async def run_bare() -> Followed:
        copier = spawn(
            ["-m", me, "--bootstrap", bootstrap, "--bare-loop", bare.commands, bare.events]
        )
        return await run_followed(copier, bootstrap, bare.events, args.partitions, len(commands))

    if bare_first:
        ref = await run_bare()
        alloc = await run_allocator()
    else:
        alloc = await run_allocator()
        ref = await run_bare()
    return Round(alloc, ref, len(commands))


class LagProbe:
    """Sleeps ``PROBE_S`` again and again and keeps the longest overshoot: how long the
    event loop could not run anything else. Samples a child's copied memory meanwhile,
    every ``MEMORY_EVERY_S`` in a thread (reading it walks the child's page tables)."""

    def __init__(self) -> None:
        self.max_lag_s = 0.0
        self.max_private_mib = 0.0
        self.pid: int | None = None
        self._tasks = [asyncio.create_task(self._lag()), asyncio.create_task(self._memory())]

    async def _lag(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(PROBE_S)
            self.max_lag_s = max(self.max_lag_s, time.perf_counter() - started - PROBE_S)

    async def _memory(self) -> None:
        while True:
            await asyncio.sleep(MEMORY_EVERY_S)
            if self.pid is not None:
                mib = await asyncio.to_thread(private_mib, self.pid)
                self.max_private_mib = max(self.max_private_mib, mib)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def private_mib(pid: int) -> float:
    """A process's private dirty memory (its pages copied since a fork), 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Private_Dirty:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def snapshot_state(slots: int) -> Allocator:
    """A core with ``slots`` one-place slots, half of the places booked."""
    per_line = SNAPSHOT_DAYS * SNAPSHOT_SLOTS_PER_DAY
    shape = argparse.Namespace(
        lines=max(1, slots // per_line),
        days=SNAPSHOT_DAYS,
        slots_per_day=SNAPSHOT_SLOTS_PER_DAY,
        capacity=1,
    )
    core = Allocator()
    offset = load(core, shape)
    for i in range(shape.lines * per_line // 4):  # a pair takes two places
        book = Book(f"cmd-{i}", f"bk-{i}", CAMPAIGN, f"person-{i}", f"county-{i % COUNTIES}")
        core.apply(offset, NOW_MS, book)
        offset += 1
    return core


async def measure_snapshot(args: argparse.Namespace, bootstrap: str) -> None:
    """How long taking one snapshot of a large state holds up the loop, the old way (dump
    in a thread and write, the batch's lock held throughout) and the new way (fork)."""
    started = time.perf_counter()
    core = snapshot_state(args.snapshot_slots)
    print(
        f"snapshot state: {args.snapshot_slots:,} slots, half booked, built in "
        f"{time.perf_counter() - started:.0f} s"
    )
    store = SnapshotStore(Kafka(bootstrap), f"bench{uuid.uuid4().hex[:6]}-snapshots", CHUNK_BYTES)
    await store.ensure_topic(1)
    producer = make_producer(Kafka(bootstrap))
    await producer.start()
    try:
        started = time.perf_counter()
        data = await asyncio.to_thread(core.snapshot)
        dumped = time.perf_counter()
        await store.write(producer, 0, core.next_offset, data)
        written = time.perf_counter()
        print(
            f"old way: loop held {written - started:.1f} s ({dumped - started:.1f} s dumping "
            f"{len(data) / 2**20:,.0f} MiB in a thread, {written - dumped:.1f} s writing)"
        )
        del data
        probe = LagProbe()
        started = time.perf_counter()
        job = Dump.start(core)
        forked = time.perf_counter()
        probe.pid = job.pid
        data = await job.result()
        dumped = time.perf_counter()
        probe.pid = None
        await store.write(producer, 0, core.next_offset, data)
        written = time.perf_counter()
        await probe.stop()
        print(
            f"new way: loop held {(forked - started) * 1000:.0f} ms (the fork); in the "
            f"background {dumped - forked:.1f} s dumping in the child and {written - dumped:.1f} s "
            f"writing, the event loop stalled at most {probe.max_lag_s * 1000:.0f} ms "
            f"meanwhile; the child copied up to {probe.max_private_mib:,.0f} MiB"
        )
    finally:
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_workload_args(parser)
    parser.add_argument("--books", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP"))
    parser.add_argument("--profile", help="write a cProfile of the allocator process here")
    parser.add_argument("--allocator-log", metavar="FILE", help="append the allocator's log here")
    parser.add_argument(
        "--allocator-from",
        metavar="DIR",
        help="run the allocator of another checkout (e.g. from git archive) instead",
    )
    parser.add_argument(
        "--snapshot-slots",
        type=int,
        default=0,
        help="also measure the loop stall of snapshotting a state of this many slots",
    )
    parser.add_argument("--bare-loop", nargs=2, metavar=("SOURCE", "SINK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_loop:  # the reference process, started by measure()
        loop = eventloop.from_env(os.environ)  # as the allocator's
        eventloop.run(serve_bare_loop(args.bootstrap, *args.bare_loop), loop)
        return
    print_header(__spec__.name if __spec__ else __name__)
    loop = eventloop.from_env(os.environ)
    print(f"event loop of the allocator and the bare loop: {loop} ({eventloop.ENV})")
    with broker(args.bootstrap) as bootstrap:
        asyncio.run(measure(args, bootstrap))
        if args.snapshot_slots:
            asyncio.run(measure_snapshot(args, bootstrap))


if __name__ == "__main__":
    main()
