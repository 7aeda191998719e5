"""msgpack framing shared by commands and events: version check and type dispatch."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

import msgpack

from schemas.errors import SchemaError
from schemas.fields import opt_str, req_bool, req_int, req_str

SCHEMA_VERSION = 1

T = TypeVar("T", bound="Message")
D = TypeVar("D")


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


_FIELD_READERS: dict[type, tuple[tuple[str, Reader], ...]] = {}


def _field_readers(cls: type) -> tuple[tuple[str, Reader], ...]:
    cached = _FIELD_READERS.get(cls)
    if cached is not None:
        return cached
    readers = []
    for f in dataclasses.fields(cls):
        reader = f.metadata.get(READ) or _READERS.get(str(f.type))
        if reader is None:
            raise TypeError(f"{cls.__name__}.{f.name}: no reader for {f.type!r}")
        readers.append((f.name, reader))
    _FIELD_READERS[cls] = tuple(readers)
    return _FIELD_READERS[cls]


def read_fields(cls: type[D], m: Mapping[str, Any]) -> D:
    """Build ``cls`` from an untrusted map, each field checked by its reader."""
    return cls(**{name: reader(m, name) for name, reader in _field_readers(cls)})


class Message:
    """Base of every Kafka message: a frozen dataclass with a wire ``TYPE``."""

    TYPE: ClassVar[str]

    @classmethod
    def from_map(cls: type[T], m: Mapping[str, Any]) -> T:
        return read_fields(cls, m)

    def to_map(self) -> dict[str, Any]:
        out: dict[str, Any] = {"v": SCHEMA_VERSION, "type": self.TYPE}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            out[f.name] = getattr(self, f.name)
        return out

    def pack(self) -> bytes:
        return pack_map(self.to_map())


def pack_map(m: Mapping[str, Any]) -> bytes:
    return msgpack.packb(m, use_bin_type=True)  # type: ignore[no-any-return]


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


def dispatch(data: bytes, decoders: Mapping[str, Decoder], kind: str) -> Any:
    m = unpack_map(data)
    t = m.get("type")
    decoder = decoders.get(t) if isinstance(t, str) else None
    if decoder is None:
        raise SchemaError(f"unknown {kind} type {t!r}")
    return decoder(m)
