"""The wire helpers: the fast map reader agrees with the field readers, maps are shallow."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import SCHEMA_VERSION, SchemaError, commands, events
from schemas.events import Appointment, CountySummary, Held, Summary
from schemas.fields import MAX_ID_LEN
from schemas.wire import _field_readers, field_map, pack_map, read_fields


def _readable(cls: type) -> bool:
    try:
        _field_readers(cls)
    except TypeError:  # a field read by hand in the class's own from_map
        return False
    return True


CLASSES = sorted(
    (
        cls
        for module in (commands, events)
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if dataclasses.is_dataclass(cls) and cls.__module__ == module.__name__
        if _readable(cls)
    ),
    key=lambda cls: cls.__name__,
)

WIRE_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.sampled_from([0, 1, 2, 3, -1, 600, 86_400, 86_401]),
    st.floats(allow_nan=True),
    st.text(max_size=8),
    st.sampled_from(["", "x" * MAX_ID_LEN, "x" * (MAX_ID_LEN + 1), "x" * 201, "x" * 301]),
    st.sampled_from(["2030-01-01", "2030-02-30", "morning", "evening", "noon"]),
    st.lists(st.integers(min_value=-3, max_value=3), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def reference(cls: type, m: Mapping[str, Any]) -> Any:
    """``read_fields`` as it was: every field through its reader."""
    return cls(**{name: reader(m, name) for name, reader in _field_readers(cls)})


def outcome(read: Any, cls: type, m: Mapping[str, Any]) -> tuple[str, Any]:
    try:
        return "ok", read(cls, m)
    except Exception as e:  # noqa: BLE001 - compared, not swallowed
        return type(e).__name__, str(e)


def test_there_are_classes_to_compare() -> None:
    names = {cls.__name__ for cls in CLASSES}
    assert {"Book", "Confirm", "Held", "Appointment", "CountySummary"} <= names


@settings(max_examples=600, deadline=None)
@given(st.data())
def test_read_fields_gives_what_the_field_readers_give(data: st.DataObject) -> None:
    cls = data.draw(st.sampled_from(CLASSES))
    names = [name for name, _ in _field_readers(cls)]
    present = data.draw(st.lists(st.sampled_from(names), unique=True))
    m = {name: data.draw(WIRE_VALUES) for name in present}
    assert outcome(read_fields, cls, m) == outcome(reference, cls, m)


def test_valid_values_pass_and_the_first_bad_field_names_itself() -> None:
    m = {"command_id": "c", "booking_id": "b", "campaign": "k"}
    assert read_fields(commands.Confirm, m) == commands.Confirm("c", "b", "k")
    bad = m | {"booking_id": "", "campaign": 7}
    assert outcome(read_fields, commands.Confirm, bad) == (
        "SchemaError",
        "'booking_id' must be a non-empty string",
    )
    assert outcome(read_fields, commands.Confirm, m | {"campaign": True})[0] == "SchemaError"


def test_a_keyword_only_field_is_refused() -> None:
    @dataclass(frozen=True, kw_only=True)
    class Named:
        name: str

    with pytest.raises(TypeError, match="positional"):
        read_fields(Named, {"name": "x"})


def test_maps_are_the_fields_as_they_are() -> None:
    dose = Appointment(1, "c1", "Center 1", "vx", "2030-03-01T09:00:00+00:00", "c1/vx/1")
    assert field_map(dose) == dataclasses.asdict(dose)
    held = Held("cmd", "bk", "k", 1, 5, "who", "north", (dose, dose), 10)
    assert held.to_map() == {
        "v": SCHEMA_VERSION,
        "type": "held",
        **dataclasses.asdict(held),
        "appointments": [dataclasses.asdict(dose)] * 2,
    }
    counts = CountySummary(1, 2, 3, 4)
    summary = Summary("k", 5, {"north": counts})
    assert summary.to_map()["counties"] == {"north": dataclasses.asdict(counts)}


def test_a_map_that_does_not_pack_leaves_nothing_behind_for_the_next() -> None:
    with pytest.raises(TypeError):
        pack_map({"a": [1, {"b": object()}]})
    assert msgpack.unpackb(pack_map({"x": 1})) == {"x": 1}


def test_messages_have_slots_and_compare_and_hash_by_their_fields() -> None:
    for cls in CLASSES:
        assert "__slots__" in vars(cls), cls  # a wire_class: no __dict__ per message
    a = commands.Book("c", "b", "k", "who", "north")
    b = commands.Book("c", "b", "k", "who", "north")
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != dataclasses.replace(a, county="south")


def test_each_message_type_decodes_by_its_own_type() -> None:
    confirm = commands.Confirm("c", "b", "k")
    assert commands.decode_command(confirm.pack()) == confirm
    with pytest.raises(SchemaError, match="unknown command type"):
        commands.decode_command(pack_map({"v": SCHEMA_VERSION, "type": "held"}))
