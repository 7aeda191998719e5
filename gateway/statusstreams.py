"""The status event streams of one room, kept up to date by one task per room.

A waiting visitor's stream is a record (ticket, token, response, what it was last
sent) in its room's table; the handler that opened it only waits for it to end. When
the room's view changes (``RoomView.notify``: cursor, state, sold-out, opening,
configuration, the operator's message), the room's task walks the table once and
writes to the streams whose status changed. So an open stream costs its connection
and one small record, not a task, a timer and a future that wake on every change, and
a cursor move reaches tens of thousands of visitors in one pass.

- Every ``tick_s`` the task also looks at the streams that were sent nothing for
  ``keepalive_s``: it sends their status if it changed (the chance moves with the
  counts, which do not wake the streams) or else a keep-alive comment. That is also
  how a visitor who went away is noticed: the write fails and the stream ends.
- A stream ends after the event that says ``admitted``, ``turn_passed`` or ``closed``.
- A visitor whose connection holds more than ``SLOW_CLIENT_BYTES`` unsent is cut off
  (a browser's EventSource reconnects): one slow reader must not stall the pass.
- The pass yields to the event loop every ``YIELD_EVERY`` streams, so joins and
  status checks keep being served while it runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from gateway.sse import event_bytes, send_keepalive
from waitingroom.tickets import Ticket

if TYPE_CHECKING:
    from gateway.roomcache import RoomView

logger = logging.getLogger(__name__)

FINAL_STATES = frozenset({"admitted", "turn_passed", "closed"})
ETA_BUCKET_S = 5.0
SLOW_CLIENT_BYTES = 16 * 1024  # below the transport's 64 KiB mark: a write never waits
YIELD_EVERY = 256

Render = Callable[[Ticket, str], dict[str, Any]]


def _eta_bucket(eta_s: float | None) -> int | None:
    """Coarse ETA so a stream is not re-sent for every tenth of a second of estimate."""
    if eta_s is None:
        return None
    return int(eta_s // ETA_BUCKET_S)


def shown(body: dict[str, Any]) -> tuple[Any, ...]:
    """What a visitor sees change: a new event is sent only when this differs."""
    state, chance, message = body["state"], body["chance"], body["message"]
    return state, body["position"], _eta_bucket(body["eta_s"]), chance, message


@dataclass(eq=False, slots=True)
class _Stream:
    ticket: Ticket
    token: str
    request: web.Request
    response: web.StreamResponse
    ended: asyncio.Future[None]
    last: tuple[Any, ...] | None = None
    sent_at_s: float = field(default=0.0)


class StatusStreams:
    """Every open status stream of one room; ``serve`` is the events handler's one call."""

    def __init__(self, view: RoomView, render: Render, keepalive_s: float) -> None:
        self._view = view
        self._render = render
        self._keepalive_s = keepalive_s
        self._tick_s = keepalive_s / 3
        self._streams: dict[_Stream, None] = {}  # insertion-ordered set
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._streams)

    @property
    def running(self) -> bool:
        """Whether the room's task runs (it does exactly while a stream is open)."""
        return self._task is not None

    async def serve(
        self, ticket: Ticket, token: str, request: web.Request, response: web.StreamResponse
    ) -> None:
        """Send the visitor's status now and on every change, until it is final or gone."""
        loop = asyncio.get_running_loop()
        stream = _Stream(ticket, token, request, response, loop.create_future())
        await self._send_status(stream, loop.time())
        if stream.ended.done():
            return
        self._streams[stream] = None
        if self._task is None:
            self._task = loop.create_task(self._run(), name=f"status streams of {id(self)}")
        try:
            await stream.ended
        finally:
            self._forget(stream)

    def _forget(self, stream: _Stream) -> None:
        self._streams.pop(stream, None)
        if not stream.ended.done():
            stream.ended.set_result(None)
        if not self._streams and self._task is not None:
            self._task.cancel()  # nothing to keep up to date; the next stream starts it again
            self._task = None

    async def _run(self) -> None:
        version = self._view.version
        while True:
            try:
                version = await asyncio.wait_for(self._view.next_change(version), self._tick_s)
            except TimeoutError:
                await self._pass(only_idle=True)
            else:
                await self._pass(only_idle=False)

    async def _pass(self, *, only_idle: bool) -> None:
        """Bring every stream (or every idle one) up to date; yield now and then."""
        loop = asyncio.get_running_loop()
        idle_since_s = loop.time() - self._keepalive_s
        for i, stream in enumerate(list(self._streams)):
            if i % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)
            if stream.ended.done() or (only_idle and stream.sent_at_s > idle_since_s):
                continue
            try:
                await self._send_status(stream, loop.time(), keepalive=only_idle)
            except Exception:  # a bug for one visitor must not stop the room's streams
                logger.exception("status stream of ticket %s failed", stream.ticket.ticket_id)
                stream.ended.set_result(None)

    async def _send_status(self, stream: _Stream, now_s: float, keepalive: bool = False) -> None:
        """Write the stream's status if it changed (else a keep-alive if asked); end it if final."""
        transport = stream.request.transport
        if transport is None or transport.get_write_buffer_size() > SLOW_CLIENT_BYTES:
            stream.ended.set_result(None)  # gone, or not reading: let it reconnect
            return
        body = self._render(stream.ticket, stream.token)
        seen = shown(body)
        try:
            if seen != stream.last:
                await stream.response.write(event_bytes("status", body))
                stream.last, stream.sent_at_s = seen, now_s
            elif keepalive:
                await send_keepalive(stream.response)
                stream.sent_at_s = now_s
        except ConnectionResetError:
            stream.ended.set_result(None)  # the visitor went away
            return
        if body["state"] in FINAL_STATES:
            stream.ended.set_result(None)
