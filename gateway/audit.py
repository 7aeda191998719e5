"""Operator route: what is needed to audit a room's opening lottery, and the order itself.

The pre-queue order is a pure function of the seed recorded at opening and the
pre-queue size frozen at that instant (see ``waitingroom.lottery`` for the exact
procedure). This route returns both, the opening time, the algorithm in words,
and a page of the order: ``positions[i]`` is the 1-based place of pre ticket
``offset + i + 1``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.admin import require_operator
from gateway.bounds import bound
from gateway.contracts import PAGE_QUERY, Document, operation
from gateway.errors import Code
from gateway.http import json_response, query_int
from gateway.rooms import iso_s, room_view

ALGORITHM = (
    "Python random.Random(seed) with seed the hex string as given; order = list(range(n)); "
    "for i from n-1 down to 1: j = rng.randrange(i + 1); swap order[i] and order[j]. "
    "Pre ticket k (1-based) stands at position order[k-1] + 1; tickets issued after the "
    "opening follow in arrival order at positions n + 1, n + 2, ..."
)

routes = web.RouteTableDef()


@routes.get("/api/admin/rooms/{room}/audit")
@operation(
    "the opening lottery's seed, pre-queue size, algorithm and a page of the order",
    {200: Document},
    Code.UNKNOWN_ROOM,
    query=PAGE_QUERY,
    tag="operators",
)
async def room_audit(request: web.Request) -> web.Response:
    gw = require_operator(request)
    view = await room_view(gw, request.match_info["room"])
    snap = view.snap
    offset = query_int(request, "offset", 0, bound("offset"))
    limit = query_int(request, "limit", 1000, bound("limit"))
    body: dict[str, Any] = {
        "room": snap.config.name,
        "opened": snap.opened,
        "opened_at": iso_s(snap.opened_at_s),
        "opened_at_s": snap.opened_at_s,
        "seed": snap.seed,
        "prequeue_size": snap.prequeue_size,
        "post_count": snap.post_count,
        "algorithm": ALGORITHM,
        "offset": offset,
        "positions": None,
    }
    if view.order is not None:
        body["positions"] = [p + 1 for p in view.order[offset : offset + limit]]
    return json_response(body)
