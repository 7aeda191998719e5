"""A Book handed to the broker is never taken back: bookings in doubt and their resending.

Real gateway, Redis, broker (stopped with SIGSTOP, as a hung broker, and resumed)
and allocator. The counties are on different partitions, where only the gateway's
identity claim keeps one pair per person.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient
from redis.exceptions import ConnectionError as RedisConnectionError

from fairq.config import Connections
from fairq.devservices import Server
from gateway.placement import resend_unplaced
from gateway.state import GATEWAY
from schemas.commands import Command
from tests.conftest import paused
from tests.gateway.conftest import (
    AGENT_KEY,
    IDENTITY_SECRET,
    bearer,
    create_campaign,
    create_room,
    gateway_client,
)
from tests.gateway.test_callcenter import issue_codes, phone_book
from tests.gateway.test_flow import admitted_token, booking_stream, join
from tests.gateway.test_identities import books_on_log, claims, counties_apart
from waitingroom import keys
from waitingroom.codes import code_identity, hash_code

Client = TestClient[Any, Any]
AGENT = bearer(AGENT_KEY)
SEND_TIMEOUT_S = 1.0  # the tests' gateways give a send up after this (10 s by default)


async def answered(client: Client, path: str, headers: dict[str, str]) -> dict[str, Any]:
    """The booking at ``path`` once the allocator has answered it (not pending): for the
    call center's lookups, which have no event stream."""
    while True:
        view: dict[str, Any] = await (await client.get(path, headers=headers)).json()
        if view.get("state") != "pending":
            return view
        await asyncio.sleep(0.05)


@pytest.mark.usefixtures("allocator", "admitter")
async def test_a_book_in_doubt_keeps_the_persons_one_pair(
    connections: Connections, kafka_srv: Server, first_day: dt.date, redis: aioredis.Redis
) -> None:
    """The broker hangs while an online Book is sent: 503 ``in_doubt`` with the booking
    id, and the code stays claimed. The phone path cannot book the same code in another
    county; the first Book gets its answer (the broker wrote it when it resumed, or a
    gateway sent it again), and it is the only booking of the code."""
    a, b = counties_apart(2)
    async with gateway_client(connections, send_timeout_s=SEND_TIMEOUT_S) as client:
        await create_campaign(client, first_day, counties=2, places=2)
        await create_room(client, opens_in_s=0)
        [code] = await issue_codes(client, 1)
        identity = code_identity(hash_code(code, IDENTITY_SECRET))
        token = await admitted_token(client, (await join(client, access_code=code))["ticket"])

        with paused(kafka_srv):
            response = await client.post(
                "/api/rooms/room/bookings", json={"county": a}, headers=bearer(token)
            )
            error = (await response.json())["error"]
            assert (response.status, error["code"]) == (503, "in_doubt"), error
            assert response.headers["Retry-After"]
            booking_id = error["booking_id"]
            # a retry while the broker still hangs: the same booking, still in doubt
            again = await client.post(
                "/api/rooms/room/bookings", json={"county": a}, headers=bearer(token)
            )
            retried = (await again.json())["error"]
            assert (again.status, retried["code"], retried["booking_id"]) == (
                503,
                "in_doubt",
                booking_id,
            )
        assert await claims(redis) == {
            keys.identity_claim("camp", identity).encode(): booking_id.encode()
        }

        status, refused = await phone_book(client, code, county=b)
        assert (status, refused["error"]["code"]) == (409, "already_booked"), refused
        assert refused["error"]["booking_id"] == booking_id  # the agent sees which

        view = (await booking_stream(client, booking_id, token))[-1]  # its first answer
        assert view["state"] == "held", view
        books = await books_on_log(connections, identity)
        assert {book.booking_id for _, book in books} == {booking_id}
        assert len({book.command_id for _, book in books}) == 1  # copies of one Book at most
        # the token made its one booking: a later request names it
        later = await client.post(
            "/api/rooms/room/bookings", json={"county": b}, headers=bearer(token)
        )
        assert later.status in (202, 409), await later.text()
        assert booking_id in await later.text()
        assert not await redis.zcard(keys.bookings_unplaced())


@pytest.mark.usefixtures("allocator")
async def test_a_phone_book_in_doubt_is_sent_again_by_the_gateway(
    connections: Connections, kafka_srv: Server, first_day: dt.date, redis: aioredis.Redis
) -> None:
    """Nobody retries: the gateway's resender sends the Book in doubt (the same command
    id) until the broker has it, so the claim it holds always ends with an answer."""
    a, b = counties_apart(2)
    async with gateway_client(connections, send_timeout_s=SEND_TIMEOUT_S) as client:
        await create_campaign(client, first_day, counties=2, places=2)
        [code] = await issue_codes(client, 1)
        identity = code_identity(hash_code(code, IDENTITY_SECRET))
        with paused(kafka_srv):
            status, body = await phone_book(client, code, county=a)
            assert (status, body["error"]["code"]) == (503, "in_doubt"), body
        booking_id = body["error"]["booking_id"]
        view = await answered(client, f"/api/callcenter/bookings/{booking_id}", AGENT)
        assert view["state"] == "held", view
        status, refused = await phone_book(client, code, county=b)
        assert (status, refused["error"]["booking_id"]) == (409, booking_id), refused
        books = await books_on_log(connections, identity)
        assert {book.booking_id for _, book in books} == {booking_id}


@pytest.mark.usefixtures("allocator")
async def test_a_move_in_doubt_says_so_and_leaves_one_whole_pair(
    connections: Connections, kafka_srv: Server, first_day: dt.date
) -> None:
    """A move to another county's partition sent while the broker hangs: 503
    ``in_doubt``; afterwards the booking holds one whole pair, in one of the two
    counties, and the move, if it was made, was made once."""
    a, b = counties_apart(2)
    async with gateway_client(connections, send_timeout_s=SEND_TIMEOUT_S) as client:
        await create_campaign(client, first_day, counties=2, places=2)
        [code] = await issue_codes(client, 1)
        status, held = await phone_book(client, code, county=a)
        assert (status, held["state"]) == (201, "held"), held
        booking_id = held["booking_id"]
        path = f"/api/callcenter/bookings/{booking_id}"
        with paused(kafka_srv):
            moved = await client.post(f"{path}/move", json={"county": b}, headers=AGENT)
            error = (await moved.json())["error"]
            assert (moved.status, error["code"], error["booking_id"]) == (
                503,
                "in_doubt",
                booking_id,
            )
        # The broker wrote the Move when it resumed (the booking moves), or never got
        # it: then the move is sent again, as the client told to read first would.
        view = await (await client.get(path, headers=AGENT)).json()
        if view["moves"] == 0:
            retry = await client.post(f"{path}/move", json={"county": b}, headers=AGENT)
            assert retry.status in (200, 202, 409), await retry.text()
        while (view := await (await client.get(path, headers=AGENT)).json())["moves"] == 0:
            await asyncio.sleep(0.05)
        assert view["state"] == "held" and view["moves"] == 1, view
        doses = view["appointments"]
        assert [d["dose"] for d in doses] == [1, 2]
        assert len({(d["center"], d["vaccine"]) for d in doses}) == 1
        assert doses[0]["center"].startswith(b), doses  # centers are named after counties


@pytest.mark.usefixtures("allocator", "admitter")
async def test_a_booking_whose_record_redis_did_not_take_is_booked_by_the_retry(
    connections: Connections, first_day: dt.date, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis fails under the booking's record (the token is marked used already): 503,
    and the same request again books, with the same booking id, instead of 409
    ``token_used`` naming a booking that never was (found by the fault suite)."""
    async with gateway_client(connections) as client:
        await create_campaign(client, first_day, counties=1, places=2)
        await create_room(client, opens_in_s=0)
        token = await admitted_token(client, (await join(client))["ticket"])
        gw = client.app[GATEWAY]
        with monkeypatch.context() as patch:

            def redis_down(*args: Any, **kw: Any) -> Any:
                raise RedisConnectionError("Redis did not answer")

            patch.setattr(gw.redis, "pipeline", redis_down)
            failed = await client.post(
                "/api/rooms/room/bookings", json={"county": "county-1"}, headers=bearer(token)
            )
            assert failed.status == 503, await failed.text()
        retried = await client.post(
            "/api/rooms/room/bookings", json={"county": "county-1"}, headers=bearer(token)
        )
        assert retried.status == 202, await retried.text()
        booking_id = (await retried.json())["booking_id"]
        view = (await booking_stream(client, booking_id, token))[-1]  # its first answer
        assert view["state"] == "held", view


@pytest.mark.usefixtures("allocator")
async def test_a_gateway_stopping_before_the_log_leaves_a_booking_that_is_sent(
    connections: Connections, first_day: dt.date, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gateway stops after the booking record and the claim, before the broker has
    the Book: the code stays claimed by that booking, and any gateway sends its Book
    (the record carries it), so the claim ends with an answer rather than a guess."""
    async with gateway_client(connections) as client:
        await create_campaign(client, first_day, counties=1, places=2)
        [code] = await issue_codes(client, 1)
        gw = client.app[GATEWAY]

        async def stop_here(county: str, command: Command) -> None:
            raise asyncio.CancelledError  # the handler's task ends, as in a stopping process

        with monkeypatch.context() as patch:
            patch.setattr(gw.commands, "send", stop_here)
            with pytest.raises(aiohttp.ServerDisconnectedError):
                await phone_book(client, code)
        stranded = (await claims(gw.redis)).popitem()[1].decode()
        status, refused = await phone_book(client, code)
        assert (status, refused["error"]["booking_id"]) == (409, stranded)
        assert await gw.redis.zscore(keys.bookings_unplaced(), stranded) is not None

        assert await resend_unplaced(gw, older_than_s=0) == 1
        view = await answered(client, f"/api/callcenter/bookings/{stranded}", AGENT)
        assert view["state"] == "held", view
        assert await gw.redis.hget(keys.booking(stranded), "placed") == b"1"
        assert not await gw.redis.zcard(keys.bookings_unplaced())
        books = await books_on_log(connections, code_identity(hash_code(code, IDENTITY_SECRET)))
        assert [book.booking_id for _, book in books] == [stranded]
        status, again = await phone_book(client, code)
        assert (status, again["error"]["booking_id"]) == (409, stranded)
