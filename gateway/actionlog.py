"""The record of operator actions: who did what, when, to what, before and after.

``gateway.operators`` writes one entry per state-changing operator request (any
method but GET/HEAD/OPTIONS under ``/api/admin/``), refused ones included, to a
capped Redis list shared by every gateway (``keys.operator_actions``, newest
first, ``MAX_ENTRIES`` kept). ``GET /api/admin/audit`` lists them for the console.
"""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as aioredis
from aiohttp import web

from gateway.admin import require_operator
from gateway.http import json_response, query_int
from waitingroom import keys

MAX_ENTRIES = 10_000
DEFAULT_PAGE = 100
MAX_BODY_CHARS = 2000  # a bigger request body is recorded by its size and its keys

routes = web.RouteTableDef()


def recorded_body(raw: bytes) -> Any:
    """What the record keeps of a request body: the JSON itself when small."""
    if not raw.strip():
        return None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {"bytes": len(raw), "json": False}
    if len(raw) <= MAX_BODY_CHARS:
        return body
    return {"bytes": len(raw), "keys": sorted(body)[:50] if isinstance(body, dict) else None}


class ActionLog:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis

    async def record(self, entry: dict[str, Any]) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.lpush(keys.operator_actions(), orjson.dumps(entry))
            pipe.ltrim(keys.operator_actions(), 0, MAX_ENTRIES - 1)
            await pipe.execute()

    async def recent(self, offset: int, limit: int) -> list[dict[str, Any]]:
        raw = await self._redis.lrange(keys.operator_actions(), offset, offset + limit - 1)
        return [orjson.loads(r) for r in raw]


ACTION_LOG = web.AppKey("action_log", ActionLog)


@routes.get("/api/admin/audit")
async def list_actions(request: web.Request) -> web.Response:
    require_operator(request)
    offset = query_int(request, "offset", 0, MAX_ENTRIES)
    limit = query_int(request, "limit", DEFAULT_PAGE, MAX_ENTRIES)
    actions = await request.app[ACTION_LOG].recent(offset, limit)
    return json_response({"offset": offset, "actions": actions})
