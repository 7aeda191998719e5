"""msgpack framing shared by commands and events: version check and type dispatch."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar, dataclass_transform

import msgpack

from schemas.errors import SchemaError
from schemas.fields import MAX_ID_LEN, opt_str, opt_time_of_day, req_bool, req_int, req_str

SCHEMA_VERSION = 1

T = TypeVar("T", bound="Message")
D = TypeVar("D")
C = TypeVar("C", bound=type)


@dataclass_transform(frozen_default=True)
def wire_class(cls: C) -> C:
    """A message or a part of one: a dataclass with slots, immutable by contract.

    mypy treats it as frozen (assigning to a field is a type error), but at run time
    it is a plain slots dataclass: CPython builds a frozen dataclass by calling
    ``object.__setattr__`` once per field, which made a Book (11 fields) take
    1.1 µs to build instead of 0.17 µs (``python -m loadtest.bench_messages``), once
    when the allocator decodes it and again for every event it answers with. Equal
    fields give equal hashes, as for a frozen dataclass.
    """
    return dataclasses.dataclass(slots=True, unsafe_hash=True)(cls)  # type: ignore[return-value]


Reader = Callable[[Mapping[str, Any], str], Any]
READ = "read"  # dataclass field metadata key: the reader of a field with special rules

# Readers for plain annotations (the modules use ``from __future__ import annotations``,
# so a field's type is the annotation's text).
_READERS: dict[str, Reader] = {
    "str": req_str,
    "int": req_int,
    "bool": req_bool,
    "str | None": opt_str,
}


def read(reader: Reader, default: Any = dataclasses.MISSING) -> Any:
    """A dataclass field whose value is read from the wire by ``reader``."""
    return dataclasses.field(default=default, metadata={READ: reader})


def _field_readers(cls: type) -> list[tuple[str, Reader]]:
    """Each field's name and reader (read once per class, by ``_map_reader``)."""
    readers = []
    for f in dataclasses.fields(cls):
        reader = f.metadata.get(READ) or _READERS.get(str(f.type))
        if reader is None:
            raise TypeError(f"{cls.__name__}.{f.name}: no reader for {f.type!r}")
        readers.append((f.name, reader))
    return readers


# The check ``read_fields`` makes inline before calling a field's reader, by reader. A
# value that passes is exactly what the reader would return, so only values that fail
# it go through the reader (to be refused with the reader's own error, or converted).
_INLINE_CHECKS: dict[Reader, str] = {
    req_str: "type({v}) is str and 0 < len({v}) <= MAX_ID_LEN",
    opt_str: "{v} is None or (type({v}) is str and 0 < len({v}) <= MAX_ID_LEN)",
    req_int: "type({v}) is int",
    req_bool: "{v} is True or {v} is False",
    opt_time_of_day: "{v} is None",
}

R = TypeVar("R", bound=Reader)


def inline_check(check: str) -> Callable[[R], R]:
    """Register ``check`` (a Python expression of the value ``{v}``) as the inline check
    of the reader it decorates: a value that passes must be exactly what the reader
    would return for it."""

    def register(reader: R) -> R:
        _INLINE_CHECKS[reader] = check
        return reader

    return register


MapReader = Callable[[Mapping[str, Any]], Any]
_MAP_READERS: dict[type, MapReader] = {}


def _map_reader(cls: type) -> MapReader:
    """The function that reads ``cls`` from a map, made once per class.

    Its source is written out field by field (as ``dataclasses`` does for
    ``__init__``): a field whose reader has an inline check reads
    ``v = m.get(name); if not <check>: v = reader(m, name)``, any other field
    ``v = reader(m, name)``; then ``cls(v0, v1, ...)``.
    """
    if any(not f.init or f.kw_only for f in dataclasses.fields(cls)):
        raise TypeError(f"{cls.__name__}: every field must be a positional argument")
    scope: dict[str, Any] = {"cls": cls, "MAX_ID_LEN": MAX_ID_LEN}
    lines = ["def read(m):", "    get = m.get"]
    readers = _field_readers(cls)
    for i, (name, reader) in enumerate(readers):
        v, r = f"v{i}", f"r{i}"
        scope[r] = reader
        check = _INLINE_CHECKS.get(reader)
        if check is None:
            lines.append(f"    {v} = {r}(m, {name!r})")
        else:
            lines.append(f"    {v} = get({name!r})")
            lines.append(f"    if not ({check.format(v=v)}):")
            lines.append(f"        {v} = {r}(m, {name!r})")
    args = ", ".join(f"v{i}" for i in range(len(readers)))
    lines.append(f"    return cls({args})")
    exec("\n".join(lines), scope)  # the source is made above from field names only
    reader_fn: MapReader = scope["read"]
    _MAP_READERS[cls] = reader_fn
    return reader_fn


def map_reader(cls: type[D]) -> Callable[[Mapping[str, Any]], D]:
    """The function ``read_fields`` uses for ``cls``: a decoder can call it directly."""
    return _MAP_READERS.get(cls) or _map_reader(cls)


def read_fields(cls: type[D], m: Mapping[str, Any]) -> D:
    """Build ``cls`` from an untrusted map, each field checked by its reader.

    Plain strings, integers and booleans that are valid as they are skip the call
    to their reader; every other value goes through it (same result, same error).
    """
    reader = _MAP_READERS.get(cls) or _map_reader(cls)
    return reader(m)  # type: ignore[no-any-return]


MapWriter = Callable[[Any], dict[str, Any]]
_MAP_WRITERS: dict[tuple[type, bool], MapWriter] = {}


def _map_writer(cls: type, type_: str | None) -> MapWriter:
    """The function that gives an instance of ``cls`` as a map, made once per class:
    ``{"v": ..., "type": type_, name: self.name, ...}`` in one expression (``"v"`` and
    ``"type"`` only for a message, with its ``type_``)."""
    items = [f"{f.name!r}: self.{f.name}" for f in dataclasses.fields(cls)]
    if type_ is not None:
        items[:0] = [f"'v': {SCHEMA_VERSION!r}", f"'type': {type_!r}"]
    scope: dict[str, Any] = {}
    exec(f"def to_map(self):\n    return {{{', '.join(items)}}}", scope)  # field names only
    writer: MapWriter = scope["to_map"]
    _MAP_WRITERS[cls, type_ is not None] = writer
    return writer


def field_map(obj: Any) -> dict[str, Any]:
    """A dataclass instance's fields as a map, values as they are (no deep copy)."""
    cls = type(obj)
    return (_MAP_WRITERS.get((cls, False)) or _map_writer(cls, None))(obj)


class Message:
    """Base of every Kafka message: a ``wire_class`` with a wire ``TYPE``."""

    __slots__ = ()
    TYPE: ClassVar[str]

    @classmethod
    def from_map(cls: type[T], m: Mapping[str, Any]) -> T:
        return read_fields(cls, m)

    def to_map(self) -> dict[str, Any]:
        """``v``, ``type`` and the fields, values as they are."""
        cls = type(self)
        return (_MAP_WRITERS.get((cls, True)) or _map_writer(cls, self.TYPE))(self)

    def pack(self) -> bytes:
        return pack_map(self.to_map())


_packers = threading.local()  # a Packer per thread: msgpack.packb makes a new one each call


def pack_map(m: Mapping[str, Any]) -> bytes:
    try:
        packer = _packers.packer
    except AttributeError:
        packer = _packers.packer = msgpack.Packer(use_bin_type=True)
    return packer.pack(m)  # type: ignore[no-any-return]


def unpack_map(data: bytes) -> Mapping[str, Any]:
    try:
        m = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as e:
        raise SchemaError(f"not a msgpack message: {type(e).__name__} {e}".rstrip()) from e
    if not isinstance(m, dict):
        raise SchemaError("a message must be a msgpack map")
    v = m.get("v")
    if type(v) is not int or v != SCHEMA_VERSION:
        raise SchemaError(f"unsupported schema version {v!r} (expected {SCHEMA_VERSION})")
    return m


Decoder = Callable[[Mapping[str, Any]], Any]


def decoders(*classes: type[Message]) -> dict[str, Decoder]:
    """Each message type's decoder, by wire type: its own ``from_map`` where it has one,
    else the field reader that ``Message.from_map`` would call (one call less)."""
    return {cls.TYPE: map_reader(cls) if _plain_from_map(cls) else cls.from_map for cls in classes}


def _plain_from_map(cls: type[Message]) -> bool:
    return getattr(cls.from_map, "__func__", None) is getattr(Message.from_map, "__func__", None)


def dispatch(data: bytes, decoders: Mapping[str, Decoder], kind: str) -> Any:
    m = unpack_map(data)
    t = m.get("type")
    decoder = decoders.get(t) if isinstance(t, str) else None
    if decoder is None:
        raise SchemaError(f"unknown {kind} type {t!r}")
    return decoder(m)
