from __future__ import annotations

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
    SlotSpec,
    Tick,
    decode_command,
)
from schemas.wire import pack_map

SLOT_1 = SlotSpec("2027-02-01", "2027-02-01T08:00:00+01:00", 1801465200, 4)
SLOT_2 = SlotSpec("2027-02-22", "2027-02-22T08:00:00+01:00", 1803279600, 0)

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
    ),
    Confirm("cmd-3", "bk-1", "bw"),
    Cancel("cmd-4", "bk-1", "bw"),
    AddInventory(
        "cmd-5", "bw", "stuttgart", "stuttgart-messe", "Impfzentrum Messe", "comirnaty", 21, 42,
        (SLOT_1, SLOT_2),
    ),
    AddInventory("cmd-6", "bw", "ulm", "ulm-messe", "Messe Ulm", "vaxzevria", 63, 84, ()),
    Tick("tick-1"),
]  # fmt: skip

OPTIONAL = {"book": {"center", "earliest", "group"}}


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
    for key in ("center", "earliest", "group"):
        del m[key]
    book = decode_command(pack_map(m))
    assert isinstance(book, Book)
    assert (book.center, book.earliest, book.group) == (None, None, None)


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
    ],
)
def test_a_wrong_field_is_refused(type_: str, key: str, value: Any, message: str) -> None:
    with pytest.raises(SchemaError, match=message.replace("(", r"\(")):
        decode_command(pack_map(sample(type_) | {key: value}))


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
