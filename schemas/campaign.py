"""The operator's campaign document (JSON over HTTP) and its expansion into inventory.

``PUT /api/admin/campaigns/{name}`` carries a document such as::

    {"title": "...", "timezone": "Europe/Berlin", "hold_s": 600, "identity_key": "optional",
     "vaccines": [{"id", "name", "min_days", "max_days"}],
     "counties": [{"id", "name"}],
     "centers": [{"id", "name", "county", "address", "vaccines": [ids]}],
     "schedules": [{"center", "vaccine", "from", "to", "weekdays", "open", "close",
                    "every_min", "capacity"}],
     "slots": [{"center", "vaccine", "start": "YYYY-MM-DDTHH:MM", "capacity"}]}

``parse_campaign`` checks it and expands schedules and explicit slots into
``SlotSpec`` values; every error is a ``SchemaError`` whose message starts with
the field's path, e.g. ``centers[3].county: unknown county 'x'``. Every county
needs a center: the allocator learns of a county from its centers' inventory, and
reports on no other, so the rooms of a campaign with a county it never hears of
could never be told they are sold out.

Local times and clock changes (all deterministic):

- a local time that does not exist because the clocks jump forward (the spring
  gap) is skipped when a schedule produces it, and refused when an explicit
  slot names it;
- a local time that occurs twice because the clocks go back is taken at its
  first occurrence (``fold=0``, still summer time), so a schedule running
  through that night yields the repeated hour once;
- places for the same center, vaccine and instant are summed, whether they come
  from overlapping schedules, duplicate explicit slots or both.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import re
import zoneinfo
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from schemas.commands import (
    MAX_HOLD_S,
    MAX_SLOTS_PER_COMMAND,
    MAX_WINDOW_DAYS,
    AddInventory,
    SlotSpec,
)
from schemas.errors import SchemaError
from schemas.fields import ID_PATTERN, only_keys

MIN_HOLD_S = 60
DEFAULT_HOLD_S = 600
# "required": every confirm carries the person's identity key (one pair per key per campaign)
IDENTITY_KEY_MODES = ("optional", "required")
DEFAULT_TIMEZONE = "UTC"
MAX_SLOTS = 1_000_000  # expanded slots in all: ~300 MB and a few seconds to expand
MAX_CENTERS = 1_000
MAX_COUNTIES = 1_000
MAX_VACCINES = 100
MAX_SCHEDULES = 10_000
MAX_CAPACITY = 10_000  # places in one slot
MIN_EVERY_MIN = 5
MAX_TEXT_LEN = 200
MAX_ADDRESS_LEN = 300
FIRST_YEAR, LAST_YEAR = 2000, 2999
ALL_WEEKDAYS = (0, 1, 2, 3, 4, 5, 6)

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CLOCK = re.compile(r"([0-9]{2}):([0-9]{2})")
_LOCAL_START = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})T([0-9]{2}):([0-9]{2})")


@dataclass(frozen=True, slots=True)
class Vaccine:
    id: str
    name: str
    min_days: int  # dose 2 at least this many days after dose 1
    max_days: int  # and at most this many


@dataclass(frozen=True, slots=True)
class County:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Center:
    id: str
    name: str
    county: str
    address: str
    vaccines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CampaignSpec:
    """A checked campaign with its slots expanded, sorted by center, vaccine and start."""

    name: str
    title: str
    timezone: str
    hold_s: int
    vaccines: tuple[Vaccine, ...]
    counties: tuple[County, ...]
    centers: tuple[Center, ...]
    slots: tuple[tuple[str, str, SlotSpec], ...]  # (center id, vaccine id, slot)
    # whether a confirm must carry the person's identity key (e.g. an insurance number)
    identity_key: str = "optional"

    def public(self) -> dict[str, Any]:
        """The JSON-able description shown to everyone; no slots."""
        return {
            "name": self.name,
            "title": self.title,
            "timezone": self.timezone,
            "hold_s": self.hold_s,
            "identity_key": self.identity_key,
            "vaccines": [
                {"id": v.id, "name": v.name, "min_days": v.min_days, "max_days": v.max_days}
                for v in self.vaccines
            ],
            "counties": [{"id": c.id, "name": c.name} for c in self.counties],
            "centers": [
                {
                    "id": c.id,
                    "name": c.name,
                    "county": c.county,
                    "address": c.address,
                    "vaccines": list(c.vaccines),
                }
                for c in self.centers
            ],
        }

    def inventory_commands(
        self, new_id: Callable[[], str], max_slots: int = 2000
    ) -> list[AddInventory]:
        """AddInventory commands loading every slot, at most ``max_slots`` slots each.

        Every (center, vaccine) the document offers gets at least one command, an
        empty one when it has no slots, so the allocator learns every center, its
        county and the vaccine's window. Order: centers and their vaccines as in
        the document, slots by start.
        """
        if not 1 <= max_slots <= MAX_SLOTS_PER_COMMAND:
            raise ValueError(f"max_slots must be 1..{MAX_SLOTS_PER_COMMAND}, got {max_slots}")
        by_pair = {
            pair: [t[2] for t in group]
            for pair, group in itertools.groupby(self.slots, key=lambda t: (t[0], t[1]))
        }
        windows = {v.id: v for v in self.vaccines}
        out: list[AddInventory] = []
        for center in self.centers:
            for vaccine_id in center.vaccines:
                slots = by_pair.get((center.id, vaccine_id), [])
                for start in range(0, max(len(slots), 1), max_slots):
                    out.append(
                        AddInventory(
                            command_id=new_id(),
                            campaign=self.name,
                            county=center.county,
                            center=center.id,
                            center_name=center.name,
                            vaccine=vaccine_id,
                            min_days=windows[vaccine_id].min_days,
                            max_days=windows[vaccine_id].max_days,
                            slots=tuple(slots[start : start + max_slots]),
                        )
                    )
        return out


def parse_campaign(name: str, doc: Any) -> CampaignSpec:
    """Check a campaign document and expand its inventory; raises SchemaError."""
    if not isinstance(name, str) or not ID_PATTERN.fullmatch(name):
        raise SchemaError(f"name: a campaign name must match {ID_PATTERN.pattern}, got {name!r}")
    top = _Obj(
        doc,
        "",
        required=("title", "vaccines", "counties", "centers"),
        optional=("timezone", "hold_s", "identity_key", "schedules", "slots"),
    )
    title = top.text("title")
    hold_s = top.integer("hold_s", MIN_HOLD_S, MAX_HOLD_S, default=DEFAULT_HOLD_S)
    identity_key = top.choice("identity_key", IDENTITY_KEY_MODES, default="optional")
    tz_name, tz = _timezone(top)
    vaccines = _vaccines(top)
    counties = _counties(top)
    centers = _centers(top, {v.id for v in vaccines}, {c.id for c in counties})
    _every_county_has_a_center(counties, centers)
    by_id = {c.id: c for c in centers}
    schedules = _schedules(top, by_id)
    extras = _extras(top, by_id)
    total = sum(s.count() for s in schedules) + len(extras)
    if total > MAX_SLOTS:
        raise SchemaError(
            f"schedules: the campaign expands to {total} slots, more than {MAX_SLOTS}"
        )
    slots = _expand(schedules, extras, tz, tz_name)
    if not any(s.capacity for _, _, s in slots):
        raise SchemaError("schedules: the campaign gives no places; add 'schedules' or 'slots'")
    return CampaignSpec(
        name, title, tz_name, hold_s, vaccines, counties, centers, slots, identity_key
    )


class _Obj:
    """One JSON object of the document, read field by field; errors name the field's path."""

    def __init__(
        self, raw: Any, path: str, required: Sequence[str], optional: Sequence[str] = ()
    ) -> None:
        if not isinstance(raw, Mapping):
            raise SchemaError(f"{path or 'campaign'}: must be an object")
        only_keys(raw, frozenset(required) | frozenset(optional), path or "the campaign")
        self.raw: Mapping[str, Any] = raw
        self.path = path
        for key in required:
            if raw.get(key) is None:
                raise SchemaError(f"{self.at(key)}: is required")

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return self.raw.get(key) is not None

    def text(self, key: str, max_len: int = MAX_TEXT_LEN) -> str:
        value = self.raw.get(key)
        if not isinstance(value, str) or not value.strip():
            raise SchemaError(f"{self.at(key)}: must be a non-empty string")
        if len(value) > max_len:
            raise SchemaError(f"{self.at(key)}: is longer than {max_len} characters")
        return value

    def ident(self, key: str) -> str:
        return _ident(self.raw.get(key), self.at(key))

    def choice(self, key: str, choices: Sequence[str], default: str) -> str:
        value = self.raw.get(key, default)
        if value not in choices:
            raise SchemaError(f"{self.at(key)}: must be one of {', '.join(choices)}, got {value!r}")
        return str(value)

    def integer(self, key: str, lo: int, hi: int, default: int | None = None) -> int:
        value = self.raw.get(key)
        if value is None and default is not None:
            return default
        if not isinstance(value, int) or isinstance(value, bool):
            raise SchemaError(f"{self.at(key)}: must be an integer")
        if not lo <= value <= hi:
            raise SchemaError(f"{self.at(key)}: must be between {lo} and {hi}, got {value}")
        return value

    def items(self, key: str, max_len: int, *, min_len: int = 1) -> list[tuple[str, Any]]:
        """(path, raw item) for each item of the list ``key``; absent or null is empty."""
        value = self.raw.get(key, [])
        if value is None:
            value = []
        if not isinstance(value, list | tuple):
            raise SchemaError(f"{self.at(key)}: must be a list")
        if not min_len <= len(value) <= max_len:
            raise SchemaError(f"{self.at(key)}: must have {min_len} to {max_len} items")
        return [(f"{self.at(key)}[{i}]", item) for i, item in enumerate(value)]

    def date(self, key: str) -> dt.date:
        return _date(self.raw.get(key), self.at(key))

    def clock(self, key: str) -> int:
        """A local time HH:MM (24:00 allowed) as minutes after midnight."""
        value = self.raw.get(key)
        m = _CLOCK.fullmatch(value) if isinstance(value, str) else None
        minutes = int(m[1]) * 60 + int(m[2]) if m and int(m[2]) < 60 else -1
        if not 0 <= minutes <= 24 * 60:
            raise SchemaError(f"{self.at(key)}: must be a local time HH:MM, got {value!r}")
        return minutes


def _date(value: Any, path: str) -> dt.date:
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            day = dt.date.fromisoformat(value)
        except ValueError:
            pass
        else:
            if FIRST_YEAR <= day.year <= LAST_YEAR:
                return day
    raise SchemaError(
        f"{path}: must be a date YYYY-MM-DD in the years {FIRST_YEAR}-{LAST_YEAR}, got {value!r}"
    )


def _ident(value: Any, path: str) -> str:
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise SchemaError(f"{path}: must be an id matching {ID_PATTERN.pattern}, got {value!r}")
    return value


def _timezone(top: _Obj) -> tuple[str, dt.tzinfo]:
    if not top.has("timezone"):
        return DEFAULT_TIMEZONE, dt.UTC
    name = top.text("timezone", max_len=64)
    if name == "localtime":  # the host's zone: the same document would mean different times
        raise SchemaError("timezone: give an IANA zone name such as 'Europe/Berlin'")
    if name not in _known_zones():  # also keeps out right/* (leap seconds) and data files
        raise SchemaError(f"timezone: unknown time zone {name!r}")
    try:
        return name, zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as e:
        raise SchemaError(f"timezone: time zone {name!r} cannot be loaded: {e}") from e


@functools.cache
def _known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _unique_ids(ids: Sequence[str], path: str) -> None:
    seen: set[str] = set()
    for i, item_id in enumerate(ids):
        if item_id in seen:
            raise SchemaError(f"{path}[{i}].id: duplicate id {item_id!r}")
        seen.add(item_id)


def _vaccines(top: _Obj) -> tuple[Vaccine, ...]:
    out = []
    for path, raw in top.items("vaccines", MAX_VACCINES):
        o = _Obj(raw, path, required=("id", "name", "min_days", "max_days"))
        min_days = o.integer("min_days", 1, MAX_WINDOW_DAYS)
        max_days = o.integer("max_days", min_days, MAX_WINDOW_DAYS)
        out.append(Vaccine(o.ident("id"), o.text("name"), min_days, max_days))
    _unique_ids([v.id for v in out], "vaccines")
    return tuple(out)


def _counties(top: _Obj) -> tuple[County, ...]:
    out = []
    for path, raw in top.items("counties", MAX_COUNTIES):
        o = _Obj(raw, path, required=("id", "name"))
        out.append(County(o.ident("id"), o.text("name")))
    _unique_ids([c.id for c in out], "counties")
    return tuple(out)


def _centers(top: _Obj, vaccine_ids: set[str], county_ids: set[str]) -> tuple[Center, ...]:
    out = []
    for path, raw in top.items("centers", MAX_CENTERS):
        o = _Obj(raw, path, required=("id", "name", "county", "address", "vaccines"))
        county = o.ident("county")
        if county not in county_ids:
            raise SchemaError(f"{path}.county: unknown county {county!r}")
        offered = tuple(_ident(v, p) for p, v in o.items("vaccines", MAX_VACCINES))
        for i, vaccine in enumerate(offered):
            if vaccine not in vaccine_ids:
                raise SchemaError(f"{path}.vaccines[{i}]: unknown vaccine {vaccine!r}")
            if vaccine in offered[:i]:
                raise SchemaError(f"{path}.vaccines[{i}]: vaccine {vaccine!r} listed twice")
        address = o.text("address", MAX_ADDRESS_LEN)
        out.append(Center(o.ident("id"), o.text("name"), county, address, offered))
    _unique_ids([c.id for c in out], "centers")
    return tuple(out)


def _every_county_has_a_center(counties: Sequence[County], centers: Sequence[Center]) -> None:
    served = {c.county for c in centers}
    for i, county in enumerate(counties):
        if county.id not in served:
            raise SchemaError(
                f"counties[{i}].id: county {county.id!r} has no center; add one or leave it out"
            )


def _offer(o: _Obj, centers: Mapping[str, Center]) -> tuple[str, str]:
    """The (center, vaccine) an inventory entry names, checked against the centers."""
    center = o.ident("center")
    if center not in centers:
        raise SchemaError(f"{o.at('center')}: unknown center {center!r}")
    vaccine = o.ident("vaccine")
    if vaccine not in centers[center].vaccines:
        raise SchemaError(
            f"{o.at('vaccine')}: center {center!r} does not offer vaccine {vaccine!r}"
        )
    return center, vaccine


@dataclass(frozen=True, slots=True)
class _Schedule:
    center: str
    vaccine: str
    first: dt.date
    last: dt.date
    weekdays: frozenset[int]
    minutes: tuple[int, ...]  # slot starts, minutes after local midnight
    capacity: int

    def days(self) -> Iterator[dt.date]:
        day = self.first
        while day <= self.last:
            if day.weekday() in self.weekdays:
                yield day
            day += dt.timedelta(days=1)

    def count(self) -> int:
        """Slots before clock changes are applied; computed without expanding."""
        full_weeks, rest = divmod((self.last - self.first).days + 1, 7)
        start = self.first.weekday()
        extra = sum(1 for i in range(rest) if (start + i) % 7 in self.weekdays)
        return (full_weeks * len(self.weekdays) + extra) * len(self.minutes)


def _schedules(top: _Obj, centers: Mapping[str, Center]) -> list[_Schedule]:
    out = []
    for path, raw in top.items("schedules", MAX_SCHEDULES, min_len=0):
        o = _Obj(
            raw,
            path,
            required=("center", "vaccine", "from", "to", "open", "close", "every_min", "capacity"),
            optional=("weekdays",),
        )
        center, vaccine = _offer(o, centers)
        first, last = o.date("from"), o.date("to")
        if last < first:
            raise SchemaError(f"{path}.to: {last} is before from {first}")
        opens, closes = o.clock("open"), o.clock("close")
        if closes <= opens:
            raise SchemaError(f"{path}.close: must be later than open")
        every = o.integer("every_min", MIN_EVERY_MIN, 24 * 60)
        capacity = o.integer("capacity", 0, MAX_CAPACITY)
        minutes = tuple(range(opens, closes, every))
        out.append(_Schedule(center, vaccine, first, last, _weekdays(o), minutes, capacity))
    return out


def _weekdays(o: _Obj) -> frozenset[int]:
    if not o.has("weekdays"):
        return frozenset(ALL_WEEKDAYS)
    days: set[int] = set()
    for path, raw in o.items("weekdays", 7):
        if not isinstance(raw, int) or isinstance(raw, bool) or raw not in ALL_WEEKDAYS:
            raise SchemaError(f"{path}: must be a weekday 0 (Monday) to 6 (Sunday), got {raw!r}")
        if raw in days:
            raise SchemaError(f"{path}: weekday {raw} listed twice")
        days.add(raw)
    return frozenset(days)


@dataclass(frozen=True, slots=True)
class _Extra:
    """One explicit slot: a local day and minute after midnight."""

    path: str
    center: str
    vaccine: str
    day: dt.date
    minute: int
    capacity: int


def _extras(top: _Obj, centers: Mapping[str, Center]) -> list[_Extra]:
    out = []
    for path, raw in top.items("slots", MAX_SLOTS, min_len=0):
        o = _Obj(raw, path, required=("center", "vaccine", "start", "capacity"))
        center, vaccine = _offer(o, centers)
        day, minute = _local_start(o)
        capacity = o.integer("capacity", 0, MAX_CAPACITY)
        out.append(_Extra(path, center, vaccine, day, minute, capacity))
    return out


def _local_start(o: _Obj) -> tuple[dt.date, int]:
    value = o.raw.get("start")
    m = _LOCAL_START.fullmatch(value) if isinstance(value, str) else None
    if m:
        day = _date(m[1], o.at("start"))
        hour, minute = int(m[2]), int(m[3])
        if hour < 24 and minute < 60:
            return day, hour * 60 + minute
    raise SchemaError(
        f"{o.at('start')}: must be a local time YYYY-MM-DDTHH:MM without offset, got {value!r}"
    )


def _start_at(day: dt.date, minute: int, tz: dt.tzinfo) -> tuple[int, str] | None:
    """(epoch seconds, ISO start with offset) of a local time; None if the clocks skip it.

    A repeated local time (clocks going back) is taken at its first occurrence (fold=0).
    """
    hour, minute = divmod(minute, 60)
    local = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)
    if local.astimezone(dt.UTC).astimezone(tz).replace(tzinfo=None) != local.replace(tzinfo=None):
        return None
    return int(local.timestamp()), local.isoformat()


def _starts_of_day(
    day: dt.date, minutes: tuple[int, ...], tz: dt.tzinfo
) -> Iterator[tuple[int, str]]:
    """``_start_at`` for each of a day's sorted minutes, skipping those the clocks skip.

    When the first and the last slot have the same UTC offset the day is taken to
    have no clock change between them (no zone changes twice within hours) and
    the rest are computed from that offset.
    """
    first = _start_at(day, minutes[0], tz)
    last = _start_at(day, minutes[-1], tz)
    base = first[0] - minutes[0] * 60 if first else None
    if first is None or last is None or last[0] - minutes[-1] * 60 != base:
        for minute in minutes:
            found = _start_at(day, minute, tz)
            if found is not None:
                yield found
        return
    prefix, offset = day.isoformat(), first[1][19:]  # after "YYYY-MM-DDTHH:MM:SS"
    for minute in minutes:
        yield base + minute * 60, f"{prefix}T{minute // 60:02d}:{minute % 60:02d}:00{offset}"


def _add(places: dict[int, SlotSpec], slot: SlotSpec) -> None:
    """Add a slot to one (center, vaccine)'s slots by start, summing places at the same start."""
    known = places.get(slot.start_s)
    if known is not None:
        slot = SlotSpec(known.day, known.start, known.start_s, known.capacity + slot.capacity)
    places[slot.start_s] = slot


def _expand(
    schedules: list[_Schedule], extras: list[_Extra], tz: dt.tzinfo, tz_name: str
) -> tuple[tuple[str, str, SlotSpec], ...]:
    pairs: dict[tuple[str, str], dict[int, SlotSpec]] = {}
    for s in schedules:
        places = pairs.setdefault((s.center, s.vaccine), {})
        for day in s.days():
            day_iso = day.isoformat()
            for start_s, start in _starts_of_day(day, s.minutes, tz):
                _add(places, SlotSpec(day_iso, start, start_s, s.capacity))
    for x in extras:
        found = _start_at(x.day, x.minute, tz)
        if found is None:
            raise SchemaError(
                f"{x.path}.start: {x.day}T{x.minute // 60:02d}:{x.minute % 60:02d} does not "
                f"exist in {tz_name} (the clocks skip it)"
            )
        places = pairs.setdefault((x.center, x.vaccine), {})
        _add(places, SlotSpec(x.day.isoformat(), found[1], found[0], x.capacity))
    return tuple(
        (center, vaccine, pairs[center, vaccine][start_s])
        for center, vaccine in sorted(pairs)
        for start_s in sorted(pairs[center, vaccine])
    )
