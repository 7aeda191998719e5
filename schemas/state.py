"""State records on the ``fairq-state`` topic (msgpack): what must outlive Redis.

Redis is fast and forgetful (no persistence in development; a failover to a replica
loses what it had not copied). Everything a room needs to come back the same after
such a loss is written here *before* the operation that made it is acknowledged
(``waitingroom.durable``), and ``waitingroom.durable.Restorer`` folds the records
back into Redis in log order:

- ``CampaignStored``: a campaign's public description (what rooms and bookings read);
- ``RoomStored``: a room's whole configuration (every PUT);
- ``RoomStateSet``: an operator's open/pause/resume/close;
- ``AdmissionSet``: a live admission change (the settings it names);
- ``MessageSet``: the operator's message to a room's visitors, or its removal;
- ``RoomOpened``: the lottery's seed, the frozen pre-queue size and the opening time;
- ``CeilingRaised``: a room's ticket counter may hand out numbers up to ``ceiling``
  (the fence: after a loss the counter restarts at the last ceiling, never below);
- ``CodesIssued``: the hashes of access codes issued for a campaign's group;
- ``ClaimTaken``: a booking holds the campaign's one pair of an identity;
- ``RestoreStarted``: a restorer's own record, written before it reads the log: it reads
  until it meets it, so it has every record acknowledged before (see ``statelog``).

One partition: one total order, read whole by the restorer. Kept for ever.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from schemas.errors import SchemaError
from schemas.fields import MAX_ID_LEN, req_list, req_number, req_str
from schemas.wire import Message, decoders, dispatch, read, wire_class

MAX_PUBLIC_CHARS = 4 * 1024 * 1024  # a campaign's public description (JSON)
MAX_HASHES = 1_000  # code hashes per record (``waitingroom.codes.BATCH``)
COUNTER_KINDS = ("pre", "post")


def _number(m: Mapping[str, Any], key: str) -> float:
    return req_number(m, key)


def _opt_number(m: Mapping[str, Any], key: str) -> float | None:
    return None if m.get(key) is None else req_number(m, key)


def _opt_int(m: Mapping[str, Any], key: str) -> int | None:
    value = m.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise SchemaError(f"'{key}' must be an integer")
    return value


def _count(m: Mapping[str, Any], key: str) -> int:
    value = m.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise SchemaError(f"'{key}' must be an integer >= 0")
    return value


def _public(m: Mapping[str, Any], key: str) -> str:
    return req_str(m, key, max_len=MAX_PUBLIC_CHARS)


def _opt_public(m: Mapping[str, Any], key: str) -> str | None:
    return None if m.get(key) is None else _public(m, key)


def _kind(m: Mapping[str, Any], key: str) -> str:
    value = m.get(key)
    if value not in COUNTER_KINDS:
        raise SchemaError(f"'{key}' must be one of {', '.join(COUNTER_KINDS)}")
    return str(value)


def _hashes(m: Mapping[str, Any], key: str) -> tuple[str, ...]:
    items = req_list(m, key, max_len=MAX_HASHES)
    if not all(isinstance(h, str) and 0 < len(h) <= MAX_ID_LEN for h in items):
        raise SchemaError(f"'{key}' must be a list of code hashes")
    return tuple(items)


@wire_class
class CampaignStored(Message):
    TYPE: ClassVar[str] = "campaign_stored"
    campaign: str
    public: str = read(_public)  # the JSON Redis holds under ``keys.campaign``


@wire_class
class RoomStored(Message):
    """A room's configuration, as ``waitingroom.rooms.RoomConfig`` has it."""

    TYPE: ClassVar[str] = "room_stored"
    room: str
    campaign: str
    opens_at_s: float = read(_number)
    rate_per_s: float = read(_number)
    max_active: int = read(_count)
    hold_s: int = read(_count)
    admit_window_s: int = read(_count)
    prequeue_s: int = read(_count)
    ramp_s: int = read(_count)
    admission_mode: str = read(req_str)
    pow_difficulty: int = read(_count)
    language: str | None = None  # the page's default language; None: the room's default


@wire_class
class RoomStateSet(Message):
    TYPE: ClassVar[str] = "room_state_set"
    room: str
    state: str  # an operator's state: 'open' (resume), 'paused' or 'closed'


@wire_class
class AdmissionSet(Message):
    """A live admission change; None leaves a setting as it was."""

    TYPE: ClassVar[str] = "admission_set"
    room: str
    rate_per_s: float | None = read(_opt_number, None)
    max_active: int | None = read(_opt_int, None)
    ramp_s: int | None = read(_opt_int, None)
    admission_mode: str | None = None
    pow_difficulty: int | None = read(_opt_int, None)


@wire_class
class MessageSet(Message):
    TYPE: ClassVar[str] = "message_set"
    room: str
    message: str | None = read(_opt_public, None)  # as the room hash has it (JSON); None: cleared


@wire_class
class RoomOpened(Message):
    """The opening: pre ticket k stands where ``lottery.prequeue_order(seed, size)`` says."""

    TYPE: ClassVar[str] = "room_opened"
    room: str
    seed: str
    prequeue_size: int = read(_count)
    opened_at_s: float = read(_number)


@wire_class
class CeilingRaised(Message):
    """The room's ``kind`` counter may hand out numbers up to ``ceiling`` (inclusive)."""

    TYPE: ClassVar[str] = "ceiling_raised"
    room: str
    kind: str = read(_kind)
    ceiling: int = read(_count)


@wire_class
class CodesIssued(Message):
    TYPE: ClassVar[str] = "codes_issued"
    campaign: str
    group: str
    hashes: tuple[str, ...] = read(_hashes)

    def to_map(self) -> dict[str, Any]:
        out = Message.to_map(self)
        out["hashes"] = list(self.hashes)
        return out


@wire_class
class ClaimTaken(Message):
    """Booking ``booking_id`` holds the one pair of ``identity`` in ``campaign``; the
    claim lapses at ``expires_at_s`` (epoch s) as the Redis claim does."""

    TYPE: ClassVar[str] = "claim_taken"
    campaign: str
    identity: str
    booking_id: str
    at_s: float = read(_number)
    expires_at_s: float = read(_number)


@wire_class
class RestoreStarted(Message):
    TYPE: ClassVar[str] = "restore_started"
    restore_id: str
    at_s: float = read(_number)


StateRecord = (
    CampaignStored
    | RoomStored
    | RoomStateSet
    | AdmissionSet
    | MessageSet
    | RoomOpened
    | CeilingRaised
    | CodesIssued
    | ClaimTaken
    | RestoreStarted
)

_DECODERS = decoders(
    CampaignStored,
    RoomStored,
    RoomStateSet,
    AdmissionSet,
    MessageSet,
    RoomOpened,
    CeilingRaised,
    CodesIssued,
    ClaimTaken,
    RestoreStarted,
)


def decode_state(data: bytes) -> StateRecord:
    """Decode one record value; raises SchemaError for anything malformed."""
    return dispatch(data, _DECODERS, "state record")  # type: ignore[no-any-return]
