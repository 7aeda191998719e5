"""The operator's campaign document (JSON over HTTP) and its expansion into inventory.

``PUT /api/admin/campaigns/{name}`` carries a document such as::

    {"title": "...", "timezone": "Europe/Berlin", "hold_s": 600, "identity_key": "optional",
     "vaccines": [{"id", "name", "min_days", "max_days"}],
     "counties": [{"id", "name"}],
     "centers": [{"id", "name", "county", "address", "vaccines": [ids]}],
     "schedules": [{"center", "vaccine", "from", "to", "weekdays", "open", "close",
                    "every_min", "capacity"}],
     "slots": [{"center", "vaccine", "start": "YYYY-MM-DDTHH:MM", "capacity"}]}

The document is declared once as msgspec Structs (``CampaignDoc`` and its parts, with
their limits); ``CampaignPublic`` is what everyone may read of it (no inventory).
``parse_campaign`` decodes it, checks what spans fields (ids known and unique, dates
real, a schedule's close after its open) and expands schedules and explicit slots
into ``SlotSpec`` values; every error is a ``SchemaError`` whose message starts with
the field's path, e.g. ``centers[3].county: unknown county 'x'`` or
``hold_s: Expected `int` >= 60``. Every county
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
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from schemas.commands import (
    MAX_HOLD_S,
    MAX_SLOTS_PER_COMMAND,
    MAX_WINDOW_DAYS,
    AddInventory,
    SlotSpec,
    WindowDays,
)
from schemas.errors import SchemaError
from schemas.fields import ID_PATTERN
from schemas.message import fault
from schemas.states import IdentityKeyMode
from schemas.types import Ident

MIN_HOLD_S = 60
DEFAULT_HOLD_S = 600
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

# Text people read: not blank (a non-space character somewhere), at most so long.
Text = Annotated[str, Meta(min_length=1, max_length=MAX_TEXT_LEN, pattern=r"\S")]
Address = Annotated[str, Meta(min_length=1, max_length=MAX_ADDRESS_LEN, pattern=r"\S")]
Zone = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"\S")]
HoldS = Annotated[int, Meta(ge=MIN_HOLD_S, le=MAX_HOLD_S)]
Capacity = Annotated[int, Meta(ge=0, le=MAX_CAPACITY)]
EveryMin = Annotated[int, Meta(ge=MIN_EVERY_MIN, le=24 * 60)]
Weekday = Annotated[int, Meta(ge=0, le=6, description="0 (Monday) to 6 (Sunday)")]
# Checked by parse_campaign beyond their pattern: a real day in the years FIRST_YEAR to
# LAST_YEAR, a clock time up to 24:00, a local start that the clocks do not skip.
DateText = Annotated[str, Meta(description="a date YYYY-MM-DD")]
ClockText = Annotated[str, Meta(description="a local time HH:MM (24:00 allowed)")]
LocalStart = Annotated[str, Meta(description="a local time YYYY-MM-DDTHH:MM without offset")]


class _Part(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An object of the campaign document: every field known, none of others."""


class Vaccine(_Part, frozen=True):
    id: Ident
    name: Text
    min_days: WindowDays  # dose 2 at least this many days after dose 1
    max_days: WindowDays  # and at most this many


class County(_Part, frozen=True):
    id: Ident
    name: Text


class Center(_Part, frozen=True):
    id: Ident
    name: Text
    county: Ident
    address: Address
    vaccines: Annotated[tuple[Ident, ...], Meta(min_length=1, max_length=MAX_VACCINES)]


class Schedule(_Part, frozen=True, rename={"first": "from", "last": "to"}):
    """Slots every ``every_min`` minutes from ``open`` to before ``close`` on the
    ``weekdays`` from ``from`` to ``to`` (local time of the campaign's zone)."""

    center: Ident
    vaccine: Ident
    first: DateText
    last: DateText
    open: ClockText
    close: ClockText
    every_min: EveryMin
    capacity: Capacity
    weekdays: Annotated[tuple[Weekday, ...], Meta(min_length=1, max_length=7)] | None = None


class Slot(_Part, frozen=True):
    """One explicit slot at a local start."""

    center: Ident
    vaccine: Ident
    start: LocalStart
    capacity: Capacity


class CampaignDoc(_Part, frozen=True):
    """The document of ``PUT /api/admin/campaigns/{name}``; null reads as absent."""

    title: Text
    vaccines: Annotated[tuple[Vaccine, ...], Meta(min_length=1, max_length=MAX_VACCINES)]
    counties: Annotated[tuple[County, ...], Meta(min_length=1, max_length=MAX_COUNTIES)]
    centers: Annotated[tuple[Center, ...], Meta(min_length=1, max_length=MAX_CENTERS)]
    timezone: Zone | None = None  # an IANA zone name; None: UTC
    hold_s: HoldS | None = None  # None: DEFAULT_HOLD_S
    # "required": every confirm carries the person's identity key (one pair per key)
    identity_key: IdentityKeyMode | None = None
    schedules: Annotated[tuple[Schedule, ...], Meta(max_length=MAX_SCHEDULES)] | None = None
    slots: Annotated[tuple[Slot, ...], Meta(max_length=MAX_SLOTS)] | None = None


class CampaignPublic(msgspec.Struct, frozen=True):
    """What everyone may read of a campaign (``GET /api/campaigns/{name}``): the
    document without its inventory, with its name and its defaults filled in. Stored
    as JSON in Redis (``keys.campaign``) and in the state log (``CampaignStored``)."""

    name: Ident
    title: Text
    timezone: Zone
    hold_s: HoldS
    identity_key: IdentityKeyMode
    vaccines: tuple[Vaccine, ...]
    counties: tuple[County, ...]
    centers: tuple[Center, ...]


_public_decoder = msgspec.json.Decoder(CampaignPublic)


def decode_public(raw: bytes | str) -> CampaignPublic:
    """A stored public description; SchemaError naming the field if it is not one."""
    try:
        return _public_decoder.decode(raw)
    except msgspec.DecodeError as e:
        raise _path_error(e, "campaign") from e


class CampaignSpec(CampaignPublic, frozen=True):
    """A checked campaign: its public view and its slots expanded, sorted by center,
    vaccine and start."""

    slots: tuple[tuple[str, str, SlotSpec], ...]  # (center id, vaccine id, slot)

    def public(self) -> CampaignPublic:
        """The description shown to everyone; no slots."""
        fields = CampaignPublic.__struct_fields__
        return CampaignPublic(*(getattr(self, f) for f in fields))

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


def _path_error(e: msgspec.DecodeError, root: str) -> SchemaError:
    """A msgspec error as ``path: what``, the path as the document writes it
    (``centers[3].county``); ``root`` names the whole document."""
    path, text, _, unknown = fault(e)
    if unknown:
        return SchemaError(f"unknown field(s) in {path or 'the ' + root}: {unknown}")
    if not isinstance(e, msgspec.ValidationError):
        text = f"not JSON: {text}"
    elif not path and text.startswith("Expected `object`"):
        text = "must be an object"
    return SchemaError(f"{path or root}: {text}")


_doc_decoder = functools.partial(msgspec.convert, type=CampaignDoc)


def parse_campaign(name: str, doc: Any) -> CampaignSpec:
    """Check a campaign document and expand its inventory; raises SchemaError."""
    if not isinstance(name, str) or not ID_PATTERN.fullmatch(name):
        raise SchemaError(f"name: a campaign name must match {ID_PATTERN.pattern}, got {name!r}")
    try:
        top = _doc_decoder(doc)
    except msgspec.ValidationError as e:
        raise _path_error(e, "campaign") from e
    tz_name, tz = _timezone(top.timezone)
    _vaccines(top.vaccines)
    _unique_ids([c.id for c in top.counties], "counties")
    _centers(top.centers, {v.id for v in top.vaccines}, {c.id for c in top.counties})
    _every_county_has_a_center(top.counties, top.centers)
    by_id = {c.id: c for c in top.centers}
    schedules = _schedules(top.schedules or (), by_id)
    extras = _extras(top.slots or (), by_id)
    total = sum(s.count() for s in schedules) + len(extras)
    if total > MAX_SLOTS:
        raise SchemaError(
            f"schedules: the campaign expands to {total} slots, more than {MAX_SLOTS}"
        )
    slots = _expand(schedules, extras, tz, tz_name)
    if not any(s.capacity for _, _, s in slots):
        raise SchemaError("schedules: the campaign gives no places; add 'schedules' or 'slots'")
    return CampaignSpec(
        name,
        top.title,
        tz_name,
        DEFAULT_HOLD_S if top.hold_s is None else top.hold_s,
        top.identity_key or IdentityKeyMode.OPTIONAL,
        top.vaccines,
        top.counties,
        top.centers,
        slots,
    )


def _date(value: str, path: str) -> dt.date:
    if _DATE.fullmatch(value):
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


def _clock(value: str, path: str) -> int:
    """A local time HH:MM (24:00 allowed) as minutes after midnight."""
    m = _CLOCK.fullmatch(value)
    minutes = int(m[1]) * 60 + int(m[2]) if m and int(m[2]) < 60 else -1
    if not 0 <= minutes <= 24 * 60:
        raise SchemaError(f"{path}: must be a local time HH:MM, got {value!r}")
    return minutes


def _timezone(name: str | None) -> tuple[str, dt.tzinfo]:
    if name is None:
        return DEFAULT_TIMEZONE, dt.UTC
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


def _vaccines(vaccines: Sequence[Vaccine]) -> None:
    for i, v in enumerate(vaccines):
        if v.max_days < v.min_days:
            raise SchemaError(
                f"vaccines[{i}].max_days: must be between {v.min_days} and {MAX_WINDOW_DAYS},"
                f" got {v.max_days}"
            )
    _unique_ids([v.id for v in vaccines], "vaccines")


def _centers(centers: Sequence[Center], vaccine_ids: set[str], county_ids: set[str]) -> None:
    for n, center in enumerate(centers):
        path = f"centers[{n}]"
        if center.county not in county_ids:
            raise SchemaError(f"{path}.county: unknown county {center.county!r}")
        offered = center.vaccines
        for i, vaccine in enumerate(offered):
            if vaccine not in vaccine_ids:
                raise SchemaError(f"{path}.vaccines[{i}]: unknown vaccine {vaccine!r}")
            if vaccine in offered[:i]:
                raise SchemaError(f"{path}.vaccines[{i}]: vaccine {vaccine!r} listed twice")
    _unique_ids([c.id for c in centers], "centers")


def _every_county_has_a_center(counties: Sequence[County], centers: Sequence[Center]) -> None:
    served = {c.county for c in centers}
    for i, county in enumerate(counties):
        if county.id not in served:
            raise SchemaError(
                f"counties[{i}].id: county {county.id!r} has no center; add one or leave it out"
            )


def _offer(path: str, center: str, vaccine: str, centers: Mapping[str, Center]) -> None:
    """Check the (center, vaccine) an inventory entry names against the centers."""
    if center not in centers:
        raise SchemaError(f"{path}.center: unknown center {center!r}")
    if vaccine not in centers[center].vaccines:
        raise SchemaError(f"{path}.vaccine: center {center!r} does not offer vaccine {vaccine!r}")


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


def _schedules(schedules: Sequence[Schedule], centers: Mapping[str, Center]) -> list[_Schedule]:
    out = []
    for i, s in enumerate(schedules):
        path = f"schedules[{i}]"
        _offer(path, s.center, s.vaccine, centers)
        first, last = _date(s.first, f"{path}.from"), _date(s.last, f"{path}.to")
        if last < first:
            raise SchemaError(f"{path}.to: {last} is before from {first}")
        opens, closes = _clock(s.open, f"{path}.open"), _clock(s.close, f"{path}.close")
        if closes <= opens:
            raise SchemaError(f"{path}.close: must be later than open")
        minutes = tuple(range(opens, closes, s.every_min))
        weekdays = _weekdays(s.weekdays, f"{path}.weekdays")
        out.append(_Schedule(s.center, s.vaccine, first, last, weekdays, minutes, s.capacity))
    return out


def _weekdays(weekdays: Sequence[int] | None, path: str) -> frozenset[int]:
    if weekdays is None:
        return frozenset(ALL_WEEKDAYS)
    for i, day in enumerate(weekdays):
        if day in weekdays[:i]:
            raise SchemaError(f"{path}[{i}]: weekday {day} listed twice")
    return frozenset(weekdays)


@dataclass(frozen=True, slots=True)
class _Extra:
    """One explicit slot: a local day and minute after midnight."""

    path: str
    center: str
    vaccine: str
    day: dt.date
    minute: int
    capacity: int


def _extras(slots: Sequence[Slot], centers: Mapping[str, Center]) -> list[_Extra]:
    out = []
    for i, s in enumerate(slots):
        path = f"slots[{i}]"
        _offer(path, s.center, s.vaccine, centers)
        day, minute = _local_start(s.start, f"{path}.start")
        out.append(_Extra(path, s.center, s.vaccine, day, minute, s.capacity))
    return out


def _local_start(value: str, path: str) -> tuple[dt.date, int]:
    m = _LOCAL_START.fullmatch(value)
    if m:
        day = _date(m[1], path)
        hour, minute = int(m[2]), int(m[3])
        if hour < 24 and minute < 60:
            return day, hour * 60 + minute
    raise SchemaError(
        f"{path}: must be a local time YYYY-MM-DDTHH:MM without offset, got {value!r}"
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
