"""Reading whole topics and checking an allocator's event log against the invariants.

Shared by the crash and zombie tests: they let allocators run, then read the
commands and events topics from the start and check the events as a consumer
would see them (duplicates from replays included).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Mapping

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from allocator.core import Allocator
from schemas.commands import AddInventory, Command, RemoveInventory, Tick, decode_command
from schemas.events import (
    Cancelled,
    Event,
    Expired,
    Held,
    InventoryAdded,
    InventoryRemoved,
    Moved,
    Offered,
    Summary,
    decode_event,
)

READ_TIMEOUT_S = 60.0

Records = dict[int, list[ConsumerRecord[bytes, bytes]]]  # partition -> records in order
Inventory = Mapping[str, AddInventory | RemoveInventory]  # by command id


async def read_topic(bootstrap: str, topic: str, partitions: int) -> Records:
    """Every record of ``topic`` up to its end offsets at the time of the call."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: Records = {p: [] for p in range(partitions)}

        async def read_to(ends: dict[TopicPartition, int]) -> None:
            while any([await consumer.position(tp) < ends[tp] for tp in tps]):
                batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
                for tp, records in batch.items():
                    out[tp.partition] += records

        async def loop() -> None:
            # Ask for the end again after reaching it: a broker may report a stale end.
            ends: dict[TopicPartition, int] = {}
            while (latest := await consumer.end_offsets(tps)) != ends:
                ends = latest
                await read_to(ends)

        await asyncio.wait_for(loop(), READ_TIMEOUT_S)
        return out
    finally:
        await consumer.stop()


async def committed_offsets(
    bootstrap: str, group: str, topic: str, partitions: int
) -> dict[int, int]:
    """The group's committed offsets, read without joining the group."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        return {tp.partition: await consumer.committed(tp) or 0 for tp in tps}
    finally:
        await consumer.stop()


def decode_events(records: Records) -> dict[int, list[Event]]:
    return {p: [decode_event(r.value or b"") for r in rs] for p, rs in records.items()}


def dedup(events: Iterable[Event]) -> list[Event]:
    """The events without exact repeats, in the order of their first appearance."""
    seen: set[bytes] = set()
    out: list[Event] = []
    for e in events:
        packed = e.pack()
        if packed not in seen:
            seen.add(packed)
            out.append(e)
    return out


def answers(events: dict[int, list[Event]]) -> dict[str, set[bytes]]:
    """Command id -> the distinct answers given to it (a correct log has one each).

    Summaries answer nothing; an Expired or Offered names the Book it befell, which
    had its answer (Held, Waitlisted) already."""
    out: dict[str, set[bytes]] = defaultdict(set)
    for evs in events.values():
        for e in evs:
            if not isinstance(e, Summary | Expired | Offered):
                out[e.command_id].add(e.pack())
    return out


def replay(
    commands: Records, upto: dict[int, int]
) -> tuple[dict[int, list[Event]], dict[int, Allocator]]:
    """The events a fresh core gives for each partition's records before ``upto``, and
    the cores at the end. What a core sends to other partitions is thrown away: the
    live allocators put it on the log, where it is among ``commands``."""
    out: dict[int, list[Event]] = {}
    cores: dict[int, Allocator] = {}
    for p, records in commands.items():
        core = cores[p] = Allocator()
        events: list[Event] = []
        for r in records:
            if r.offset >= upto.get(p, 0):
                break
            events += core.apply(r.offset, r.timestamp, decode_command(r.value or b""))
            core.sends.clear()
        out[p] = events
    return out, cores


def max_overbooking(events: dict[int, list[Event]], inventory: Inventory) -> int:
    """Apply the events in order (by ``rev``, as a gateway does); the worst excess over capacity.

    Capacity grows with each accepted InventoryAdded and drops to 0 on the slots of
    each accepted InventoryRemoved (looked up by command id in ``inventory``); places
    are taken by Held and Offered, given back by Expired and Cancelled, and traded by
    Moved. A booking that moved to a county of another partition is followed
    here only as far as its Moved (whose new slots are not this partition's): the new
    pair was taken by the other partition's allocator with no event of its own there,
    so that partition's count leaves it out (the cores of a clean replay are checked at
    the end instead).
    """
    slot_ids = {
        (a.center, a.vaccine, s.start_s): f"{a.center}/{a.vaccine}/{s.start}"
        for a in inventory.values()
        if isinstance(a, AddInventory)
        for s in a.slots
    }
    worst = 0
    for evs in events.values():
        capacity: dict[str, int] = defaultdict(int)
        used: dict[str, int] = defaultdict(int)
        revs: dict[tuple[str, str], int] = {}
        slots: dict[tuple[str, str], tuple[str, ...]] = {}
        for e in evs:
            if isinstance(e, InventoryAdded):
                if e.accepted and revs.setdefault(("inv", e.command_id), 0) == 0:
                    revs[("inv", e.command_id)] = 1
                    add = inventory[e.command_id]
                    assert isinstance(add, AddInventory)
                    for s in add.slots:
                        capacity[f"{add.center}/{add.vaccine}/{s.start}"] += s.capacity
                continue
            if isinstance(e, InventoryRemoved):
                removal = inventory[e.command_id]
                assert isinstance(removal, RemoveInventory)
                for start_s in removal.starts if e.accepted else ():
                    sid = slot_ids[(removal.center, removal.vaccine, start_s)]
                    capacity[sid] = 0  # a slot in use is never removed
                    worst = max(worst, used[sid])
                continue
            if not isinstance(e, Held | Offered | Expired | Cancelled | Moved):
                continue
            key = (e.campaign, e.booking_id)
            if e.rev <= revs.get(key, 0):
                continue
            revs[key] = e.rev
            if not isinstance(e, Held):
                for sid in slots.pop(key, ()):
                    used[sid] -= 1
            if not isinstance(e, Held | Offered | Moved):
                continue
            # a Moved whose slots are not this partition's moved to another partition
            if all(a.slot in capacity for a in e.appointments):
                slots[key] = tuple(a.slot for a in e.appointments)
                for sid in slots[key]:
                    used[sid] += 1
                    worst = max(worst, used[sid] - capacity[sid])
    return worst


def is_answerable(command: Command) -> bool:
    return not isinstance(command, Tick)
