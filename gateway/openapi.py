"""The OpenAPI 3.1 document of the gateway's HTTP API (tested against the router)."""

from __future__ import annotations

from functools import cache
from typing import Any

ERROR = {"$ref": "#/components/schemas/Error"}
STR = {"type": "string"}
NUM = {"type": "number"}
INT = {"type": "integer"}
NULL_STR = {"type": ["string", "null"]}
NULL_NUM = {"type": ["number", "null"]}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        out["required"] = required
    return out


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _op(
    summary: str,
    ok: dict[str, tuple[str, dict[str, Any]]],
    errors: tuple[int, ...] = (),
    body: dict[str, Any] | None = None,
    security: str | None = None,
    sse: bool = False,
    media: str | None = None,
) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for code, (text, schema) in ok.items():
        media = "text/event-stream" if sse else media
        content = {media: {"schema": STR}} if media else _json(schema)["content"]
        responses[code] = {"description": text, "content": content}
    for status in errors:
        responses[str(status)] = {"description": "error", **_json(ERROR)}
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        op["requestBody"] = {"required": True, **_json(body)}
    if security:
        op["security"] = [{security: []}]
    return op


STATUS = _obj(
    {
        "room": STR,
        "ticket": STR,
        "state": {"enum": ["prequeue", "waiting", "admitted", "sold_out", "closed"]},
        "position": {"type": ["integer", "null"]},
        "eta_s": NULL_NUM,
        "chance": {"enum": ["likely", "unlikely", "none", None]},
        "booking_token": STR,
    },
    ["room", "ticket", "state", "position", "eta_s", "chance"],
)
APPOINTMENT = _obj({"dose": INT, "center": STR, "center_name": STR, "vaccine": STR, "start": STR})
BOOKING = _obj(
    {
        "booking_id": STR,
        "state": {"enum": ["pending", "held", "confirmed", "rejected", "expired", "cancelled"]},
        "appointments": {"type": "array", "items": APPOINTMENT},
        "hold_expires_at": NULL_STR,
        "reason": NULL_STR,
    },
    ["booking_id", "state", "appointments", "hold_expires_at", "reason"],
)
ROOM_STATS = {"type": "object", "description": "room counters and inventory per county"}
ANY_OBJ = {"type": "object"}


def _callcenter_paths() -> dict[str, Any]:
    booking = "/api/callcenter/bookings/{booking_id}"
    wish = {"county": STR, "center": STR, "earliest": {"type": "string", "format": "date"}}
    return {
        "/api/callcenter/campaigns/{campaign}/bookings": {
            "post": _op(
                "book a pair for a caller with their access code",
                {"201": ("answered", BOOKING), "202": ("no answer yet", BOOKING)},
                (400, 401, 403, 404, 503),
                _obj({"access_code": STR, **wish}, ["access_code", "county"]),
                "agent",
            )
        },
        booking: {
            "get": _op(
                "look up any booking by reference",
                {"200": ("booking", BOOKING)},
                (401, 403, 404),
                None,
                "agent",
            )
        },
        **{
            f"{booking}/{action}": {
                "post": _op(
                    f"{action} a booking for a caller",
                    {"200": (action, BOOKING), "202": ("no answer yet", BOOKING)},
                    (401, 403, 404, 409, 503),
                    None,
                    "agent",
                )
            }
            for action in ("confirm", "cancel")
        },
    }


def _paths() -> dict[str, Any]:
    room_p = "/api/rooms/{room}"
    admin_room = "/api/admin/rooms/{room}"
    return {
        "/healthz": {"get": _op("liveness and Redis reachability", {"200": ("ok", ANY_OBJ)})},
        "/metrics": {"get": _op("Prometheus metrics", {"200": ("text format", STR)})},
        "/api/openapi.json": {"get": _op("this document", {"200": ("OpenAPI", ANY_OBJ)})},
        room_p: {"get": _op("public room info", {"200": ("room", ANY_OBJ)}, (404,))},
        f"{room_p}/join": {
            "post": _op(
                "join the room's queue (optional access code); 409 too_early before the"
                " pre-queue opens (opens_prequeue_at), 429 rate_limited with Retry-After",
                {"200": ("a ticket and its status", STATUS)},
                (400, 403, 404, 409, 429),
                _obj({"access_code": STR}),
            )
        },
        f"{room_p}/status": {
            "get": _op(
                "status of a ticket",
                {"200": ("status", STATUS)},
                (401, 403, 404, 429),
                None,
                "ticket",
            )
        },
        f"{room_p}/events": {
            "get": _op(
                "status stream (SSE, event 'status'); ticket also as ?ticket= or cookie",
                {"200": ("stream", STATUS)},
                (401, 403, 404, 429),
                None,
                "ticket",
                sse=True,
            )
        },
        f"{room_p}/bookings": {
            "post": _op(
                "request a paired appointment",
                {"202": ("accepted", _obj({"booking_id": STR, "state": STR}))},
                (400, 401, 403, 404, 409, 503),
                _obj(
                    {
                        "county": STR,
                        "center": STR,
                        "earliest": {"type": "string", "format": "date"},
                    },
                    ["county"],
                ),
                "booking_token",
            )
        },
        "/api/bookings/{booking_id}": {
            "get": _op(
                "booking state",
                {"200": ("booking", BOOKING)},
                (401, 403, 404),
                None,
                "booking_token",
            )
        },
        "/api/bookings/{booking_id}/events": {
            "get": _op(
                "booking stream (SSE, event 'booking'); token also as ?token=",
                {"200": ("stream", BOOKING)},
                (401, 403, 404),
                None,
                "booking_token",
                sse=True,
            )
        },
        "/api/bookings/{booking_id}/confirm": {
            "post": _op(
                "confirm a held pair",
                {"200": ("confirmed", BOOKING), "202": ("no answer yet", BOOKING)},
                (401, 403, 404, 409, 503),
                None,
                "booking_token",
            )
        },
        "/api/bookings/{booking_id}/cancel": {
            "post": _op(
                "cancel a held or confirmed pair",
                {"200": ("cancelled", BOOKING), "202": ("no answer yet", BOOKING)},
                (401, 403, 404, 409, 503),
                None,
                "booking_token",
            )
        },
        "/api/admin/campaigns/{campaign}": {
            "put": _op(
                "create a campaign with its inventory",
                {"201": ("created", ANY_OBJ)},
                (400, 403, 409, 503),
                ANY_OBJ,
                "operator",
            ),
            "get": _op(
                "campaign and inventory per county",
                {"200": ("campaign", ANY_OBJ)},
                (403, 404),
                None,
                "operator",
            ),
        },
        "/api/admin/campaigns/{campaign}/inventory": {
            "post": _op(
                "add inventory (a delivery)",
                {"200": ("added", ANY_OBJ)},
                (400, 403, 404, 503),
                _obj({"schedules": {"type": "array"}, "slots": {"type": "array"}}),
                "operator",
            )
        },
        "/api/admin/campaigns/{campaign}/appointments.csv": {
            "get": _op(
                "confirmed appointments as CSV (query: center, day)",
                {"200": ("CSV", STR)},
                (400, 403, 404),
                None,
                "operator",
                media="text/csv",
            )
        },
        **_callcenter_paths(),
        "/api/admin/campaigns/{campaign}/codes": {
            "post": _op(
                "issue access codes for a group (?format=csv: letters for a mail house)",
                {"201": ("codes (JSON, or CSV with ?format=csv)", ANY_OBJ)},
                (400, 403, 404),
                _obj({"group": STR, "count": INT}, ["group", "count"]),
                "operator",
            )
        },
        admin_room: {
            "put": _op(
                "create or change a room",
                {"200": ("changed", ROOM_STATS), "201": ("created", ROOM_STATS)},
                (400, 403, 404),
                _obj(
                    {
                        "campaign": STR,
                        "opens_at": STR,
                        "opens_in_s": NUM,
                        "rate_per_s": NUM,
                        "max_active": INT,
                        "hold_s": INT,
                        "admit_window_s": INT,
                        "prequeue_s": INT,
                    }
                ),
                "operator",
            )
        },
        **{
            f"{admin_room}/{action}": {
                "post": _op(
                    f"{action} the room",
                    {"200": ("room stats", ROOM_STATS)},
                    (403, 404),
                    None,
                    "operator",
                )
            }
            for action in ("open", "pause", "resume", "close")
        },
        f"{admin_room}/admission": {
            "put": _op(
                "set admission rate and cap on active bookers",
                {"200": ("room stats", ROOM_STATS)},
                (400, 403, 404),
                _obj({"rate_per_s": NUM, "max_active": INT}),
                "operator",
            )
        },
        f"{admin_room}/audit": {
            "get": _op(
                "the opening lottery's seed, pre-queue size, algorithm and a page of the order"
                " (?offset=&limit=, limit <= 10000)",
                {"200": ("audit", ANY_OBJ)},
                (400, 403, 404),
                None,
                "operator",
            )
        },
        f"{admin_room}/stats": {
            "get": _op(
                "room stats", {"200": ("room stats", ROOM_STATS)}, (403, 404), None, "operator"
            )
        },
    }


@cache
def openapi_document() -> dict[str, Any]:
    bearer = {"type": "http", "scheme": "bearer"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "fairq gateway", "version": "0.1.0"},
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "ticket": bearer,
                "booking_token": bearer,
                "operator": bearer,
                "agent": bearer,
            },
            "schemas": {
                "Error": _obj(
                    {
                        "error": {
                            "type": "object",
                            "properties": {"code": STR, "message": STR},
                            "required": ["code", "message"],
                        }
                    },
                    ["error"],
                )
            },
        },
    }
