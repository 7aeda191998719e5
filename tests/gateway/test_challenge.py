"""Proof of work on joins: challenges, refusals, one join per solution, the exemptions."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from fairq.config import Connections
from gateway.app import create_app
from gateway.ratelimit import LOADTEST_HEADER, RateLimitSettings
from gateway.state import GATEWAY
from tests.conftest import bounded
from tests.gateway.conftest import (
    bearer,
    create_campaign,
    create_room,
    make_settings,
    operator,
)
from tests.gateway.test_flow import admitted_token
from waitingroom import keys
from waitingroom.pow import main as pow_main
from waitingroom.pow import solve
from waitingroom.rooms import RoomStore

Client = TestClient[Any, Any]
LOADTEST_KEY = "loadtest-key-for-tests-0123456789"
DIFFICULTY = 8


@pytest.fixture
async def pow_client(connections: Connections) -> AsyncIterator[Client]:
    """A gateway with a load-test key, and a room asking for 8 bits of work."""
    settings = make_settings(connections, rate_limits=RateLimitSettings(loadtest_key=LOADTEST_KEY))
    c: Client = TestClient(TestServer(create_app(settings)))
    await c.start_server()
    try:
        await create_campaign(c, dt.date.today() + dt.timedelta(days=2))
        await create_room(c, pow_difficulty=DIFFICULTY)
        yield c
    finally:
        await bounded(c.close(), "closing the test gateway")


async def challenge(client: Client, room: str = "room") -> dict[str, Any]:
    response = await client.get(f"/api/rooms/{room}/challenge")
    assert response.status == 200, await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    body: dict[str, Any] = await response.json()
    return body


async def solved(client: Client, room: str = "room") -> dict[str, str]:
    c = await challenge(client, room)
    return {"challenge": c["challenge"], "solution": solve(c["challenge"], c["difficulty"])}


async def join(client: Client, body: dict[str, Any] | None, **headers: str) -> tuple[int, Any]:
    """A new visitor's join (no ticket cookie: with one, a join gives its place back)."""
    client.session.cookie_jar.clear()
    response = await client.post("/api/rooms/room/join", json=body, headers=headers)
    return response.status, await response.json()


async def test_an_anonymous_join_needs_a_solved_challenge(pow_client: Client) -> None:
    status, refused = await join(pow_client, None)
    assert (status, refused["error"]["code"]) == (403, "pow_required")
    assert refused["error"]["challenge_url"] == "/api/rooms/room/challenge"
    assert refused["error"]["difficulty"] == DIFFICULTY

    c = await challenge(pow_client)
    assert (c["required"], c["difficulty"], c["expires_in_s"]) == (True, DIFFICULTY, 120)
    assert "SHA-256" in c["algorithm"]
    proof = {"challenge": c["challenge"], "solution": solve(c["challenge"], DIFFICULTY)}
    status, joined = await join(pow_client, {"pow": proof})
    assert (status, joined["state"]) == (200, "prequeue")


async def test_one_solution_serves_one_join(pow_client: Client) -> None:
    proof = await solved(pow_client)
    assert (await join(pow_client, {"pow": proof}))[0] == 200
    status, again = await join(pow_client, {"pow": proof})
    assert (status, again["error"]["code"]) == (403, "pow_invalid")
    assert "used already" in again["error"]["message"]
    stats = await (await pow_client.get("/api/admin/rooms/room/stats", headers=operator())).json()
    assert stats["joined"] == 1


async def test_wrong_expired_and_weak_proofs_are_refused(pow_client: Client) -> None:
    gw = pow_client.app[GATEWAY]
    proof = await solved(pow_client)
    wrong = str(int(proof["solution"]) + 1)  # 2**-8 chance of being right too: check it
    while solve(proof["challenge"], DIFFICULTY, start=int(wrong)) == wrong:
        wrong = str(int(wrong) + 1)
    status, body = await join(pow_client, {"pow": proof | {"solution": wrong}})
    assert (status, body["error"]["code"]) == (403, "pow_invalid")

    forged = proof | {"challenge": proof["challenge"][:-3] + "AAA"}
    assert (await join(pow_client, {"pow": forged}))[1]["error"]["code"] == "pow_invalid"

    clock, now = gw.clock, gw.clock()
    gw.clock = lambda: now + 121
    try:
        status, body = await join(pow_client, {"pow": proof})
        assert (status, body["error"]["code"]) == (403, "pow_expired")
    finally:
        gw.clock = clock

    response = await pow_client.put(
        "/api/admin/rooms/room/admission", json={"pow_difficulty": 12}, headers=operator()
    )
    assert response.status == 200
    status, body = await join(pow_client, {"pow": proof})  # solved for 8 bits, 12 asked now
    assert (status, body["error"]["code"]) == (403, "pow_invalid")
    assert "raised" in body["error"]["message"]
    assert (await join(pow_client, {"pow": await solved(pow_client)}))[0] == 200


async def test_a_challenge_of_another_room_is_refused(pow_client: Client) -> None:
    await create_room(pow_client, name="other", pow_difficulty=DIFFICULTY)
    proof = await solved(pow_client, "other")
    status, body = await join(pow_client, {"pow": proof})
    assert (status, body["error"]["code"]) == (403, "pow_invalid")


@pytest.mark.parametrize(
    "pow_field",
    [
        "abc",
        [],
        {"challenge": "x"},
        {"challenge": "x", "solution": "1", "extra": 1},
        {"challenge": 1, "solution": "1"},
        {"challenge": "x", "solution": -1},
        {"challenge": "x", "solution": True},
    ],
)
async def test_malformed_proofs_are_bad_requests(pow_client: Client, pow_field: Any) -> None:
    status, body = await join(pow_client, {"pow": pow_field})
    assert (status, body["error"]["code"]) == (400, "invalid_request")


async def test_access_codes_and_load_tests_skip_the_work(pow_client: Client) -> None:
    codes = await pow_client.post(
        "/api/admin/campaigns/camp/codes", json={"group": "g", "count": 1}, headers=operator()
    )
    code = (await codes.json())["codes"][0]
    assert (await join(pow_client, {"access_code": code}))[0] == 200
    assert (await join(pow_client, None, **{LOADTEST_HEADER: LOADTEST_KEY}))[0] == 200
    wrong_key = {LOADTEST_HEADER: LOADTEST_KEY[:-1] + "x"}
    assert (await join(pow_client, None, **wrong_key))[1]["error"]["code"] == "pow_required"


async def test_a_room_without_work_needs_no_proof(pow_client: Client) -> None:
    response = await pow_client.put(
        "/api/admin/rooms/room/admission", json={"pow_difficulty": 0}, headers=operator()
    )
    assert (await response.json())["pow_difficulty"] == 0
    c = await challenge(pow_client)
    assert (c["required"], c["difficulty"]) == (False, 0)
    assert (await join(pow_client, None))[0] == 200


async def test_unknown_room_has_no_challenge(pow_client: Client) -> None:
    response = await pow_client.get("/api/rooms/nope/challenge")
    assert (response.status, (await response.json())["error"]["code"]) == (404, "unknown_room")


async def test_the_command_line_solver_makes_good_proofs(
    pow_client: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    url = str(pow_client.make_url("/"))
    argv = ["solve", "--url", url, "--room", "room", "--count", "2"]
    assert await asyncio.to_thread(pow_main, argv) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 2
    for line in lines:
        assert (await join(pow_client, {"pow": line["pow"]}))[0] == 200


@pytest.mark.usefixtures("admitter")
async def test_a_ticket_joining_again_needs_a_proof_only_for_a_new_place(
    pow_client: Client, redis: aioredis.Redis
) -> None:
    """An admitted ticket joining again keeps its turn without work while its place is
    active; once the turn has passed, a new place needs a proof like any join."""
    await create_room(pow_client, opens_in_s=0, pow_difficulty=DIFFICULTY)
    status, joined = await join(pow_client, {"pow": await solved(pow_client)})
    assert status == 200
    ticket = joined["ticket"]
    await admitted_token(pow_client, ticket)

    async def join_again(body: dict[str, Any] | None) -> tuple[int, Any]:
        return await join(pow_client, body, **bearer(ticket))

    status, kept = await join_again(None)
    assert (status, kept["ticket"], kept["state"]) == (200, ticket, "admitted")
    [place] = await redis.zrange(keys.room_active("room"), 0, -1)
    assert isinstance(place, bytes)
    await redis.zadd(keys.room_active("room"), {place: 0})  # the turn passed
    status, refused = await join_again(None)
    assert (status, refused["error"]["code"]) == (403, "pow_required")
    snap = await RoomStore(redis).load("room")
    assert snap is not None and snap.queue_length == 1  # no new number for the refusal
    status, new = await join_again({"pow": await solved(pow_client)})
    assert status == 200 and new["ticket"] != ticket
    snap = await RoomStore(redis).load("room")
    assert snap is not None and snap.queue_length == 2
