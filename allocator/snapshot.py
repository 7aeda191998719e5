"""Snapshots of an ``Allocator``: its whole state as versioned msgpack bytes.

A snapshot holds everything that decides future events: the log clock
(``now_ms``), the next input offset, every campaign's windows, counties,
centers, lines and slots (with the search cursors and caches of each line),
the bookings with their pairs and answered command ids, the dedup sets, the
expiry heap in its exact list order and the summary bookkeeping. So
``load(dump(core))`` followed by the rest of the log emits exactly the events
``core`` would have emitted (tested in ``tests/allocator/test_snapshot.py``).

Layout (version 1): a map ``{"format", "v", "now_ms", "next_offset", "expiries",
"campaigns"}``; campaigns, centers, lines and bookings are positional lists
(see ``_campaign``, ``_line``, ``_booking``) and a line's slots are stored as
columns, which keeps a snapshot of millions of slots compact. Sets are
stored sorted, so equal states give equal bytes.
"""

from __future__ import annotations

from typing import Any

import msgpack

from allocator.core import Allocator, Booking, Campaign, County
from allocator.errors import SnapshotError
from allocator.inventory import Center, Line, Slot

FORMAT = "fairq-allocator-snapshot"
VERSION = 1


def dump(core: Allocator) -> bytes:
    """The state of ``core`` as snapshot bytes."""
    state = {
        "format": FORMAT,
        "v": VERSION,
        "now_ms": core.now_ms,
        "next_offset": core.next_offset,
        "expiries": [list(e) for e in core._expiries],
        "campaigns": [_campaign(c) for c in core._campaigns.values()],
    }
    return msgpack.packb(state, use_bin_type=True)  # type: ignore[no-any-return]


def load(data: bytes) -> Allocator:
    """An ``Allocator`` in the state ``data`` was dumped from; SnapshotError if unreadable."""
    try:
        state = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as e:
        raise SnapshotError(f"not a snapshot: {type(e).__name__} {e}") from e
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise SnapshotError("not an allocator snapshot")
    if state.get("v") != VERSION:
        raise SnapshotError(f"unsupported snapshot version {state.get('v')!r}")
    try:
        return _restore(state)
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise SnapshotError(f"malformed snapshot: {type(e).__name__} {e}") from e


# -- dumping -----------------------------------------------------------------------------------


def _campaign(c: Campaign) -> list[Any]:
    return [
        c.name,
        c.dirty,
        c.last_summary_ms,
        [[v, lo, hi] for v, (lo, hi) in c.windows.items()],
        sorted(c.inventory_commands),
        sorted(c.orphans),
        [[k.name, k.held, k.confirmed, list(k.centers)] for k in c.counties.values()],
        [
            [x.center_id, x.name, x.county, [_line(ln) for ln in x.lines.values()]]
            for x in c.centers.values()
        ],
        [_booking(b) for b in c.bookings.values()],
        [b.booking_id for b in c.active.values()],
    ]


def _line(line: Line) -> list[Any]:
    slots = line.slots
    barren = list(line._barren) if line._barren is not None else None
    return [
        line.vaccine,
        line.min_days,
        line.max_days,
        line.head,
        line.past,
        line.free,
        line.monotone,
        line._gains,
        barren,
        [s.day for s in slots],
        [s.start for s in slots],
        [s.start_s for s in slots],
        [s.capacity for s in slots],
        [s.used for s in slots],
        [s.retired for s in slots],
        [d.ptr for d in line.days],
        [d.free for d in line.days],
    ]


def _booking(b: Booking) -> list[Any]:
    center = vaccine = None
    i1 = i2 = -1
    if b.dose1 is not None and b.dose2 is not None:
        center, vaccine = b.dose1.line.center.center_id, b.dose1.line.vaccine
        i1, i2 = b.dose1.order_idx, b.dose2.order_idx
    answered = sorted(b.answered) if b.answered is not None else None
    fields = [b.booking_id, b.command_id, b.identity, b.county, b.state, b.rev, b.expires_ms]
    return [*fields, center, vaccine, i1, i2, answered]


# -- loading -----------------------------------------------------------------------------------


def _restore(state: dict[str, Any]) -> Allocator:
    core = Allocator()
    core.now_ms = int(state["now_ms"])
    core.next_offset = int(state["next_offset"])
    core._expiries = [(int(e), str(b), str(c)) for e, b, c in state["expiries"]]
    for raw in state["campaigns"]:
        c = _load_campaign(raw)
        core._campaigns[c.name] = c
    return core


def _load_campaign(raw: list[Any]) -> Campaign:
    name, dirty, last, windows, inventory, orphans, counties, centers, bookings, active = raw
    c = Campaign(name)
    c.dirty = bool(dirty)
    c.last_summary_ms = last
    c.windows = {v: (lo, hi) for v, lo, hi in windows}
    c.inventory_commands = set(inventory)
    c.orphans = set(orphans)
    for center_id, center_name, county, lines in centers:
        center = c.centers[center_id] = Center(center_id, center_name, county)
        for raw_line in lines:
            line = _load_line(center, raw_line)
            center.lines[line.vaccine] = line
        center.line_list = [center.lines[v] for v in sorted(center.lines)]
    for county_name, held, confirmed, center_ids in counties:
        county = c.counties[county_name] = County(county_name)
        county.held, county.confirmed = held, confirmed
        county.centers = {cid: c.centers[cid] for cid in center_ids}
        county.index_lines()
    for raw_booking in bookings:
        b = _load_booking(c, raw_booking)
        c.bookings[b.booking_id] = b
    for booking_id in active:
        b = c.bookings[booking_id]
        c.active[b.identity] = b
    return c


def _load_line(center: Center, raw: list[Any]) -> Line:
    vaccine, lo, hi, head, past, free, monotone, gains, barren = raw[:9]
    days, starts, starts_s, capacities, used, retired, day_ptrs, day_frees = raw[9:]
    line = Line(center, vaccine, lo, hi)
    for day, start, start_s, capacity, n_used, gone in zip(
        days, starts, starts_s, capacities, used, retired, strict=True
    ):
        s = Slot(line, day, start, start_s)
        s.capacity, s.used, s.retired = capacity, n_used, gone
        line._by_start_s[start_s] = s
    line._reindex()
    for d, ptr, day_free in zip(line.days, day_ptrs, day_frees, strict=True):
        d.ptr, d.free = ptr, day_free
    line.head, line.past, line.free, line.monotone = head, past, free, monotone
    line._gains = gains
    line._barren = (barren[0], barren[1]) if barren is not None else None
    return line


def _load_booking(c: Campaign, raw: list[Any]) -> Booking:
    booking_id, command_id, identity, county, state, rev, expires_ms = raw[:7]
    center, vaccine, i1, i2, answered = raw[7:]
    pair: tuple[Slot, Slot] | None = None
    if center is not None:
        slots = c.centers[center].lines[vaccine].slots
        pair = (slots[i1], slots[i2])
    fields = (booking_id, command_id, identity, county, state, rev, expires_ms)
    return Booking.restored(fields, pair, set(answered) if answered is not None else None)
