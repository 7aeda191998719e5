"""Server-sent events: one JSON document per event, with keep-alive comments."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web


async def open_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    return response


def event_bytes(event: str, data: Any) -> bytes:
    """One event as written on the stream."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


async def send_event(response: web.StreamResponse, event: str, data: Any) -> None:
    await response.write(event_bytes(event, data))


async def send_keepalive(response: web.StreamResponse) -> None:
    await response.write(b": keep-alive\n\n")
