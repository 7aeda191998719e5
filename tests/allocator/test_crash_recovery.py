"""SIGKILL the allocator process again and again during a storm of commands.

The allocator runs as ``python -m fairq.cli allocator`` with snapshots every few
thousand records. A storm of more than 20,000 commands goes to the commands topic
while the process is killed at seeded random moments (measured in answers seen) and
started again. The storm has inventory and deliveries, books (some for a priority
group, some that wait on the waitlist when nothing is left), confirms, cancels that
give pairs back to the waitlist (Offered), short holds that expire, redeliveries,
priority reserves released at seeded moments inside the run (times from the test's
start: the only thing of the storm not fixed by the seed), removals of slots (free
ones accepted, used ones refused) and moves. Some moves go to a county of another
partition: the allocator puts their transfers on the commands topic itself
(``schemas.commands.TransferIn``), and a kill may land between any two steps. Then,
from the topics alone:

- every command has exactly one answer, once exact repeats (replays) are dropped;
- applying the events in order by ``rev`` never puts a slot over capacity;
- the events, repeats dropped, equal those of a fresh in-process ``Allocator`` fed
  the whole commands log (transfers and their repeats included), and the state that
  replay ends in has no slot over capacity and no booking live in two partitions;
- the storm did what it is for: waitlistings, offers, reserves set and released,
  slots removed, moves across partitions.

A restarted member of a group whose dead member never left waits a session
timeout (6 s here) and a rebalance before it is given the partitions: about 11 s a
kill, which is most of the test's time. (A kill that lands before the restarted
process joined costs almost nothing, so how long a run takes depends on where the
seeded kills fall.)
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from fairq.config import Connections
from fairq.processes import spawn, stop
from schemas.commands import (
    AddInventory,
    Command,
    RemoveInventory,
    SetReserve,
    TransferAnswer,
    TransferIn,
    decode_command,
)
from schemas.events import (
    Event,
    InventoryRemoved,
    Moved,
    ReserveSet,
    Summary,
    decode_event,
)
from tests.allocator import add, book, cancel, confirm, move, remove, reserve, slot
from tests.allocator.eventlogs import (
    answers,
    committed_offsets,
    decode_events,
    dedup,
    max_overbooking,
    read_topic,
    replay,
)
from tests.conftest import TEST_PARTITIONS, TEST_SESSION_TIMEOUT_MS

pytestmark = [pytest.mark.e2e, pytest.mark.both_brokers, pytest.mark.timeout(240)]

SEED = 20261123
KILLS = 3
BOOKS = 14_000
COUNTIES = [f"county-{i}" for i in range(8)]
# Books of these counties may wait on the waitlist. The others have none, so pairs given
# back there stay free for moves from other partitions (which arrive after the rest of
# their phase, when every county is sold out) to find.
WAITLIST_COUNTIES = frozenset(COUNTIES[::2])
HOURS = (8, 10, 12, 14)
GROUP = "care"  # the priority group of some Books and of every reserve
RELEASES_MS = (4_000, 12_000)  # reserves are released this long after the test's start
PROGRESS_TIMEOUT_S = 90.0
RESTORED = re.compile(r"rebuilt from a snapshot at (\d+) ")

Keyed = tuple[str, Command]  # (county key, command)
Inventory = dict[str, AddInventory | RemoveInventory]  # by command id


class Storm:
    """The storm's commands in the order they are produced, drawn from ``rng``."""

    def __init__(self, rng: random.Random, start_ms: int) -> None:
        self.rng = rng
        self.start_ms = start_ms
        self.out: list[Keyed] = []
        self.inventory: Inventory = {}  # Add/RemoveInventory by command id
        self.booked: list[tuple[str, str]] = []  # (county, booking id)

    def deliver(self, command_id: str, county: str, days: range, capacity: int) -> None:
        specs = [slot(d, h, capacity) for d in days for h in HOURS]
        cmd = add(command_id, county, f"{county}-center", specs, campaign="storm")
        self.inventory[command_id] = cmd
        self.out.append((county, cmd))

    def reserve(self, command_id: str, county: str, shares: tuple[int, ...]) -> None:
        """A SetReserve for GROUP on a day of ``county`` (share 0: the reserve removed),
        released at a seeded moment of the run (refused if its record comes later)."""
        rng = self.rng
        release_at_ms = self.start_ms + rng.randrange(*RELEASES_MS)
        cmd = reserve(
            command_id,
            county,
            f"{county}-center",
            rng.randrange(40),
            GROUP,
            rng.choice(shares),
            mode=rng.choice(("over_and_above", "minimum_guarantee")),
            release_at_ms=release_at_ms,
            campaign="storm",
        )
        self.out.append((county, cmd))

    def remove(self, command_id: str, county: str) -> None:
        """A RemoveInventory of one or two late slots: free ones early in the storm."""
        rng = self.rng
        specs = [slot(rng.randrange(28, 40), rng.choice(HOURS)) for _ in range(rng.randint(1, 2))]
        cmd = remove(command_id, county, f"{county}-center", specs, campaign="storm")
        self.inventory[command_id] = cmd
        self.out.append((county, cmd))

    def book(self, n: int, books: int) -> None:
        """Book ``n``: some for GROUP, some (in WAITLIST_COUNTIES) waiting on the waitlist
        when nothing is left."""
        rng = self.rng
        county = rng.choice(COUNTIES)
        identity = f"p{rng.randrange(books)}" if rng.random() < 0.05 else f"person-{n}"
        hold_s = 2 if rng.random() < 0.1 else 600
        cmd = book(
            f"b{n}",
            f"k{n}",
            identity,
            county,
            hold_s=hold_s,
            campaign="storm",
            group=GROUP if rng.random() < 0.15 else None,
            waitlist=county in WAITLIST_COUNTIES and rng.random() < 0.5,
        )
        self.out.append((county, cmd))
        self.booked.append((county, f"k{n}"))

    def follow_up(self, n: int) -> None:
        """Maybe a command on an earlier booking, or a redelivery, after Book ``n``."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.30:
            c, k = rng.choice(self.booked[-50:])
            self.out.append((c, confirm(f"f{n}", k, "storm")))
        elif roll < 0.40:  # mostly of rejected Books; the others give their pair back
            c, k = rng.choice(self.booked)
            self.out.append((c, cancel(f"x{n}", k, "storm")))
        elif roll < 0.45:
            self.out.append(rng.choice(self.out))  # a redelivery: the same command again
        elif roll < 0.50:  # keyed by the county of the Book; it may have moved since
            c, k = rng.choice(self.booked[-200:])
            target = rng.choice(COUNTIES)
            self.out.append((c, move(f"m{n}", k, county=target, campaign="storm")))


def storm(rng: random.Random, start_ms: int, books: int = BOOKS) -> tuple[list[Keyed], Inventory]:
    """The commands, in the order they are produced, and the inventory commands by id.

    Every county gets 40 days of slots and a reserve for GROUP at once; deliveries
    come every 2,000 Books, changed or removed reserves every 1,000, removals of
    slots among the first 2,000 Books (while the late days are still free)."""
    s = Storm(rng, start_ms)
    for county in COUNTIES:
        s.deliver(f"add-{county}", county, range(0, 40), 3)
    for county in COUNTIES:
        s.reserve(f"reserve-{county}", county, (34, 50, 67))
    for n in range(books):
        s.book(n, books)
        s.follow_up(n)
        if n < 2000 and n % 100 == 50:
            s.remove(f"remove-{n}", rng.choice(COUNTIES))
        if n % 1000 == 999:
            s.reserve(f"reserve-{n}", rng.choice(COUNTIES), (0, 34, 67))
        if n % 2000 == 1999:
            s.deliver(f"delivery-{n}", rng.choice(COUNTIES), range(40, 46), 2)
    return s.out, s.inventory


class Answers:
    """Follows the events topic, counting the distinct commands answered."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self.tps = [TopicPartition(topic, p) for p in range(TEST_PARTITIONS)]
        self.answered: set[str] = set()
        self.clock: dict[int, int] = {}  # partition -> the newest summary's at_ms

    async def start(self) -> None:
        await self.consumer.start()
        self.consumer.assign(self.tps)
        await self.consumer.seek_to_beginning(*self.tps)

    async def reach(self, count: int) -> None:
        await self._until(lambda: len(self.answered) >= count)

    async def past(self, at_ms: int) -> None:
        """Until every partition with a campaign summarised it at ``at_ms`` or later
        (a reserve released then is released in the log: on a quick broker the storm
        can be answered before the last release)."""
        await self._until(lambda: bool(self.clock) and min(self.clock.values()) >= at_ms)

    async def _until(self, done: Callable[[], bool]) -> None:
        async def loop() -> None:
            while not done():
                batch = await self.consumer.getmany(timeout_ms=500, max_records=10_000)
                for records in batch.values():
                    for r in records:
                        e = decode_event(r.value or b"")
                        if isinstance(e, Summary):
                            self.clock[r.partition] = max(e.at_ms, self.clock.get(r.partition, 0))
                        else:
                            self.answered.add(e.command_id)

        await asyncio.wait_for(loop(), PROGRESS_TIMEOUT_S)


@pytest.fixture
def allocator_env(connections: Connections) -> dict[str, str]:
    return dict(os.environ) | {
        "REDIS_URL": connections.redis_url,
        **connections.kafka_env(),
        "FAIRQ_TOPIC_PREFIX": connections.topics.commands.removesuffix("booking-commands"),
        "FAIRQ_ALLOCATOR_GROUP": f"crash-{uuid.uuid4().hex[:8]}",
        "FAIRQ_TICK_INTERVAL_S": "0.2",
        "FAIRQ_ALLOCATOR_SESSION_TIMEOUT_MS": str(TEST_SESSION_TIMEOUT_MS),
        "FAIRQ_SNAPSHOT_EVERY_RECORDS": "1500",
        "FAIRQ_SNAPSHOT_CHUNK_BYTES": "65536",
        "FAIRQ_LOG_LEVEL": "INFO",
    }


@pytest.fixture
async def producer(connections: Connections) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(
        bootstrap_servers=connections.kafka_bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=5,
    )
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


async def produce(producer: AIOKafkaProducer, topic: str, commands: list[Keyed]) -> None:
    futures = [
        await producer.send(topic, command.pack(), key=county.encode())
        for county, command in commands
    ]
    await asyncio.gather(*futures)


async def test_sigkilled_allocators_answer_every_command_once_like_a_clean_replay(
    connections: Connections,
    allocator_env: dict[str, str],
    producer: AIOKafkaProducer,
    tmp_path: Path,
) -> None:
    rng = random.Random(SEED)
    commands, inventory = storm(rng, int(time.time() * 1000))
    command_ids = {c.command_id for _, c in commands}
    assert len(commands) >= 20_000
    topics = connections.topics
    follower = Answers(connections.kafka_bootstrap, topics.events)
    await follower.start()
    size = len(commands) // (KILLS + 1) + 1
    phases = [commands[i : i + size] for i in range(0, len(commands), size)]

    logs = [spawn("allocator", "allocator-0", allocator_env, tmp_path)]
    try:
        for i, phase in enumerate(phases):
            fresh = {c.command_id for _, c in phase} - follower.answered
            await produce(producer, topics.commands, phase)
            if i == KILLS:
                break
            # Kill at a seeded moment while this phase is being answered.
            done = len(follower.answered) + len(fresh) // 10
            await follower.reach(done + rng.randrange(len(fresh) // 2))
            logs[-1].process.send_signal(signal.SIGKILL)
            logs[-1].process.wait()
            logs.append(spawn("allocator", f"allocator-{i + 1}", allocator_env, tmp_path))
        await follower.reach(len(command_ids))
        await follower.past(max(c.release_at_ms for _, c in commands if isinstance(c, SetReserve)))
    finally:
        stop(logs[-1:])
        await follower.consumer.stop()
    assert [c.process.returncode for c in logs] == [-signal.SIGKILL] * KILLS + [0]
    restored = [int(m) for c in logs[1:] for m in RESTORED.findall(c.tail(1_000_000))]
    assert any(offset > 0 for offset in restored), "no restart loaded a snapshot"

    bootstrap = connections.kafka_bootstrap
    group = allocator_env["FAIRQ_ALLOCATOR_GROUP"]
    upto = await committed_offsets(bootstrap, group, topics.commands, TEST_PARTITIONS)
    command_log = await read_topic(bootstrap, topics.commands, TEST_PARTITIONS)
    produced = decode_events(await read_topic(bootstrap, topics.events, TEST_PARTITIONS))

    given = answers(produced)
    assert set(given) == command_ids
    assert [cid for cid, found in given.items() if len(found) != 1] == []
    assert max_overbooking(produced, inventory) <= 0
    clean, cores = replay(command_log, upto)
    distinct = {p: dedup(events) for p, events in produced.items()}
    for p in range(TEST_PARTITIONS):
        assert distinct[p] == dedup(clean[p]), f"partition {p}"
    assert [u for core in cores.values() for u in core.slot_usage() if u.used > u.capacity] == []
    live: dict[str, int] = {}
    for core in cores.values():
        for v in core.bookings():
            if v.state in ("held", "confirmed", "waitlisted") and not v.moving:
                live[v.booking_id] = live.get(v.booking_id, 0) + 1
    assert [b for b, n in live.items() if n > 1] == []
    moved = {e.command_id for evs in produced.values() for e in evs if isinstance(e, Moved)}
    logged = [decode_command(r.value or b"") for rs in command_log.values() for r in rs]
    crossed = {c.move_id for c in logged if isinstance(c, TransferIn)}
    assert len(crossed) > 20  # moves did cross partitions (others moved within one)
    assert {c.move_id for c in logged if isinstance(c, TransferAnswer)} == crossed
    assert moved & crossed  # and some of them found a pair there
    kinds = tally(distinct)
    assert kinds["waitlisted"] and kinds["offered"]  # pairs given back went to the waitlist
    assert kinds["reserve_set:accepted"] and kinds["inventory_removed:accepted"]
    held_back = {
        cs.reserved for c in cores.values() for s in c.summaries() for cs in s.counties.values()
    }
    assert held_back == {0}  # every reserve was released inside the run


def tally(distinct: dict[int, list[Event]]) -> Counter[str]:
    """Events (repeats dropped) by type, the answers to inventory commands also by outcome."""
    out: Counter[str] = Counter()
    for events in distinct.values():
        for e in events:
            out[e.TYPE] += 1
            if isinstance(e, ReserveSet | InventoryRemoved):
                out[f"{e.TYPE}:{'accepted' if e.accepted else 'refused'}"] += 1
    return out
