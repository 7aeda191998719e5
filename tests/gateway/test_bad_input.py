"""Bad input at every endpoint gets a clear 4xx with a JSON error, and changes nothing."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from typing import Any
from urllib.parse import quote

import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiokafka import AIOKafkaConsumer, TopicPartition
from yarl import URL

from fairq.config import Connections
from gateway.app import MAX_BODY_BYTES, MAX_HEADER_BYTES, MAX_HEADERS, MAX_URL_BYTES
from gateway.bookings import booking_id_for
from tests.conftest import topic_partitions
from tests.gateway.conftest import (
    AGENT_KEY,
    SIGNING_KEYS,
    bearer,
    create_campaign,
    create_room,
    operator,
)
from tests.gateway.rawhttp import request_bytes, send
from waitingroom import keys
from waitingroom.tickets import BookingToken, Signer, Ticket

Case = tuple[str, str, dict[str, str], Any, int, str]


def is_record(key: bytes) -> bool:
    """Keys that are records, not state: the records of operator and agent actions
    (refused attempts are recorded too) and the rooms' charts (sampled on their own
    clock)."""
    records = (keys.operator_actions().encode(), keys.agent_actions().encode())
    return key in records or key.endswith(b":history")


async def redis_state(redis: aioredis.Redis) -> dict[bytes, bytes | None]:
    """Every key's value, but the records (``is_record``) and the wrong-code counters:
    counting a wrong access code against its client and prefix is what the limit on
    guessing does (the test checks it did)."""
    counters = {key async for key in redis.scan_iter(match=keys.code_guesses_pattern("camp"))}
    return {
        key: await redis.dump(key)
        async for key in redis.scan_iter(count=1000)
        if key not in counters and not is_record(key)
    }


async def end_offsets(connections: Connections) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=connections.kafka_bootstrap)
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, connections.topics.commands)
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


def booking_token(room: str, position: int = 1, ticket_id: str = "t-test") -> str:
    signer = Signer(SIGNING_KEYS, "k1")
    token = BookingToken(
        room=room,
        ticket_id=ticket_id,
        position=position,
        identity=f"ticket:{ticket_id}",
        group=None,
        expires_at_s=time.time() + 600,
    )
    return signer.sign_booking_token(token)


def foreign_ticket(room: str) -> str:
    return Signer({"evil": b"another-secret-0123456789abcdef"}, "evil").sign_ticket(
        Ticket(room=room, ticket_id="x", kind="post", number=1, issued_at_s=time.time())
    )


def cases(ticket: str, other_ticket: str, token: str, other_token: str) -> list[Case]:
    own = booking_id_for(Signer(SIGNING_KEYS, "k1").verify_booking_token(token, time.time()))
    op = operator()
    book = "/api/rooms/room/bookings"
    return [
        ("POST", "/api/rooms/room/join", {}, b"{", 400, "invalid_json"),
        ("POST", "/api/rooms/room/join", {}, b"[]", 400, "invalid_json"),
        ("POST", "/api/rooms/room/join", {}, {"access_code": 5}, 400, "invalid_request"),
        ("POST", "/api/rooms/room/join", {}, {"code": "x"}, 400, "invalid_request"),
        (
            "POST",
            "/api/rooms/room/join",
            {},
            {"access_code": "NOPE-NOPE"},
            403,
            "invalid_access_code",
        ),
        (  # well formed, never issued: refused by the join's script, nothing stored
            "POST",
            "/api/rooms/room/join",
            {},
            {"access_code": "AAAA-BBBB-CCCC"},
            403,
            "invalid_access_code",
        ),
        ("POST", "/api/rooms/nope/join", {}, None, 404, "unknown_room"),
        ("GET", "/api/rooms/nope", {}, None, 404, "unknown_room"),
        ("GET", "/api/rooms/room/status", {}, None, 401, "unauthorized"),
        (
            "GET",
            "/api/rooms/room/status",
            {"Authorization": "Basic abc"},
            None,
            401,
            "unauthorized",
        ),
        ("GET", "/api/rooms/room/status", bearer("garbage"), None, 401, "invalid_ticket"),
        ("GET", "/api/rooms/room/status", bearer(ticket[:-3] + "AAA"), None, 401, "invalid_ticket"),
        (
            "GET",
            "/api/rooms/room/status",
            bearer(foreign_ticket("room")),
            None,
            401,
            "invalid_ticket",
        ),
        ("GET", "/api/rooms/room/status", bearer(other_ticket), None, 403, "wrong_room"),
        ("GET", "/api/rooms/room/status", bearer(token), None, 401, "invalid_ticket"),
        ("GET", "/api/rooms/room/events?ticket=garbage", {}, None, 401, "invalid_ticket"),
        ("GET", "/api/rooms/room/events", bearer(other_ticket), None, 403, "wrong_room"),
        ("POST", book, {}, {"county": "county-1"}, 401, "unauthorized"),
        ("POST", book, bearer(ticket), {"county": "county-1"}, 401, "invalid_token"),
        ("POST", book, bearer(other_token), {"county": "county-1"}, 403, "wrong_room"),
        ("POST", book, bearer(token), b"{nope", 400, "invalid_json"),
        ("POST", book, bearer(token), {}, 400, "invalid_request"),
        ("POST", book, bearer(token), {"county": 7}, 400, "invalid_request"),
        ("POST", book, bearer(token), {"county": "atlantis"}, 400, "unknown_county"),
        ("POST", book, bearer(token), {"center": "center-9"}, 400, "unknown_center"),
        ("POST", book, bearer(token), {"center": 7}, 400, "invalid_request"),
        (
            "POST",
            book,
            bearer(token),
            {"county": "county-1", "earliest": "2026-13-45"},
            400,
            "invalid_request",
        ),
        (
            "POST",
            book,
            bearer(token),
            {"county": "county-1", "earliest": 20261201},
            400,
            "invalid_request",
        ),
        (
            "POST",
            book,
            bearer(token),
            {"county": "county-1", "center": "center-9"},
            400,
            "unknown_center",
        ),
        (
            "POST",
            book,
            bearer(token),
            {"county": "county-1", "center": "county-2-center-1"},
            400,
            "center_not_in_county",
        ),
        ("POST", book, bearer(token), {"county": "county-1", "seats": 2}, 400, "invalid_request"),
        ("GET", "/api/bookings/bk_x", {}, None, 401, "unauthorized"),
        ("GET", "/api/bookings/bk_x", bearer(token), None, 403, "not_your_booking"),
        ("GET", f"/api/bookings/{own}", bearer(token), None, 404, "unknown_booking"),
        ("GET", f"/api/bookings/{own}/events?token=junk", {}, None, 401, "invalid_token"),
        ("POST", f"/api/bookings/{own}/confirm", bearer(token), None, 404, "unknown_booking"),
        ("POST", f"/api/bookings/{own}/cancel", bearer(token), None, 404, "unknown_booking"),
        ("POST", "/api/bookings/bk_x/confirm", bearer(ticket), None, 401, "invalid_token"),
        ("PUT", "/api/admin/campaigns/c2", {}, {}, 401, "unauthorized"),
        ("PUT", "/api/admin/campaigns/c2", bearer("wrong-key"), {}, 403, "forbidden"),
        ("PUT", "/api/admin/campaigns/c2", op, b"nope", 400, "invalid_json"),
        ("PUT", "/api/admin/campaigns/c2", op, {"vaccines": "x"}, 400, "invalid_request"),
        ("PUT", "/api/admin/campaigns/Bad Name!", op, {}, 400, "invalid_request"),
        ("POST", "/api/admin/campaigns/nope/inventory", op, {"slots": []}, 404, "unknown_campaign"),
        (
            "POST",
            "/api/admin/campaigns/camp/inventory",
            op,
            {"slots": [{"center": "zzz"}]},
            400,
            "invalid_request",
        ),
        ("POST", "/api/admin/campaigns/camp/inventory", op, {"title": "x"}, 400, "invalid_request"),
        (
            "POST",
            "/api/admin/campaigns/camp/codes",
            op,
            {"group": "80plus", "count": 0},
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/api/admin/campaigns/camp/codes",
            op,
            {"group": "80plus"},
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/api/admin/campaigns/nope/codes",
            op,
            {"group": "g", "count": 1},
            404,
            "unknown_campaign",
        ),
        ("GET", "/api/admin/campaigns/nope", op, None, 404, "unknown_campaign"),
        (
            "PUT",
            "/api/admin/rooms/r2",
            op,
            {"campaign": "nope", "opens_in_s": 1},
            404,
            "unknown_campaign",
        ),
        ("PUT", "/api/admin/rooms/r2", op, {"opens_in_s": 1}, 400, "invalid_request"),
        ("PUT", "/api/admin/rooms/r2", op, {"campaign": "camp"}, 400, "invalid_request"),
        (
            "PUT",
            "/api/admin/rooms/r2",
            op,
            {"campaign": "camp", "opens_at": "soon"},
            400,
            "invalid_request",
        ),
        (
            "PUT",
            "/api/admin/rooms/r2",
            op,
            {"campaign": "camp", "opens_at": "2026-12-01T10:00"},
            400,
            "invalid_request",
        ),
        ("PUT", "/api/admin/rooms/room", op, {"rate_per_s": -1}, 400, "invalid_request"),
        ("PUT", "/api/admin/rooms/room", op, {"colour": "red"}, 400, "invalid_request"),
        (
            "PUT",
            "/api/admin/rooms/room/admission",
            op,
            {"rate_per_s": "fast"},
            400,
            "invalid_request",
        ),
        ("PUT", "/api/admin/rooms/room/admission", op, {"max_active": 1.5}, 400, "invalid_request"),
        (
            "PUT",
            "/api/admin/rooms/room/admission",
            op,
            {"rate_per_s": float("nan")},
            400,
            "invalid_json",
        ),
        ("PUT", "/api/admin/rooms/room/admission", {}, {"rate_per_s": 1}, 401, "unauthorized"),
        ("POST", "/api/admin/rooms/nope/open", op, None, 404, "unknown_room"),
        ("POST", "/api/admin/rooms/nope/close", op, None, 404, "unknown_room"),
        ("GET", "/api/admin/rooms/nope/stats", op, None, 404, "unknown_room"),
        ("GET", "/api/admin/rooms/room/stats", bearer(ticket), None, 403, "forbidden"),
        *new_route_cases(ticket, other_ticket, token, own),
        ("GET", "/api/nothing/here", {}, None, 404, "not_found"),
        ("DELETE", "/api/rooms/room/join", {}, None, 405, "method_not_allowed"),
    ]


def new_route_cases(ticket: str, other_ticket: str, token: str, own: str) -> list[Case]:
    """Move, waitlist, reserves, slot removal, challenge, page and audit."""
    op = operator()
    move = f"/api/bookings/{own}/move"
    phone_move = "/api/callcenter/bookings/bk_x/move"
    waitlist = "/api/rooms/room/waitlist"
    reserves = "/api/admin/campaigns/camp/reserves"
    remove = "/api/admin/campaigns/camp/inventory/remove"
    center = "county-1-center-1"
    start = "2026-12-01T08:00:00Z"
    reserve = {
        "center": center,
        "from": "2026-12-01",
        "group": "staff",
        "share_pct": 10,
        "mode": "minimum_guarantee",
        "release_at": "2026-12-01T00:00:00Z",
    }
    return [
        ("POST", move, {}, {}, 401, "unauthorized"),
        ("POST", move, bearer(ticket), {}, 401, "invalid_token"),
        ("POST", "/api/bookings/bk_x/move", bearer(token), {}, 403, "not_your_booking"),
        ("POST", move, bearer(token), b"{", 400, "invalid_json"),
        ("POST", move, bearer(token), {"waitlist": True}, 400, "invalid_request"),
        ("POST", move, bearer(token), {}, 404, "unknown_booking"),
        ("POST", phone_move, bearer(ticket), {}, 403, "forbidden"),
        ("POST", phone_move, op, {"colour": 1}, 400, "invalid_request"),
        ("POST", phone_move, op, {}, 404, "unknown_booking"),
        ("POST", waitlist, {}, {}, 401, "unauthorized"),
        ("POST", "/api/rooms/nope/waitlist", bearer(ticket), {}, 404, "unknown_room"),
        ("POST", waitlist, bearer(other_ticket), {}, 403, "wrong_room"),
        ("POST", waitlist, bearer(ticket), {"seats": 2}, 400, "invalid_request"),
        ("POST", waitlist, bearer(ticket), {"county": "county-1"}, 409, "not_sold_out"),
        ("POST", reserves, {}, reserve, 401, "unauthorized"),
        ("POST", "/api/admin/campaigns/nope/reserves", op, reserve, 404, "unknown_campaign"),
        ("POST", reserves, op, {}, 400, "invalid_request"),
        ("POST", reserves, op, reserve | {"colour": 1}, 400, "invalid_request"),
        ("POST", reserves, op, reserve | {"center": "atlantis"}, 400, "unknown_center"),
        ("POST", reserves, op, reserve | {"share_pct": 101}, 400, "invalid_request"),
        ("POST", reserves, op, reserve | {"mode": "always"}, 400, "invalid_request"),
        ("POST", reserves, op, reserve | {"release_at": "2026-12-01"}, 400, "invalid_request"),
        ("POST", reserves, op, reserve | {"to": "2026-11-30"}, 400, "invalid_request"),
        ("POST", remove, {}, {"center": center}, 401, "unauthorized"),
        (
            "POST",
            remove,
            op,
            {"center": center, "vaccine": "comirnaty", "starts": []},
            400,
            "invalid_request",
        ),
        (
            "POST",
            remove,
            op,
            {"center": center, "vaccine": "comirnaty", "starts": ["tomorrow"]},
            400,
            "invalid_request",
        ),
        ("POST", remove, op, {"center": center, "slots": []}, 400, "invalid_request"),
        (
            "POST",
            remove,
            op,
            {"center": "atlantis", "vaccine": "v", "starts": [start]},
            400,
            "unknown_center",
        ),
        ("GET", "/api/rooms/nope/challenge", {}, None, 404, "unknown_room"),
        ("GET", "/rooms/nope", {}, None, 404, "unknown_room"),
        ("GET", "/api/admin/rooms/nope/audit", op, None, 404, "unknown_room"),
        ("GET", "/api/admin/rooms/room/audit?limit=x", op, None, 400, "invalid_request"),
        ("GET", "/api/admin/rooms/room/audit?offset=²", op, None, 400, "invalid_request"),
        *export_and_phone_cases(ticket),
    ]


def export_and_phone_cases(ticket: str) -> list[Case]:
    """Code letters, the appointments CSV and the call center's booking routes."""
    op = operator()
    codes = "/api/admin/campaigns/camp/codes?format=csv"
    phone = "/api/callcenter/campaigns/camp/bookings"
    call = {"access_code": "AAAA-BBBB-CCCC", "county": "county-1"}
    return [
        ("POST", codes, op, {"group": "a\nb", "count": 5}, 400, "invalid_request"),
        ("POST", codes, op, {"group": "Staff Group", "count": 5}, 400, "invalid_request"),
        ("POST", codes, op, {"group": "staff", "count": 0}, 400, "invalid_request"),
        # a well-formed body with a format there is none of: no code is issued
        (
            "POST",
            codes.replace("csv", "xml"),
            op,
            {"group": "staff", "count": 2},
            400,
            "invalid_request",
        ),
        ("POST", codes, bearer(ticket), {"group": "staff", "count": 1}, 403, "forbidden"),
        (
            "POST",
            "/api/admin/campaigns/camp/reserves",
            op,
            {"group": "a b"},
            400,
            "invalid_request",
        ),
        (
            "GET",
            "/api/admin/campaigns/camp/appointments.csv?day=x",
            op,
            None,
            400,
            "invalid_request",
        ),
        ("GET", "/api/admin/campaigns/nope/appointments.csv", op, None, 404, "unknown_campaign"),
        ("POST", phone, bearer(ticket), call, 403, "forbidden"),
        ("POST", "/api/callcenter/campaigns/nope/bookings", op, call, 404, "unknown_campaign"),
        ("POST", phone, op, b"{", 400, "invalid_json"),
        ("POST", phone, op, {"county": "county-1"}, 400, "invalid_request"),
        ("POST", phone, op, call | {"colour": 1}, 400, "invalid_request"),
        ("POST", phone, op, call, 403, "invalid_access_code"),
        ("GET", "/api/callcenter/bookings/bk_x", op, None, 404, "unknown_booking"),
        ("POST", "/api/callcenter/bookings/bk_x/confirm", op, None, 404, "unknown_booking"),
        ("POST", "/api/callcenter/bookings/bk_x/cancel", op, None, 404, "unknown_booking"),
        ("POST", "/api/callcenter/bookings/bk_x/cancel", bearer(ticket), None, 403, "forbidden"),
    ]


async def test_bad_input_gets_a_json_4xx_and_changes_nothing(
    client: TestClient[Any, Any],
    first_day: dt.date,
    redis: aioredis.Redis,
    connections: Connections,
) -> None:
    await create_campaign(client, first_day)
    await create_room(client, "room")
    await create_room(client, "other")
    ticket = (await (await client.post("/api/rooms/room/join")).json())["ticket"]
    other_ticket = (await (await client.post("/api/rooms/other/join")).json())["ticket"]
    client.session.cookie_jar.clear()  # the joins set ticket cookies; the cases bring their own
    table = cases(ticket, other_ticket, booking_token("room"), booking_token("other"))
    before = (await redis_state(redis), await end_offsets(connections))
    recorded_before = await redis.llen(keys.operator_actions())
    failures = []
    for method, path, headers, body, status, code in table:
        kwargs: dict[str, Any] = {"headers": headers}
        if isinstance(body, bytes):
            kwargs["data"] = body
        elif body is not None:
            kwargs["data"] = json.dumps(body, allow_nan=True)
        response = await client.request(method, path, **kwargs)
        payload = await response.json(content_type=None)
        got = (response.status, payload.get("error", {}).get("code"))
        if got != (status, code) or not payload["error"].get("message"):
            failures.append(f"{method} {path} {body!r}: got {got}, want {(status, code)}")
    assert failures == []
    assert (await redis_state(redis), await end_offsets(connections)) == before
    # the one well-formed wrong code, counted against the client and against its prefix
    assert len([k async for k in redis.scan_iter(match=keys.code_guesses_pattern("camp"))]) == 2
    # the refused operator requests are recorded as refused
    new = await redis.llen(keys.operator_actions()) - recorded_before
    recorded = [orjson.loads(a) for a in await redis.lrange(keys.operator_actions(), 0, new - 1)]
    assert new > 0 and all(a["status"] >= 400 for a in recorded)


@pytest.mark.parametrize("method,path", [("GET", "/healthz"), ("GET", "/api/openapi.json")])
async def test_public_documents_answer(
    client: TestClient[Any, Any], method: str, path: str
) -> None:
    response = await client.request(method, path)
    assert response.status == 200
    assert isinstance(await response.json(), dict)


# -- a bearer token that is not UTF-8 text ------------------------------------------------


def operator_and_agent_routes(app: web.Application) -> list[tuple[str, str]]:
    """(method, path) of every operator and call-center route the router serves."""
    found = []
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if route.method != "HEAD" and path.startswith(("/api/admin/", "/api/callcenter/")):
            found.append(
                (route.method, path.format(room="room", campaign="camp", booking_id="bk_x"))
            )
    return found


async def test_a_bearer_token_not_utf8_is_401_json_on_every_operator_and_agent_route(
    client: TestClient[Any, Any], redis: aioredis.Redis, connections: Connections
) -> None:
    routes = operator_and_agent_routes(client.app)
    assert {p.split("/")[2] for _, p in routes} == {"admin", "callcenter"}
    assert len(routes) >= 20
    before = (await redis_state(redis), await end_offsets(connections))
    answers = {}
    for method, path in routes:
        head = request_bytes(method, path.encode(), [(b"Authorization", b"Bearer \xff\xfe")])
        answer = await send(client, head)
        answers[method, path] = (answer.status, answer.json()["error"]["code"])
    assert answers == {route: (401, "unauthorized") for route in routes}
    assert (await redis_state(redis), await end_offsets(connections)) == before


# -- client input in log lines ------------------------------------------------------------

FORGED = "FORGED 2026-12-07 09:00:00 INFO gateway.admin: operator key rotated"


def assert_no_forged_line(caplog: pytest.LogCaptureFixture, escaped: str, times: int) -> None:
    """The input was logged ``times`` times, escaped: inside its record's line, never
    on a line of its own (``splitlines`` breaks at \\r, \\n and \\u2028 alike)."""
    messages = [r.getMessage() for r in caplog.records if FORGED in r.getMessage()]
    assert len([m for m in messages if escaped in m]) == times, messages
    assert all(m.isprintable() for m in messages), messages
    assert not [line for line in caplog.text.splitlines() if line.startswith("FORGED")]


@pytest.mark.parametrize(
    "separator,escaped", [("%0a", "\\n"), ("%0d%0a", "\\r\\n"), ("%e2%80%a8", "\\u2028")]
)
async def test_a_line_break_in_a_phone_booking_reference_is_escaped_in_the_agent_log(
    client: TestClient[Any, Any],
    caplog: pytest.LogCaptureFixture,
    separator: str,
    escaped: str,
) -> None:
    caplog.set_level(logging.INFO)
    reference = f"bk_x{separator}{quote(FORGED)}"
    for action, body in (("confirm", None), ("move", {}), ("cancel", None)):
        response = await client.post(
            URL(f"/api/callcenter/bookings/{reference}/{action}", encoded=True),
            json=body,
            headers=bearer(AGENT_KEY),
        )
        assert (response.status, (await response.json())["error"]["code"]) == (
            404,
            "unknown_booking",
        )
    assert_no_forged_line(caplog, f"bk_x{escaped}{FORGED}", times=3)


# -- what aiohttp's own parser refuses ----------------------------------------------------

PAD = 32  # aiohttp's C and pure-Python parsers count a line a few bytes apart


def parser_cases() -> dict[str, tuple[bytes, bytes]]:
    """name -> (a request the gateway answers, the same just over a limit)."""
    long_path = b"/api/" + b"a" * (MAX_URL_BYTES - 5 - PAD)

    def headers(n: int) -> list[tuple[bytes, bytes]]:
        return [(b"X-Pad-%d" % i, b"1") for i in range(n)]

    return {
        "undecodable byte in the path": (
            request_bytes("GET", b"/api/rooms/r%FF"),
            request_bytes("GET", b"/api/rooms/r\xff"),
        ),
        "URL over the limit": (
            request_bytes("GET", long_path),
            request_bytes("GET", b"/api/" + b"a" * (MAX_URL_BYTES - 4)),
        ),
        "header over the limit": (
            request_bytes("GET", b"/api/x", [(b"X-Pad", b"v" * (MAX_HEADER_BYTES - 7 - PAD))]),
            request_bytes("GET", b"/api/x", [(b"X-Pad", b"v" * (MAX_HEADER_BYTES + 1))]),
        ),
        "too many headers": (
            request_bytes("GET", b"/api/x", headers(MAX_HEADERS - 3 - 4)),  # 3 come with it
            request_bytes("GET", b"/api/x", headers(MAX_HEADERS + 1)),
        ),
    }


@pytest.mark.parametrize("case", list(parser_cases()))
async def test_what_the_http_parser_refuses_gets_a_4xx(
    client: TestClient[Any, Any], case: str
) -> None:
    """Within the limits the gateway answers (JSON); beyond them aiohttp's parser does,
    before any handler: 400 in plain text (docs/api.md, "Bad input", says why not JSON)."""
    within, beyond = parser_cases()[case]
    answered = await send(client, within)
    assert answered.status == 404
    assert answered.json()["error"]["code"] in ("not_found", "unknown_room")
    refused = await send(client, beyond)
    assert refused.status == 400
    assert refused.headers["content-type"].startswith("text/plain")


async def test_a_body_over_the_limit_is_413_json(client: TestClient[Any, Any]) -> None:
    body = b" " * (MAX_BODY_BYTES + 1)
    response = await client.put("/api/admin/campaigns/big", data=body, headers=operator())
    assert (response.status, (await response.json())["error"]["code"]) == (
        413,
        "payload_too_large",
    )
