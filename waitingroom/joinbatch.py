"""Anonymous joins of one room, sent to Redis in batches (one JOIN_MANY call each).

A join waits in its room's line at the batcher; one drainer task per room sends
everything waiting as one script call, and while that call is in flight new joins
gather for the next one. So under load a Redis round trip serves many joins, and
at most one call per room is in flight: numbers follow the order in which joins
reached the batcher (the fairness of the line), across batches too.

A drainer takes one connection from the client's pool when it starts and keeps it
until its line has been empty for ``linger_s``: during a storm that is one pool
checkout for thousands of calls, and each call is sent on the connection directly
(the client's per-command pooling, locks and bookkeeping cost about as much as a
batch's own work). The linger matters because a storm's line empties after every
call: the joins a batch's answers bring back arrive a few loop turns later, and a
drainer that stopped there would give its connection back and the next one take it
again (a pool checkout and return, ~20 us of redis-py, per batch). A lingering
drainer is woken by the next join at once, so the linger never delays one. The
connection's retry policy applies as it would through the client.

A durable room's counter hands out numbers only below a ceiling the state log has
(``waitingroom.durable``); a batch that would pass it waits while ``raise_ceiling``
records a higher one, then is sent again (the gateways raise ceilings ahead of need,
so a storm's joins rarely wait for it).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

from waitingroom import keys
from waitingroom.errors import (
    CounterFenced,
    RoomClosed,
    RoomNotFound,
    StateRestoring,
    TooEarly,
    WaitingRoomError,
)
from waitingroom.tickets import TICKET_ID_BYTES, Ticket, b64url_encode

logger = logging.getLogger(__name__)

DEFAULT_MAX_BATCH = 500  # joins per script call (bounds one call's time in Redis)
DEFAULT_LINGER_S = 0.05  # how long an idle drainer keeps its connection for the next joins


# A join waiting in its room's line: (its time, the future its handler awaits). A plain
# tuple: one is made per join, and a class's __init__ would be a Python call more.
_Waiting = tuple[float, "asyncio.Future[Ticket]"]
# raise_ceiling(room, kind, needed): the state log has a ceiling >= needed, and so has Redis
RaiseCeiling = Callable[[str, str, int], Awaitable[None]]
MAX_FENCE_RETRIES = 3  # ceilings raised for one batch (more: other batches took them)


class JoinBatcher:
    """Joins without an access code, batched per room; ``join`` is the single entry."""

    def __init__(
        self,
        join_many: AsyncScript,
        default_prequeue_s: int,
        max_batch: int = DEFAULT_MAX_BATCH,
        linger_s: float = DEFAULT_LINGER_S,
        raise_ceiling: RaiseCeiling | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if not linger_s >= 0:
            raise ValueError(f"linger_s must be at least 0, got {linger_s}")
        client = join_many.registered_client
        if not isinstance(client, aioredis.Redis):
            raise TypeError(f"the join batcher needs a redis.asyncio.Redis client, not {client!r}")
        self._pool = client.connection_pool
        self._script = join_many
        self._raise_ceiling = raise_ceiling
        self._default_prequeue_s = default_prequeue_s
        self._max_batch = max_batch
        self._linger_s = linger_s
        self._lines: dict[str, list[_Waiting]] = {}
        self._drainers: dict[str, asyncio.Task[None]] = {}
        self._lingering: dict[str, asyncio.Future[None]] = {}  # idle drainers, to wake

    def join(self, room: str, now_s: float) -> asyncio.Future[Ticket]:
        """Queue a join now; await the answer: a new ticket, or RoomNotFound, RoomClosed,
        or TooEarly before the window.

        A future rather than a coroutine: the join takes its place in the line when
        called, and the awaiting handler resumes without one more frame to pass through.
        """
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Ticket] = loop.create_future()
        line = self._lines.get(room)
        if line is None:
            line = self._lines[room] = []
        line.append((now_s, reply))
        if room not in self._drainers:
            self._drainers[room] = loop.create_task(self._drain(room))
        elif (idle := self._lingering.pop(room, None)) is not None:
            _wake(idle)
        return reply

    async def _drain(self, room: str) -> None:
        held: list[AbstractConnection] = []  # the drainer's connection, once _send took it
        try:
            while True:
                line = self._lines.get(room)
                if not line:
                    if await self._linger(room):
                        continue
                    break
                batch = line[: self._max_batch]
                del line[: self._max_batch]
                await self._send(room, batch, held)
        finally:
            del self._drainers[room]
            for _, reply in self._lines.pop(room, []):  # left only if this drainer was cancelled
                reply.cancel()
            for connection in held:
                await self._pool.release(connection)

    async def _linger(self, room: str) -> bool:
        """Wait up to ``linger_s`` for the next join of ``room``; whether one came."""
        loop = asyncio.get_running_loop()
        idle = self._lingering[room] = loop.create_future()
        timer = loop.call_later(self._linger_s, _wake, idle)
        try:
            await idle
        finally:
            timer.cancel()
            if self._lingering.get(room) is idle:
                del self._lingering[room]
        return bool(self._lines.get(room))

    async def _send(self, room: str, batch: list[_Waiting], held: list[AbstractConnection]) -> None:
        """One script call for ``batch``; its outcome (or failure) goes to every join.

        The call goes on the drainer's connection in ``held``, taken from the pool first
        if ``held`` is empty.
        """
        # The batch's times as one argument (repr: what redis-py would send for a float).
        args = (
            keys.room(room),
            keys.state_marker(),
            self._default_prequeue_s,
            len(batch),
            ",".join([repr(now_s) for now_s, _ in batch]),
        )
        try:
            if not held:
                held.append(await self._pool.get_connection())  # type: ignore[no-untyped-call]
            conn = held[0]
            for _ in range(MAX_FENCE_RETRIES):
                reply = await conn.retry.call_with_retry(
                    lambda: self._call(conn, args), lambda _error: conn.disconnect()
                )
                fenced = fenced_need(room, reply)
                if fenced is None or self._raise_ceiling is None:
                    break
                await self._raise_ceiling(room, *fenced)
        except (RedisError, WaitingRoomError) as e:  # every caller of the batch gets it
            logger.warning("batched join of %d in room %s failed: %r", len(batch), room, e)
            _fail(batch, e)
            return
        except BaseException:  # cancelled (or a bug): no caller is left waiting
            for _, reply in batch:
                reply.cancel()
            raise
        try:
            _settle(room, batch, reply)
        except WaitingRoomError as e:
            _fail(batch, e)

    async def _call(self, conn: AbstractConnection, args: tuple[str | int, ...]) -> Any:
        """EVALSHA of JOIN_MANY on ``conn`` (loading the script first if Redis lacks it)."""
        script = self._script
        try:
            await conn.send_command("EVALSHA", script.sha, 2, *args)
            return await conn.read_response()
        except NoScriptError:  # a restarted or flushed server
            await conn.send_command("SCRIPT", "LOAD", script.script)
            await conn.read_response()
            await conn.send_command("EVALSHA", script.sha, 2, *args)
            return await conn.read_response()


def _settle(room: str, batch: list[_Waiting], reply: Any) -> None:
    """Answer every join of ``batch`` from JOIN_MANY's ``reply`` (one string)."""
    kind, opens, number, refused = parse_joins(room, reply, len(batch))
    ids = _ticket_ids(len(batch))
    for i, (now_s, waiter) in enumerate(batch):
        if refused and refused[i] == "1":
            if not waiter.done():
                waiter.set_exception(TooEarly(room, float(opens)))
            continue
        if not waiter.done():  # else the caller went away; its number stays used
            waiter.set_result(Ticket(room, ids[i], kind, number, now_s))
        number += 1


def fenced_need(room: str, reply: Any) -> tuple[str, int] | None:
    """For a reply of the scripts' fence ('fenced,<kind>,<needed>'), the counter's kind
    and the number it needs under its ceiling; None for any other reply."""
    text = _text(reply)
    if not text.startswith("fenced,"):
        return None
    _, kind, needed = text.split(",")
    return kind, int(needed)


def parse_joins(room: str, reply: Any, count: int) -> tuple[str, str, int, str]:
    """The reply of the scripts' ``take_joins`` for ``count`` joins of ``room``: the
    tickets' kind, the pre-queue opening time ('' after opening), the first number
    and the refused flags ('' when every join was taken).

    Raises RoomNotFound, RoomClosed, or WaitingRoomError for a reply it cannot read.
    """
    status, _, rest = _text(reply).partition(",")
    if status == "not_found":
        raise RoomNotFound(room)
    if status == "closed":
        raise RoomClosed(room)
    if status == "restoring":
        raise StateRestoring(room)
    if status == "fenced":
        kind, needed = fenced_need(room, reply) or ("", 0)
        raise CounterFenced(room, kind, needed)
    try:
        if status != "ok":
            raise ValueError(status)
        kind, opens, first, refused = rest.split(",")
        number = int(first)
    except ValueError as e:
        raise WaitingRoomError(f"unexpected join reply for room {room!r}: {reply!r}") from e
    if refused and len(refused) != count:
        raise WaitingRoomError(f"unexpected join reply for room {room!r}: {reply!r}")
    return kind, opens, number, refused


def _ticket_ids(count: int) -> list[str]:
    """``count`` ids as ``new_ticket_id`` makes them, from one read of the OS's randomness."""
    size = TICKET_ID_BYTES
    raw = os.urandom(size * count)
    return [b64url_encode(raw[i : i + size]) for i in range(0, len(raw), size)]


def _wake(idle: asyncio.Future[None]) -> None:
    if not idle.done():
        idle.set_result(None)


def _fail(batch: list[_Waiting], error: BaseException) -> None:
    for _, reply in batch:
        if not reply.done():
            reply.set_exception(error)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
