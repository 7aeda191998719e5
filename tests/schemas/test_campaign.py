from __future__ import annotations

import copy
import datetime as dt
import itertools
import zoneinfo
from collections.abc import Callable
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import SchemaError
from schemas.campaign import MAX_CENTERS, CampaignSpec, decode_public, parse_campaign
from schemas.commands import AddInventory, SlotSpec, decode_command

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
UTC = dt.UTC


def example_doc() -> dict[str, Any]:
    """The document from the operator's manual."""
    return {
        "title": "COVID-19 vaccination, Baden-Württemberg",
        "timezone": "Europe/Berlin",
        "hold_s": 600,
        "vaccines": [
            {"id": "comirnaty", "name": "Comirnaty (BioNTech)", "min_days": 21, "max_days": 42}
        ],
        "counties": [{"id": "stuttgart", "name": "Stuttgart"}],
        "centers": [
            {
                "id": "stuttgart-messe",
                "name": "Impfzentrum Messe",
                "county": "stuttgart",
                "address": "Messepiazza 1, 70629 Stuttgart",
                "vaccines": ["comirnaty"],
            }
        ],
        "schedules": [
            {
                "center": "stuttgart-messe",
                "vaccine": "comirnaty",
                "from": "2026-12-01",
                "to": "2027-02-28",
                "weekdays": [0, 1, 2, 3, 4, 5],
                "open": "08:00",
                "close": "18:00",
                "every_min": 30,
                "capacity": 4,
            }
        ],
        "slots": [
            {
                "center": "stuttgart-messe",
                "vaccine": "comirnaty",
                "start": "2026-12-24T10:00",
                "capacity": 2,
            }
        ],
    }


def two_center_doc() -> dict[str, Any]:
    """Two counties, two centers, two vaccines; the target of the validation cases."""
    return {
        "title": "Test",
        "timezone": "Europe/Berlin",
        "vaccines": [
            {"id": "comirnaty", "name": "Comirnaty", "min_days": 21, "max_days": 42},
            {"id": "spikevax", "name": "Spikevax", "min_days": 28, "max_days": 42},
        ],
        "counties": [{"id": "north", "name": "North"}, {"id": "south", "name": "South"}],
        "centers": [
            {
                "id": "a",
                "name": "Center A",
                "county": "north",
                "address": "Street 1",
                "vaccines": ["comirnaty", "spikevax"],
            },
            {
                "id": "b",
                "name": "Center B",
                "county": "south",
                "address": "Street 2",
                "vaccines": ["spikevax"],
            },
        ],
        "schedules": [
            {
                "center": "a",
                "vaccine": "comirnaty",
                "from": "2027-02-01",
                "to": "2027-02-05",
                "open": "08:00",
                "close": "10:00",
                "every_min": 30,
                "capacity": 1,
            }
        ],
        "slots": [
            {"center": "b", "vaccine": "spikevax", "start": "2027-02-01T10:00", "capacity": 3}
        ],
    }


def one_day(tz: str, day: str, open_: str, close: str, every_min: int) -> dict[str, Any]:
    doc = two_center_doc()
    doc["timezone"] = tz
    doc["slots"] = []
    doc["schedules"][0] |= {"from": day, "to": day, "open": open_, "close": close}
    doc["schedules"][0]["every_min"] = every_min
    return doc


def epoch(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    """Epoch seconds of a UTC time."""
    return int(dt.datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp())


def starts(spec: CampaignSpec) -> list[str]:
    return [s.start for _, _, s in spec.slots]


# -- happy path --------------------------------------------------------------------------------


def test_example_document_expands_every_schedule_day_and_slot() -> None:
    spec = parse_campaign("bw", example_doc())
    first, last = dt.date(2026, 12, 1), dt.date(2027, 2, 28)
    open_days = [
        first + dt.timedelta(days=i)
        for i in range((last - first).days + 1)
        if (first + dt.timedelta(days=i)).weekday() != 6
    ]
    assert len(spec.slots) == len(open_days) * 20  # 08:00 to 17:30, every 30 minutes
    assert spec.slots[0] == (
        "stuttgart-messe",
        "comirnaty",
        SlotSpec("2026-12-01", "2026-12-01T08:00:00+01:00", epoch(2026, 12, 1, 7), 4),
    )
    assert spec.slots[-1][2] == SlotSpec(
        "2027-02-27", "2027-02-27T17:30:00+01:00", epoch(2027, 2, 27, 16, 30), 4
    )
    start_s = [s.start_s for _, _, s in spec.slots]
    assert start_s == sorted(start_s) and len(set(start_s)) == len(start_s)
    assert all(dt.date.fromisoformat(s.day).weekday() != 6 for _, _, s in spec.slots)
    assert (spec.name, spec.title, spec.timezone, spec.hold_s) == (
        "bw",
        "COVID-19 vaccination, Baden-Württemberg",
        "Europe/Berlin",
        600,
    )


def test_explicit_slot_on_a_schedule_slot_adds_its_places() -> None:
    spec = parse_campaign("bw", example_doc())
    christmas_eve = [s for _, _, s in spec.slots if s.start == "2026-12-24T10:00:00+01:00"]
    assert [s.capacity for s in christmas_eve] == [4 + 2]


def test_duplicates_from_slots_and_overlapping_schedules_are_summed() -> None:
    doc = two_center_doc()
    doc["schedules"].append(dict(doc["schedules"][0], capacity=5, open="09:00", close="11:00"))
    doc["slots"] = [
        {"center": "b", "vaccine": "spikevax", "start": "2027-02-01T10:00", "capacity": 3},
        {"center": "b", "vaccine": "spikevax", "start": "2027-02-01T10:00", "capacity": 4},
        {"center": "a", "vaccine": "comirnaty", "start": "2027-02-01T08:00", "capacity": 2},
    ]
    spec = parse_campaign("c", doc)
    by_start = {(c, s.start): s.capacity for c, _, s in spec.slots}
    assert by_start[("b", "2027-02-01T10:00:00+01:00")] == 7
    assert by_start[("a", "2027-02-01T08:00:00+01:00")] == 1 + 2
    assert by_start[("a", "2027-02-01T08:30:00+01:00")] == 1
    assert by_start[("a", "2027-02-01T09:00:00+01:00")] == 1 + 5
    assert by_start[("a", "2027-02-01T10:30:00+01:00")] == 5
    assert len(spec.slots) == 5 * 6 + 1  # 08:00..10:30 on five days, one slot at b


def test_defaults_are_utc_and_a_ten_minute_hold() -> None:
    doc = two_center_doc()
    del doc["timezone"]
    spec = parse_campaign("c", doc)
    assert (spec.timezone, spec.hold_s, spec.identity_key) == ("UTC", 600, "optional")
    assert spec.slots[0][2] == SlotSpec(
        "2027-02-01", "2027-02-01T08:00:00+00:00", epoch(2027, 2, 1, 8), 1
    )


def test_weekdays_default_to_every_day() -> None:
    doc = two_center_doc()
    doc["schedules"][0] |= {"from": "2027-02-01", "to": "2027-02-14"}
    days = {s.day for c, _, s in parse_campaign("c", doc).slots if c == "a"}
    assert len(days) == 14


# -- clock changes -----------------------------------------------------------------------------


def test_spring_forward_skips_the_missing_hour_of_a_schedule() -> None:
    doc = one_day("Europe/Berlin", "2027-03-28", "00:00", "04:00", 30)
    a = [s for c, _, s in parse_campaign("c", doc).slots if c == "a"]
    assert [s.start for s in a] == [
        "2027-03-28T00:00:00+01:00",
        "2027-03-28T00:30:00+01:00",
        "2027-03-28T01:00:00+01:00",
        "2027-03-28T01:30:00+01:00",
        "2027-03-28T03:00:00+02:00",
        "2027-03-28T03:30:00+02:00",
    ]
    assert a[4].start_s - a[3].start_s == 30 * 60  # 01:30 CET and 03:00 CEST are 30 min apart
    assert a[4].start_s == epoch(2027, 3, 28, 1)


def test_daytime_slots_change_offset_across_late_march_and_late_october() -> None:
    doc = two_center_doc()
    doc["schedules"][0] |= {"from": "2027-03-27", "to": "2027-10-31", "close": "08:30"}
    slots = {s.day: s for c, _, s in parse_campaign("c", doc).slots if c == "a"}
    assert slots["2027-03-27"].start == "2027-03-27T08:00:00+01:00"
    assert slots["2027-03-27"].start_s == epoch(2027, 3, 27, 7)
    assert slots["2027-03-29"].start == "2027-03-29T08:00:00+02:00"
    assert slots["2027-03-29"].start_s == epoch(2027, 3, 29, 6)
    assert slots["2027-10-30"].start == "2027-10-30T08:00:00+02:00"
    assert slots["2027-10-31"].start == "2027-10-31T08:00:00+01:00"
    assert slots["2027-10-31"].start_s == epoch(2027, 10, 31, 7)
    assert len(slots) == (dt.date(2027, 10, 31) - dt.date(2027, 3, 27)).days + 1


def test_fall_back_takes_the_repeated_hour_once_at_its_first_occurrence() -> None:
    doc = one_day("Europe/Berlin", "2027-10-31", "01:30", "04:00", 30)
    a = [s for c, _, s in parse_campaign("c", doc).slots if c == "a"]
    assert [s.start for s in a] == [
        "2027-10-31T01:30:00+02:00",
        "2027-10-31T02:00:00+02:00",
        "2027-10-31T02:30:00+02:00",
        "2027-10-31T03:00:00+01:00",
        "2027-10-31T03:30:00+01:00",
    ]
    assert a[3].start_s - a[2].start_s == 90 * 60


def test_explicit_slot_in_the_spring_gap_is_refused_and_in_the_repeated_hour_is_summer() -> None:
    doc = two_center_doc()
    doc["slots"] = [
        {"center": "b", "vaccine": "spikevax", "start": "2027-03-28T02:30", "capacity": 1}
    ]
    with pytest.raises(SchemaError, match=r"^slots\[0\]\.start: 2027-03-28T02:30 does not exist"):
        parse_campaign("c", doc)
    doc["slots"][0]["start"] = "2027-10-31T02:30"
    b = [s for c, _, s in parse_campaign("c", doc).slots if c == "b"]
    assert b == [SlotSpec("2027-10-31", "2027-10-31T02:30:00+02:00", epoch(2027, 10, 31, 0, 30), 1)]


# Days on which a zone's clocks change in 2027, and one without a change.
CLOCK_CHANGES = [
    ("Europe/Berlin", "2027-03-28"),
    ("Europe/Berlin", "2027-10-31"),
    ("America/New_York", "2027-03-14"),
    ("America/New_York", "2027-11-07"),
    ("America/St_Johns", "2027-03-14"),
    ("Australia/Lord_Howe", "2027-04-04"),  # back by 30 minutes
    ("Australia/Lord_Howe", "2027-10-03"),  # forward by 30 minutes
    ("Asia/Kolkata", "2027-03-28"),
    ("UTC", "2027-03-28"),
]


def first_occurrences(tz: dt.tzinfo, day: dt.date) -> dict[int, tuple[int, str]]:
    """Minute of the local day -> (epoch s, ISO start) of its first instant, from UTC upward."""
    begin = dt.datetime.combine(day, dt.time(), tzinfo=UTC) - dt.timedelta(hours=15)
    found: dict[int, tuple[int, str]] = {}
    for i in range(54 * 60):
        instant = begin + dt.timedelta(minutes=i)
        local = instant.astimezone(tz)
        if local.date() == day:
            found.setdefault(
                local.hour * 60 + local.minute, (int(instant.timestamp()), local.isoformat())
            )
    return found


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    zone_day=st.sampled_from(CLOCK_CHANGES),
    open_min=st.integers(0, 23 * 60 + 59),
    every_min=st.integers(5, 240),
)
def test_schedule_starts_match_the_first_instant_of_each_local_time(
    zone_day: tuple[str, str], open_min: int, every_min: int
) -> None:
    zone, day = zone_day
    opening = f"{open_min // 60:02d}:{open_min % 60:02d}"
    spec = parse_campaign("c", one_day(zone, day, opening, "24:00", every_min))
    got = [(s.start_s, s.start) for c, _, s in spec.slots if c == "a"]
    oracle = first_occurrences(zoneinfo.ZoneInfo(zone), dt.date.fromisoformat(day))
    expected = [oracle[m] for m in range(open_min, 24 * 60, every_min) if m in oracle]
    assert got == expected


# -- inventory commands ------------------------------------------------------------------------


def counter_ids() -> Callable[[], str]:
    numbers = itertools.count(1)
    return lambda: f"cmd-{next(numbers)}"


def test_inventory_commands_chunk_each_pair_and_round_trip() -> None:
    doc = two_center_doc()
    doc["schedules"][0] |= {"to": "2027-02-07", "close": "09:30"}  # 7 days x 3 slots = 21
    spec = parse_campaign("c", doc)
    commands = spec.inventory_commands(counter_ids(), max_slots=10)
    assert [(c.center, c.vaccine, len(c.slots)) for c in commands] == [
        ("a", "comirnaty", 10),
        ("a", "comirnaty", 10),
        ("a", "comirnaty", 1),
        ("a", "spikevax", 0),  # offered, no slots yet: the allocator still learns the center
        ("b", "spikevax", 1),
    ]
    assert [c.command_id for c in commands] == [f"cmd-{i}" for i in range(1, 6)]
    first = commands[0]
    assert (first.campaign, first.county, first.center_name) == ("c", "north", "Center A")
    assert (first.min_days, first.max_days) == (21, 42)
    assert (commands[4].county, commands[4].min_days) == ("south", 28)
    loaded = [(c.center, c.vaccine, s) for c in commands for s in c.slots]
    assert loaded == list(spec.slots)
    for command in commands:
        assert decode_command(command.pack()) == command


def test_inventory_commands_refuse_a_chunk_size_the_schema_refuses() -> None:
    spec = parse_campaign("c", two_center_doc())
    for bad in (0, 20_001):
        with pytest.raises(ValueError, match="max_slots"):
            spec.inventory_commands(counter_ids(), max_slots=bad)


def test_inventory_commands_of_a_big_schedule_stay_under_the_limit() -> None:
    doc = two_center_doc()
    doc["schedules"][0] |= {"to": "2027-04-30", "close": "18:00", "every_min": 10}
    spec = parse_campaign("c", doc)
    commands = spec.inventory_commands(counter_ids())
    assert all(len(c.slots) <= 2000 for c in commands)
    assert sum(len(c.slots) for c in commands) == len(spec.slots) == 89 * 60 + 1
    assert all(isinstance(decode_command(c.pack()), AddInventory) for c in commands)


# -- the public description --------------------------------------------------------------------


def test_public_has_everything_but_the_slots_and_parses_again() -> None:
    doc = two_center_doc()
    view = parse_campaign("c", doc).public()
    stored = msgspec.json.encode(view)
    public = orjson.loads(stored)
    assert public == {
        "name": "c",
        "title": "Test",
        "timezone": "Europe/Berlin",
        "hold_s": 600,
        "identity_key": "optional",
        "vaccines": doc["vaccines"],
        "counties": doc["counties"],
        "centers": doc["centers"],
    }
    assert stored == orjson.dumps(public)  # as stored before: a PUT again is still the same
    assert b"slot" not in stored
    assert decode_public(stored) == view
    again = {k: v for k, v in public.items() if k != "name"} | {"slots": doc["slots"]}
    assert parse_campaign("c", again).public() == view


# -- validation --------------------------------------------------------------------------------


def set_at(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A change of the document: set the value at a dotted path (numbers index lists)."""

    def change(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = doc
        for p in parents:
            target = target[int(p)] if p.isdigit() else target[p]
        target[int(last) if last.isdigit() else last] = value

    return change


def delete(path: str) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = doc
        for p in parents:
            target = target[int(p)] if p.isdigit() else target[p]
        del target[last]

    return change


def add_center_copy(doc: dict[str, Any]) -> None:
    doc["centers"].append(copy.deepcopy(doc["centers"][0]))


def add_county(doc: dict[str, Any]) -> None:
    doc["counties"].append({"id": "east", "name": "East"})


def no_inventory(doc: dict[str, Any]) -> None:
    del doc["schedules"], doc["slots"]


def zero_places(doc: dict[str, Any]) -> None:
    doc["schedules"][0]["capacity"] = 0
    doc["slots"][0]["capacity"] = 0


def thousand_years(doc: dict[str, Any]) -> None:
    doc["schedules"][0] |= {"from": "2000-01-01", "to": "2999-12-31"}


def many_centers(doc: dict[str, Any]) -> None:
    doc["centers"] = [dict(doc["centers"][1], id=f"c{i}") for i in range(MAX_CENTERS + 1)]


INVALID: list[tuple[Callable[[dict[str, Any]], None], str]] = [
    (set_at("extra", 1), "unknown field(s) in the campaign: extra"),
    (delete("title"), "title: is required"),
    (set_at("title", ""), "title: Expected `str` of length >= 1"),
    (set_at("title", ["x"]), "title: Expected `str`, got `array`"),
    (set_at("timezone", "Mars/Olympus_Mons"), "timezone: unknown time zone 'Mars/Olympus_Mons'"),
    (set_at("timezone", "../../etc/passwd"), "timezone: unknown time zone"),
    (set_at("timezone", "right/UTC"), "timezone: unknown time zone"),
    (set_at("timezone", "localtime"), "timezone: give an IANA zone name"),
    (set_at("timezone", 1), "timezone: Expected `str | null`, got `int`"),
    (set_at("hold_s", 59), "hold_s: Expected `int` >= 60"),
    (set_at("hold_s", 86_401), "hold_s: Expected `int` <= 86400"),
    (set_at("hold_s", True), "hold_s: Expected `int | null`, got `bool`"),
    (set_at("hold_s", "600"), "hold_s: Expected `int | null`, got `str`"),
    (set_at("identity_key", "always"), "identity_key: Invalid enum value 'always'"),
    (set_at("identity_key", True), "identity_key: Expected `str | null`, got `bool`"),
    (set_at("vaccines", []), "vaccines: Expected `array` of length >= 1"),
    (set_at("vaccines", {"id": "x"}), "vaccines: Expected `array`, got `object`"),
    (set_at("vaccines.0", "comirnaty"), "vaccines[0]: Expected `object`, got `str`"),
    (
        set_at("vaccines.1.id", "Spikevax"),
        "vaccines[1].id: Expected `str` matching regex '^[a-z0-9][a-z0-9_-]{0,63}$(?!\\\\n)'",
    ),
    (
        set_at("vaccines.1.id", "spikevax\n"),
        "vaccines[1].id: Expected `str` matching regex '^[a-z0-9][a-z0-9_-]{0,63}$(?!\\\\n)'",
    ),
    (
        set_at("vaccines.1.id", "s" * 65),
        "vaccines[1].id: Expected `str` matching regex '^[a-z0-9][a-z0-9_-]{0,63}$(?!\\\\n)'",
    ),
    (set_at("vaccines.1.id", "comirnaty"), "vaccines[1].id: duplicate id 'comirnaty'"),
    (set_at("vaccines.0.min_days", 0), "vaccines[0].min_days: Expected `int` >= 1"),
    (set_at("vaccines.0.min_days", 21.0), "vaccines[0].min_days: Expected `int`, got `float`"),
    (set_at("vaccines.0.max_days", 20), "vaccines[0].max_days: must be between 21 and 366"),
    (set_at("vaccines.0.doses", 2), "unknown field(s) in vaccines[0]: doses"),
    (delete("counties.1.name"), "counties[1].name: is required"),
    (set_at("counties.1.id", "north"), "counties[1].id: duplicate id 'north'"),
    (set_at("centers.1.county", "nowhere"), "centers[1].county: unknown county 'nowhere'"),
    (set_at("centers.1.county", "north"), "counties[1].id: county 'south' has no center"),
    (add_county, "counties[2].id: county 'east' has no center; add one or leave it out"),
    (set_at("centers.0.vaccines.1", "x"), "centers[0].vaccines[1]: unknown vaccine 'x'"),
    (
        set_at("centers.0.vaccines.1", "comirnaty"),
        "centers[0].vaccines[1]: vaccine 'comirnaty' listed",
    ),
    (set_at("centers.0.vaccines", []), "centers[0].vaccines: Expected `array` of length >= 1"),
    (set_at("centers.0.vaccines", "comirnaty"), "centers[0].vaccines: Expected `array`, got `str`"),
    (delete("centers.0.address"), "centers[0].address: is required"),
    (set_at("centers.0.name", "x" * 201), "centers[0].name: Expected `str` of length <= 200"),
    (add_center_copy, "centers[2].id: duplicate id 'a'"),
    (many_centers, f"centers: Expected `array` of length <= {MAX_CENTERS}"),
    (set_at("schedules", {}), "schedules: Expected `array | null`, got `object`"),
    (set_at("schedules.0.center", "zz"), "schedules[0].center: unknown center 'zz'"),
    (set_at("schedules.0.center", "b"), "schedules[0].vaccine: center 'b' does not offer"),
    (
        set_at("schedules.0.vaccine", "x"),
        "schedules[0].vaccine: center 'a' does not offer vaccine 'x'",
    ),
    (set_at("schedules.0.from", "2027-02-30"), "schedules[0].from: must be a date YYYY-MM-DD"),
    (set_at("schedules.0.from", "20270201"), "schedules[0].from: must be a date YYYY-MM-DD"),
    (set_at("schedules.0.from", "2027-W05-1"), "schedules[0].from: must be a date YYYY-MM-DD"),
    (
        set_at("schedules.0.from", "1999-12-31"),
        "schedules[0].from: must be a date YYYY-MM-DD in the",
    ),
    (set_at("schedules.0.to", 20270205), "schedules[0].to: Expected `str`, got `int`"),
    (set_at("schedules.0.to", "2027-01-31"), "schedules[0].to: 2027-01-31 is before from"),
    (set_at("schedules.0.open", "8:00"), "schedules[0].open: must be a local time HH:MM"),
    (set_at("schedules.0.open", "08:60"), "schedules[0].open: must be a local time HH:MM"),
    (
        set_at("schedules.0.open", "\uff10\uff18:\uff10\uff10"),
        "schedules[0].open: must be a local time HH:MM",
    ),
    (set_at("schedules.0.close", "24:30"), "schedules[0].close: must be a local time HH:MM"),
    (set_at("schedules.0.close", "08:00"), "schedules[0].close: must be later than open"),
    (set_at("schedules.0.every_min", 4), "schedules[0].every_min: Expected `int` >= 5"),
    (set_at("schedules.0.capacity", -1), "schedules[0].capacity: Expected `int` >= 0"),
    (set_at("schedules.0.capacity", 2.5), "schedules[0].capacity: Expected `int`, got `float`"),
    (set_at("schedules.0.weekdays", []), "schedules[0].weekdays: Expected `array` of length >= 1"),
    (set_at("schedules.0.weekdays", [7]), "schedules[0].weekdays[0]: Expected `int` <= 6"),
    (
        set_at("schedules.0.weekdays", [0, True]),
        "schedules[0].weekdays[1]: Expected `int`, got `bool`",
    ),
    (set_at("schedules.0.weekdays", [1, 1]), "schedules[0].weekdays[1]: weekday 1 listed twice"),
    (set_at("schedules.0.step", 5), "unknown field(s) in schedules[0]: step"),
    (set_at("slots.0.start", "2027-02-01T10:00+01:00"), "slots[0].start: must be a local time Y"),
    (set_at("slots.0.start", "2027-02-01 10:00"), "slots[0].start: must be a local time"),
    (set_at("slots.0.start", "2027-02-01T24:00"), "slots[0].start: must be a local time"),
    (set_at("slots.0.start", "2027-02-29T10:00"), "slots[0].start: must be a date YYYY-MM-DD"),
    (delete("slots.0.capacity"), "slots[0].capacity: is required"),
    (set_at("slots.0.center", "zz"), "slots[0].center: unknown center 'zz'"),
    (
        thousand_years,
        f"schedules: the campaign expands to {365_243 * 4 + 1} slots, more than 1000000",
    ),
    (no_inventory, "schedules: the campaign gives no places"),
    (zero_places, "schedules: the campaign gives no places"),
]


@pytest.mark.parametrize(("change", "message"), INVALID)
def test_invalid_document_is_refused_naming_the_field(
    change: Callable[[dict[str, Any]], None], message: str
) -> None:
    doc = two_center_doc()
    change(doc)
    with pytest.raises(SchemaError) as caught:
        parse_campaign("c", doc)
    assert caught.value.message.startswith(message), caught.value.message


@pytest.mark.parametrize("name", ["", "Demo", "-demo", "demo\n", "d" * 65, 5])
def test_invalid_campaign_name_is_refused(name: Any) -> None:
    with pytest.raises(SchemaError, match=r"^name: "):
        parse_campaign(name, two_center_doc())


@pytest.mark.parametrize("doc", [None, [], "campaign", 1])
def test_a_document_that_is_no_object_is_refused(doc: Any) -> None:
    with pytest.raises(SchemaError, match=r"^campaign: must be an object"):
        parse_campaign("c", doc)


def all_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return [prefix]
    return [prefix] + [p for k, v in items for p in all_paths(v, (*prefix, k))]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(path=st.sampled_from(all_paths(two_center_doc())[1:]), value=JSON)
def test_any_changed_field_gives_a_spec_or_a_schema_error(
    path: tuple[Any, ...], value: Any
) -> None:
    doc = two_center_doc()
    target: Any = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    try:
        spec = parse_campaign("c", doc)
    except SchemaError as e:
        assert e.message
    else:
        assert spec.slots


def test_a_campaign_may_require_the_identity_key() -> None:
    spec = parse_campaign("c", two_center_doc() | {"identity_key": "required"})
    assert spec.public().identity_key == "required"
