"""A raw HTTP/1.1 client for requests no HTTP library sends: undecodable bytes in a
header or the path, over-long lines, too many headers."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp.test_utils import TestClient


@dataclass(frozen=True, slots=True)
class RawAnswer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        """The body as JSON (fails the test if the answer is not JSON)."""
        assert self.headers.get("content-type", "").startswith("application/json"), self
        return orjson.loads(self.body)


def request_bytes(
    method: str, target: bytes, headers: Sequence[tuple[bytes, bytes]] = (), body: bytes = b""
) -> bytes:
    """A request with exactly these bytes in its target and headers; the server closes
    the connection after its answer (``Connection: close``)."""
    lines = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: test"]
    lines += [name + b": " + value for name, value in headers]
    lines += [b"Content-Length: %d" % len(body), b"Connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def send(client: TestClient[Any, Any], raw: bytes) -> RawAnswer:
    """Send ``raw`` to the test server and read its answer until it closes."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(raw)
        await writer.drain()
        data = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawAnswer(int(status_line.split(" ")[1]), headers, body)
