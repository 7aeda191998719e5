"""What every Kafka message is: a msgspec ``Struct`` on the wire as a msgpack map.

A message's map holds its fields by name, its wire type under ``"type"`` (the tag of
msgspec's tagged unions: one decoder per topic reads any of the topic's types,
validated, in one pass in C) and the schema version under ``"v"``. Schema version 1
is the format the hand-written readers before it wrote, key for key, so a log written
by any earlier fairq decodes as it is (``tests/schemas/test_message.py`` decodes a
fixture those readers' writers packed); only the order of the keys in the map differs
(``type`` first, ``v`` last), which no reader looks at.

A message whose ``v`` is absent is read as version 1 (msgspec gives an absent field
its default; every writer has always written it). Any other version is refused with
``unsupported schema version``, like any record that does not decode: the allocator,
the admitters and the state restorer log it and skip it rather than guess at its
meaning.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, ClassVar, Final, Literal, NamedTuple

import msgspec

from schemas.errors import SchemaError

SCHEMA_VERSION: Final = 1


class Part(msgspec.Struct, frozen=True, gc=False):
    """A part of a message (an appointment, a county's figures): immutable, no GC tracking
    (a message is a tree: it holds no cycle)."""

    def to_map(self) -> dict[str, Any]:
        """The fields by name, values as they are (no deep copy)."""
        return msgspec.structs.asdict(self)


def wire_type(class_name: str) -> str:
    """A message class's wire type: its name in snake case (``AddInventory`` ->
    ``add_inventory``). Renaming a message class renames its wire type, which old logs
    would no longer match: ``tests/schemas/test_message.py`` fails then."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower()


class Message(Part, frozen=True, gc=False, tag_field="type", tag=wire_type, kw_only=True):
    """Base of every Kafka message: its wire type (``"type"``, the union's tag) is its
    class name in snake case, also ``TYPE`` for the code that counts messages by type."""

    TYPE: ClassVar[str]
    v: Literal[1] = SCHEMA_VERSION

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.TYPE = wire_type(cls.__name__)

    def to_map(self) -> dict[str, Any]:
        """The map the message travels as (``type`` and ``v`` included), nested parts as maps."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out

    def pack(self) -> bytes:
        return _encode(self)


_encode = msgspec.msgpack.Encoder().encode

_AT = re.compile(r"^(?P<text>.*?)(?: - at (?P<key>`key` in )?`\$(?P<path>[^`]*)`)?$", re.DOTALL)
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]+)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>[^`]+)`$")


class Fault(NamedTuple):
    """Where a msgspec validation error is and what it says."""

    path: str  # e.g. "appointments[1].dose", "counties[...].free" ([...]: a map's value)
    text: str  # msgspec's words, or "is required" for a missing field
    missing: bool
    unknown: str | None  # the name of a field the type does not have (forbidden)


def fault(e: msgspec.DecodeError) -> Fault:
    """Take msgspec's ``... - at `$.path``` apart; a map's key is ``path[key]``."""
    match = _AT.match(str(e))
    assert match is not None  # the pattern matches any text
    text, path = match["text"], (match["path"] or "").lstrip(".")
    missing, unknown = _MISSING.match(text), _UNKNOWN.match(text)
    if missing:
        path, text = f"{path}.{missing['name']}".lstrip("."), "is required"
    if match["key"]:
        path = f"{path}[key]"
    return Fault(path, text, missing is not None, unknown["name"] if unknown else None)


def schema_error(e: msgspec.DecodeError, kind: str) -> SchemaError:
    """``e`` as a SchemaError whose message names the offending field, e.g.
    ``'hold_s': Expected `int` <= 86400`` or ``'appointments[1].dose': ...``. ``kind``
    names the message in words: "a command", "an event"."""
    if not isinstance(e, msgspec.ValidationError):
        return SchemaError(f"not a msgpack message: {e}")
    path, text, missing, _ = fault(e)
    if not path and text.startswith("Expected `object`"):
        return SchemaError(f"{kind} must be a msgpack map")
    if path == "v":
        return SchemaError(f"unsupported schema version ({text}; expected {SCHEMA_VERSION})")
    if path == "type":
        what = text.removeprefix("Invalid value ")
        # the value as it came, escaped: the message goes to logs
        what = what.encode("unicode_escape").decode("ascii")
        return SchemaError(f"unknown {kind.split(' ', 1)[1]} type {what}")
    if not path:
        return SchemaError(text)  # a check across fields, its message names them
    return SchemaError(f"'{path}' {text[:1].lower()}{text[1:]}" if missing else f"'{path}': {text}")


def wire_decoder(union: Any, kind: str) -> Callable[[bytes], Any]:
    """The function that decodes one record value to one of a topic's message types
    (``union``), or raises SchemaError naming the field at fault. A closure: called
    once per record, it costs less than a method."""
    decode = msgspec.msgpack.Decoder(union).decode

    def read(data: bytes) -> Any:
        try:
            return decode(data)
        except msgspec.DecodeError as e:
            raise schema_error(e, kind) from e

    return read
