"""Every number an operator sets is refused outside its range (400 naming the field and
the range, nothing changed), taken at its edges, and documented from the one table."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from fairq.config import Connections
from gateway import bounds
from gateway.bounds import OPERATOR_NUMBERS
from gateway.contracts import AdmissionRequest, RoomRequest
from gateway.openapi import OPENAPI_JSON
from schemas.fields import Bound
from tests.gateway.conftest import create_campaign, create_room, operator
from tests.gateway.test_bad_input import end_offsets, redis_state
from tests.gateway.test_openapi import app

Client = TestClient[Any, Any]
ROOM_FIELDS = frozenset(RoomRequest.__struct_fields__)
ADMISSION_FIELDS = frozenset(AdmissionRequest.__struct_fields__)
ROOM = "/api/admin/rooms/room"
AUDIT = f"{ROOM}/audit"
RESERVE = {
    "center": "county-1-center-1",
    "from": "2026-12-01",
    "group": "staff",
    "share_pct": 10,
    "mode": "over_and_above",
    "release_at": "2026-12-01T00:00:00Z",
}
# field -> (method, path, the rest of a valid body; None: the field is a query parameter)
OTHER_ROUTES: dict[str, list[tuple[str, str, dict[str, Any] | None]]] = {
    "count": [("POST", "/api/admin/campaigns/camp/codes", {"group": "staff"})],
    "share_pct": [("POST", "/api/admin/campaigns/camp/reserves", RESERVE)],
    "offset": [("GET", AUDIT, None)],
    "limit": [("GET", AUDIT, None)],
}


def routes_taking(field: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    found = list(OTHER_ROUTES.get(field, []))
    if field in ROOM_FIELDS:
        found.append(("PUT", ROOM, {}))
    if field in ADMISSION_FIELDS:
        found.append(("PUT", f"{ROOM}/admission", {}))
    return found


REPORTED = {"rate_per_s": [3e-45]}  # issue 17: an admission rate of 3e-45 per second taken


def out_of_range(field: str, b: Bound) -> list[float]:
    """Values just outside ``b`` (and what was reported taken), whatever ``b`` says."""
    if b.integer:
        return [b.lo - 1, b.hi + 1]
    below = [b.lo / 2] if b.lo > 0 else []
    return [-1.0, *below, b.hi * 2, *REPORTED.get(field, [])]


async def send(
    client: Client, method: str, path: str, field: str, value: float, rest: dict[str, Any] | None
) -> tuple[int, dict[str, Any]]:
    if rest is None:
        query = str(int(value)) if float(value).is_integer() else str(value)
        response = await client.request(method, path, params={field: query}, headers=operator())
    else:
        body = orjson.dumps(rest | {field: value})
        response = await client.request(method, path, data=body, headers=operator())
    return response.status, await response.json()


def test_every_operator_number_has_a_route_here_and_in_the_table() -> None:
    assert all(routes_taking(field) for field in OPERATOR_NUMBERS)
    for field in ROOM_FIELDS & OPERATOR_NUMBERS.keys():
        live = field in ADMISSION_FIELDS
        assert OPERATOR_NUMBERS[field].where == (bounds.LIVE if live else bounds.ROOM), field


async def test_a_number_out_of_range_is_refused_naming_field_and_range_and_changes_nothing(
    client: Client, first_day: dt.date, redis: aioredis.Redis, connections: Connections
) -> None:
    await create_campaign(client, first_day)
    await create_room(client, "room")
    before = (await redis_state(redis), await end_offsets(connections))
    wrong = []
    for field, number in OPERATOR_NUMBERS.items():
        b = number.bound
        for method, path, rest in routes_taking(field):
            for value in out_of_range(field, b):
                status, body = await send(client, method, path, field, value, rest)
                error = body.get("error", {})
                message = error.get("message", "")
                refused = status == 400 and error.get("code") == "invalid_request"
                if not (refused and f"'{field}'" in message and b.describe() in message):
                    wrong.append((method, path, field, value, status, body))
    assert wrong == []
    assert (await redis_state(redis), await end_offsets(connections)) == before


async def test_a_room_takes_every_setting_at_the_edges_of_its_range(
    client: Client, first_day: dt.date
) -> None:
    await create_campaign(client, first_day)
    await create_room(client, "room")
    for field in sorted(ROOM_FIELDS & OPERATOR_NUMBERS.keys()):
        b = bounds.bound(field)
        for value in (0, b.lo, b.hi) if b.zero else (b.lo, b.hi):
            response = await client.put(ROOM, json={field: value}, headers=operator())
            stats = await response.json()
            assert response.status == 200, (field, value, stats)
            assert field not in stats or stats[field] == value, (field, value, stats)
    live = await client.put(f"{ROOM}/admission", json={"rate_per_s": 0.01}, headers=operator())
    assert (live.status, (await live.json())["rate_per_s"]) == (200, 0.01)
    edges = {"offset": bounds.bound("offset").hi, "limit": bounds.bound("limit").hi}
    audit = await client.get(AUDIT, params=edges, headers=operator())
    assert (audit.status, (await audit.json())["offset"]) == (200, edges["offset"])


def test_the_api_guide_quotes_the_table() -> None:
    guide = (Path(__file__).parents[2] / "docs" / "api.md").read_text()
    assert bounds.markdown_table() in guide


def documented_fields(node: Any) -> Iterator[tuple[str, Any]]:
    """(name, schema) of every body property and query parameter in an OpenAPI node."""
    if isinstance(node, dict):
        if isinstance(node.get("properties"), dict):
            yield from node["properties"].items()
        if node.get("in") == "query":
            yield node["name"], node["schema"]
        for value in node.values():
            yield from documented_fields(value)
    elif isinstance(node, list):
        for value in node:
            yield from documented_fields(value)


def not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional field's schema without its ``null``."""
    some = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    return some[0] if len(some) == 1 and len(schema["anyOf"]) == 2 else schema


def test_the_openapi_document_quotes_every_range() -> None:
    document = orjson.loads(app()[OPENAPI_JSON])
    schemas = document["components"]["schemas"]
    bodies = {name: s for name, s in schemas.items() if name.endswith("Request")}
    audit = document["paths"]["/api/admin/rooms/{room}/audit"]["get"]["parameters"]
    documented = list(documented_fields(bodies)) + list(documented_fields(audit))
    for field in OPERATOR_NUMBERS:
        found = [not_null(schema) for name, schema in documented if name == field]
        quoted = bounds.schema(field).items()
        assert found and all(s.items() >= quoted for s in found), (field, found)
