"""The call-center screen's server side: the page and its policy, the agents' sessions
(their role kept apart from the operators'), the record of agent actions, the
campaigns route, and a sentence on the page for every answer the API can give."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from fairq.config import Connections
from gateway.actionlog import GIVEN
from gateway.callscreen import PAGE_PATH
from gateway.errors import CODES, Code
from gateway.sessions import AGENT, CSRF_HEADER, OPERATOR
from schemas.events import REASONS
from tests.gateway.conftest import (
    AGENT_KEY,
    OPERATOR_KEY,
    create_campaign,
    create_room,
    gateway_client,
    operator,
)
from tests.gateway.test_callcenter import issue_codes

Client = TestClient[Any, Any]
ROOT = Path(__file__).parents[2]


async def agent_session(client: Client, key: str = AGENT_KEY) -> tuple[str, dict[str, Any]]:
    """(cookie value, body) of a new call-center session; the client's cookie jar is
    emptied so that each request names its cookie."""
    response = await client.post("/api/agent/session", json={"key": key})
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    value = response.cookies[AGENT.cookie].value
    client.session.cookie_jar.clear()
    return value, body


def agent_cookie(value: str, **headers: str) -> dict[str, str]:
    return {"Cookie": f"{AGENT.cookie}={value}", **headers}


async def test_the_page_allows_only_its_own_blocks_and_files(client: Client) -> None:
    response = await client.get("/callcenter")
    assert response.status == 200
    assert response.content_type == "text/html"
    policy = response.headers["Content-Security-Policy"]
    assert policy.startswith("default-src 'none'")
    for directive in ("script-src", "style-src"):
        found = re.search(directive + r" ([^;]+)", policy)
        assert found is not None
        sources = found.group(1).split()
        # this origin's files and the page's one inline block by its hash: no 'unsafe-inline'
        assert sources[0] == "'self'" and len(sources) == 2, sources
        assert sources[1].startswith("'sha256-"), sources
    assert "connect-src 'self'" in policy and "frame-ancestors 'none'" in policy
    for shared in ("signedin.js", "signedin.css"):
        asset = await client.get(f"/assets/{shared}")
        assert asset.status == 200, shared
    assert (await client.get("/assets/room.html")).status == 404


async def test_an_agent_is_named_by_their_key_and_the_operator_key_is_agent_operator(
    client: Client,
) -> None:
    value, body = await agent_session(client)
    assert (body["role"], body["who"]) == ("agent", "alice")
    response = await client.post("/api/agent/session", json={"key": AGENT_KEY})
    set_cookie_attributes = [a.strip() for a in response.headers["Set-Cookie"].split(";")]
    assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= set(set_cookie_attributes)
    assert AGENT_KEY not in response.headers["Set-Cookie"]
    client.session.cookie_jar.clear()
    _, as_operator = await agent_session(client, OPERATOR_KEY)
    assert as_operator["who"] == "operator"
    mine = await client.get("/api/agent/session", headers=agent_cookie(value))
    assert (await mine.json())["who"] == "alice"
    wrong = await client.post("/api/agent/session", json={"key": "not-an-agent-key-0123456"})
    assert (wrong.status, (await wrong.json())["error"]["code"]) == (403, "forbidden")
    named = await client.post("/api/agent/session", json={"key": AGENT_KEY, "name": "Mallory"})
    assert named.status == 400  # an agent does not choose a name: the key names them


async def test_an_agent_session_opens_the_call_center_and_not_the_operator_api(
    client: Client, first_day: dt.date
) -> None:
    await create_campaign(client, first_day)
    await create_room(client)
    value, _ = await agent_session(client)
    campaigns = await client.get("/api/callcenter/campaigns", headers=agent_cookie(value))
    assert campaigns.status == 200
    body = await campaigns.json()
    assert [c["name"] for c in body["campaigns"]] == ["camp"]
    assert {c["id"] for c in body["campaigns"][0]["counties"]} == {"county-1", "county-2"}
    assert body["times_of_day"] == ["morning", "afternoon", "evening"]
    # the agent's cookie is not the operator's: /api/admin does not look at it
    refused = await client.get("/api/admin/overview", headers=agent_cookie(value))
    assert refused.status == 401
    # and the agent's value under the operator's cookie name is not a session there
    swapped = await client.get(
        "/api/admin/overview", headers={"Cookie": f"{OPERATOR.cookie}={value}"}
    )
    assert (swapped.status, (await swapped.json())["error"]["code"]) == (401, "not_signed_in")
    # nor an operator's session a call-center one
    response = await client.post("/api/operator/session", json={"key": OPERATOR_KEY, "name": "Ada"})
    operator_value = response.cookies[OPERATOR.cookie].value
    client.session.cookie_jar.clear()
    crossed = await client.get("/api/callcenter/campaigns", headers=agent_cookie(operator_value))
    assert (crossed.status, (await crossed.json())["error"]["code"]) == (401, "not_signed_in")


async def test_a_removed_agent_key_ends_the_agents_sessions(connections: Connections) -> None:
    async with gateway_client(connections) as one:
        value, _ = await agent_session(one)
    async with gateway_client(connections, agent_keys={}) as without_alice:
        response = await without_alice.get("/api/callcenter/campaigns", headers=agent_cookie(value))
        assert (response.status, (await response.json())["error"]["code"]) == (
            401,
            "session_ended",
        )


@pytest.mark.usefixtures("allocator")
async def test_agent_actions_are_recorded_with_the_agents_name_and_no_secrets(
    client: Client, first_day: dt.date
) -> None:
    await create_campaign(client, first_day, counties=1, places=1)
    await create_room(client)
    [code] = await issue_codes(client, 1)
    value, session = await agent_session(client)
    changing = agent_cookie(value, **{CSRF_HEADER: session["csrf_token"]})
    without_csrf = await client.post(
        "/api/callcenter/campaigns/camp/bookings",
        json={"access_code": code, "county": "county-1"},
        headers=agent_cookie(value),
    )
    assert (await without_csrf.json())["error"]["code"] == "csrf_token_missing"
    wrong_code = await client.post(
        "/api/callcenter/campaigns/camp/bookings",
        json={"access_code": "NOT-A-CODE", "county": "county-1"},
        headers=changing,
    )
    assert wrong_code.status == 403
    booked = await client.post(
        "/api/callcenter/campaigns/camp/bookings",
        json={"access_code": code, "county": "county-1"},
        headers=changing,
    )
    assert booked.status == 201, await booked.text()
    booking_id = (await booked.json())["booking_id"]
    confirmed = await client.post(
        f"/api/callcenter/bookings/{booking_id}/confirm",
        json={"identity_key": "A123456789"},
        headers=changing,
    )
    assert confirmed.status == 200, await confirmed.text()
    await client.get(f"/api/callcenter/bookings/{booking_id}", headers=changing)  # a read
    listed = await client.get("/api/admin/audit/agents", headers=operator())
    confirm, book, refused = (await listed.json())["actions"]
    assert (refused["who"], refused["status"], refused["error"]) == (
        "alice",
        403,
        "invalid_access_code",
    )
    assert book["who"] == "alice"
    assert book["action"] == "POST /api/callcenter/campaigns/{campaign}/bookings"
    assert book["target"] == {"campaign": "camp", "booking_id": booking_id}
    assert book["request"] == {"access_code": GIVEN, "county": "county-1"}
    assert (book["before"], book["after"]["state"]) == (None, "held")
    assert confirm["request"] == {"identity_key": GIVEN}
    assert (confirm["before"]["state"], confirm["after"]["state"]) == ("held", "confirmed")
    assert confirm["after"]["appointments"] == book["after"]["appointments"]
    everything = orjson.dumps(
        await (await client.get("/api/admin/audit/agents", headers=operator())).json()
    )
    assert code.encode() not in everything and b"A123456789" not in everything
    # agents' actions stay out of the operators' record
    operators = await client.get("/api/admin/audit", headers=operator())
    assert all("callcenter" not in a["action"] for a in (await operators.json())["actions"])
    by_key = await client.post(
        f"/api/callcenter/bookings/{booking_id}/cancel",
        headers={"Authorization": f"Bearer {AGENT_KEY}"},
    )
    assert by_key.status == 200
    newest = await (await client.get("/api/admin/audit/agents", headers=operator())).json()
    assert newest["actions"][0]["who"] == "alice (API key)"


def _answer_codes() -> set[str]:
    """Every error code the gateway can answer (its catalogue, ``gateway.errors.Code``)
    and every reason the allocator can give (``schemas.events.REASONS``), which a
    refusal carries instead of ``refused``."""
    return (set(CODES) - {Code.REFUSED}) | set(REASONS)


def _page_answers() -> set[str]:
    html = PAGE_PATH.read_text(encoding="utf-8")
    block = html[html.index("  answers: {") : html.index("\n  },\n};")]
    return set(re.findall(r"^\s{4}(\w+):", block, re.MULTILINE))


def test_the_page_words_every_answer_of_the_api() -> None:
    codes = _answer_codes()
    assert {"already_booked", "in_doubt", "sold_out", "token_used", "rate_limited"} <= codes
    missing = codes - _page_answers()
    assert not missing, f"the call-center page has no sentence for {sorted(missing)}"
