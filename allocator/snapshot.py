"""Snapshots of an ``Allocator``: its whole state as versioned msgpack bytes.

A snapshot holds everything that decides future events: the log clock
(``now_ms``), the next input offset, every campaign's windows, counties,
centers (with their priority reserves), lines and slots (with the search
cursors and caches of each line; the per-view caches, the cursors for
members and those of the time-of-day parts of a day are rebuilt instead),
the bookings with their pairs, priority groups and answered command ids, each
county's waitlist in arrival order with the wish of every waitlisted booking,
the dedup sets, the expiry heap in its exact list order and the summary
bookkeeping. So
``load(dump(core))`` followed by the rest of the log emits exactly the events
``core`` would have emitted (tested in ``tests/allocator/test_snapshot.py``).

Layout (version 2): a map ``{"format", "v", "now_ms", "next_offset", "expiries",
"releases", "campaigns"}``; campaigns, counties, centers, lines and bookings are positional
lists (see ``_campaign``, ``_line``, ``_booking``) and a line's slots are stored
as columns, which keeps a snapshot of millions of slots compact. Sets are
stored sorted, so equal states give equal bytes. A removed slot is a slot of
capacity 0. Version 2 added the booking's group and wish, the county's
waitlist, each center's priority reserves, the places each slot holds back for
them (sparse: ``[slot index, held_back, res_used]``), which reserve each
booking's places came out of, and the heap of reserve release times; ``load``
refuses any other version (a snapshot is only a shortcut: an allocator that
cannot read one replays its partition from the start).
"""

from __future__ import annotations

from typing import Any

import msgpack

from allocator.core import Allocator, Booking, Campaign, County, Want
from allocator.errors import SnapshotError
from allocator.inventory import Center, Line, Reserve, Slot

FORMAT = "fairq-allocator-snapshot"
VERSION = 2


def dump(core: Allocator) -> bytes:
    """The state of ``core`` as snapshot bytes."""
    state = {
        "format": FORMAT,
        "v": VERSION,
        "now_ms": core.now_ms,
        "next_offset": core.next_offset,
        "expiries": [list(e) for e in core._expiries],
        "releases": [list(e) for e in core._releases],
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
        [
            [k.name, k.held, k.confirmed, list(k.centers), k.waitlist.booking_ids()]
            for k in c.counties.values()
        ],
        [
            [x.center_id, x.name, x.county, _reserves(x), [_line(ln) for ln in x.lines.values()]]
            for x in c.centers.values()
        ],
        [_booking(b) for b in c.bookings.values()],
        [b.booking_id for b in c.active.values()],
    ]


def _reserves(center: Center) -> list[list[Any]]:
    return [
        [r.day, r.group, r.share_pct, r.mode, r.release_at_ms]
        for _, r in sorted(center.reserves.items())
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
        [[i, s.held_back, s.res_used] for i, s in enumerate(slots) if s.held_back or s.res_used],
    ]


def _booking(b: Booking) -> list[Any]:
    center = vaccine = None
    i1 = i2 = -1
    if b.dose1 is not None and b.dose2 is not None:
        center, vaccine = b.dose1.line.center.center_id, b.dose1.line.vaccine
        i1, i2 = b.dose1.order_idx, b.dose2.order_idx
    answered = sorted(b.answered) if b.answered is not None else None
    fields = [b.booking_id, b.command_id, b.identity, b.county, b.state, b.rev, b.expires_ms]
    want = None
    if b.want is not None:
        want = [b.want.center, b.want.earliest, b.want.time_of_day, b.hold_s]
    return [*fields, center, vaccine, i1, i2, answered, b.group, want, _reserve_mask(b)]


def _reserve_mask(b: Booking) -> int:
    """Bit 1: dose 1's place came out of its day's current reserve; bit 2: dose 2's."""
    mask = 0
    if b.dose1 is not None and b.rsv1 is not None and b.rsv1 is b.dose1.bucket.rsv:
        mask |= 1
    if b.dose2 is not None and b.rsv2 is not None and b.rsv2 is b.dose2.bucket.rsv:
        mask |= 2
    return mask


# -- loading -----------------------------------------------------------------------------------


def _restore(state: dict[str, Any]) -> Allocator:
    core = Allocator()
    core.now_ms = int(state["now_ms"])
    core.next_offset = int(state["next_offset"])
    core._expiries = [(int(e), str(b), str(c)) for e, b, c in state["expiries"]]
    core._releases = [(int(t), str(c), str(x), int(d)) for t, c, x, d in state["releases"]]
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
    for center_id, center_name, county, reserves, lines in centers:
        center = c.centers[center_id] = Center(center_id, center_name, county)
        for day, group, share_pct, mode, release_at_ms in reserves:
            center.restore_reserve(Reserve(day, group, share_pct, mode, release_at_ms))
        for raw_line in lines:
            line = _load_line(center, raw_line)
            center.lines[line.vaccine] = line
        center.line_list = [center.lines[v] for v in sorted(center.lines)]
    waitlists: list[tuple[County, list[str]]] = []
    for county_name, held, confirmed, center_ids, waitlisted in counties:
        county = c.counties[county_name] = County(county_name)
        county.held, county.confirmed = held, confirmed
        county.centers = {cid: c.centers[cid] for cid in center_ids}
        county.index_lines()
        waitlists.append((county, waitlisted))
    for raw_booking in bookings:
        b = _load_booking(c, raw_booking)
        c.bookings[b.booking_id] = b
    for county, waitlisted in waitlists:
        for booking_id in waitlisted:
            county.waitlist.push(c.bookings[booking_id])
    for booking_id in active:
        b = c.bookings[booking_id]
        c.active[b.identity] = b
    return c


def _load_line(center: Center, raw: list[Any]) -> Line:
    vaccine, lo, hi, head, past, free, monotone, gains, barren = raw[:9]
    days, starts, starts_s, capacities, used, retired, day_ptrs, day_frees, reserved = raw[9:]
    line = Line(center, vaccine, lo, hi)
    made: list[Slot] = []
    for day, start, start_s, capacity, n_used, gone in zip(
        days, starts, starts_s, capacities, used, retired, strict=True
    ):
        s = Slot(line, day, start, start_s)
        s.set_places(capacity, 0)
        s.used, s.retired = n_used, gone
        line._by_start_s[start_s] = s
        made.append(s)
    for i, held_back, res_used in reserved:
        made[i].set_places(made[i].capacity, held_back)
        made[i].res_used = res_used
    line._reindex()
    for d, ptr, day_free in zip(line.days, day_ptrs, day_frees, strict=True):
        d.ptr, d.free = ptr, day_free
    line.head, line.past, line.free, line.monotone = head, past, free, monotone
    line._gains = gains
    line._barren = (barren[0], barren[1]) if barren is not None else None
    return line


def _load_booking(c: Campaign, raw: list[Any]) -> Booking:
    booking_id, command_id, identity, county, state, rev, expires_ms = raw[:7]
    center, vaccine, i1, i2, answered, group, want, reserve_mask = raw[7:]
    pair: tuple[Slot, Slot] | None = None
    if center is not None:
        slots = c.centers[center].lines[vaccine].slots
        pair = (slots[i1], slots[i2])
    fields = (booking_id, command_id, identity, county, state, rev, expires_ms, group)
    b = Booking.restored(fields, pair, set(answered) if answered is not None else None)
    if pair is not None:
        b.rsv1 = pair[0].bucket.rsv if reserve_mask & 1 else None
        b.rsv2 = pair[1].bucket.rsv if reserve_mask & 2 else None
    if want is not None:
        center, earliest, time_of_day, hold_s = want
        b.want, b.hold_s = Want(center, earliest, group, time_of_day), hold_s
    return b
