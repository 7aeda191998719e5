"""The message framing: old logs decode, types and versions are checked, errors name fields."""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any

import msgpack
import msgspec
import pytest

from schemas import SCHEMA_VERSION, SchemaError, commands, events, state
from schemas.commands import Book, Confirm, decode_command
from schemas.events import Appointment, CountySummary, Held, Summary, decode_event
from schemas.message import Message, Part, wire_type
from schemas.state import decode_state

# Every sample command, event and state record of tests/schemas as the hand-written
# readers' writers (fairq before msgspec, schema version 1) packed them.
OLD = msgpack.unpackb(
    (pathlib.Path(__file__).parent / "fixtures" / "wire_v1.msgpack").read_bytes(), raw=False
)
DECODERS: dict[str, Callable[[bytes], Message]] = {
    "commands": decode_command,
    "events": decode_event,
    "state": decode_state,
}
OLD_RECORDS = [(kind, data) for kind in DECODERS for data in OLD[kind]]


def test_the_fixture_holds_every_message_type() -> None:
    def types(kind: str) -> set[str]:
        return {msgpack.unpackb(data)["type"] for data in OLD[kind]}

    assert types("commands") == {cls.TYPE for cls in _classes(commands)}
    assert types("events") == {cls.TYPE for cls in _classes(events)}
    assert types("state") == {cls.TYPE for cls in _classes(state)}


def _classes(module: Any) -> list[type[Message]]:
    return [
        cls
        for cls in vars(module).values()
        if isinstance(cls, type)
        and issubclass(cls, Message)
        and cls.__module__ == module.__name__
        and not cls.__name__.startswith("_")
    ]


@pytest.mark.parametrize(("kind", "data"), OLD_RECORDS)
def test_a_message_the_old_writers_packed_decodes_to_the_same_map(kind: str, data: bytes) -> None:
    message = DECODERS[kind](data)
    assert msgpack.unpackb(message.pack()) == msgpack.unpackb(data)


@pytest.mark.parametrize(("kind", "data"), OLD_RECORDS)
def test_the_old_readers_would_read_what_is_written_now(kind: str, data: bytes) -> None:
    """Same keys, same values: only the order of the keys in the map changed."""
    new = DECODERS[kind](data).pack()
    assert sorted(msgpack.unpackb(new)) == sorted(msgpack.unpackb(data))


def test_wire_types_are_class_names_in_snake_case() -> None:
    assert [wire_type(n) for n in ("Book", "AddInventory", "RoomStateSet")] == [
        "book",
        "add_inventory",
        "room_state_set",
    ]
    assert Book.TYPE == "book" and commands.TransferIn.TYPE == "transfer_in"


def test_a_map_carries_version_and_type() -> None:
    m = msgpack.unpackb(Confirm("c", "b", "k").pack())
    assert m == {
        "v": SCHEMA_VERSION,
        "type": "confirm",
        "command_id": "c",
        "booking_id": "b",
        "campaign": "k",
    }


def test_a_message_without_a_version_reads_as_version_1() -> None:
    m = Confirm("c", "b", "k").to_map()
    del m["v"]
    assert decode_command(msgpack.packb(m)) == Confirm("c", "b", "k")


@pytest.mark.parametrize("version", [0, 2, "1", True, 1.0, None])
def test_another_version_is_refused(version: Any) -> None:
    m = Confirm("c", "b", "k").to_map() | {"v": version}
    with pytest.raises(SchemaError, match=r"unsupported schema version \(.*expected 1\)"):
        decode_command(msgpack.packb(m))


def test_each_message_type_decodes_by_its_own_type() -> None:
    with pytest.raises(SchemaError, match="unknown command type"):
        decode_command(msgpack.packb({"v": SCHEMA_VERSION, "type": "held"}))
    with pytest.raises(SchemaError, match="unknown event type"):
        decode_event(Confirm("c", "b", "k").pack())


def test_errors_name_the_field_nested_or_not() -> None:
    dose = Appointment(1, "c1", "Center 1", "vx", "2030-03-01T09:00:00+00:00", "c1/vx/1")
    held = Held("cmd", "bk", "k", 1, 5, "who", "north", (dose, dose), 10).to_map()
    held["appointments"][1]["dose"] = 3
    with pytest.raises(SchemaError, match=r"^'appointments\[1\].dose': Expected `int` <= 2$"):
        decode_event(msgpack.packb(held))
    held["appointments"][1]["dose"] = 2
    del held["identity"]
    with pytest.raises(SchemaError, match=r"^'identity' is required$"):
        decode_event(msgpack.packb(held))


def test_messages_are_immutable_and_compare_and_hash_by_their_fields() -> None:
    a = Book("c", "b", "k", "who", "north")
    b = Book("c", "b", "k", "who", "north")
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != msgspec.structs.replace(a, county="south")
    with pytest.raises(AttributeError):
        a.county = "south"  # type: ignore[misc]


def test_parts_give_their_fields_as_they_are() -> None:
    counts = CountySummary(1, 2, 3, 4)
    assert isinstance(counts, Part)
    assert counts.to_map() == {
        "pairs_left": 1,
        "free": 2,
        "held": 3,
        "confirmed": 4,
        "waitlisted": 0,
        "reserved": 0,
        "pairs_left_by_vaccine": None,
    }
    assert Summary("k", 5, {"north": counts}).to_map()["counties"] == {"north": counts.to_map()}
