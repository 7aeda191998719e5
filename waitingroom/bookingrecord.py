"""A booking's routing record in Redis (``keys.booking``), declared once.

The gateway writes it whole before the booking's Book goes to the log
(``gateway.placement.place``), with where the booking came from: a room's admitted
place (``room``, ``position``), a call-center agent (``agent``) or a room's waitlist
(``waitlist_room``). It then marks it ``placed`` once the broker has the Book. The
admitter reads ``room``, ``position`` and ``county`` to free the place when the booking
ends; the gateways' resender reads ``command`` and ``placed`` to send a Book in doubt
again. A restore after Redis lost it (``waitingroom.durable``) writes only
``campaign``, ``identity`` and ``at_s``, so every field but those may be missing.

A Redis hash keeps its values as bytes: ``from_hash`` reads them into this type
(numbers from their text, ``placed`` from ``1``), refusing a malformed one with a
``SchemaError`` naming the field, and ``to_hash`` writes them.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from schemas.message import schema_error

# what redis-py's HSET takes as a field's name or value
Field = bytes | bytearray | memoryview | str | int | float


class BookingRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    campaign: str | None = None
    county: str | None = None
    identity: str | None = None
    at_s: int | None = None  # when the record was written (s since the epoch)
    command: bytes | None = None  # the packed Book, sent again while in doubt
    placed: bool = False  # the broker acknowledged the Book
    # where the booking came from: one of a room's place, an agent, a room's waitlist
    room: str | None = None
    position: int | None = None
    agent: str | None = None
    waitlist_room: str | None = None

    def to_hash(self) -> dict[Field, Field]:
        """The fields set, as ``HSET`` takes them (``placed`` as 1)."""
        fields: dict[Field, Field] = {}
        for name, value in msgspec.structs.asdict(self).items():
            if value is None or value is False:
                continue
            fields[name] = 1 if value is True else value
        return fields


PLACED: dict[Field, Field] = {"placed": 1}  # ``HSET`` of the mark ``placed``, alone
_TEXT = {name for name in BookingRecord.__struct_fields__ if name != "command"}


def from_hash(raw: Mapping[bytes | str, bytes | str]) -> BookingRecord:
    """A record as ``HGETALL`` answers it (an empty mapping: no record, all missing);
    the services' clients answer bytes."""
    fields: dict[str, object] = {}
    for key, value in raw.items():
        name = key.decode(errors="replace") if isinstance(key, bytes) else key
        if isinstance(value, bytes) and name in _TEXT:
            value = value.decode(errors="replace")
        fields[name] = value
    try:
        return msgspec.convert(fields, BookingRecord, strict=False)
    except msgspec.ValidationError as e:
        raise schema_error(e, "booking record") from e
