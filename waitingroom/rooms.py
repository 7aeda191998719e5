"""Rooms in Redis: configuration, live counters, joins, and operator changes.

The room hash (``keys.room``) holds, besides the ``RoomConfig`` fields:

- ``state``: ``scheduled`` | ``open`` | ``paused`` | ``closed``; ``sold_out``: ``1``/``0``
  and ``sold_out_seq`` (the last numbered sold-out verdict applied);
- ``pre_count`` / ``post_count``: tickets issued before / after opening;
- ``prequeue_s``: how long before ``opens_at_s`` joins are taken (the pre-queue window);
- set once at opening: ``prequeue_size`` (the frozen pre count), ``seed``, ``opened_at_s``;
- admission: ``cursor`` (every position up to it is admitted), ``admit_last_s`` and
  ``admit_carry`` (the admission budget's clock and unspent fraction);
- live admission settings (``AdmissionChange``): ``rate_per_s``, ``max_active``,
  ``ramp_s``, ``admission_mode`` and ``pow_difficulty``;
- ``language``: the page's language for a visitor whose browser asks for none it has;
- ``message``: the operator's message to the room's visitors (``RoomMessage`` as JSON),
  absent when there is none; set apart from the configuration (``set_message``).

- a durable room (a store with a state log, ``waitingroom.statelog``): ``durable`` = ``1``,
  ``pre_ceiling`` / ``post_ceiling`` (each counter hands out numbers up to its ceiling,
  which the log has first), ``opening_logged`` (the opening is in the log: admission
  may start) and ``restored_at_s`` (the last restore from the log, see ``durable``).

``keys.room_active`` scores each admitted, still active position by its deadline.
Every change that must be atomic is one Lua script in ``waitingroom.scripts``.

With a state log, every operator change is written to the log before Redis has it,
and the opening right after (the admitter admits nobody until it is in the log).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import orjson
import redis.asyncio as aioredis

from schemas.state import (
    AdmissionSet,
    CeilingRaised,
    CounterKind,
    MessageSet,
    RoomOpened,
    RoomStateSet,
    RoomStored,
)
from waitingroom import keys
from waitingroom.errors import (
    CounterFenced,
    InvalidAccessCode,
    InvalidRoomConfig,
    RoomClosed,
    RoomNotFound,
    StateRestoring,
    TooEarly,
    TooManyAttempts,
    WaitingRoomError,
)
from waitingroom.guesses import Guesser
from waitingroom.joinbatch import MAX_FENCE_RETRIES, JoinBatcher, fenced_need, parse_joins
from waitingroom.lottery import draw_seed
from waitingroom.pow import check_difficulty
from waitingroom.scripts import Scripts
from waitingroom.statelog import StateLog
from waitingroom.tickets import Ticket, new_ticket_id

logger = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
STATES = ("scheduled", "open", "paused", "closed")
OPERATOR_STATES = ("open", "paused", "closed")
DEFAULT_PREQUEUE_S = 3600  # the pre-queue opens an hour before the room
MAX_PREQUEUE_S = 30 * 86_400
MAX_RAMP_S = 86_400
RAMP_START_FRACTION = 0.1  # the admission rate at the opening, as a fraction of rate_per_s
ADMISSION_MODES = ("manual", "auto")
LANGUAGES = ("de", "en")  # the waiting-room page's languages; the first is the default
MAX_MESSAGE_LEN = 500
# Numbers a ticket counter may hand out beyond what it needs when the state log gets a
# new ceiling: the Kafka writes of a storm against the places nobody holds after a
# restore (the counter restarts at the last ceiling; at most this many of the places
# it skips were never handed out, and each costs the admitter one admission window).
DEFAULT_CEILING_BLOCK = 200


@dataclass(frozen=True, slots=True)
class RoomConfig:
    name: str
    campaign: str
    opens_at_s: float
    rate_per_s: float = 10.0
    max_active: int = 1000
    hold_s: int = 600
    admit_window_s: int = 600
    prequeue_s: int = DEFAULT_PREQUEUE_S  # joins are taken from opens_at_s - prequeue_s on
    ramp_s: int = 0  # the rate rises from RAMP_START_FRACTION to rate_per_s over this; 0: off
    admission_mode: str = "manual"  # 'auto': never more active bookers than pairs left
    pow_difficulty: int = 0  # leading zero bits asked of anonymous joins; 0: no proof of work
    language: str = LANGUAGES[0]  # the page's default language (a browser's choice goes first)

    @property
    def prequeue_opens_at_s(self) -> float:
        return self.opens_at_s - self.prequeue_s

    def __post_init__(self) -> None:
        for label, value in (("room name", self.name), ("campaign", self.campaign)):
            if not NAME_PATTERN.match(value):
                raise InvalidRoomConfig(f"{label} {value!r} must match {NAME_PATTERN.pattern}")
        if not math.isfinite(self.opens_at_s):
            raise InvalidRoomConfig("opens_at_s must be a finite time")
        if self.hold_s < 1 or self.admit_window_s < 1:
            raise InvalidRoomConfig("hold_s and admit_window_s must be at least 1")
        if not 0 <= self.prequeue_s <= MAX_PREQUEUE_S:
            raise InvalidRoomConfig(f"prequeue_s must be within 0..{MAX_PREQUEUE_S}")
        for field, check in LIVE_SETTING_CHECKS.items():
            check(getattr(self, field))
        if self.language not in LANGUAGES:
            raise InvalidRoomConfig(f"language must be one of {LANGUAGES}, got {self.language!r}")

    def rate_at(self, opened_at_s: float | None, now_s: float) -> float:
        """The admission rate at ``now_s``: ``rate_per_s``, less while ramping up."""
        if opened_at_s is None or self.ramp_s <= 0:
            return self.rate_per_s
        ramped = min(1.0, max(0.0, (now_s - opened_at_s) / self.ramp_s))
        return self.rate_per_s * (RAMP_START_FRACTION + (1 - RAMP_START_FRACTION) * ramped)


def check_rate(rate_per_s: float) -> None:
    if not (math.isfinite(rate_per_s) and rate_per_s >= 0):
        raise InvalidRoomConfig(f"rate_per_s must be a finite number >= 0, got {rate_per_s}")


def check_max_active(max_active: int) -> None:
    if max_active < 0:
        raise InvalidRoomConfig(f"max_active must be >= 0, got {max_active}")


def check_ramp(ramp_s: int) -> None:
    if not 0 <= ramp_s <= MAX_RAMP_S:
        raise InvalidRoomConfig(f"ramp_s must be within 0..{MAX_RAMP_S}, got {ramp_s}")


def check_mode(mode: str) -> None:
    if mode not in ADMISSION_MODES:
        raise InvalidRoomConfig(f"admission_mode must be one of {ADMISSION_MODES}, got {mode!r}")


def check_pow_difficulty(difficulty: int) -> None:
    try:
        check_difficulty(difficulty)
    except ValueError as e:
        raise InvalidRoomConfig(str(e)) from e


# The settings an operator changes live (``AdmissionChange``), each with its check.
LIVE_SETTING_CHECKS: dict[str, Callable[[Any], None]] = {
    "rate_per_s": check_rate,
    "max_active": check_max_active,
    "ramp_s": check_ramp,
    "admission_mode": check_mode,
    "pow_difficulty": check_pow_difficulty,
}


@dataclass(frozen=True, slots=True)
class AdmissionChange:
    """Live admission settings to change; None leaves a setting as it is."""

    rate_per_s: float | None = None
    max_active: int | None = None
    ramp_s: int | None = None
    admission_mode: str | None = None
    pow_difficulty: int | None = None

    def __post_init__(self) -> None:
        for field, value in self.fields().items():
            LIVE_SETTING_CHECKS[field](value)

    def fields(self) -> dict[str, str | int | float]:
        """The room hash fields to set."""
        return {f.name: value for f in fields(self) if (value := getattr(self, f.name)) is not None}


@dataclass(frozen=True, slots=True)
class RoomMessage:
    """The operator's message to a room's visitors, in German and/or English (the page
    shows the visitor's language, else the other)."""

    de: str | None = None
    en: str | None = None

    def __post_init__(self) -> None:
        texts = self.as_dict()
        if not any(texts.values()):
            raise InvalidRoomConfig("a message needs a text in 'de' or 'en'")
        for language, value in texts.items():
            if value is not None and not 1 <= len(value) <= MAX_MESSAGE_LEN:
                raise InvalidRoomConfig(
                    f"the message's {language!r} text must have 1 to {MAX_MESSAGE_LEN} characters"
                )

    def as_dict(self) -> dict[str, str | None]:
        return {"de": self.de, "en": self.en}

    @classmethod
    def from_json(cls, raw: str) -> RoomMessage:
        data = orjson.loads(raw)
        return cls(de=data.get("de"), en=data.get("en"))


@dataclass(frozen=True, slots=True)
class RoomSnapshot:
    config: RoomConfig
    state: str
    sold_out: bool
    prequeue_size: int  # pre count (frozen at opening)
    post_count: int
    cursor: int
    active: int
    seed: str | None
    opened_at_s: float | None
    message: RoomMessage | None = None
    durable: bool = False  # its state is in the state log (see the module's docstring)
    ceilings: tuple[int, int] = (0, 0)  # pre, post (a durable room's)
    pre_count: int = 0  # pre tickets issued (frozen at opening into prequeue_size)
    opening_logged: bool = False
    restored_at_s: float | None = None

    @property
    def opened(self) -> bool:
        return self.opened_at_s is not None

    @property
    def queue_length(self) -> int:
        return self.prequeue_size + self.post_count

    @property
    def queue_depth(self) -> int:
        """People in line not yet admitted."""
        return max(0, self.queue_length - self.cursor)

    @property
    def admitting(self) -> bool:
        """Whether the room admits people now: open, not sold out, someone in line."""
        return self.opened and self.state == "open" and not self.sold_out and self.queue_depth > 0

    def rate_at(self, now_s: float) -> float:
        """The configured admission rate at ``now_s``, ramp included."""
        return self.config.rate_at(self.opened_at_s, now_s)


@dataclass(frozen=True, slots=True)
class JoinOutcome:
    ticket: Ticket
    new: bool  # False when an access code's existing place came back


def text(value: bytes | str) -> str:
    """A reply value as str, whether or not the client decodes responses."""
    return value.decode() if isinstance(value, bytes) else value


def parse_snapshot(name: str, fields: Mapping[Any, Any], active: int) -> RoomSnapshot:
    """A snapshot from the room hash (as HGETALL returns it) and the active count."""
    f = {text(k): text(v) for k, v in fields.items()}
    try:
        config = RoomConfig(
            name=name,
            campaign=f["campaign"],
            opens_at_s=float(f["opens_at_s"]),
            rate_per_s=float(f["rate_per_s"]),
            max_active=int(f["max_active"]),
            hold_s=int(f["hold_s"]),
            admit_window_s=int(f["admit_window_s"]),
            prequeue_s=int(f.get("prequeue_s", DEFAULT_PREQUEUE_S)),
            ramp_s=int(f.get("ramp_s", "0")),
            admission_mode=f.get("admission_mode", "manual"),
            pow_difficulty=int(f.get("pow_difficulty", "0")),
            language=f.get("language", LANGUAGES[0]),
        )
        message = f.get("message")
        opened_at = f.get("opened_at_s")
        return RoomSnapshot(
            config=config,
            state=f["state"],
            sold_out=f.get("sold_out") == "1",
            prequeue_size=int(f["prequeue_size"] if opened_at else f.get("pre_count", "0")),
            post_count=int(f.get("post_count", "0")),
            cursor=int(f.get("cursor", "0")),
            active=int(active),
            seed=f.get("seed"),
            opened_at_s=None if opened_at is None else float(opened_at),
            message=None if message is None else RoomMessage.from_json(message),
            durable=f.get("durable") == "1",
            ceilings=(int(f.get("pre_ceiling", "0")), int(f.get("post_ceiling", "0"))),
            pre_count=int(f.get("pre_count", "0")),
            opening_logged=f.get("opening_logged") == "1",
            restored_at_s=None if "restored_at_s" not in f else float(f["restored_at_s"]),
        )
    except (KeyError, ValueError, AttributeError) as e:  # InvalidRoomConfig is a ValueError
        raise WaitingRoomError(f"room {name!r} has a malformed record: {e!r}") from e


def parse_flat_snapshot(name: str, flat: Sequence[Any], active: int) -> RoomSnapshot:
    """A snapshot from a script's reply: HGETALL as a flat list, then ZCARD."""
    return parse_snapshot(name, dict(zip(flat[::2], flat[1::2], strict=True)), active)


def _status(reply: Sequence[Any], name: str) -> str:
    status = text(reply[0])
    if status == "not_found":
        raise RoomNotFound(name)
    return status


def config_fields(cfg: RoomConfig) -> dict[str, str | int | float]:
    """The room hash's configuration fields (``name`` is the key's)."""
    return {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.name != "name"}


def code_join_call(
    name: str,
    now_s: float,
    campaign: str,
    code_hashes: Sequence[str],
    guesser: Guesser,
    ticket_id: str,
) -> tuple[list[str], list[str | int | float]]:
    """The keys and arguments of ``scripts.JOIN`` for a join with a code (see its header)."""
    limit = guesser.limit
    window = limit.window(now_s)
    script_keys = [
        keys.room(name),
        keys.room_code_tickets(name),
        keys.campaign_codes(campaign),
        keys.code_guesses_of_client(campaign, guesser.client, window),
        keys.code_guesses_of_prefix(campaign, guesser.prefix, window),
        keys.state_marker(),
    ]
    args: list[str | int | float] = [now_s, ticket_id, DEFAULT_PREQUEUE_S]
    args += [limit.per_client, limit.per_prefix, limit.window_s, *code_hashes]
    return script_keys, args


class RoomStore:
    """All reads and writes of rooms; the scripts are registered once per store.

    With a ``ledger`` (the state log) the rooms are durable: see the module's
    docstring. Without one they live in Redis alone (the scripts' own tests).
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        ledger: StateLog | None = None,
        ceiling_block: int = DEFAULT_CEILING_BLOCK,
    ) -> None:
        if ceiling_block < 1:
            raise ValueError(f"ceiling_block must be at least 1, got {ceiling_block}")
        self._redis = redis
        self.ledger = ledger
        self.ceiling_block = ceiling_block
        self.scripts = Scripts.register(redis)
        self._batcher = JoinBatcher(
            self.scripts.join_many,
            DEFAULT_PREQUEUE_S,
            raise_ceiling=None if ledger is None else self.raise_ceiling,
        )
        # join_anonymous(name, now_s): a new ticket without an access code, as ``join``
        # gives it, as a future to await. For the gateway's join route: awaiting the
        # batcher's future directly spares a coroutine and a ``JoinOutcome`` per join
        # (``new`` is always True here), and being the batcher's own method, a call.
        self.join_anonymous: Callable[[str, float], asyncio.Future[Ticket]] = self._batcher.join

    async def put_room(self, cfg: RoomConfig) -> None:
        """Create the room (state ``scheduled``) or update its configuration."""
        room = keys.room(cfg.name)
        mapping: dict[Any, Any] = config_fields(cfg)
        if self.ledger is not None:  # a new room's pre-queue gets its first block at once
            stored = RoomStored(cfg.name, **mapping)
            await self.ledger.write(
                stored, CeilingRaised(cfg.name, CounterKind.PRE, self.ceiling_block)
            )
            mapping["durable"] = "1"
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(room, mapping=mapping)
            if self.ledger is not None:
                pipe.hsetnx(room, "pre_ceiling", self.ceiling_block)
            pipe.hsetnx(room, "state", "scheduled")
            pipe.sadd(keys.rooms(), cfg.name)
            await pipe.execute()

    async def room_names(self) -> list[str]:
        return sorted(text(n) for n in await self._redis.smembers(keys.rooms()))

    async def rooms_of_campaign(self, campaign: str) -> list[str]:
        names = await self.room_names()
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hget(keys.room(name), "campaign")
            owners = await pipe.execute()
        return [
            n for n, c in zip(names, owners, strict=True) if c is not None and text(c) == campaign
        ]

    async def load(self, name: str) -> RoomSnapshot | None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(keys.room(name))
            pipe.zcard(keys.room_active(name))
            fields, active = await pipe.execute()
        if not fields:
            return None
        return parse_snapshot(name, fields, active)

    async def join(self, name: str, now_s: float) -> JoinOutcome:
        """A new ticket, without an access code.

        Joins arriving together share one script call (the batcher) and are numbered
        in arrival order. Raises RoomNotFound, RoomClosed, or TooEarly before the
        pre-queue window.
        """
        return JoinOutcome(ticket=await self._batcher.join(name, now_s), new=True)

    async def join_with_code(
        self,
        name: str,
        now_s: float,
        campaign: str,
        code_hashes: Sequence[str],
        *,
        guesser: Guesser,
    ) -> JoinOutcome:
        """A new ticket for an access code of ``campaign``, or the code's existing one,
        in one round trip.

        ``code_hashes``: what the code may be stored under (``codes.stored_hashes``).
        ``guesser``: whose wrong codes are counted, and how many are let through per
        window (``waitingroom.guesses``).
        Raises TooManyAttempts when the guesser's counts of the window have reached the
        limit, InvalidAccessCode (and counts a wrong code) when none of the hashes was
        issued for the campaign, then as ``join``.
        """
        if not code_hashes:  # not well formed: nothing to look up, nothing to count
            raise InvalidAccessCode(f"not an access code of campaign {campaign!r}")
        script_keys, args = code_join_call(
            name, now_s, campaign, code_hashes, guesser, new_ticket_id()
        )
        for _ in range(MAX_FENCE_RETRIES):
            reply = await self.scripts.join(keys=script_keys, args=args)
            status = _status(reply, name)
            fenced = fenced_need(name, status)
            if fenced is None:
                break
            await self.raise_ceiling(name, *fenced)
        if status == "too_many_attempts":
            raise TooManyAttempts(text(reply[1]))
        if status == "restoring":
            raise StateRestoring(name)
        if fenced is not None:
            raise CounterFenced(name, *fenced)
        if status == "invalid_code":
            raise InvalidAccessCode(f"not an access code of campaign {campaign!r}")
        if status == "closed":
            raise RoomClosed(name)
        if status == "too_early":
            raise TooEarly(name, float(reply[1]))
        data = orjson.loads(reply[1])
        ticket = Ticket(
            room=name,
            ticket_id=data["ticket_id"],
            kind=data["kind"],
            number=int(data["number"]),
            issued_at_s=float(data["issued_at_s"]),
            code_hash=text(reply[3]),
            group=text(reply[4]),
        )
        return JoinOutcome(ticket=ticket, new=int(reply[2]) == 1)

    async def open_now(self, name: str, now_s: float) -> RoomSnapshot:
        """Open the room at ``now_s`` unless it is open already (idempotent)."""
        reply = await self.scripts.open(keys=self._room_keys(name), args=[draw_seed(), now_s])
        _status(reply, name)
        snap = parse_flat_snapshot(name, reply[2], reply[3])
        if int(reply[1]) == 1:
            logger.info(
                "room %s opened by operator at %s: prequeue_size=%d seed=%s",
                name,
                now_s,
                snap.prequeue_size,
                snap.seed,
            )
        await self.log_opening(snap)
        return snap

    async def log_opening(self, snap: RoomSnapshot) -> bool:
        """Put a durable room's opening in the state log if it is not there yet, with the
        first block of its post counter, then let it admit (``opening_logged``); whether
        it was written now."""
        if not (snap.durable and snap.opened and not snap.opening_logged) or snap.seed is None:
            return False
        if self.ledger is None or snap.opened_at_s is None:
            return False
        name, first_block = snap.config.name, snap.post_count + self.ceiling_block
        await self.ledger.write(
            RoomOpened(name, snap.seed, snap.prequeue_size, snap.opened_at_s),
            CeilingRaised(name, CounterKind.POST, first_block),
        )
        await self.scripts.mark_opening_logged(
            keys=[keys.room(name)], args=[snap.seed, first_block]
        )
        logger.info("room %s: its opening (seed %s) is in the state log", name, snap.seed)
        return True

    async def raise_ceiling(self, name: str, kind: str, needed: int) -> None:
        """Let the room's ``kind`` counter hand out ``needed`` and a block more: the
        state log gets the new ceiling first, then Redis (a ceiling never falls)."""
        if self.ledger is None:
            raise CounterFenced(name, kind, needed)
        ceiling = needed + self.ceiling_block
        await self.ledger.write(CeilingRaised(name, CounterKind(kind), ceiling))
        status = text(
            await self.scripts.raise_ceiling(
                keys=[keys.room(name), keys.state_marker()], args=[kind, ceiling]
            )
        )
        if status == "not_found":
            raise RoomNotFound(name)
        if status == "restoring":
            raise StateRestoring(name)

    async def top_up(self, snap: RoomSnapshot) -> None:
        """Raise the ceiling of the counter a durable room hands out numbers from now (pre
        before the opening, post after) ahead of need, when less than half a block is
        left, so that a storm's joins rarely wait for the state log."""
        if not snap.durable or self.ledger is None:
            return
        if snap.opened:
            kind, count, ceiling = "post", snap.post_count, snap.ceilings[1]
        else:
            kind, count, ceiling = "pre", snap.pre_count, snap.ceilings[0]
        if ceiling - count < self.ceiling_block // 2:
            await self.raise_ceiling(snap.config.name, kind, count + 1)

    async def set_state(self, name: str, state: str) -> RoomSnapshot:
        """``open`` (resume), ``paused`` (joins, no admission) or ``closed`` (neither)."""
        if state not in OPERATOR_STATES:
            raise InvalidRoomConfig(f"state must be one of {OPERATOR_STATES}, got {state!r}")
        if self.ledger is not None:
            await self.ledger.write(RoomStateSet(name, state))
        reply = await self.scripts.set_state(keys=self._room_keys(name), args=[state])
        _status(reply, name)
        logger.info("room %s set to %s", name, state)
        return parse_flat_snapshot(name, reply[1], reply[2])

    async def set_admission(self, name: str, change: AdmissionChange) -> RoomSnapshot:
        """Apply the settings ``change`` names (checked when it was made), atomically."""
        args: list[str | int | float] = []
        for field, value in change.fields().items():
            args += [field, value]
        if args and self.ledger is not None:
            await self.ledger.write(AdmissionSet(name, **change.fields()))  # type: ignore[arg-type]
        reply = await self.scripts.set_admission(keys=self._room_keys(name), args=args)
        _status(reply, name)
        if args:
            logger.info("room %s admission changed: %s", name, change.fields())
        return parse_flat_snapshot(name, reply[1], reply[2])

    async def set_message(self, name: str, message: RoomMessage | None) -> None:
        """Set the operator's message to the room's visitors, or clear it (None).

        The caller has read the room (rooms are never deleted): one field of its hash.
        With a state log, the log has it first.
        """
        raw = None if message is None else orjson.dumps(message.as_dict()).decode()
        if self.ledger is not None:
            await self.ledger.write(MessageSet(name, raw))
        if message is None:
            await self._redis.hdel(keys.room(name), "message")
        else:
            await self._redis.hset(keys.room(name), "message", raw)
        logger.info("room %s message %s", name, "cleared" if message is None else "set")

    async def booking_started(
        self, name: str, position: int, now_s: float, deadline_s: float
    ) -> float | None:
        """The admitted ``position``'s deadline if it is still active at ``now_s``, and
        then its deadline becomes ``deadline_s`` (never earlier); None for a lapsed
        place, which stays out."""
        before = await self.scripts.start_booking(
            keys=[keys.room_active(name)], args=[position, now_s, deadline_s]
        )
        return None if before is None else float(text(before))

    async def booking_not_started(
        self, name: str, position: int, deadline_s: float, before_s: float
    ) -> bool:
        """A booking refused before it reached the log: its place, if it still has the
        ``deadline_s`` that booking's ``booking_started`` set, gets ``before_s`` (what that
        call returned) back; whether it did (a place removed since, or moved on by another
        booking, is left alone)."""
        undone = await self.scripts.undo_start_booking(
            keys=[keys.room_active(name)], args=[position, deadline_s, before_s]
        )
        return bool(undone)

    async def rejoin(self, name: str, now_s: float, position: int) -> Ticket | None:
        """A ticket admitted at ``position`` joining again without an access code, in one
        round trip: None while its place is active (it keeps its ticket), else a new
        ticket as ``join`` gives it (its turn passed, or its booking ended).

        Raises RoomNotFound, RoomClosed, or TooEarly as ``join`` does.
        """
        for _ in range(MAX_FENCE_RETRIES):
            reply = await self.scripts.rejoin(
                keys=[keys.room(name), keys.room_active(name), keys.state_marker()],
                args=[DEFAULT_PREQUEUE_S, position, now_s],
            )
            fenced = fenced_need(name, reply)
            if fenced is None or self.ledger is None:
                break
            await self.raise_ceiling(name, *fenced)
        if text(reply) == "kept":
            return None
        kind, opens, number, refused = parse_joins(name, reply, 1)
        if refused:
            raise TooEarly(name, float(opens))
        return Ticket(name, new_ticket_id(), kind, number, now_s)

    async def is_active(self, name: str, position: int, now_s: float) -> bool:
        """Whether the admitted ``position`` still holds its turn at ``now_s`` (not
        lapsed; or booking, until its booking ends)."""
        deadline = await self._redis.zscore(keys.room_active(name), str(position))
        return deadline is not None and deadline >= now_s

    async def booking_finished(self, name: str, position: int) -> None:
        await self._redis.zrem(keys.room_active(name), str(position))

    async def set_sold_out(self, name: str, sold_out: bool, seq: int | None = None) -> bool:
        """Set the flag; with ``seq``, only if newer than the last numbered verdict.

        Returns whether the flag changed; raises RoomNotFound.
        """
        reply = await self.scripts.set_sold_out(
            keys=[keys.room(name)], args=["1" if sold_out else "0", "" if seq is None else seq]
        )
        return _status([reply], name) == "changed"

    @staticmethod
    def _room_keys(name: str) -> list[str]:
        return [keys.room(name), keys.room_active(name)]
