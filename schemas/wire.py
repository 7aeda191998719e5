"""msgpack framing shared by commands and events: version check and type dispatch."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

import msgpack

from schemas.errors import SchemaError

SCHEMA_VERSION = 1

T = TypeVar("T", bound="Message")


class Message:
    """Base of every Kafka message: a frozen dataclass with a wire ``TYPE``."""

    TYPE: ClassVar[str]

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
