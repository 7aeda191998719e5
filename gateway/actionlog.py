"""The records of actions: who did what, when, to what, before and after.

``gateway.operators``' door writes one entry per state-changing request of a signed-in
role, refused ones included: operator actions (``/api/admin/...``) to one capped Redis
list, call-center agent actions (``/api/callcenter/...``) to another, both shared by
every gateway, newest first, ``MAX_ENTRIES`` kept each. Two lists, not one: a busy call
center must not push the operators' actions (and the deliveries and reserves the
campaign view reads from them) out of the capped record. ``GET /api/admin/audit``
lists the operators' record, ``GET /api/admin/audit/agents`` the agents'.

Secrets in a request body (a caller's access code or identity key, a sign-in key) are
recorded as given, never as themselves.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import redis.asyncio as aioredis
from aiohttp import web

from gateway.admin import require_operator
from gateway.contracts import Document, Query, operation, range_meta
from gateway.http import json_response, query_int
from schemas.fields import Bound

MAX_ENTRIES = 10_000
ENTRY_RANGE = Bound(0, MAX_ENTRIES, integer=True)  # of an offset or a page's length
DEFAULT_PAGE = 100
ENTRIES = Annotated[int, range_meta(ENTRY_RANGE, "entries of the record")]
PAGE = (
    Query("offset", ENTRIES, "the first entry of the page"),
    Query("limit", ENTRIES, "entries in the page"),
)
MAX_BODY_CHARS = 2000  # a bigger request body is recorded by its size and its keys
SECRET_FIELDS = frozenset({"access_code", "identity_key", "key"})
GIVEN = "(given)"

routes = web.RouteTableDef()


def recorded_body(raw: bytes) -> Any:
    """What the record keeps of a request body: the JSON itself when small, with its
    secrets replaced by ``GIVEN``."""
    if not raw.strip():
        return None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {"bytes": len(raw), "json": False}
    if len(raw) > MAX_BODY_CHARS:
        return {"bytes": len(raw), "keys": sorted(body)[:50] if isinstance(body, dict) else None}
    if isinstance(body, dict):
        return {k: GIVEN if k in SECRET_FIELDS and v is not None else v for k, v in body.items()}
    return body


class ActionLog:
    """One capped record (a Redis list)."""

    def __init__(self, redis: aioredis.Redis, key: str) -> None:
        self._redis = redis
        self._key = key

    async def record(self, entry: dict[str, Any]) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.lpush(self._key, orjson.dumps(entry))
            pipe.ltrim(self._key, 0, MAX_ENTRIES - 1)
            await pipe.execute()

    async def recent(self, offset: int, limit: int) -> list[dict[str, Any]]:
        raw = await self._redis.lrange(self._key, offset, offset + limit - 1)
        return [orjson.loads(r) for r in raw]


ACTION_LOG = web.AppKey("action_log", ActionLog)  # the operators'
AGENT_LOG = web.AppKey("agent_action_log", ActionLog)  # the call-center agents'


async def _listed(request: web.Request, log: web.AppKey[ActionLog]) -> web.Response:
    require_operator(request)
    offset = query_int(request, "offset", 0, ENTRY_RANGE)
    limit = query_int(request, "limit", DEFAULT_PAGE, ENTRY_RANGE)
    actions = await request.app[log].recent(offset, limit)
    return json_response({"offset": offset, "actions": actions})


@routes.get("/api/admin/audit")
@operation(
    "the record of operator actions, newest first",
    {200: Document},
    query=PAGE,
    tag="operators",
)
async def list_actions(request: web.Request) -> web.Response:
    return await _listed(request, ACTION_LOG)


@routes.get("/api/admin/audit/agents")
@operation(
    "the record of call-center agent actions, newest first",
    {200: Document},
    query=PAGE,
    tag="operators",
)
async def list_agent_actions(request: web.Request) -> web.Response:
    return await _listed(request, AGENT_LOG)
