"""One pair per person per campaign across partitions: the gateway's identity claims.

Real gateway, Redis, broker and allocator. The counties of each test are chosen
so that their commands go to different partitions (different allocator writers),
where the allocator's own one-pair check cannot see both bookings.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer
from aiokafka.partitioner import DefaultPartitioner

from fairq.config import Connections
from fairq.demo import small_campaign
from gateway import identities
from gateway.app import create_app
from gateway.identities import key_hash, key_identity
from gateway.producer import CommandProducer, make_producer
from gateway.state import GATEWAY
from schemas.commands import Book, Command, Confirm, Tick, decode_command
from tests.allocator.eventlogs import read_topic
from tests.conftest import TEST_PARTITIONS, bounded
from tests.gateway.conftest import (
    AGENT_KEY,
    IDENTITY_SECRET,
    allocator_running,
    bearer,
    create_campaign,
    create_room,
    make_settings,
    operator,
)
from tests.gateway.test_callcenter import issue_codes, phone_book
from tests.gateway.test_flow import (
    admitted_token,
    admitted_visitor,
    booking_stream,
    join,
    request_pair,
)
from waitingroom import keys
from waitingroom.codes import code_identity, hash_code

Client = TestClient[Any, Any]
AGENT = bearer(AGENT_KEY)
ALL_PARTITIONS = list(range(TEST_PARTITIONS))


def partition_of(county: str) -> int:
    """Where the gateway's producer (aiokafka's default partitioner: murmur2 of the
    key) puts a county's commands on the test topics."""
    return int(DefaultPartitioner()(county.encode(), ALL_PARTITIONS, ALL_PARTITIONS))


def counties_apart(counties: int) -> tuple[str, str]:
    """Two of ``county-1..counties`` whose commands go to different partitions."""
    names = [f"county-{k}" for k in range(1, counties + 1)]
    for other in names[1:]:
        if partition_of(other) != partition_of(names[0]):
            return names[0], other
    raise AssertionError(f"all of {names} go to one partition")


async def commands_on_log(connections: Connections) -> list[tuple[int, Command]]:
    """Every command on the commands topic, with its partition."""
    records = await read_topic(
        connections.kafka_bootstrap, connections.topics.commands, TEST_PARTITIONS
    )
    return [(p, decode_command(r.value)) for p, rs in records.items() for r in rs if r.value]


async def books_on_log(connections: Connections, identity: str) -> list[tuple[int, Book]]:
    """Every Book of ``identity`` on the commands topic, with its partition."""
    commands = await commands_on_log(connections)
    return [(p, c) for p, c in commands if isinstance(c, Book) and c.identity == identity]


async def claims(redis: aioredis.Redis, identities: str = "*") -> dict[bytes, bytes]:
    """The campaign's identity claims (of identities matching the pattern), by key."""
    found = [k async for k in redis.scan_iter(match=keys.identity_claim("camp", identities))]
    values = await redis.mget(found) if found else []
    return dict(zip(found, values, strict=True))


@pytest.mark.usefixtures("allocator")
async def test_a_code_books_once_across_partitions_on_the_phone(
    client: Client, first_day: dt.date, connections: Connections
) -> None:
    a, b = counties_apart(2)
    await create_campaign(client, first_day, counties=2, places=2)
    [code] = await issue_codes(client, 1)
    identity = code_identity(hash_code(code, IDENTITY_SECRET))

    status, held = await phone_book(client, code, county=a)
    assert (status, held["state"]) == (201, "held"), held
    status, refused = await phone_book(client, code, county=b)
    assert status == 409, refused  # without the claim: 201 and a second pair held
    assert refused["error"]["code"] == "already_booked"
    assert refused["error"]["booking_id"] == held["booking_id"]  # the agent may see it
    # Nothing went on the log for county b; a's Book is where the partitioner said.
    [(partition, book)] = await books_on_log(connections, identity)
    assert (book.booking_id, book.county, partition) == (held["booking_id"], a, partition_of(a))
    assert partition_of(a) != partition_of(b)

    cancelled = await client.post(
        f"/api/callcenter/bookings/{held['booking_id']}/cancel", headers=AGENT
    )
    assert (await cancelled.json())["state"] == "cancelled"
    status, second = await phone_book(client, code, county=b)
    assert (status, second["state"]) == (201, "held"), second
    assert (await claims(client.app[GATEWAY].redis)) == {
        keys.identity_claim("camp", identity).encode(): second["booking_id"].encode()
    }


@pytest.mark.usefixtures("allocator")
async def test_concurrent_phone_bookings_of_one_code_make_one_pair(
    client: Client, first_day: dt.date, connections: Connections
) -> None:
    await create_campaign(client, first_day, counties=4, places=10)
    counties = [f"county-{1 + i % 4}" for i in range(30)]
    assert len({partition_of(c) for c in counties}) > 1
    [code] = await issue_codes(client, 1)

    answers = await asyncio.gather(*(phone_book(client, code, county=c) for c in counties))
    accepted = [body for status, body in answers if status in (201, 202)]
    refused = [body["error"]["code"] for status, body in answers if status == 409]
    assert len(accepted) == 1 and refused == ["already_booked"] * 29, answers
    books = await books_on_log(connections, code_identity(hash_code(code, IDENTITY_SECRET)))
    assert [b.booking_id for _, b in books] == [accepted[0]["booking_id"]]


@pytest.mark.usefixtures("allocator", "admitter")
async def test_a_code_books_once_across_rooms_and_partitions(
    client: Client, first_day: dt.date, connections: Connections, redis: aioredis.Redis
) -> None:
    a, b = counties_apart(2)
    await create_campaign(client, first_day, counties=2, places=2)
    await create_room(client, "room", opens_in_s=0)
    await create_room(client, "room2", opens_in_s=0)
    [code] = await issue_codes(client, 1)
    first = await admitted_token(client, (await join(client, "room", access_code=code))["ticket"])
    second = await admitted_token(
        client, (await join(client, "room2", access_code=code))["ticket"], "room2"
    )

    booking_id, held = await request_pair(client, first, county=a)
    assert held["state"] == "held"
    response = await client.post(
        "/api/rooms/room2/bookings", json={"county": b}, headers=bearer(second)
    )
    body = await response.json()
    assert response.status == 409, body
    assert body["error"]["code"] == "already_booked"
    assert booking_id not in await response.text()  # online, the other booking stays unnamed
    # nothing books on the refused token's place: it keeps its admission deadline (the
    # default window, 600 s), not a booking's (hold 600 s + grace 120 s)
    position = client.app[GATEWAY].signer.verify_booking_token(second, time.time()).position
    deadline_s = await redis.zscore(keys.room_active("room2"), str(position))
    assert deadline_s is not None and deadline_s <= time.time() + 600
    books = await books_on_log(connections, code_identity(hash_code(code, IDENTITY_SECRET)))
    assert [(p, book.booking_id) for p, book in books] == [(partition_of(a), booking_id)]
    # The refused token made nothing: once the first pair is given back, it books.
    assert (await client.post(f"/api/bookings/{booking_id}/cancel", headers=bearer(first))).ok
    retried = await client.post(
        "/api/rooms/room2/bookings", json={"county": b}, headers=bearer(second)
    )
    assert retried.status == 202, await retried.text()
    later = await booking_stream(client, (await retried.json())["booking_id"], second)
    assert later[-1]["state"] == "held"


@pytest.mark.usefixtures("allocator", "admitter")
async def test_an_identity_key_confirms_one_pair(client: Client, first_day: dt.date) -> None:
    a, b = counties_apart(2)
    await create_campaign(client, first_day, counties=2, places=2)
    await create_room(client, opens_in_s=0)
    first, second = await admitted_visitor(client), await admitted_visitor(client)
    first_id, _ = await request_pair(client, first, county=a)
    second_id, held = await request_pair(client, second, county=b)
    assert held["state"] == "held"

    confirmed = await client.post(
        f"/api/bookings/{first_id}/confirm",
        json={"identity_key": "a12-345 678x"},
        headers=bearer(first),
    )
    assert (await confirmed.json())["state"] == "confirmed"
    refused = await client.post(
        f"/api/bookings/{second_id}/confirm",
        json={"identity_key": " A12345678X "},  # the same key, typed another way
        headers=bearer(second),
    )
    assert (refused.status, (await refused.json())["error"]["code"]) == (409, "already_booked")
    assert first_id not in await refused.text()
    still = await client.get(f"/api/bookings/{second_id}", headers=bearer(second))
    assert (await still.json())["state"] == "held"
    stored = await claims(client.app[GATEWAY].redis, "key:*")
    assert list(stored.values()) == [first_id.encode()]
    assert b"A12345678X" not in b"".join(stored)  # only the key's hash is kept,
    assert hash_code("A12345678X", b"").encode() not in b"".join(stored)  # and a keyed one

    # Another key, or none, confirms; here: after the first pair is cancelled, the same key.
    assert (await client.post(f"/api/bookings/{first_id}/cancel", headers=bearer(first))).ok
    again = await client.post(
        f"/api/bookings/{second_id}/confirm",
        json={"identity_key": "A12-345-678-X"},
        headers=bearer(second),
    )
    assert (again.status, (await again.json())["state"]) == (200, "confirmed")


DOUBLE_CLICKS = ("concurrent", "sequential", "taker_sends_last")


@pytest.mark.usefixtures("allocator")
@pytest.mark.parametrize("clicks", DOUBLE_CLICKS)
async def test_a_double_clicked_keyed_confirm_keeps_the_key_for_its_booking(
    client: Client, first_day: dt.date, monkeypatch: pytest.MonkeyPatch, clicks: str
) -> None:
    """Two keyed confirms of one held booking: one confirms, the other is refused
    (``not_held``), and the refused one must not give back the claim the booking holds,
    or another booking (another county, another partition) confirms with the same key.

    ``taker_sends_last``: the click that took the claim is slow between the claim and
    the send (a pause, or two gateways behind a balancer), so the other click, which
    found the claim already the booking's, is confirmed first and the taker refused.
    """
    a, b = counties_apart(2)
    await create_campaign(client, first_day, counties=2, places=2)
    codes = await issue_codes(client, 2)
    (_, first), (_, second) = [
        await phone_book(client, code, county=county)
        for code, county in zip(codes, (a, b), strict=True)
    ]
    path = "/api/callcenter/bookings/{}/confirm"
    key = {"identity_key": "Z98-765-432"}

    async def click() -> tuple[int, dict[str, Any]]:
        response = await client.post(path.format(first["booking_id"]), json=key, headers=AGENT)
        return response.status, await response.json()

    if clicks == "concurrent":
        answers = list(await asyncio.gather(click(), click()))
    elif clicks == "sequential":
        answers = [await click(), await click()]
    else:
        taken, other_done = asyncio.Event(), asyncio.Event()

        async def taker_waits(gw: Any, claim: Any, ttl_s: int) -> bool:
            took: bool = await take(gw, claim, ttl_s)
            if took:  # the click that took the claim sends after the other one
                taken.set()
                await other_done.wait()
            return took

        take = identities.take
        monkeypatch.setattr(identities, "take", taker_waits)
        slow = asyncio.create_task(click())
        await taken.wait()
        answers = [await click()]
        other_done.set()
        answers.append(await slow)
    outcomes = sorted(
        (status, body.get("state") or body["error"]["code"]) for status, body in answers
    )
    assert outcomes == [(200, "confirmed"), (409, "not_held")], answers

    secret = client.app[GATEWAY].settings.identity_secret
    claim = keys.identity_claim("camp", key_identity(key_hash(key["identity_key"], secret)))
    assert await client.app[GATEWAY].redis.get(claim) == first["booking_id"].encode()
    other = await client.post(path.format(second["booking_id"]), json=key, headers=AGENT)
    assert (other.status, (await other.json())["error"]["code"]) == (409, "already_booked")
    looked_up = await client.get(f"/api/callcenter/bookings/{second['booking_id']}", headers=AGENT)
    assert (await looked_up.json())["state"] == "held"


@pytest.mark.usefixtures("allocator")
async def test_a_bad_identity_key_changes_nothing(
    client: Client, first_day: dt.date, redis: aioredis.Redis, connections: Connections
) -> None:
    await create_campaign(client, first_day, counties=1, places=1)
    [code] = await issue_codes(client, 1)
    _, held = await phone_book(client, code)
    path = f"/api/callcenter/bookings/{held['booking_id']}/confirm"
    before = await claims(redis)
    assert list(before.values()) == [held["booking_id"].encode()]  # its code's claim
    bodies: list[Any] = [
        {"identity_key": "a-b c"},  # 3 characters once spaces and dashes go
        {"identity_key": "X" * 65},
        {"identity_key": "-" * 300},
        {"identity_key": 12345678},
        {"identity_key": ""},
        {"identity_key": "ABCD", "extra": 1},
        ["ABCD"],
    ]
    for body in bodies:
        response = await client.post(path, json=body, headers=AGENT)
        error = (await response.json())["error"]
        assert response.status == 400 and error["code"] in (
            "invalid_identity_key",
            "invalid_request",
            "invalid_json",
        ), (body, error)
    not_json = await client.post(path, data=b"{", headers=AGENT)
    assert not_json.status == 400
    assert await claims(redis) == before
    commands = await commands_on_log(connections)
    assert not [c for _, c in commands if isinstance(c, Confirm)]
    looked_up = await client.get(f"/api/callcenter/bookings/{held['booking_id']}", headers=AGENT)
    assert (await looked_up.json())["state"] == "held"
    # A gateway without the secret takes no identity key at all: it cannot hash it safely.
    keyless = TestClient(TestServer(create_app(make_settings(connections, identity_secret=b""))))
    await keyless.start_server()
    try:
        off = await keyless.post(path, json={"identity_key": "ab-cd"}, headers=AGENT)
        assert (off.status, (await off.json())["error"]["code"]) == (400, "identity_keys_off")
    finally:
        await keyless.close()
    assert await claims(redis) == before
    # The same key, well typed, confirms.
    good = await client.post(path, json={"identity_key": "ab-cd"}, headers=AGENT)
    assert (good.status, (await good.json())["state"]) == (200, "confirmed")


async def put_on_log(connections: Connections, county: str, command: Command, **kw: Any) -> None:
    producer = make_producer(connections.kafka)
    await producer.start()
    try:
        if kw:  # a record with its own timestamp
            await producer.send_and_wait(
                connections.topics.commands, command.pack(), key=county.encode(), **kw
            )
        else:
            await CommandProducer(producer, connections.topics.commands).send(county, command)
    finally:
        await producer.stop()


@pytest.mark.parametrize("refusal", ["not_held", "hold_expired"])
async def test_a_refused_confirm_gives_the_identity_key_back_unless_the_booking_is_confirmed(
    connections: Connections, first_day: dt.date, redis: aioredis.Redis, refusal: str
) -> None:
    """The gateway's view says held, the allocator refuses the Confirm: the key is free,
    unless the booking is confirmed all the same.

    With the allocator stopped, the log gets what makes the Confirm fail: another
    gateway's Confirm of the same booking (``not_held``: the booking is confirmed; that
    Confirm may have carried the same key, as a double click's does, see
    ``test_a_double_clicked_keyed_confirm_keeps_the_key_for_its_booking``, so the key
    stays with the booking), or a record an hour later (``hold_expired``: the booking
    has ended, the key is free). Then the keyed Confirm is sent and the allocator
    restarted.
    """
    a, b = counties_apart(2)
    group = f"alloc-{uuid.uuid4().hex[:8]}"
    settings = make_settings(connections, answer_wait_s=120.0)
    client: Client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        async with allocator_running(connections, group):
            await create_campaign(client, first_day, counties=2, places=2)
            codes = await issue_codes(client, 2)
            held: list[dict[str, Any]] = []
            for code, county in zip(codes, (a, b), strict=True):
                status, body = await phone_book(client, code, county=county)
                assert (status, body["state"]) == (201, "held"), body
                held.append(body)
        first, second = (h["booking_id"] for h in held)
        if refusal == "not_held":
            await put_on_log(connections, a, Confirm(uuid.uuid4().hex, first, "camp"))
        else:
            later_ms = int(time.time() * 1000) + 3_600_000
            await put_on_log(connections, a, Tick(uuid.uuid4().hex), timestamp_ms=later_ms)

        key = {"identity_key": "X123-4567-89"}
        path = "/api/callcenter/bookings/{}/confirm"
        confirm = asyncio.create_task(client.post(path.format(first), json=key, headers=AGENT))
        async with allocator_running(connections, group):
            response = await confirm
            assert (response.status, (await response.json())["error"]["code"]) == (409, refusal)
            secret = client.app[GATEWAY].settings.identity_secret
            identity = key_identity(key_hash(key["identity_key"], secret))
            claim = keys.identity_claim("camp", identity)
            kept = refusal == "not_held"
            assert await redis.get(claim) == (first.encode() if kept else None)
            other = await client.post(path.format(second), json=key, headers=AGENT)
            if kept:
                assert (other.status, (await other.json())["error"]["code"]) == (
                    409,
                    "already_booked",
                )
            else:
                assert (other.status, (await other.json())["state"]) == (200, "confirmed")
                assert await redis.get(claim) == second.encode()
    finally:
        await bounded(client.close(), "closing the test gateway")


@pytest.mark.usefixtures("allocator", "admitter")
async def test_a_campaign_may_require_the_identity_key_at_confirm(
    client: Client, first_day: dt.date
) -> None:
    document = small_campaign(first_day, counties=1, places=2) | {"identity_key": "required"}
    put = await client.put("/api/admin/campaigns/camp", json=document, headers=operator())
    assert put.status == 201, await put.text()
    await create_room(client, opens_in_s=0)
    info = await (await client.get("/api/rooms/room")).json()
    assert info["identity_key"] == "required"  # the page asks for it
    token = await admitted_visitor(client)
    booking_id, _ = await request_pair(client, token)
    path = f"/api/bookings/{booking_id}/confirm"
    bare = await client.post(path, headers=bearer(token))
    assert (bare.status, (await bare.json())["error"]["code"]) == (400, "identity_key_required")
    still = await client.get(f"/api/bookings/{booking_id}", headers=bearer(token))
    assert (await still.json())["state"] == "held"
    keyed = await client.post(path, json={"identity_key": "Q-7734-1190"}, headers=bearer(token))
    assert (keyed.status, (await keyed.json())["state"]) == (200, "confirmed")
