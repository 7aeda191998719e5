from __future__ import annotations

import re
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgpack import packb as pack_map
from msgspec.structs import replace

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
from schemas.states import MovableState, RejectReason, ReserveMode, TimeOfDay
from schemas.types import ISO_DATE_PATTERN

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
    Move(
        "cmd-7", "bk-1", "bw", center="ulm-messe", earliest="2027-02-03",
        time_of_day=TimeOfDay.MORNING,
    ),
    Move("cmd-8", "bk-1", "bw"),
    RemoveInventory("cmd-9", "bw", "ulm", "ulm-messe", "vaxzevria", (1801465200, 1803279600)),
    RemoveInventory("cmd-10", "bw", "ulm", "ulm-messe", "vaxzevria", ()),
    Book("cmd-11", "bk-3", "bw", "code:ghi", "ulm", group="nurses", time_of_day=TimeOfDay.EVENING),
    SetReserve(
        "cmd-12", "bw", "ulm", "ulm-messe", "2027-02-01", "nurses", 20, ReserveMode.OVER_AND_ABOVE,
        1801465200000,
    ),
    SetReserve(
        "cmd-13", "bw", "ulm", "ulm-messe", "2027-02-01", "care", 0,
        ReserveMode.MINIMUM_GUARANTEE, 0,
    ),
    Move("cmd-14", "bk-1", "bw", center="ulm-messe", county="ulm"),
    TransferIn(
        "cmd-14:in", "cmd-14", "bk-1", "bw", "ulm", "stuttgart", "code:abc", "cmd-1",
        MovableState.HELD, 3,
        1801465200000, "nurses", "ulm-messe", "2027-02-03", TimeOfDay.MORNING,
    ),
    TransferIn(
        "cmd-15:in", "cmd-15", "bk-1", "bw", "ulm", "stuttgart", "code:abc", "cmd-1",
        MovableState.CONFIRMED, 4,
    ),
    TransferAnswer(
        "cmd-14:answer", "cmd-14", "bk-1", "bw", "stuttgart", "ulm",
        (APPOINTMENT, replace(APPOINTMENT, dose=2)),
    ),
    TransferAnswer(
        "cmd-15:answer", "cmd-15", "bk-1", "bw", "stuttgart", "ulm", (), RejectReason.SOLD_OUT
    ),
    ReportInventory("cmd-16", "bw", "ulm"),
]  # fmt: skip

OPTIONAL = {  # absent: None, False or the default (a Book's hold_s: DEFAULT_HOLD_S)
    "book": {"center", "earliest", "group", "waitlist", "time_of_day", "hold_s"},
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


def test_an_absent_waitlist_reads_as_false_and_a_null_one_is_refused() -> None:
    m = sample("book")
    del m["waitlist"]
    book = decode_command(pack_map(m))
    assert isinstance(book, Book) and book.waitlist is False
    with pytest.raises(SchemaError, match=r"^'waitlist': Expected `bool`, got `None`$"):
        decode_command(pack_map(m | {"waitlist": None}))


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
    [b"", b"\xc1", b"\x81\xa1v", SAMPLES[2].pack() + b"\x00"],
    ids=["empty", "reserved-byte", "truncated", "trailing-bytes"],
)
def test_not_msgpack_is_refused(data: bytes) -> None:
    with pytest.raises(SchemaError, match="not a msgpack message"):
        decode_command(data)


def test_deep_nesting_is_refused_at_its_first_level() -> None:
    with pytest.raises(SchemaError, match=r"^a command must be a msgpack map$"):
        decode_command(b"\x91" * 5000)


@pytest.mark.parametrize("value", [[1, 2], "book", None, 7])
def test_not_a_map_is_refused(value: Any) -> None:
    with pytest.raises(SchemaError, match="must be a msgpack map"):
        decode_command(msgpack.packb(value))


def test_a_map_with_a_non_string_key_is_refused() -> None:
    with pytest.raises(SchemaError, match=r"^'\[key\]': Expected `str`, got `int`$"):
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


def test_an_unknown_type_is_named_escaped() -> None:
    """The message of a record's unknown type goes to the log: a line break or an escape
    sequence in it stays text."""
    with pytest.raises(SchemaError) as refused:
        decode_command(pack_map(sample("confirm") | {"type": "bo\nok\x1b[31m"}))
    message = str(refused.value)
    assert "\n" not in message and "\x1b" not in message, message
    assert "bo\\nok" in message


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
        ("book", "command_id", 1, "'command_id': Expected `str`, got `int`"),
        ("book", "booking_id", "", "'booking_id': Expected `str` of length >= 1"),
        ("book", "identity", b"code", "'identity': Expected `str`, got `bytes`"),
        ("book", "county", "x" * 129, "'county': Expected `str` of length <= 128"),
        ("book", "center", 5, "'center': Expected `str | null`, got `int`"),
        ("book", "hold_s", True, "'hold_s': Expected `int`, got `bool`"),
        ("book", "hold_s", 600.0, "'hold_s': Expected `int`, got `float`"),
        ("book", "hold_s", "600", "'hold_s': Expected `int`, got `str`"),
        ("book", "hold_s", 0, "'hold_s': Expected `int` >= 1"),
        ("book", "hold_s", 86_401, "'hold_s': Expected `int` <= 86400"),
        (
            "book",
            "earliest",
            "2027-02-30",
            "'earliest' must be an ISO date (YYYY-MM-DD), got '2027-02-30'",
        ),
        (
            "book",
            "earliest",
            "tomorrow",
            f"'earliest': Expected `str` matching regex {ISO_DATE_PATTERN!r}",
        ),
        ("book", "earliest", 20270201, "'earliest': Expected `str | null`, got `int`"),
        ("confirm", "campaign", None, "'campaign': Expected `str`, got `None`"),
        ("cancel", "booking_id", ["bk"], "'booking_id': Expected `str`, got `array`"),
        ("tick", "command_id", {}, "'command_id': Expected `str`, got `object`"),
        ("add_inventory", "min_days", True, "'min_days': Expected `int`, got `bool`"),
        ("add_inventory", "min_days", 0, "'min_days': Expected `int` >= 1"),
        ("add_inventory", "max_days", 20, "'max_days' must be at least min_days (21)"),
        ("add_inventory", "max_days", 367, "'max_days': Expected `int` <= 366"),
        (
            "add_inventory",
            "center_name",
            "x" * 201,
            "'center_name': Expected `str` of length <= 200",
        ),
        ("add_inventory", "slots", "none", "'slots': Expected `array`, got `str`"),
        ("add_inventory", "slots", {"a": 1}, "'slots': Expected `array`, got `object`"),
        ("book", "waitlist", 1, "'waitlist': Expected `bool`, got `int`"),
        ("book", "waitlist", "yes", "'waitlist': Expected `bool`, got `str`"),
        ("move", "booking_id", "", "'booking_id': Expected `str` of length >= 1"),
        ("move", "campaign", 3, "'campaign': Expected `str`, got `int`"),
        ("move", "center", "", "'center': Expected `str` of length >= 1"),
        (
            "move",
            "earliest",
            "2027-02-30",
            "'earliest' must be an ISO date (YYYY-MM-DD), got '2027-02-30'",
        ),
        (
            "move",
            "earliest",
            "soon",
            f"'earliest': Expected `str` matching regex {ISO_DATE_PATTERN!r}",
        ),
        ("move", "time_of_day", 9, "'time_of_day': Expected `str | null`, got `int`"),
        ("move", "time_of_day", "noon", "'time_of_day': Invalid enum value 'noon'"),
        ("remove_inventory", "starts", 1801465200, "'starts': Expected `array`, got `int`"),
        ("remove_inventory", "starts", [1.5], "'starts[0]': Expected `int`, got `float`"),
        ("remove_inventory", "starts", [True], "'starts[0]': Expected `int`, got `bool`"),
        ("remove_inventory", "starts", ["1801465200"], "'starts[0]': Expected `int`, got `str`"),
        ("remove_inventory", "vaccine", None, "'vaccine': Expected `str`, got `None`"),
        ("remove_inventory", "county", "", "'county': Expected `str` of length >= 1"),
        ("book", "time_of_day", "noon", "'time_of_day': Invalid enum value 'noon'"),
        ("book", "time_of_day", "", "'time_of_day': Invalid enum value ''"),
        ("book", "time_of_day", ["morning"], "'time_of_day': Expected `str | null`, got `array`"),
        ("book", "time_of_day", "Morning", "'time_of_day': Invalid enum value 'Morning'"),
        ("set_reserve", "county", "", "'county': Expected `str` of length >= 1"),
        ("set_reserve", "center", None, "'center': Expected `str`, got `None`"),
        (
            "set_reserve",
            "day",
            "2027-02-30",
            "'day' must be an ISO date (YYYY-MM-DD), got '2027-02-30'",
        ),
        (
            "set_reserve",
            "day",
            "2027-2-1",
            f"'day': Expected `str` matching regex {ISO_DATE_PATTERN!r}",
        ),
        ("set_reserve", "day", None, "'day': Expected `str`, got `None`"),
        ("set_reserve", "group", "", "'group': Expected `str` of length >= 1"),
        ("set_reserve", "share_pct", 101, "'share_pct': Expected `int` <= 100"),
        ("set_reserve", "share_pct", -1, "'share_pct': Expected `int` >= 0"),
        ("set_reserve", "share_pct", 12.5, "'share_pct': Expected `int`, got `float`"),
        ("set_reserve", "share_pct", True, "'share_pct': Expected `int`, got `bool`"),
        ("set_reserve", "mode", "both", "'mode': Invalid enum value 'both'"),
        ("set_reserve", "mode", None, "'mode': Expected `str`, got `None`"),
        ("set_reserve", "release_at_ms", -1, "'release_at_ms': Expected `int` >= 0"),
        ("set_reserve", "release_at_ms", "soon", "'release_at_ms': Expected `int`, got `str`"),
        ("report_inventory", "county", "", "'county': Expected `str` of length >= 1"),
        ("report_inventory", "campaign", 7, "'campaign': Expected `str`, got `int`"),
    ],
)
def test_a_wrong_field_is_refused(type_: str, key: str, value: Any, message: str) -> None:
    with pytest.raises(SchemaError, match=f"^{re.escape(message)}$"):
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
        ("2027-02-01", r"'slots\[1\]': Expected `array`, got `str`"),
        (GOOD_SLOT[:3], r"'slots\[1\]': Expected `array` of at least length 4, got 3"),
        ([*GOOD_SLOT, 5], r"'slots\[1\]': Expected `array` of at most length 4, got 5"),
        ({"day": "2027-02-01"}, r"'slots\[1\]': Expected `array`, got `object`"),
        (["2027-02-30", *GOOD_SLOT[1:]], r"'slots\[1\]': 'day' must be an ISO date"),
        ([None, *GOOD_SLOT[1:]], r"'slots\[1\]\[0\]': Expected `str`, got `None`"),
        ([GOOD_SLOT[0], "", *GOOD_SLOT[2:]], "start must be an ISO datetime with a UTC offset"),
        ([*GOOD_SLOT[:2], 1801465200.0, 4], r"'slots\[1\]\[2\]': Expected `int`, got `float`"),
        ([*GOOD_SLOT[:2], True, 4], r"'slots\[1\]\[2\]': Expected `int`, got `bool`"),
        ([*GOOD_SLOT[:3], -1], r"'slots\[1\]\[3\]': Expected `int` >= 0"),
        ([*GOOD_SLOT[:3], True], r"'slots\[1\]\[3\]': Expected `int`, got `bool`"),
        ([*GOOD_SLOT[:3], "4"], r"'slots\[1\]\[3\]': Expected `int`, got `str`"),
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
    with pytest.raises(SchemaError, match="'starts': Expected `array` of length <= 20000"):
        decode_command(pack_map(m))


def test_too_many_slots_in_one_command_are_refused() -> None:
    m = sample("add_inventory") | {"slots": [GOOD_SLOT] * (MAX_SLOTS_PER_COMMAND + 1)}
    with pytest.raises(SchemaError, match="'slots': Expected `array` of length <= 20000"):
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


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ("waitlisted", "Invalid enum value 'waitlisted'"),
        ("cancelled", "Invalid enum value 'cancelled'"),
        (None, "Expected `str`, got `None`"),
        (1, "Expected `str`, got `int`"),
    ],
)
def test_a_transfer_of_a_booking_that_is_not_held_or_confirmed_is_refused(
    state: Any, message: str
) -> None:
    with pytest.raises(SchemaError, match=f"^'state': {message}$"):
        decode_command(pack_map(sample("transfer_in") | {"state": state}))
