"""The operator console's session: the cookie, its expiry and forgery, sign-out, CSRF,
the sign-in rate limit, and the console's own routes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp.test_utils import TestClient

from fairq.config import Connections
from gateway.console import ASSETS
from gateway.operators import SESSIONS
from gateway.sessions import CSRF_HEADER, OPERATOR, SIGNIN_MAX_FAILURES
from gateway.state import GATEWAY
from tests.conftest import bounded
from tests.gateway.conftest import (
    OPERATOR_KEY,
    create_campaign,
    create_room,
    gateway_client,
    operator,
)
from tests.sse import sse_events

Client = TestClient[Any, Any]


async def sign_in(client: Client, **headers: str) -> tuple[str, str, str]:
    """(cookie value, CSRF token, the Set-Cookie header) of a new console session; the
    client's own cookie jar is emptied so that each request names its cookie."""
    response = await client.post(
        "/api/operator/session", json={"key": OPERATOR_KEY, "name": "Ada"}, headers=headers
    )
    assert response.status == 200, await response.text()
    body = await response.json()
    set_cookie = response.headers["Set-Cookie"]
    client.session.cookie_jar.clear()
    return response.cookies[OPERATOR.cookie].value, body["csrf_token"], set_cookie


async def open_room_and_sign_in(client: Client, first_day: dt.date) -> tuple[str, str]:
    """An open room ``room`` of campaign ``camp``, and a console session (cookie, CSRF)."""
    await create_campaign(client, first_day)
    await create_room(client)
    assert (await client.post("/api/admin/rooms/room/open", headers=operator())).status == 200
    value, csrf, _ = await sign_in(client)
    return value, csrf


def with_cookie(value: str, **headers: str) -> dict[str, str]:
    return {"Cookie": f"{OPERATOR.cookie}={value}", **headers}


async def test_the_session_cookie_is_httponly_strict_expiring_and_not_the_key(
    client: Client,
) -> None:
    value, _, set_cookie = await sign_in(client)
    attributes = [a.strip() for a in set_cookie.split(";")]
    assert "HttpOnly" in attributes
    assert "SameSite=Strict" in attributes
    assert "Path=/" in attributes
    lifetime = client.app[GATEWAY].settings.console_session_s
    assert f"Max-Age={lifetime}" in attributes
    assert "Secure" not in attributes  # plain HTTP here
    assert OPERATOR_KEY not in set_cookie
    response = await client.get("/api/operator/session", headers=with_cookie(value))
    assert (await response.json())["who"] == "Ada"


async def test_the_cookie_is_secure_behind_a_trusted_tls_proxy(connections: Connections) -> None:
    async with gateway_client(connections, trust_forwarded_proto=True) as trusting:
        *_, set_cookie = await sign_in(trusting, **{"X-Forwarded-Proto": "https"})
        assert "Secure" in [a.strip() for a in set_cookie.split(";")]
    async with gateway_client(connections) as untrusting:
        *_, set_cookie = await sign_in(untrusting, **{"X-Forwarded-Proto": "https"})
        assert "Secure" not in [a.strip() for a in set_cookie.split(";")]


async def test_the_cookie_opens_the_operator_api(client: Client, first_day: dt.date) -> None:
    await create_campaign(client, first_day)
    await create_room(client)
    value, _, _ = await sign_in(client)
    ok = await client.get("/api/admin/rooms/room/stats", headers=with_cookie(value))
    assert ok.status == 200
    assert (await client.get("/api/admin/rooms/room/stats")).status == 401


async def test_a_forged_or_altered_cookie_is_refused(client: Client, first_day: dt.date) -> None:
    await create_campaign(client, first_day)
    await create_room(client)
    value, _, _ = await sign_in(client)
    session_id, expires, mac = value.split(".")
    later = str(int(expires) + 86_400)
    for forged in (
        f"{session_id}.{later}.{mac}",  # a longer life
        f"{session_id}.{expires}.{'0' * len(mac)}",  # a made-up signature
        f"other.{expires}.{mac}",  # another session id
        "garbage",
    ):
        response = await client.get("/api/admin/rooms/room/stats", headers=with_cookie(forged))
        assert response.status == 401, forged
        assert (await response.json())["error"]["code"] == "not_signed_in"


async def test_an_expired_session_is_refused(client: Client, first_day: dt.date) -> None:
    await create_campaign(client, first_day)
    await create_room(client)
    value, _, _ = await sign_in(client)
    gw = client.app[GATEWAY]
    expires = int(value.split(".")[1])
    gw.clock = lambda: expires + 1.0
    client.app[SESSIONS]._clock = gw.clock
    response = await client.get("/api/admin/rooms/room/stats", headers=with_cookie(value))
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "session_expired"


async def test_signing_out_ends_the_session_on_every_gateway(
    connections: Connections, first_day: dt.date
) -> None:
    async with gateway_client(connections) as one, gateway_client(connections) as two:
        await create_campaign(one, first_day)
        await create_room(one)
        value, csrf, _ = await sign_in(one)
        mine = await two.get("/api/operator/session", headers=with_cookie(value))
        assert (await mine.json())["signed_in"] is True
        out = await one.delete(
            "/api/operator/session", headers=with_cookie(value, **{CSRF_HEADER: csrf})
        )
        assert out.status == 200
        assert "Max-Age=0" in out.headers["Set-Cookie"]
        for gateway in (one, two):
            response = await gateway.get("/api/admin/rooms/room/stats", headers=with_cookie(value))
            assert response.status == 401
            assert (await response.json())["error"]["code"] == "session_ended"
        after = await two.get("/api/operator/session", headers=with_cookie(value))
        assert (await after.json())["signed_in"] is False
        nobody = await two.get("/api/operator/session")
        assert await nobody.json() == {
            "signed_in": False,
            "reason": "not_signed_in",
            "message": "sign in with the operator key first",
        }


async def test_a_change_without_the_csrf_token_or_from_another_site_is_refused(
    client: Client, first_day: dt.date
) -> None:
    value, csrf = await open_room_and_sign_in(client, first_day)
    own_origin = f"http://{client.host}:{client.port}"
    refusals = [
        ({}, "csrf_token_missing"),
        ({CSRF_HEADER: "0" * len(csrf)}, "csrf_token_missing"),
        ({CSRF_HEADER: csrf, "Origin": "https://evil.example"}, "cross_origin"),
    ]
    for headers, code in refusals:
        response = await client.post(
            "/api/admin/rooms/room/pause", headers=with_cookie(value, **headers)
        )
        assert response.status == 403, headers
        assert (await response.json())["error"]["code"] == code
    stats = await client.get("/api/admin/rooms/room/stats", headers=operator())
    assert (await stats.json())["state"] == "open"  # nothing changed
    done = await client.post(
        "/api/admin/rooms/room/pause",
        headers=with_cookie(value, **{CSRF_HEADER: csrf, "Origin": own_origin}),
    )
    assert done.status == 200
    assert (await done.json())["state"] == "paused"


async def test_sign_out_needs_the_csrf_token(client: Client) -> None:
    value, _, _ = await sign_in(client)
    response = await client.delete("/api/operator/session", headers=with_cookie(value))
    assert response.status == 403
    mine = await client.get("/api/operator/session", headers=with_cookie(value))
    assert (await mine.json())["signed_in"] is True


async def test_sign_in_from_another_site_is_refused(client: Client) -> None:
    response = await client.post(
        "/api/operator/session",
        json={"key": OPERATOR_KEY, "name": "Ada"},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status == 403
    assert "Set-Cookie" not in response.headers


async def test_sign_in_attempts_are_rate_limited_per_client(connections: Connections) -> None:
    async with gateway_client(connections) as one, gateway_client(connections) as two:
        for _ in range(SIGNIN_MAX_FAILURES):
            wrong = await one.post(
                "/api/operator/session", json={"key": "not-the-key-0123456789", "name": "Eve"}
            )
            assert wrong.status == 403
            assert (await wrong.json())["error"]["message"] == "the operator key is not valid"
        # the same address, through another gateway, even with the right key
        refused = await two.post("/api/operator/session", json={"key": OPERATOR_KEY, "name": "Ada"})
        assert refused.status == 429
        assert int(refused.headers["Retry-After"]) > 0
        assert "Set-Cookie" not in refused.headers


async def test_bad_sign_in_bodies_get_clear_errors(client: Client) -> None:
    for body in ({}, {"key": OPERATOR_KEY}, {"key": OPERATOR_KEY, "name": "  "}, {"x": 1}):
        response = await client.post("/api/operator/session", json=body)
        assert response.status == 400, body
        assert (await response.json())["error"]["message"]


async def test_the_page_has_a_strict_policy_and_uplot_is_served(client: Client) -> None:
    page = await client.get("/operator")
    assert page.status == 200
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy
    assert "http" not in policy  # no other host
    for name, asset in ASSETS.items():
        response = await client.get(f"/operator/{name}")
        assert response.status == 200, name
        assert response.headers["Content-Type"].startswith(asset.content_type)
        assert "max-age" in response.headers["Cache-Control"]
    uplot = await client.get("/operator/uplot.js")
    assert b"uPlot" in await uplot.read()


async def test_a_missing_uplot_is_a_clear_503(client: Client, monkeypatch: Any) -> None:
    from pathlib import Path

    from gateway import console
    from gateway.page import Asset

    gone = Asset(Path("/nonexistent/uPlot.iife.min.js"), "text/javascript", "run npm ci")
    monkeypatch.setitem(console.ASSETS, "uplot.js", gone)
    response = await client.get("/operator/uplot.js")
    assert response.status == 503
    assert "npm ci" in (await response.json())["error"]["message"]


async def test_the_overview_lists_every_room_with_its_figures(
    connections: Connections, first_day: dt.date
) -> None:
    async with gateway_client(connections) as one, gateway_client(connections) as two:
        await create_campaign(one, first_day)
        await create_room(one)
        await one.post("/api/admin/rooms/room/open", headers=operator())
        assert (await one.post("/api/rooms/room/join")).status == 200
        # the second gateway never served the room: the overview finds it in Redis
        response = await two.get("/api/admin/overview", headers=operator())
        rooms = (await response.json())["rooms"]
        assert [r["room"] for r in rooms] == ["room"]
        assert rooms[0]["queue_depth"] == 1
        for field in ("pairs_left", "holds", "confirmations", "expiries", "waitlisted"):
            assert field in rooms[0]


async def test_the_overview_stream_pushes_changes_and_ends_with_the_session(
    client: Client, first_day: dt.date
) -> None:
    value, csrf = await open_room_and_sign_in(client, first_day)
    stream = await client.get("/api/admin/overview/events", headers=with_cookie(value))
    assert stream.status == 200
    events = sse_events(stream)
    name, first = await anext(events)
    assert name == "overview"
    assert [(r["room"], r["queue_depth"]) for r in first["rooms"]] == [("room", 0)]
    assert (await client.post("/api/rooms/room/join")).status == 200
    _, second = await anext(events)
    assert second["rooms"][0]["queue_depth"] == 1
    await client.delete("/api/operator/session", headers=with_cookie(value, **{CSRF_HEADER: csrf}))

    async def ended() -> None:
        async for _ in events:  # whatever was under way; then the stream ends
            pass

    await bounded(ended(), "the overview stream ending after sign-out")
