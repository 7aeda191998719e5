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

from collections.abc import Callable
from enum import StrEnum
from typing import Annotated

from msgspec import Meta

from schemas.message import Message, wire_decoder
from schemas.types import Count, Finite, Text

MAX_PUBLIC_CHARS = 4 * 1024 * 1024  # a campaign's public description (JSON)
MAX_HASHES = 1_000  # code hashes per record (``waitingroom.codes.BATCH``)


class CounterKind(StrEnum):
    """A room's two ticket counters: joins before the opening, and after."""

    PRE = "pre"
    POST = "post"


Public = Annotated[str, Meta(min_length=1, max_length=MAX_PUBLIC_CHARS)]


class CampaignStored(Message, frozen=True):
    campaign: Text
    public: Public  # the JSON Redis holds under ``keys.campaign``


class RoomStored(Message, frozen=True):
    """A room's configuration, as ``waitingroom.rooms.RoomConfig`` has it."""

    room: Text
    campaign: Text
    opens_at_s: Finite
    rate_per_s: Finite
    max_active: Count
    hold_s: Count
    admit_window_s: Count
    prequeue_s: Count
    ramp_s: Count
    admission_mode: Text
    pow_difficulty: Count
    language: Text | None = None  # the page's default language; None: the room's default


class RoomStateSet(Message, frozen=True):
    room: Text
    state: Text  # an operator's state: 'open' (resume), 'paused' or 'closed'


class AdmissionSet(Message, frozen=True):
    """A live admission change; None leaves a setting as it was."""

    room: Text
    rate_per_s: Finite | None = None
    max_active: int | None = None
    ramp_s: int | None = None
    admission_mode: Text | None = None
    pow_difficulty: int | None = None


class MessageSet(Message, frozen=True):
    room: Text
    message: Public | None = None  # as the room hash has it (JSON); None: cleared


class RoomOpened(Message, frozen=True):
    """The opening: pre ticket k stands where ``lottery.prequeue_order(seed, size)`` says."""

    room: Text
    seed: Text
    prequeue_size: Count
    opened_at_s: Finite


class CeilingRaised(Message, frozen=True):
    """The room's ``kind`` counter may hand out numbers up to ``ceiling`` (inclusive)."""

    room: Text
    kind: CounterKind
    ceiling: Count


class CodesIssued(Message, frozen=True):
    campaign: Text
    group: Text
    hashes: Annotated[tuple[Text, ...], Meta(max_length=MAX_HASHES)]


class ClaimTaken(Message, frozen=True):
    """Booking ``booking_id`` holds the one pair of ``identity`` in ``campaign``; the
    claim lapses at ``expires_at_s`` (epoch s) as the Redis claim does."""

    campaign: Text
    identity: Text
    booking_id: Text
    at_s: Finite
    expires_at_s: Finite


class RestoreStarted(Message, frozen=True):
    restore_id: Text
    at_s: Finite


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

decode_state: Callable[[bytes], StateRecord] = wire_decoder(StateRecord, "a state record")
"""Decode one record value; raises SchemaError for anything malformed."""
