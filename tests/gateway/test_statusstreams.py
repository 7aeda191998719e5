"""One task per room keeps its status streams up to date (fake connections, real view)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.roomcache import RoomView
from gateway.statusstreams import SLOW_CLIENT_BYTES, StatusStreams
from waitingroom.rooms import RoomConfig, RoomSnapshot
from waitingroom.tickets import Ticket

SNAP = RoomSnapshot(
    config=RoomConfig(name="room", campaign="camp", opens_at_s=0.0),
    state="open",
    sold_out=False,
    prequeue_size=0,
    post_count=10,
    cursor=0,
    active=0,
    seed="1",
    opened_at_s=0.0,
)
KEEPALIVE = b": keep-alive\n\n"


class FakeTransport:
    def __init__(self) -> None:
        self.buffered = 0

    def get_write_buffer_size(self) -> int:
        return self.buffered


class FakeRequest:
    def __init__(self) -> None:
        self.transport: FakeTransport | None = FakeTransport()


class FakeResponse:
    """Collects what is written; can fail like a connection the visitor closed."""

    def __init__(self) -> None:
        self.written: asyncio.Queue[bytes] = asyncio.Queue()
        self.reset = False

    async def write(self, data: bytes) -> None:
        if self.reset:
            raise ConnectionResetError("gone")
        self.written.put_nowait(data)

    async def next(self) -> bytes:
        return await asyncio.wait_for(self.written.get(), 10)


class Room:
    """A view whose visitors' statuses the test sets, and the streams under test."""

    def __init__(self, keepalive_s: float = 60.0) -> None:
        self.view = RoomView(SNAP)
        self.state: dict[str, str] = {}
        self.position: dict[str, int] = {}
        self.streams = StatusStreams(self.view, self.render, keepalive_s)

    def render(self, ticket: Ticket, token: str) -> dict[str, Any]:
        return {
            "ticket": token,
            "state": self.state.get(token, "waiting"),
            "position": self.position.get(token, ticket.number),
            "eta_s": None,
            "chance": None,
            "message": None,
        }

    def open(self, token: str) -> tuple[FakeRequest, FakeResponse, asyncio.Task[None]]:
        ticket = Ticket(
            room="room", ticket_id=token, kind="post", number=len(self.state) + 1, issued_at_s=0.0
        )
        self.state.setdefault(token, "waiting")
        request, response = FakeRequest(), FakeResponse()
        task = asyncio.create_task(self.streams.serve(ticket, token, request, response))  # type: ignore[arg-type]
        return request, response, task


def status_of(event: bytes) -> str:
    assert event.startswith(b"event: status\ndata: "), event
    return event.decode()


async def opened(room: Room, n: int) -> list[tuple[FakeRequest, FakeResponse, asyncio.Task[None]]]:
    streams = [room.open(f"t{i}") for i in range(n)]
    for _, response, _ in streams:
        status_of(await response.next())  # the first status, at once
    return streams


async def test_a_change_reaches_every_stream_from_one_task() -> None:
    room = Room()
    streams = await opened(room, 300)
    assert (len(room.streams), room.streams.running) == (300, True)
    for i in range(300):
        room.position[f"t{i}"] = 1000 + i
    room.view.notify()
    for i, (_, response, _) in enumerate(streams):
        assert f'"position":{1000 + i}' in status_of(await response.next())
    for _, _, task in streams:
        task.cancel()
    await asyncio.gather(*(t for _, _, t in streams), return_exceptions=True)
    assert (len(room.streams), room.streams.running) == (0, False)


async def test_an_unchanged_status_is_not_sent_again() -> None:
    room = Room()
    [(_, still, _), (_, moved, _)] = await opened(room, 2)
    room.view.notify()  # nothing the visitors see changed
    room.position["t1"] = 7
    room.view.notify()
    assert '"position":7' in status_of(await moved.next())
    assert still.written.empty()


async def test_the_stream_ends_after_admitted() -> None:
    room = Room()
    [(_, response, task)] = await opened(room, 1)
    room.state["t0"] = "admitted"
    room.view.notify()
    assert '"state":"admitted"' in status_of(await response.next())
    await asyncio.wait_for(task, 10)
    assert not room.streams.running


async def test_an_idle_stream_gets_keepalives_and_a_gone_visitor_is_dropped() -> None:
    room = Room(keepalive_s=0.05)
    [(_, response, task)] = await opened(room, 1)
    assert await response.next() == KEEPALIVE
    response.reset = True
    await asyncio.wait_for(task, 10)
    assert len(room.streams) == 0


@pytest.mark.parametrize("gone", [False, True])
async def test_a_slow_or_closed_connection_is_cut_off(gone: bool) -> None:
    room = Room()
    [(request, _, task), (_, other, _)] = await opened(room, 2)
    assert request.transport is not None
    if gone:
        request.transport = None
    else:
        request.transport.buffered = SLOW_CLIENT_BYTES + 1
    room.position["t0"] = room.position["t1"] = 99
    room.view.notify()
    await asyncio.wait_for(task, 10)
    assert '"position":99' in status_of(await other.next())
    assert len(room.streams) == 1


async def test_a_failing_stream_ends_alone_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    room = Room()
    [(_, _, broken), (_, other, _)] = await opened(room, 2)
    room.position["t0"] = room.position["t1"] = 5
    room.state["t0"] = "bug"  # the render below raises for it
    render = room.render

    def failing(ticket: Ticket, token: str) -> dict[str, Any]:
        if room.state.get(token) == "bug":
            raise RuntimeError("a bug")
        return render(ticket, token)

    room.streams._render = failing
    room.view.notify()
    await asyncio.wait_for(broken, 10)
    assert '"position":5' in status_of(await other.next())
    assert "status stream of ticket t0 failed" in caplog.text
