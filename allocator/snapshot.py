"""Snapshots of an ``Allocator``: its whole state as versioned msgpack bytes.

A snapshot holds everything that decides future events: the log clock
(``now_ms``), the next input offset, every campaign's windows, counties,
centers (with their priority reserves), lines and slots (with the search
cursors and caches of each line, from version 3 on also the per-view
remembered failures, which decide how far a later search moves the saved
cursors; the cursors for members and those of the time-of-day parts of a day
are rebuilt instead),
the bookings with their pairs, priority groups and answered command ids, each
county's waitlist in arrival order with the wish of every waitlisted booking,
the dedup sets, the expiry heap in its exact list order and the summary
bookkeeping. So
``load(dump(core))`` followed by the rest of the log emits exactly the events
``core`` would have emitted (tested in ``tests/allocator/test_snapshot.py``).

Layout (version 3): a map ``{"format", "v", "now_ms", "next_offset", "expiries",
"releases", "campaigns"}``; campaigns, counties, centers, lines and bookings are positional
lists (see ``_campaign``, ``_line``, ``_booking``) and a line's slots are stored
as columns, which keeps a snapshot of millions of slots compact. Sets are
stored sorted, so equal states give equal bytes. A removed slot is a slot of
capacity 0. Version 2 added the booking's group and wish, the county's
waitlist, each center's priority reserves, the places each slot holds back for
them (sparse: ``[slot index, held_back, res_used]``), which reserve each
booking's places came out of (a bit per dose: its group's current reserve of
the day), and the heap of reserve release times. Version 3 allows several
groups' reserves on one center and day: a slot's sparse entry is ``[slot index,
[[group, held, used], ...]]`` (by group), a release is ``[release_at_ms,
campaign, center, day, group]``, and each line ends with its per-view remembered
failures ``[[tod, group, everyone, gains, from_day], ...]``. Version 4 ends each
booking with the command id of the move to another county it is in the middle of
(or None), the state ``moved_out`` being new too. Version 5 ends each campaign
with its rejected Books kept compactly, ``[[booking_id, command_id, identity,
county], ...]`` in the order they were rejected (earlier versions keep them among
the bookings, which is still a valid state). ``load`` reads
versions 2 to 5 (a version 2 snapshot has at most one reserve per center and
day: its slot entries and releases belong to that reserve's group) and refuses
any other (a snapshot is only a shortcut: an allocator that cannot read one
replays its partition from the start).
"""

from __future__ import annotations

import heapq
from typing import Any

import msgpack

from allocator.core import Allocator, Booking, Campaign, County, Want
from allocator.errors import SnapshotError
from allocator.inventory import Center, Line, Reserve, Slot, View

FORMAT = "fairq-allocator-snapshot"
VERSION = 5
READABLE = (2, 3, 4, 5)  # versions ``load`` reads


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
    if state.get("v") not in READABLE:
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
        [[booking_id, *kept] for booking_id, kept in c.rejected.items()],
    ]


def _reserves(center: Center) -> list[list[Any]]:
    return [
        [r.day, r.group, r.share_pct, r.mode, r.release_at_ms]
        for _, rsvs in sorted(center.reserves.items())
        for _, r in sorted(rsvs.items())
    ]


def _shares(slots: list[Slot]) -> list[list[Any]]:
    """The slots' places held back and used per group, sparse: only what is not 0."""
    out: list[list[Any]] = []
    for i, s in enumerate(slots):
        if s.shares is None:
            continue
        parts = [[g, sh.held, sh.used] for g, sh in sorted(s.shares.items()) if sh.held or sh.used]
        if parts:
            out.append([i, parts])
    return out


def _line(line: Line) -> list[Any]:
    slots = line.slots
    barren = list(line._barren) if line._barren is not None else None
    head, day_ptrs = line.settled_cursors()
    return [
        line.vaccine,
        line.min_days,
        line.max_days,
        head,
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
        day_ptrs,
        [d.free for d in line.days],
        _shares(slots),
        _barren_for(line),
    ]


def _barren_for(line: Line) -> list[list[Any]]:
    """The line's remembered failed searches per view, in a fixed order (a cache, but
    one that decides whether a search runs, and so how far it moves ``Day.ptr``)."""
    return [
        [v.tod, v.group, v.everyone, gains, from_day]
        for v, (gains, from_day) in sorted(
            line._barren_for.items(),
            key=lambda item: (
                -1 if item[0].tod is None else item[0].tod,
                item[0].group or "",
                item[0].everyone,
            ),
        )
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
    return [*fields, center, vaccine, i1, i2, answered, b.group, want, _reserve_mask(b), b.moving]


def _reserve_mask(b: Booking) -> int:
    """Bit 1: dose 1's place came out of its day's current reserve for the booking's
    group (a member only takes its own group's places); bit 2: dose 2's."""
    mask = 0
    if b.dose1 is not None and b.rsv1 is not None and _current(b.dose1, b.rsv1):
        mask |= 1
    if b.dose2 is not None and b.rsv2 is not None and _current(b.dose2, b.rsv2):
        mask |= 2
    return mask


def _current(slot: Slot, rsv: Reserve) -> bool:
    return slot.bucket.rsvs.get(rsv.group) is rsv


# -- loading -----------------------------------------------------------------------------------


def _restore(state: dict[str, Any]) -> Allocator:
    core = Allocator()
    core.now_ms = int(state["now_ms"])
    core.next_offset = int(state["next_offset"])
    core._expiries = [(int(e), str(b), str(c)) for e, b, c in state["expiries"]]
    v2 = state["v"] == 2
    for raw in state["campaigns"]:
        c = _load_campaign(raw, v2)
        core._campaigns[c.name] = c
    if v2:
        core._releases = [_v2_release(core, t, c, x, d) for t, c, x, d in state["releases"]]
        heapq.heapify(core._releases)  # the group is a tie-break the old order did not have
    else:
        core._releases = [
            (int(t), str(c), str(x), int(d), str(g)) for t, c, x, d, g in state["releases"]
        ]
    return core


def _v2_release(
    core: Allocator, t: int, name: str, center_id: str, day: int
) -> tuple[int, str, str, int, str]:
    """A version 2 release entry, with the group of its day's one reserve ("" when the
    day has none any more: the entry is stale, and skipped as before)."""
    rsvs = core._campaigns[name].centers[center_id].day_reserves(day)
    group = next(iter(rsvs), "")
    return int(t), str(name), str(center_id), int(day), group


def _load_campaign(raw: list[Any], v2: bool) -> Campaign:
    name, dirty, last, windows, inventory, orphans, counties, centers, bookings, active = raw[:10]
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
            line = _load_line(center, raw_line, v2)
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
    for booking_id, command_id, identity, county in raw[10] if len(raw) > 10 else ():
        known = c.counties.get(county)
        c.rejected[str(booking_id)] = (
            str(command_id),
            str(identity),
            known.name if known is not None else str(county),
        )
    return c


def _load_line(center: Center, raw: list[Any], v2: bool) -> Line:
    vaccine, lo, hi, head, past, free, monotone, gains, barren = raw[:9]
    days, starts, starts_s, capacities, used, retired, day_ptrs, day_frees, reserved = raw[9:18]
    barren_for: list[list[Any]] = []
    if v2:
        reserved = [_v2_shares(center, days[i], i, h, u) for i, h, u in reserved]
    else:
        barren_for = raw[18]
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
    for i, parts in reserved:
        s = made[i]
        for group, held, n_used in parts:
            share = s.share(group)
            share.held, share.used = held, n_used
        s.set_places(s.capacity, sum(h for _, h, _ in parts))
    line._reindex()
    for d, ptr, day_free in zip(line.days, day_ptrs, day_frees, strict=True):
        d.ptr, d.free = ptr, day_free
    line.head, line.past, line.free, line.monotone = head, past, free, monotone
    line._gains = gains
    line._barren = (barren[0], barren[1]) if barren is not None else None
    line._barren_for = {View(t, g, e): (n, d) for t, g, e, n, d in barren_for}
    return line


def _load_booking(c: Campaign, raw: list[Any]) -> Booking:
    booking_id, command_id, identity, county, state, rev, expires_ms = raw[:7]
    center, vaccine, i1, i2, answered, group, want, reserve_mask = raw[7:15]
    pair: tuple[Slot, Slot] | None = None
    if center is not None:
        slots = c.centers[center].lines[vaccine].slots
        pair = (slots[i1], slots[i2])
    fields = (booking_id, command_id, identity, county, state, rev, expires_ms, group)
    b = Booking.restored(fields, pair, set(answered) if answered is not None else None)
    if pair is not None and group is not None:
        b.rsv1 = pair[0].bucket.rsvs.get(group) if reserve_mask & 1 else None
        b.rsv2 = pair[1].bucket.rsvs.get(group) if reserve_mask & 2 else None
    if want is not None:
        center, earliest, time_of_day, hold_s = want
        b.want, b.hold_s = Want(center, earliest, group, time_of_day), hold_s
    b.moving = raw[15] if len(raw) > 15 else None  # version 4 on
    return b


def _v2_shares(center: Center, day: int, i: int, held: int, n_used: int) -> list[Any]:
    """A version 2 slot entry ``[i, held_back, res_used]`` as a version 3 one: the
    places belong to the day's one reserve."""
    rsvs = center.day_reserves(day)
    if len(rsvs) != 1:
        raise ValueError(f"slot {i} holds places back on a day without one reserve")
    (group,) = rsvs
    return [i, [[group, held, n_used]]]
