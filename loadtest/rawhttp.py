"""A minimal HTTP/1.1 load client on bare asyncio protocols, for the gateway benchmark.

Why not aiohttp's client: on a small machine the load generator shares the cores
with the server it measures, and aiohttp's client spends about as much CPU per
request as aiohttp's server does, so the client, not the server, sets the pace.
These protocols send prebuilt request bytes and read answers by scanning for the
end of the head and ``Content-Length``: a few microseconds per request.

Two uses:

- :class:`Repeater` — one keep-alive connection that sends its request again as
  soon as the previous answer is complete (one request in flight, no pipelining);
- :class:`EventStream` — one ``text/event-stream`` connection that counts the
  ``data:`` lines it receives and notes when the first one after arming came.

Only what the benchmark needs: answers must carry ``Content-Length`` (aiohttp's
``web.Response`` always does), event streams may be chunked (their framing is
ignored; only ``data:`` markers are counted).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

HEAD_END = b"\r\n\r\n"
DATA_MARK = b"\ndata:"


class HttpClientError(RuntimeError):
    """The server answered something this client cannot read."""


def request_bytes(
    method: str, target: str, host: str, headers: Mapping[str, str] | None = None, body: bytes = b""
) -> bytes:
    """A complete HTTP/1.1 keep-alive request."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def content_length(head: bytes) -> int:
    """The ``Content-Length`` of a response head (bytes up to the blank line)."""
    at = head.find(b"\r\nContent-Length:")
    if at < 0:
        at = head.lower().find(b"\r\ncontent-length:")
        if at < 0:
            raise HttpClientError(f"an answer without Content-Length: {head[:200]!r}")
    end = head.find(b"\r\n", at + 2)
    return int(head[at + 17 : end if end >= 0 else len(head)])


@dataclass(slots=True)
class Tally:
    """Answers counted by every connection of one load run."""

    ok: int = 0
    other: int = 0
    running: bool = True


class Repeater(asyncio.Protocol):
    """Sends ``request``, reads the answer, sends it again, until ``tally.running`` is False."""

    def __init__(
        self,
        request: bytes,
        tally: Tally,
        on_answer: Callable[[int, bytes], None] | None = None,
    ) -> None:
        self._request = request
        self._tally = tally
        self._on_answer = on_answer
        self._buf = b""
        self._transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        while True:
            end = buf.find(HEAD_END)
            if end < 0:
                break
            total = end + 4 + content_length(buf[:end])
            if len(buf) < total:
                break
            status = int(buf[9:12])
            if status == 200:
                self._tally.ok += 1
            else:
                self._tally.other += 1
            if self._on_answer is not None:
                self._on_answer(status, buf[end + 4 : total])
            buf = buf[total:]
            self._next()
        self._buf = buf

    def _next(self) -> None:
        assert self._transport is not None
        if self._tally.running:
            self._transport.write(self._request)
        else:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class EventStream(asyncio.Protocol):
    """Counts ``data:`` lines: ``opened`` resolves at the first, ``got`` at the first once armed."""

    def __init__(self, request: bytes) -> None:
        loop = asyncio.get_running_loop()
        self._request = request
        self._tail = b""
        self._armed = False
        self.events = 0
        self.opened: asyncio.Future[None] = loop.create_future()
        self.got: asyncio.Future[float] = loop.create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self._request)

    def arm(self) -> None:
        self._armed = True

    def data_received(self, data: bytes) -> None:
        joined = self._tail + data  # the tail catches a mark split across two reads
        seen = joined.count(DATA_MARK)
        self._tail = joined[-(len(DATA_MARK) - 1) :]
        if not seen:
            return
        self.events += seen
        if not self.opened.done():
            self.opened.set_result(None)
        elif self._armed and not self.got.done():
            self.got.set_result(time.time())

    def connection_lost(self, exc: Exception | None) -> None:
        error = ConnectionError(f"event stream closed by the server: {exc!r}")
        for fut in (self.opened, self.got):
            if not fut.done():
                fut.set_exception(error)
