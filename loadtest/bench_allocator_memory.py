"""Peak memory of one allocator core holding a campaign of 3.4 million slots.

Loads ``--lines`` lines (center x vaccine) of ``--days`` days with
``--slots-per-day`` one-minute slots of capacity ``--capacity`` each (by default
3.4 million slots, one place each), then books pairs until ``--book-fraction`` of
the places are taken, confirms ``--confirm-fraction`` of the pairs held (as
people do: every confirmed booking also remembers its Confirm's command id), and
prints the process's peak resident set size (``ru_maxrss``) after loading, after
booking and after confirming, over the interpreter's baseline; then ``--rejected``
more Books, which find nothing left (on launch day most Books are rejected, and the
allocator keeps each to answer it once), and the memory each adds; and the size of
a snapshot. Not a test; run it (it takes a few minutes):

    python -m loadtest.bench_allocator_memory [--lines 100] [--days 170] [--slots-per-day 200]
        [--book-fraction 1.0] [--confirm-fraction 1.0] [--rejected 1000000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import time

from allocator.core import Allocator
from loadtest.bench_allocator_core import CAMPAIGN, FIRST_DAY, NOW_MS, print_header
from schemas.commands import MAX_SLOTS_PER_COMMAND, AddInventory, Book, Confirm, SlotSpec
from schemas.events import Held

COUNTIES = 10


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def day_slots(day: dt.date, per_day: int, capacity: int) -> list[SlotSpec]:
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    out = []
    for k in range(per_day):
        start = midnight + dt.timedelta(minutes=k)
        out.append(SlotSpec(day.isoformat(), start.isoformat(), int(start.timestamp()), capacity))
    return out


def load(core: Allocator, args: argparse.Namespace) -> int:
    """Apply the inventory, each line in commands of at most 20,000 slots; the next offset."""
    offset = 0
    for line in range(args.lines):
        specs = [
            s
            for d in range(args.days)
            for s in day_slots(FIRST_DAY + dt.timedelta(days=d), args.slots_per_day, args.capacity)
        ]
        for part, i in enumerate(range(0, len(specs), MAX_SLOTS_PER_COMMAND)):
            cmd = AddInventory(
                command_id=f"add-{line}-{part}",
                campaign=CAMPAIGN,
                county=f"county-{line % COUNTIES}",
                center=f"center-{line}",
                center_name=f"Center {line}",
                vaccine="vx",
                min_days=21,
                max_days=42,
                slots=tuple(specs[i : i + MAX_SLOTS_PER_COMMAND]),
            )
            core.apply(offset, NOW_MS, cmd)
            offset += 1
    return offset


def reject(core: Allocator, offset: int, first: int, count: int) -> int:
    """Apply ``count`` Books (numbered on from ``first``) to a core with nothing left;
    the next offset."""
    for i in range(first, first + count):
        cmd = Book(f"cmd-{i}", f"bk-{i}", CAMPAIGN, f"person-{i}", f"county-{i % COUNTIES}")
        (event,) = core.apply(offset, NOW_MS, cmd)
        if isinstance(event, Held):
            raise SystemExit(f"Book {i} got a pair: the inventory was not all booked")
        offset += 1
    return offset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100)
    parser.add_argument("--days", type=int, default=170)
    parser.add_argument("--slots-per-day", type=int, default=200)
    parser.add_argument("--capacity", type=int, default=1)
    parser.add_argument("--book-fraction", type=float, default=1.0)
    parser.add_argument("--confirm-fraction", type=float, default=1.0)
    parser.add_argument("--rejected", type=int, default=1_000_000)
    args = parser.parse_args()
    print_header(__spec__.name if __spec__ else __name__)
    baseline = peak_mib()
    slots = args.lines * args.days * args.slots_per_day
    core = Allocator()
    started = time.perf_counter()
    offset = load(core, args)
    loaded = peak_mib()
    print(
        f"slots: {slots:,} ({slots * args.capacity:,} places) in {args.lines} lines, "
        f"loaded in {time.perf_counter() - started:.1f} s"
    )
    print(
        f"peak RSS after loading: {loaded:,.0f} MiB ({loaded - baseline:,.0f} MiB over "
        f"the {baseline:,.0f} MiB baseline; {(loaded - baseline) * 2**20 / slots:.0f} B/slot)"
    )
    books = int(slots * args.capacity * args.book_fraction) // 2
    held: list[str] = []
    started = time.perf_counter()
    for i in range(books):
        cmd = Book(f"cmd-{i}", f"bk-{i}", CAMPAIGN, f"person-{i}", f"county-{i % COUNTIES}")
        held.extend(e.booking_id for e in core.apply(offset, NOW_MS, cmd) if isinstance(e, Held))
        offset += 1
    booked = peak_mib()
    print(f"books: {books:,}, pairs held: {len(held):,} in {time.perf_counter() - started:.1f} s")
    print(f"peak RSS after booking: {booked:,.0f} MiB ({booked - baseline:,.0f} MiB over baseline)")
    confirms = int(len(held) * args.confirm_fraction)
    for booking_id in held[:confirms]:
        core.apply(offset, NOW_MS, Confirm(f"confirm-{booking_id}", booking_id, CAMPAIGN))
        offset += 1
    del held
    confirmed = peak_mib()
    print(
        f"confirmed: {confirms:,}; peak RSS {confirmed:,.0f} MiB "
        f"({confirmed - baseline:,.0f} MiB over baseline)"
    )
    offset = reject(core, offset, books, args.rejected)
    rejected = peak_mib()
    print(
        f"rejected: {args.rejected:,}; peak RSS {rejected:,.0f} MiB "
        f"({(rejected - confirmed) * 2**20 / max(args.rejected, 1):.0f} B per rejected Book)"
    )
    started = time.perf_counter()
    size = len(core.snapshot())
    print(
        f"snapshot: {size / 2**20:,.0f} MiB in {time.perf_counter() - started:.1f} s; "
        f"peak RSS {peak_mib():,.0f} MiB"
    )


if __name__ == "__main__":
    main()
