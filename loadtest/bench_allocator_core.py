"""Throughput of the allocator's pure core: pairs held per second on one core.

Loads one partition's worth of inventory, then applies Book commands (one per two
slot places, counties in turn) until the inventory is gone, and reports pairs
per second. The inventory is either synthetic (counties x centers x days x
slots, the default) or the demo campaign of ``fairq.demo`` (15 counties, 28
centers, three vaccines) expanded by ``schemas.campaign.parse_campaign``, all on
one core. The reference is a loop over the same commands that only builds one
Held event per Book (no search, no state): the ratio says how much of the time
the allocation logic itself takes. Not a test; run it:

    python -m loadtest.bench_allocator_core [--campaign demo] [--counties 8] [--days 60]
        [--no-gc-freeze]

Besides the whole run it prints the supply phase: the Books before the first one
that finds no pair, while every Book is an allocation (the launch peak). The rest
of the run is mostly Books for counties left with unpairable places only, which
a room in auto mode would no longer admit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import itertools
import os
import platform
import sys
import time
from dataclasses import dataclass

from allocator.core import Allocator
from fairq.demo import demo_campaign
from schemas.campaign import parse_campaign
from schemas.commands import AddInventory, Book, SlotSpec
from schemas.events import Appointment, Held

CAMPAIGN = "bench"
FIRST_DAY = dt.date(2030, 1, 1)
NOW_MS = int(dt.datetime(2029, 12, 31, tzinfo=dt.UTC).timestamp()) * 1000


def slots(days: int, per_day: int, capacity: int) -> tuple[SlotSpec, ...]:
    out = []
    for d in range(days):
        day = FIRST_DAY + dt.timedelta(days=d)
        for k in range(per_day):
            start = dt.datetime(day.year, day.month, day.day, 8, tzinfo=dt.UTC)
            start += dt.timedelta(minutes=15 * k)
            out.append(
                SlotSpec(day.isoformat(), start.isoformat(), int(start.timestamp()), capacity)
            )
    return tuple(out)


def inventory(args: argparse.Namespace) -> list[AddInventory]:
    specs = slots(args.days, args.slots_per_day, args.capacity)
    return [
        AddInventory(
            command_id=f"add-{county}-{center}",
            campaign=CAMPAIGN,
            county=f"county-{county}",
            center=f"center-{county}-{center}",
            center_name=f"Center {county}/{center}",
            vaccine="vx",
            min_days=21,
            max_days=28,
            slots=specs,
        )
        for county in range(args.counties)
        for center in range(args.centers)
    ]


def demo_inventory() -> list[AddInventory]:
    """The demo campaign's inventory, as the gateway would send it."""
    spec = parse_campaign(CAMPAIGN, demo_campaign(FIRST_DAY))
    ids = (f"add-{i}" for i in itertools.count())
    return spec.inventory_commands(lambda: next(ids))


def books(counties: list[str], count: int) -> list[Book]:
    return [
        Book(
            command_id=f"cmd-{i}",
            booking_id=f"bk-{i}",
            campaign=CAMPAIGN,
            identity=f"person-{i}",
            county=counties[i % len(counties)],
        )
        for i in range(count)
    ]


def workload(args: argparse.Namespace) -> tuple[list[AddInventory], list[Book], int]:
    """The inventory commands, the Book commands and the slot places they offer."""
    adds = demo_inventory() if args.campaign == "demo" else inventory(args)
    places = sum(s.capacity for a in adds for s in a.slots)
    counties = sorted({a.county for a in adds})
    return adds, books(counties, places // 2), places


def machine() -> str:
    return (
        f"{platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cpus, Python {platform.python_version()}"
    )


def print_header(module: str) -> None:
    print(f"machine: {machine()}")
    print(f"command: python -m {module} {' '.join(sys.argv[1:])}".rstrip())


@dataclass(frozen=True)
class CoreRun:
    """Pairs held, and the seconds and CPU seconds the Book commands took; the same of
    the supply phase (the Books before the first that got no pair)."""

    held: int
    elapsed_s: float
    cpu_s: float
    supply_held: int
    supply_s: float


def run_core(adds: list[AddInventory], commands: list[Book], gc_freeze: bool = True) -> CoreRun:
    """Apply ``commands`` after loading ``adds`` (untimed; ``gc_freeze``: then moved out
    of the cyclic collector's reach, as ``allocator.service`` does once a partition's
    state is rebuilt). On a busy machine the CPU seconds say what the core would reach
    on a core of its own."""
    core = Allocator()
    offset = 0
    for a in adds:
        core.apply(offset, NOW_MS, a)
        offset += 1
    if gc_freeze:
        gc.freeze()
    held = 0
    supply: tuple[int, float] | None = None
    started, started_cpu = time.perf_counter(), time.thread_time()
    for cmd in commands:
        events = core.apply(offset, NOW_MS, cmd)
        if isinstance(events[0], Held):
            held += 1
        elif supply is None:
            supply = held, time.perf_counter() - started
        offset += 1
    elapsed_s = time.perf_counter() - started
    cpu_s = time.thread_time() - started_cpu
    if gc_freeze:
        gc.unfreeze()
    supply_held, supply_s = supply if supply is not None else (held, elapsed_s)
    return CoreRun(held, elapsed_s, cpu_s, supply_held, supply_s)


def run_reference(commands: list[Book]) -> float:
    appointment = Appointment(1, "c", "Center", "vx", "2030-01-01T08:00:00+00:00", "c/vx/x")
    started = time.perf_counter()
    for cmd in commands:
        Held(
            cmd.command_id,
            cmd.booking_id,
            cmd.campaign,
            1,
            NOW_MS,
            cmd.identity,
            cmd.county,
            (appointment, appointment),
            NOW_MS + 600_000,
        )
    return time.perf_counter() - started


def add_workload_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--campaign", choices=("synthetic", "demo"), default="synthetic")
    parser.add_argument("--counties", type=int, default=8)
    parser.add_argument("--centers", type=int, default=6)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--slots-per-day", type=int, default=32)
    parser.add_argument("--capacity", type=int, default=4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_workload_args(parser)
    parser.add_argument(
        "--no-gc-freeze",
        dest="gc_freeze",
        action="store_false",
        help="leave the loaded inventory to the cyclic collector (the service freezes it)",
    )
    args = parser.parse_args()
    print_header(__spec__.name if __spec__ else __name__)
    adds, commands, places = workload(args)
    run = run_core(adds, commands, args.gc_freeze)
    core_s, cpu_s = run.elapsed_s, run.cpu_s
    reference_s = run_reference(commands)
    print(f"slot places: {places}, books: {len(commands)}, pairs held: {run.held}")
    print(
        f"core: {run.held / core_s:,.0f} pairs/s ({core_s * 1e6 / len(commands):.2f} µs per book)"
    )
    print(
        f"core per CPU-second: {run.held / cpu_s:,.0f} pairs/s ({cpu_s * 1e6 / len(commands):.2f}"
        f" µs CPU per book; on CPU {cpu_s / core_s:.0%} of the time)"
    )
    print(
        f"supply phase: {run.supply_held / run.supply_s:,.0f} pairs/s (the first"
        f" {run.supply_held} books, each of which got a pair)"
    )
    print(f"reference (build a Held only): {len(commands) / reference_s:,.0f} per s")
    print(f"core time / reference time: {core_s / reference_s:.1f}")


if __name__ == "__main__":
    main()
