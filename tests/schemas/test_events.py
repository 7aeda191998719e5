from __future__ import annotations

import re
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgpack import packb as pack_map

from schemas import SCHEMA_VERSION, SchemaError
from schemas.commands import Tick
from schemas.events import (
    REASONS,
    Appointment,
    Cancelled,
    Confirmed,
    CountySummary,
    DayInventory,
    Event,
    Expired,
    Failed,
    Held,
    InventoryAdded,
    InventoryRemoved,
    InventoryReport,
    Moved,
    Offered,
    Rejected,
    ReserveSet,
    Summary,
    Waitlisted,
    decode_event,
)
from schemas.states import RejectReason
from schemas.types import ISO_DATE_PATTERN

DOSE_1 = Appointment(1, "ulm-messe", "Messe Ulm", "comirnaty", "2027-02-01T08:00:00+01:00", "s1")
DOSE_2 = Appointment(2, "ulm-messe", "Messe Ulm", "comirnaty", "2027-02-22T08:00:00+01:00", "s2")
AT_MS = 1_801_465_200_000
BY_VACCINE = {"comirnaty": 4, "spikevax": 1}

SAMPLES: list[Event] = [
    Held("cmd-1", "bk-1", "bw", 1, AT_MS, "code:abc", "ulm", (DOSE_1, DOSE_2), AT_MS + 600_000),
    Confirmed("cmd-2", "bk-1", "bw", 2, AT_MS + 1, (DOSE_1, DOSE_2)),
    Rejected("cmd-3", "bk-2", "bw", 1, AT_MS, RejectReason.SOLD_OUT),
    Expired("cmd-1", "bk-1", "bw", 2, AT_MS + 600_000),
    Cancelled("cmd-4", "bk-1", "bw", 3, AT_MS + 2),
    Failed("cmd-5", "bk-9", "bw", AT_MS, RejectReason.UNKNOWN_BOOKING),
    InventoryAdded("cmd-6", "bw", "ulm-messe", AT_MS, True, 2),
    InventoryAdded("cmd-7", "bw", "ulm-messe", AT_MS, False, 0, RejectReason.WINDOW_MISMATCH),
    Summary("bw", AT_MS, {"ulm": CountySummary(10, 25, 1, 2), "kn": CountySummary(0, 1, 0, 0)}),
    Summary("bw", AT_MS, {}),
    Moved("cmd-8", "bk-1", "bw", 3, AT_MS + 3, (DOSE_1, DOSE_2), AT_MS + 600_000),
    Moved("cmd-9", "bk-1", "bw", 4, AT_MS + 4, (DOSE_1, DOSE_2), None),
    Moved("cmd-9b", "bk-1", "bw", 5, AT_MS + 5, (DOSE_1, DOSE_2), None, "ulm"),
    Waitlisted("cmd-10", "bk-3", "bw", 1, AT_MS, "code:ghi", "ulm"),
    Offered("cmd-10", "bk-3", "bw", 2, AT_MS + 5, (DOSE_1, DOSE_2), AT_MS + 600_005),
    InventoryRemoved("cmd-11", "bw", "ulm-messe", AT_MS, True, 2),
    InventoryRemoved("cmd-12", "bw", "ulm-messe", AT_MS, False, 0, RejectReason.SLOT_IN_USE),
    Summary("bw", AT_MS, {"ulm": CountySummary(0, 0, 3, 4, waitlisted=7)}),
    ReserveSet("cmd-13", "bw", "ulm-messe", AT_MS, True, 12),
    ReserveSet("cmd-14", "bw", "ulm-messe", AT_MS, False, 0, RejectReason.RELEASE_PASSED),
    Summary("bw", AT_MS, {"ulm": CountySummary(5, 8, 3, 4, reserved=6)}),
    Rejected("cmd-15", "bk-4", "bw", 1, AT_MS, RejectReason.NO_PAIR_AT_TIME_OF_DAY),
    Rejected("cmd-16", "bk-5", "bw", 1, AT_MS, RejectReason.RESERVED_FOR_PRIORITY_GROUP),
    InventoryReport(
        "cmd-17", "bw", "ulm", AT_MS,
        {"ulm-messe": {"2027-02-01": DayInventory(40, 30, 6, 2, 2),
                       "2027-02-22": DayInventory(40, 40, 0, 0, 0)}},
    ),
    InventoryReport("cmd-18", "bw", "kn", AT_MS, {}, RejectReason.UNKNOWN_COUNTY),
    Summary("bw", AT_MS, {"ulm": CountySummary(5, 12, 3, 4, 0, 2, BY_VACCINE)}),
]  # fmt: skip

OPTIONAL = {
    "inventory_added": {"reason"},
    "reserve_set": {"reason"},
    "inventory_removed": {"reason"},
    "moved": {"hold_expires_at_ms", "county"},
    "inventory_report": {"reason"},
}


def sample(type_: str) -> dict[str, Any]:
    return next(e for e in SAMPLES if type_ == e.TYPE).to_map()


def test_every_event_round_trips() -> None:
    for event in SAMPLES:
        assert decode_event(event.pack()) == event


def test_nested_values_travel_as_plain_maps() -> None:
    held = msgpack.unpackb(SAMPLES[0].pack())
    assert (held["v"], held["type"]) == (SCHEMA_VERSION, "held")
    assert held["appointments"][1] == {
        "dose": 2,
        "center": "ulm-messe",
        "center_name": "Messe Ulm",
        "vaccine": "comirnaty",
        "start": "2027-02-22T08:00:00+01:00",
        "slot": "s2",
    }
    summary = msgpack.unpackb(SAMPLES[8].pack())
    ulm = summary["counties"]["ulm"]
    assert ulm == ulm | {"pairs_left": 10, "free": 25, "held": 1, "confirmed": 2, "waitlisted": 0}


def test_a_county_summary_without_waitlisted_reads_as_zero() -> None:
    old = {"pairs_left": 1, "free": 2, "held": 3, "confirmed": 4}
    event = decode_event(pack_map(sample("summary") | {"counties": {"ulm": old}}))
    assert isinstance(event, Summary)
    assert event.counties == {"ulm": CountySummary(1, 2, 3, 4, waitlisted=0)}


def test_a_county_summary_without_reserved_reads_as_zero() -> None:
    old = {"pairs_left": 1, "free": 2, "held": 3, "confirmed": 4, "waitlisted": 5}
    event = decode_event(pack_map(sample("summary") | {"counties": {"ulm": old}}))
    assert isinstance(event, Summary)
    assert event.counties == {"ulm": CountySummary(1, 2, 3, 4, 5, reserved=0)}


def test_a_county_summary_without_pairs_left_by_vaccine_reads_as_not_known() -> None:
    old = {"pairs_left": 1, "free": 2, "held": 3, "confirmed": 4, "waitlisted": 5, "reserved": 6}
    event = decode_event(pack_map(sample("summary") | {"counties": {"ulm": old}}))
    assert isinstance(event, Summary)
    assert event.counties == {"ulm": CountySummary(1, 2, 3, 4, 5, 6, pairs_left_by_vaccine=None)}
    assert decode_event(event.pack()) == event  # and it stays unknown when written again


def test_pairs_left_by_vaccine_travels_as_a_map_of_counts() -> None:
    summary = SAMPLES[-1]
    assert isinstance(summary, Summary)
    ulm = msgpack.unpackb(summary.pack())["counties"]["ulm"]
    assert ulm["pairs_left_by_vaccine"] == BY_VACCINE
    assert sum(ulm["pairs_left_by_vaccine"].values()) == ulm["pairs_left"]
    assert decode_event(summary.pack()) == summary


def county(**change: Any) -> dict[str, Any]:
    base = {"pairs_left": 3, "free": 6, "held": 0, "confirmed": 0}
    return base | {"pairs_left_by_vaccine": {"va": 2, "vb": 1}} | change


@pytest.mark.parametrize(
    ("by_vaccine", "message"),
    [
        ([2, 1], "'counties[...].pairs_left_by_vaccine': Expected `object | null`, got `array`"),
        ({"va": -1, "vb": 4}, "'counties[...].pairs_left_by_vaccine[...]': Expected `int` >= 0"),
        (
            {"va": True, "vb": 2},
            "'counties[...].pairs_left_by_vaccine[...]': Expected `int`, got `bool`",
        ),
        (
            {"va": 2.0, "vb": 1},
            "'counties[...].pairs_left_by_vaccine[...]': Expected `int`, got `float`",
        ),
        (
            {"va": "2", "vb": 1},
            "'counties[...].pairs_left_by_vaccine[...]': Expected `int`, got `str`",
        ),
        ({"": 3}, "'counties[...].pairs_left_by_vaccine[key]': Expected `str` of length >= 1"),
        (
            {"v" * 129: 3},
            "'counties[...].pairs_left_by_vaccine[key]': Expected `str` of length <= 128",
        ),
        ({"va": 2, "vb": 2}, "'counties[...]': 'pairs_left_by_vaccine' must sum to 'pairs_left'"),
        ({}, "'counties[...]': 'pairs_left_by_vaccine' must sum to 'pairs_left'"),
    ],
)
def test_a_wrong_pairs_left_by_vaccine_is_refused(by_vaccine: Any, message: str) -> None:
    counties = {"ulm": county(pairs_left_by_vaccine=by_vaccine)}
    with pytest.raises(SchemaError, match=f"^{re.escape(message)}$"):
        decode_event(pack_map(sample("summary") | {"counties": counties}))


@pytest.mark.parametrize("by_vaccine", [None, {}])
def test_pairs_left_by_vaccine_may_be_null_or_empty_when_nothing_is_left(
    by_vaccine: dict[str, int] | None,
) -> None:
    counties = {"ulm": county(pairs_left=0, pairs_left_by_vaccine=by_vaccine)}
    event = decode_event(pack_map(sample("summary") | {"counties": counties}))
    assert isinstance(event, Summary)
    assert event.counties["ulm"].pairs_left_by_vaccine == by_vaccine


def test_an_inventory_report_travels_as_maps_by_center_and_day() -> None:
    report = next(e for e in SAMPLES if isinstance(e, InventoryReport) and e.centers)
    centers = msgpack.unpackb(report.pack())["centers"]
    assert centers["ulm-messe"]["2027-02-01"] == {
        "capacity": 40,
        "free": 30,
        "held": 6,
        "confirmed": 2,
        "reserved": 2,
    }
    assert decode_event(report.pack()) == report


def test_a_confirmed_move_has_no_hold_expiry() -> None:
    m = msgpack.unpackb(SAMPLES[11].pack())
    assert m["hold_expires_at_ms"] is None
    del m["hold_expires_at_ms"]
    assert decode_event(pack_map(m)) == SAMPLES[11]


def test_the_sample_reasons_are_known_reasons() -> None:
    answers = Rejected | Failed | InventoryAdded | InventoryRemoved | ReserveSet | InventoryReport
    reasons = {e.reason for e in SAMPLES if isinstance(e, answers)}
    assert reasons - {None} <= REASONS


@pytest.mark.parametrize("data", [b"", b"\xc1", b"\x82\xa1v\x01", SAMPLES[3].pack()[:-1]])
def test_not_msgpack_is_refused(data: bytes) -> None:
    with pytest.raises(SchemaError, match="not a msgpack message"):
        decode_event(data)


@pytest.mark.parametrize("value", [["held"], "held", None, 1.5])
def test_not_a_map_is_refused(value: Any) -> None:
    with pytest.raises(SchemaError, match="must be a msgpack map"):
        decode_event(msgpack.packb(value))


@pytest.mark.parametrize("version", [None, 0, 2, "1", [1]])
def test_wrong_version_is_refused(version: Any) -> None:
    with pytest.raises(SchemaError, match="unsupported schema version"):
        decode_event(pack_map(sample("expired") | {"v": version}))


@pytest.mark.parametrize("type_", [None, "book", "Held", 3])
def test_unknown_type_is_refused(type_: Any) -> None:
    with pytest.raises(SchemaError, match="unknown event type"):
        decode_event(pack_map(sample("expired") | {"type": type_}))


def test_a_command_is_not_an_event() -> None:
    with pytest.raises(SchemaError, match="unknown event type 'tick'"):
        decode_event(Tick("t-1").pack())


REQUIRED = sorted(
    {
        (e.TYPE, key)
        for e in SAMPLES
        for key in e.to_map()
        if key not in ("v", "type") and key not in OPTIONAL.get(e.TYPE, set())
    }
)


@pytest.mark.parametrize(("type_", "key"), REQUIRED)
def test_a_missing_required_field_is_refused(type_: str, key: str) -> None:
    m = sample(type_)
    del m[key]
    with pytest.raises(SchemaError, match=f"'{key}'"):
        decode_event(pack_map(m))


def appointment(**change: Any) -> dict[str, Any]:
    return DOSE_1.to_map() | change


@pytest.mark.parametrize(
    ("type_", "key", "value", "message"),
    [
        ("held", "rev", 0, "'rev': Expected `int` >= 1"),
        ("held", "rev", True, "'rev': Expected `int`, got `bool`"),
        ("held", "at_ms", "1", "'at_ms': Expected `int`, got `str`"),
        ("held", "at_ms", 1.0, "'at_ms': Expected `int`, got `float`"),
        ("held", "hold_expires_at_ms", None, "'hold_expires_at_ms': Expected `int`, got `None`"),
        ("held", "identity", "", "'identity': Expected `str` of length >= 1"),
        ("held", "appointments", {}, "'appointments': Expected `array`, got `object`"),
        (
            "held",
            "appointments",
            [appointment()] * 3,
            "'appointments': Expected `array` of length <= 2",
        ),
        ("held", "appointments", ["s1"], "'appointments[0]': Expected `object`, got `str`"),
        (
            "held",
            "appointments",
            [appointment(dose=3)],
            "'appointments[0].dose': Expected `int` <= 2",
        ),
        (
            "held",
            "appointments",
            [appointment(dose=True)],
            "'appointments[0].dose': Expected `int`, got `bool`",
        ),
        (
            "held",
            "appointments",
            [appointment(start=None)],
            "'appointments[0].start': Expected `str`, got `None`",
        ),
        (
            "confirmed",
            "appointments",
            [appointment(slot="s" * 301)],
            "'appointments[0].slot': Expected `str` of length <= 300",
        ),
        ("rejected", "reason", 7, "'reason': Expected `str`, got `int`"),
        ("failed", "at_ms", False, "'at_ms': Expected `int`, got `bool`"),
        ("cancelled", "rev", -1, "'rev': Expected `int` >= 1"),
        ("inventory_added", "accepted", 1, "'accepted': Expected `bool`, got `int`"),
        ("inventory_added", "accepted", None, "'accepted': Expected `bool`, got `None`"),
        ("inventory_added", "slots_added", -1, "'slots_added': Expected `int` >= 0"),
        ("inventory_added", "slots_added", True, "'slots_added': Expected `int`, got `bool`"),
        ("inventory_added", "reason", "", "'reason': Invalid enum value ''"),
        ("moved", "rev", 0, "'rev': Expected `int` >= 1"),
        (
            "moved",
            "hold_expires_at_ms",
            "soon",
            "'hold_expires_at_ms': Expected `int | null`, got `str`",
        ),
        (
            "moved",
            "hold_expires_at_ms",
            1.5,
            "'hold_expires_at_ms': Expected `int | null`, got `float`",
        ),
        ("moved", "appointments", "s1", "'appointments': Expected `array`, got `str`"),
        ("waitlisted", "identity", None, "'identity': Expected `str`, got `None`"),
        ("waitlisted", "county", 5, "'county': Expected `str`, got `int`"),
        ("waitlisted", "rev", True, "'rev': Expected `int`, got `bool`"),
        ("offered", "hold_expires_at_ms", None, "'hold_expires_at_ms': Expected `int`, got `None`"),
        (
            "offered",
            "appointments",
            [appointment(dose=0)],
            "'appointments[0].dose': Expected `int` >= 1",
        ),
        ("offered", "at_ms", "now", "'at_ms': Expected `int`, got `str`"),
        ("inventory_removed", "accepted", "yes", "'accepted': Expected `bool`, got `str`"),
        ("inventory_removed", "slots_removed", -2, "'slots_removed': Expected `int` >= 0"),
        ("inventory_removed", "reason", 3, "'reason': Expected `str | null`, got `int`"),
        (
            "summary",
            "counties",
            {"ulm": {"pairs_left": 0, "free": 0, "held": 0, "confirmed": 0, "waitlisted": -1}},
            "'counties[...].waitlisted': Expected `int` >= 0",
        ),
        (
            "summary",
            "counties",
            {"ulm": {"pairs_left": 0, "free": 0, "held": 0, "confirmed": 0, "waitlisted": None}},
            "'counties[...].waitlisted': Expected `int`, got `None`",
        ),
        (
            "summary",
            "counties",
            {"ulm": {"pairs_left": 0, "free": 0, "held": 0, "confirmed": 0, "reserved": -1}},
            "'counties[...].reserved': Expected `int` >= 0",
        ),
        (
            "summary",
            "counties",
            {"ulm": {"pairs_left": 0, "free": 0, "held": 0, "confirmed": 0, "reserved": "6"}},
            "'counties[...].reserved': Expected `int`, got `str`",
        ),
        ("reserve_set", "accepted", 1, "'accepted': Expected `bool`, got `int`"),
        ("reserve_set", "places_reserved", -1, "'places_reserved': Expected `int` >= 0"),
        ("reserve_set", "places_reserved", None, "'places_reserved': Expected `int`, got `None`"),
        ("reserve_set", "reason", "", "'reason': Invalid enum value ''"),
        ("reserve_set", "center", 7, "'center': Expected `str`, got `int`"),
        ("inventory_report", "centers", [], "'centers': Expected `object`, got `array`"),
        (
            "inventory_report",
            "centers",
            {"c": []},
            "'centers[...]': Expected `object`, got `array`",
        ),
        (
            "inventory_report",
            "centers",
            {"c": {"1.2.2027": {}}},
            f"'centers[...][key]': Expected `str` matching regex {ISO_DATE_PATTERN!r}",
        ),
        (
            "inventory_report",
            "centers",
            {"c": {"2027-02-01": 3}},
            "'centers[...][...]': Expected `object`, got `int`",
        ),
        (
            "inventory_report",
            "centers",
            {
                "c": {
                    "2027-02-01": {
                        "capacity": 1,
                        "free": -1,
                        "held": 0,
                        "confirmed": 0,
                        "reserved": 0,
                    }
                }
            },
            "'centers[...][...].free': Expected `int` >= 0",  # read before the missing 'reserved'
        ),
        (
            "inventory_report",
            "centers",
            {"c": {"2027-02-01": {"capacity": 1, "free": 1, "held": 0, "confirmed": 0}}},
            "'centers[...][...].reserved' is required",
        ),
        ("inventory_report", "reason", "", "'reason': Invalid enum value ''"),
        ("summary", "counties", [], "'counties': Expected `object`, got `array`"),
        (
            "summary",
            "counties",
            {"ulm": [1, 2, 3, 4]},
            "'counties[...]': Expected `object`, got `array`",
        ),
        (
            "summary",
            "counties",
            {"ulm": {"pairs_left": 1, "free": 1, "held": 0}},
            "'counties[...].confirmed' is required",
        ),
        (
            "summary",
            "counties",
            {"ulm": {"pairs_left": -1, "free": 0, "held": 0, "confirmed": 0}},
            "'counties[...].pairs_left': Expected `int` >= 0",
        ),
        (
            "summary",
            "counties",
            {"ulm": {"pairs_left": True, "free": 0, "held": 0, "confirmed": 0}},
            "'counties[...].pairs_left': Expected `int`, got `bool`",
        ),
    ],
)
def test_a_wrong_field_is_refused(type_: str, key: str, value: Any, message: str) -> None:
    with pytest.raises(SchemaError, match=f"^{re.escape(message)}$"):
        decode_event(pack_map(sample(type_) | {key: value}))


def test_a_summary_with_a_binary_county_key_is_refused() -> None:
    counties = {b"ulm": {"pairs_left": 1, "free": 1, "held": 0, "confirmed": 0}}
    with pytest.raises(SchemaError):
        decode_event(pack_map(sample("summary") | {"counties": counties}))


def test_a_summary_with_a_binary_vaccine_key_is_refused() -> None:
    counties = {"ulm": county(pairs_left_by_vaccine={b"va": 3})}
    with pytest.raises(SchemaError, match=r"pairs_left_by_vaccine\[key\]': Expected `str`, got"):
        decode_event(pack_map(sample("summary") | {"counties": counties}))


MSGPACK_INT = st.integers(-(2**63), 2**64 - 1)
SCALARS = st.none() | st.booleans() | MSGPACK_INT | st.floats() | st.text(max_size=12)
VALUES = st.recursive(
    SCALARS | st.binary(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_give_an_event_or_a_schema_error(data: bytes) -> None:
    try:
        event = decode_event(data)
    except SchemaError as e:
        assert e.message
    else:
        assert event.TYPE in {e.TYPE for e in SAMPLES}


@settings(max_examples=300, deadline=None)
@given(base=st.sampled_from(SAMPLES), data=st.data())
def test_any_changed_field_gives_an_event_or_a_schema_error(
    base: Event, data: st.DataObject
) -> None:
    m = base.to_map()
    m |= data.draw(st.dictionaries(st.sampled_from(sorted(m)), VALUES, min_size=1, max_size=3))
    try:
        event = decode_event(pack_map(m))
    except SchemaError as e:
        assert e.message
    else:
        assert m["type"] == event.TYPE


@settings(max_examples=300, deadline=None)
@given(value=VALUES)
def test_any_pairs_left_by_vaccine_gives_a_summary_or_a_schema_error(value: Any) -> None:
    counties = {"ulm": county(pairs_left_by_vaccine=value)}
    try:
        event = decode_event(pack_map(sample("summary") | {"counties": counties}))
    except SchemaError as e:
        assert e.message
    else:
        assert isinstance(event, Summary)
        by_vaccine = event.counties["ulm"].pairs_left_by_vaccine
        assert by_vaccine is None or sum(by_vaccine.values()) == 3
