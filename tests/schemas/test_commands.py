from __future__ import annotations

from dataclasses import replace
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import SCHEMA_VERSION, SchemaError
from schemas.commands import (
    MAX_SLOTS_PER_COMMAND,
    AddInventory,
    Book,
    Cancel,
    Command,
    Confirm,
    Move,
    RemoveInventory,
    ReportInventory,
    SetReserve,
    SlotSpec,
    Tick,
    TransferAnswer,
    TransferIn,
    decode_command,
)
from schemas.events import Appointment
from schemas.wire import pack_map

SLOT_1 = SlotSpec("2027-02-01", "2027-02-01T08:00:00+01:00", 1801465200, 4)
SLOT_2 = SlotSpec("2027-02-22", "2027-02-22T08:00:00+01:00", 1803279600, 0)
APPOINTMENT = Appointment(
    1, "ulm-messe", "Messe Ulm", "vaxzevria", "2027-02-03T08:00:00+01:00", "s1"
)

SAMPLES: list[Command] = [
    Book("cmd-1", "bk-1", "bw", "code:abc", "stuttgart"),
    Book(
        "cmd-2",
        "bk-2",
        "bw",
        "code:def",
        "stuttgart",
        center="stuttgart-messe",
        earliest="2027-02-01",
        hold_s=900,
        group="nurses",
        waitlist=True,
    ),
    Confirm("cmd-3", "bk-1", "bw"),
    Cancel("cmd-4", "bk-1", "bw"),
    AddInventory(
        "cmd-5", "bw", "stuttgart", "stuttgart-messe", "Impfzentrum Messe", "comirnaty", 21, 42,
        (SLOT_1, SLOT_2),
    ),
    AddInventory("cmd-6", "bw", "ulm", "ulm-messe", "Messe Ulm", "vaxzevria", 63, 84, ()),
    Tick("tick-1"),
    Move("cmd-7", "bk-1", "bw", center="ulm-messe", earliest="2027-02-03", time_of_day="morning"),
    Move("cmd-8", "bk-1", "bw"),
    RemoveInventory("cmd-9", "bw", "ulm", "ulm-messe", "vaxzevria", (1801465200, 1803279600)),
    RemoveInventory("cmd-10", "bw", "ulm", "ulm-messe", "vaxzevria", ()),
    Book("cmd-11", "bk-3", "bw", "code:ghi", "ulm", group="nurses", time_of_day="evening"),
    SetReserve(
        "cmd-12", "bw", "ulm", "ulm-messe", "2027-02-01", "nurses", 20, "over_and_above",
        1801465200000,
    ),
    SetReserve("cmd-13", "bw", "ulm", "ulm-messe", "2027-02-01", "care", 0, "minimum_guarantee", 0),
    Move("cmd-14", "bk-1", "bw", center="ulm-messe", county="ulm"),
    TransferIn(
        "cmd-14:in", "cmd-14", "bk-1", "bw", "ulm", "stuttgart", "code:abc", "cmd-1", "held", 3,
        1801465200000, "nurses", "ulm-messe", "2027-02-03", "morning",
    ),
    TransferIn(
        "cmd-15:in", "cmd-15", "bk-1", "bw", "ulm", "stuttgart", "code:abc", "cmd-1",
        "confirmed", 4,
    ),
    TransferAnswer(
        "cmd-14:answer", "cmd-14", "bk-1", "bw", "stuttgart", "ulm",
        (APPOINTMENT, replace(APPOINTMENT, dose=2)),
    ),
    TransferAnswer("cmd-15:answer", "cmd-15", "bk-1", "bw", "stuttgart", "ulm", (), "sold_out"),
    ReportInventory("cmd-16", "bw", "ulm"),
]  # fmt: skip

OPTIONAL = {
    "book": {"center", "earliest", "group", "waitlist", "time_of_day"},
    "move": {"center", "earliest", "time_of_day", "county"},
    "transfer_in": {"hold_expires_at_ms", "group", "center", "earliest", "time_of_day"},
    "transfer_answer": {"reason"},
}


def sample(type_: str) -> dict[str, Any]:
    return next(c for c in SAMPLES if type_ == c.TYPE).to_map()


def test_every_command_round_trips() -> None:
    for command in SAMPLES:
        assert decode_command(command.pack()) == command


def test_a_command_map_carries_version_and_type() -> None:
    m = msgpack.unpackb(SAMPLES[4].pack())
    assert (m["v"], m["type"]) == (SCHEMA_VERSION, "add_inventory")
    assert m["slots"] == [
        ["2027-02-01", "2027-02-01T08:00:00+01:00", 1801465200, 4],
        ["2027-02-22", "2027-02-22T08:00:00+01:00", 1803279600, 0],
    ]


def test_book_without_optional_fields_gets_none() -> None:
    m = sample("book")
    for key in ("center", "earliest", "group", "waitlist"):
        del m[key]
    book = decode_command(pack_map(m))
    assert isinstance(book, Book)
    assert (book.center, book.earliest, book.group, book.waitlist) == (None, None, None, False)


def test_a_null_waitlist_reads_as_false() -> None:
    book = decode_command(pack_map(sample("book") | {"waitlist": None}))
    assert isinstance(book, Book) and book.waitlist is False


def test_move_without_optional_fields_gets_none() -> None:
    m = sample("move")
    for key in ("center", "earliest", "time_of_day"):
        del m[key]
    assert decode_command(pack_map(m)) == Move("cmd-7", "bk-1", "bw")


def test_remove_inventory_names_slots_by_start_s() -> None:
    m = msgpack.unpackb(SAMPLES[9].pack())
    assert (m["type"], m["starts"]) == ("remove_inventory", [1801465200, 1803279600])


@pytest.mark.parametrize(
    "data",
    [b"", b"\xc1", b"\x81\xa1v", SAMPLES[2].pack() + b"\x00", b"\x91" * 5000],
    ids=["empty", "reserved-byte", "truncated", "trailing-bytes", "too-deep"],
)
def test_not_msgpack_is_refused(data: bytes) -> None:
    with pytest.raises(SchemaError, match="not a msgpack message"):
        decode_command(data)


@pytest.mark.parametrize("value", [[1, 2], "book", None, 7])
def test_not_a_map_is_refused(value: Any) -> None:
    with pytest.raises(SchemaError, match="must be a msgpack map"):
        decode_command(msgpack.packb(value))


def test_a_map_with_a_non_string_key_is_refused() -> None:
    with pytest.raises(SchemaError, match="not a msgpack message"):
        decode_command(msgpack.packb({1: 1, "v": 1, "type": "tick"}))


@pytest.mark.parametrize("version", [None, 0, 2, "1"])
def test_wrong_version_is_refused(version: Any) -> None:
    m = sample("confirm") | {"v": version}
    with pytest.raises(SchemaError, match="unsupported schema version"):
        decode_command(pack_map(m))


@pytest.mark.parametrize("version", [True, 1.0])
def test_a_version_that_only_equals_one_is_refused(version: Any) -> None:
    with pytest.raises(SchemaError):
        decode_command(pack_map(sample("confirm") | {"v": version}))


@pytest.mark.parametrize("type_", [None, "bok", "held", 1, ["book"]])
def test_unknown_type_is_refused(type_: Any) -> None:
    with pytest.raises(SchemaError, match="unknown command type"):
        decode_command(pack_map(sample("confirm") | {"type": type_}))


REQUIRED = [
    (c.TYPE, key)
    for c in SAMPLES
    for key in c.to_map()
    if key not in ("v", "type") and key not in OPTIONAL.get(c.TYPE, set())
]


@pytest.mark.parametrize(("type_", "key"), sorted(set(REQUIRED)))
def test_a_missing_required_field_is_refused(type_: str, key: str) -> None:
    m = sample(type_)
    del m[key]
    with pytest.raises(SchemaError, match=f"'{key}'"):
        decode_command(pack_map(m))


@pytest.mark.parametrize(
    ("type_", "key", "value", "message"),
    [
        ("book", "command_id", 1, "'command_id' must be a non-empty string"),
        ("book", "booking_id", "", "'booking_id' must be a non-empty string"),
        ("book", "identity", b"code", "'identity' must be a non-empty string"),
        ("book", "county", "x" * 129, "'county' is longer than 128"),
        ("book", "center", 5, "'center' must be a non-empty string"),
        ("book", "hold_s", True, "'hold_s' must be an integer"),
        ("book", "hold_s", 600.0, "'hold_s' must be an integer"),
        ("book", "hold_s", "600", "'hold_s' must be an integer"),
        ("book", "hold_s", 0, "'hold_s' must be at least 1"),
        ("book", "hold_s", 86_401, "'hold_s' must be at most 86400"),
        ("book", "earliest", "2027-02-30", "'earliest' must be an ISO date"),
        ("book", "earliest", "tomorrow", "'earliest' must be an ISO date"),
        ("book", "earliest", 20270201, "'earliest' must be an ISO date"),
        ("confirm", "campaign", None, "'campaign' must be a non-empty string"),
        ("cancel", "booking_id", ["bk"], "'booking_id' must be a non-empty string"),
        ("tick", "command_id", {}, "'command_id' must be a non-empty string"),
        ("add_inventory", "min_days", True, "'min_days' must be an integer"),
        ("add_inventory", "min_days", 0, "'min_days' must be at least 1"),
        ("add_inventory", "max_days", 20, "'max_days' must be at least 21"),
        ("add_inventory", "max_days", 367, "'max_days' must be at most 366"),
        ("add_inventory", "center_name", "x" * 201, "'center_name' is longer than 200"),
        ("add_inventory", "slots", "none", "'slots' must be a list"),
        ("add_inventory", "slots", {"a": 1}, "'slots' must be a list"),
        ("book", "waitlist", 1, "'waitlist' must be a boolean"),
        ("book", "waitlist", "yes", "'waitlist' must be a boolean"),
        ("move", "booking_id", "", "'booking_id' must be a non-empty string"),
        ("move", "campaign", 3, "'campaign' must be a non-empty string"),
        ("move", "center", "", "'center' must be a non-empty string"),
        ("move", "earliest", "2027-02-30", "'earliest' must be an ISO date"),
        ("move", "earliest", "soon", "'earliest' must be an ISO date"),
        ("move", "time_of_day", 9, "'time_of_day' must be one of"),
        ("move", "time_of_day", "noon", "'time_of_day' must be one of"),
        ("remove_inventory", "starts", 1801465200, "'starts' must be a list"),
        ("remove_inventory", "starts", [1.5], "'starts' must be a list of integers"),
        ("remove_inventory", "starts", [True], "'starts' must be a list of integers"),
        ("remove_inventory", "starts", ["1801465200"], "'starts' must be a list of integers"),
        ("remove_inventory", "vaccine", None, "'vaccine' must be a non-empty string"),
        ("remove_inventory", "county", "", "'county' must be a non-empty string"),
        ("book", "time_of_day", "noon", "'time_of_day' must be one of morning, afternoon, evening"),
        ("book", "time_of_day", "", "'time_of_day' must be one of"),
        ("book", "time_of_day", ["morning"], "'time_of_day' must be one of"),
        ("book", "time_of_day", "Morning", "'time_of_day' must be one of"),
        ("set_reserve", "county", "", "'county' must be a non-empty string"),
        ("set_reserve", "center", None, "'center' must be a non-empty string"),
        ("set_reserve", "day", "2027-02-30", "'day' must be an ISO date"),
        ("set_reserve", "day", "2027-2-1", "'day' must be an ISO date"),
        ("set_reserve", "day", None, "'day' must be an ISO date"),
        ("set_reserve", "group", "", "'group' must be a non-empty string"),
        ("set_reserve", "share_pct", 101, "'share_pct' must be at most 100"),
        ("set_reserve", "share_pct", -1, "'share_pct' must be at least 0"),
        ("set_reserve", "share_pct", 12.5, "'share_pct' must be an integer"),
        ("set_reserve", "share_pct", True, "'share_pct' must be an integer"),
        ("set_reserve", "mode", "both", "'mode' must be one of over_and_above, minimum_guarantee"),
        ("set_reserve", "mode", None, "'mode' must be one of"),
        ("set_reserve", "release_at_ms", -1, "'release_at_ms' must be at least 0"),
        ("set_reserve", "release_at_ms", "soon", "'release_at_ms' must be an integer"),
        ("report_inventory", "county", "", "'county' must be a non-empty string"),
        ("report_inventory", "campaign", 7, "'campaign' must be a non-empty string"),
    ],
)
def test_a_wrong_field_is_refused(type_: str, key: str, value: Any, message: str) -> None:
    with pytest.raises(SchemaError, match=message.replace("(", r"\(")):
        decode_command(pack_map(sample(type_) | {key: value}))


@pytest.mark.parametrize("time_of_day", ["morning", "afternoon", "evening", None])
def test_every_time_of_day_is_read(time_of_day: str | None) -> None:
    book = decode_command(pack_map(sample("book") | {"time_of_day": time_of_day}))
    assert isinstance(book, Book) and book.time_of_day == time_of_day


def test_a_set_reserve_map_names_its_fields() -> None:
    m = msgpack.unpackb(pack_map(sample("set_reserve")))
    assert {k: m[k] for k in ("type", "day", "share_pct", "mode", "release_at_ms")} == {
        "type": "set_reserve",
        "day": "2027-02-01",
        "share_pct": 20,
        "mode": "over_and_above",
        "release_at_ms": 1801465200000,
    }


def test_earliest_is_normalised_to_an_iso_date() -> None:
    book = decode_command(pack_map(sample("book") | {"earliest": "2027-02-01"}))
    assert isinstance(book, Book) and book.earliest == "2027-02-01"


GOOD_SLOT = ["2027-02-01", "2027-02-01T08:00:00+01:00", 1801465200, 4]


@pytest.mark.parametrize(
    ("slot", "message"),
    [
        ("2027-02-01", "a slot must be"),
        (GOOD_SLOT[:3], "a slot must be"),
        ({"day": "2027-02-01"}, "a slot must be"),
        (["2027-02-30", *GOOD_SLOT[1:]], "'slot day' must be an ISO date"),
        ([None, *GOOD_SLOT[1:]], "'slot day' must be an ISO date"),
        ([GOOD_SLOT[0], "", *GOOD_SLOT[2:]], "start must be an ISO datetime"),
        ([*GOOD_SLOT[:2], 1801465200.0, 4], "start_s must be an integer"),
        ([*GOOD_SLOT[:2], True, 4], "start_s must be an integer"),
        ([*GOOD_SLOT[:3], -1], "capacity must be a non-negative integer"),
        ([*GOOD_SLOT[:3], True], "capacity must be a non-negative integer"),
        ([*GOOD_SLOT[:3], "4"], "capacity must be a non-negative integer"),
    ],
)
def test_a_malformed_slot_is_refused(slot: Any, message: str) -> None:
    m = sample("add_inventory") | {"slots": [GOOD_SLOT, slot]}
    with pytest.raises(SchemaError, match=message):
        decode_command(pack_map(m))


@pytest.mark.parametrize("day", ["20270201", "2027-W05-1"])
def test_a_slot_day_in_another_iso_form_is_refused(day: str) -> None:
    with pytest.raises(SchemaError):
        decode_command(pack_map(sample("add_inventory") | {"slots": [[day, *GOOD_SLOT[1:]]]}))


def test_too_many_starts_in_one_removal_are_refused() -> None:
    m = sample("remove_inventory") | {"starts": [1] * (MAX_SLOTS_PER_COMMAND + 1)}
    with pytest.raises(SchemaError, match="'starts' has more than"):
        decode_command(pack_map(m))


def test_too_many_slots_in_one_command_are_refused() -> None:
    m = sample("add_inventory") | {"slots": [GOOD_SLOT] * (MAX_SLOTS_PER_COMMAND + 1)}
    with pytest.raises(SchemaError, match="'slots' has more than"):
        decode_command(pack_map(m))
    m["slots"] = m["slots"][:MAX_SLOTS_PER_COMMAND]
    command = decode_command(pack_map(m))
    assert isinstance(command, AddInventory) and len(command.slots) == MAX_SLOTS_PER_COMMAND


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_give_a_command_or_a_schema_error(data: bytes) -> None:
    try:
        command = decode_command(data)
    except SchemaError as e:
        assert e.message
    else:
        assert command.TYPE in {c.TYPE for c in SAMPLES}


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
@given(base=st.sampled_from(SAMPLES), data=st.data())
def test_any_changed_field_gives_a_command_or_a_schema_error(
    base: Command, data: st.DataObject
) -> None:
    m = base.to_map()
    m |= data.draw(st.dictionaries(st.sampled_from(sorted(m)), VALUES, min_size=1, max_size=3))
    try:
        command = decode_command(pack_map(m))
    except SchemaError as e:
        assert e.message
    else:
        assert m["type"] == command.TYPE


@pytest.mark.parametrize("state", ["waitlisted", "cancelled", None, 1])
def test_a_transfer_of_a_booking_that_is_not_held_or_confirmed_is_refused(state: Any) -> None:
    with pytest.raises(SchemaError, match="'state' must be one of held, confirmed"):
        decode_command(pack_map(sample("transfer_in") | {"state": state}))
