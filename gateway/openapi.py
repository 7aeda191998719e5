"""The OpenAPI 3.1 document of the gateway's HTTP API (tested against the router)."""

from __future__ import annotations

from functools import cache
from typing import Any

from gateway import bounds
from schemas.fields import TIMES_OF_DAY
from waitingroom.rooms import LANGUAGES

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


MESSAGE = _obj(
    {
        "de": {"type": ["string", "null"], "minLength": 1, "maxLength": 500},
        "en": {"type": ["string", "null"], "minLength": 1, "maxLength": 500},
    }
)
STATUS = _obj(
    {
        "room": STR,
        "ticket": STR,
        "state": {"enum": ["prequeue", "waiting", "admitted", "turn_passed", "sold_out", "closed"]},
        "position": {"type": ["integer", "null"]},
        "eta_s": NULL_NUM,
        "chance": {"enum": ["likely", "unlikely", "none", None]},
        "booking_token": STR,
        "waitlist": {"type": "string", "description": "when sold out: where to join the waitlist"},
        "join": {"type": "string", "description": "when the turn passed: where to join again"},
        "message": {"oneOf": [MESSAGE, {"type": "null"}]},
    },
    ["room", "ticket", "state", "position", "eta_s", "chance", "message"],
)
APPOINTMENT = _obj({"dose": INT, "center": STR, "center_name": STR, "vaccine": STR, "start": STR})
BOOKING_STATES = ["pending", "held", "confirmed", "rejected", "expired", "cancelled", "waitlisted"]
BOOKING = _obj(
    {
        "booking_id": STR,
        "campaign": {**NULL_STR, "description": "null until the allocator has answered"},
        "state": {"enum": BOOKING_STATES},
        "appointments": {"type": "array", "items": APPOINTMENT},
        "hold_expires_at": NULL_STR,
        "reason": NULL_STR,
        "offered": {"type": "boolean", "description": "the pair came from the waitlist"},
        "moves": INT,
    },
    [
        "booking_id",
        "campaign",
        "state",
        "appointments",
        "hold_expires_at",
        "reason",
        "offered",
        "moves",
    ],
)
DATE = {"type": "string", "format": "date"}
TIME_OF_DAY = {"enum": list(TIMES_OF_DAY)}
WISH = {"county": STR, "center": STR, "earliest": DATE, "time_of_day": TIME_OF_DAY}
MOVE = _obj(WISH)  # no county: the center's, else the booking's own
WAITLIST_FLAG = {"waitlist": {"type": "boolean", "description": "wait for an offer if none"}}
POW = _obj(
    {"challenge": STR, "solution": {"type": ["string", "integer"]}}, ["challenge", "solution"]
)
CHALLENGE = _obj(
    {
        "room": STR,
        "required": {"type": "boolean"},
        "difficulty": INT,
        "challenge": STR,
        "expires_in_s": NUM,
        "algorithm": STR,
    },
    ["room", "required", "difficulty", "challenge", "expires_in_s", "algorithm"],
)
ADMISSION = {
    "rate_per_s": bounds.schema("rate_per_s"),
    "max_active": bounds.schema("max_active"),
    "ramp_s": bounds.schema("ramp_s"),
    "admission_mode": {"enum": ["manual", "auto"]},
    "pow_difficulty": bounds.schema("pow_difficulty"),
}
ROOM_STATS = {"type": "object", "description": "room counters and inventory per county"}
CONFIRM = _obj(
    {
        "identity_key": {
            "type": "string",
            "description": "optional, e.g. an insurance number: one pair per key and campaign"
            " (409 already_booked while another booking holds it, whose id is not shown);"
            " case, spaces and dashes do not matter, 4 to 64 characters without them"
            " (else 400 invalid_identity_key); only its keyed hash is kept (400"
            " identity_keys_off where the service has no FAIRQ_IDENTITY_SECRET); required"
            " (else 400 identity_key_required) where the campaign says identity_key: required",
        }
    }
)
ONE_PAIR = (
    "; 409 already_booked when the person (access code or ticket) holds or has a pair"
    " of the campaign already, in any county"
)
ANY_OBJ = {"type": "object"}
DAY_ROW = _obj(
    {
        "center": STR,
        "day": DATE,
        "capacity": INT,
        "free": {**INT, "description": "places anybody may take, in slots not started"},
        "held": {**INT, "description": "places of held pairs"},
        "confirmed": {**INT, "description": "places of confirmed pairs"},
        "reserved": {**INT, "description": "free places held back for priority groups"},
    },
    ["center", "day", "capacity", "free", "held", "confirmed", "reserved"],
)
DAILY = _obj(
    {
        "campaign": STR,
        "asked": INT,
        "answered": INT,
        "missing": {"type": "array", "items": STR, "description": "counties not answered yet"},
        "counties": {
            "type": "object",
            "additionalProperties": _obj(
                {
                    "at": {"type": "string", "format": "date-time"},
                    "reason": NULL_STR,
                    "centers": {"type": "array", "items": DAY_ROW},
                },
                ["at", "reason", "centers"],
            ),
        },
    },
    ["campaign", "asked", "answered", "missing", "counties"],
)


def _query(op: dict[str, Any], *fields: str) -> dict[str, Any]:
    """``op`` with the bounded integer query parameters ``fields``."""
    op["parameters"] = [
        {"name": field, "in": "query", "required": False, "schema": bounds.schema(field)}
        for field in fields
    ]
    return op


def _county_query(op: dict[str, Any]) -> dict[str, Any]:
    """``op`` with the optional ``county`` query parameter (one county; all when absent)."""
    op["parameters"] = [{"name": "county", "in": "query", "required": False, "schema": STR}]
    return op


def _optional_body(op: dict[str, Any]) -> dict[str, Any]:
    op["requestBody"]["required"] = False
    return op


def _callcenter_paths() -> dict[str, Any]:
    booking = "/api/callcenter/bookings/{booking_id}"
    return {
        "/callcenter": {
            "get": _op("the call-center screen (HTML)", {"200": ("page", STR)}, media="text/html")
        },
        **_session_paths("/api/agent/session", "agent", {"key": STR}),
        "/api/callcenter/campaigns": {
            "get": _op(
                "the campaigns of the rooms, with their counties, centers and vaccines",
                {"200": ("campaigns", ANY_OBJ)},
                (401, 403),
                None,
                "agent",
            )
        },
        "/api/callcenter/campaigns/{campaign}/bookings": {
            "post": _op(
                "book a pair for a caller with their access code"
                + ONE_PAIR
                + " (the error names that booking: booking_id)",
                {"201": ("answered", BOOKING), "202": ("no answer yet", BOOKING)},
                (400, 401, 403, 404, 409, 503),
                _obj({"access_code": STR, **WISH, **WAITLIST_FLAG}, ["access_code", "county"]),
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
        f"{booking}/confirm": {
            "post": _optional_body(
                _op(
                    "confirm a booking for a caller, optionally with their identity key",
                    {"200": ("confirmed", BOOKING), "202": ("no answer yet", BOOKING)},
                    (400, 401, 403, 404, 409, 503),
                    CONFIRM,
                    "agent",
                )
            )
        },
        f"{booking}/cancel": {
            "post": _op(
                "cancel a booking for a caller",
                {"200": ("cancel", BOOKING), "202": ("no answer yet", BOOKING)},
                (401, 403, 404, 409, 503),
                None,
                "agent",
            )
        },
        f"{booking}/move": {
            "post": _op(
                "move a booking for a caller to another pair, in any county, atomically",
                {"200": ("moved", BOOKING), "202": ("no answer yet", BOOKING)},
                (400, 401, 403, 404, 409, 503),
                MOVE,
                "agent",
            )
        },
    }


def _session_paths(path: str, role: str, fields: dict[str, Any]) -> dict[str, Any]:
    """A role's sign-in, am-I-signed-in and sign-out (``gateway.sessions``)."""
    return {
        path: {
            "post": _op(
                f"sign in with the {role} key: sets the session cookie, returns the CSRF token"
                " (429 after too many failed sign-ins from this address)",
                {"200": ("signed in", ANY_OBJ)},
                (400, 403, 429),
                _obj(fields, list(fields)),
            ),
            "get": _op("whether this browser is signed in", {"200": ("session", ANY_OBJ)}),
            "delete": _op(
                "sign out (X-CSRF-Token): the session ends on every gateway",
                {"200": ("signed out", ANY_OBJ)},
                (401, 403),
            ),
        }
    }


def _console_paths() -> dict[str, Any]:
    """The operator console's page, files and session, and the operator routes it adds."""
    admin_room = "/api/admin/rooms/{room}"
    return {
        "/operator": {
            "get": _op("the operator console (HTML)", {"200": ("page", STR)}, media="text/html")
        },
        "/assets/{asset}": {
            "get": _op(
                "a file both signed-in screens load: signedin.js, signedin.css",
                {"200": ("file", STR)},
                (404, 503),
                media="text/javascript",
            )
        },
        "/operator/{asset}": {
            "get": _op(
                "a console file: console.js, uplot.js, uplot.css (503 when npm ci was not run)",
                {"200": ("file", STR)},
                (404, 503),
                media="text/javascript",
            )
        },
        **_session_paths("/api/operator/session", "operator", {"key": STR, "name": STR}),
        "/api/admin/overview": {
            "get": _op(
                "every room's settings and live figures",
                {"200": ("rooms", ANY_OBJ)},
                (401, 403),
                None,
                "operator",
            )
        },
        "/api/admin/overview/events": {
            "get": _op(
                "the overview again whenever it changes (server-sent events 'overview')",
                {"200": ("events", STR)},
                (401, 403),
                None,
                "operator",
                sse=True,
            )
        },
        "/api/admin/audit": {
            "get": _op(
                "the record of operator actions, newest first (?offset=&limit=)",
                {"200": ("actions", ANY_OBJ)},
                (400, 401, 403),
                None,
                "operator",
            )
        },
        "/api/admin/audit/agents": {
            "get": _op(
                "the record of call-center agent actions, newest first (?offset=&limit=)",
                {"200": ("actions", ANY_OBJ)},
                (400, 401, 403),
                None,
                "operator",
            )
        },
        "/api/admin/system": {
            "get": _op(
                "allocator lag and snapshots per partition, admitter leader per room",
                {"200": ("system", ANY_OBJ)},
                (401, 403),
                None,
                "operator",
            )
        },
        "/api/admin/campaigns/{campaign}/overview": {
            "get": _op(
                "inventory per county, reserves and deliveries",
                {"200": ("campaign", ANY_OBJ)},
                (401, 403, 404),
                None,
                "operator",
            )
        },
        "/api/admin/campaigns/{campaign}/inventory/daily": {
            "get": _county_query(
                _op(
                    "places per county, center and day (capacity, free, held, confirmed,"
                    " reserved), asked of the allocator; 202 with the counties still missing"
                    " when it is slow",
                    {"200": ("every county answered", DAILY), "202": ("some missing", DAILY)},
                    (400, 401, 403, 404, 503),
                    None,
                    "operator",
                )
            )
        },
        f"{admin_room}/history": {
            "get": _op(
                "the room's last hour as columns (t, queue_depth, arrivals_per_s, ...)",
                {"200": ("history", ANY_OBJ)},
                (401, 403, 404),
                None,
                "operator",
            )
        },
    }


def _paths() -> dict[str, Any]:
    room_p = "/api/rooms/{room}"
    admin_room = "/api/admin/rooms/{room}"
    return {
        "/livez": {"get": _op("liveness: the process serves", {"200": ("live", ANY_OBJ)})},
        "/healthz": {"get": _op("the earlier name of /livez", {"200": ("live", ANY_OBJ)})},
        "/readyz": {
            "get": _op(
                "readiness: Redis and the broker answer and the booking views are loaded;"
                " 503 not_ready names the failing checks",
                {"200": ("ready, with each check", ANY_OBJ)},
                (503,),
            )
        },
        "/metrics": {"get": _op("Prometheus metrics", {"200": ("text format", STR)})},
        "/api/openapi.json": {"get": _op("this document", {"200": ("OpenAPI", ANY_OBJ)})},
        room_p: {"get": _op("public room info", {"200": ("room", ANY_OBJ)}, (404,))},
        f"{room_p}/join": {
            "post": _op(
                "join the room's queue (optional access code); 409 too_early before the"
                " pre-queue opens (opens_prequeue_at), 429 rate_limited with Retry-After,"
                " 429 too_many_attempts (too many wrong access codes from the client or"
                " with the code's prefix) with Retry-After;"
                " when the room asks for proof of work, an anonymous join needs 'pow'"
                " (403 pow_required with challenge_url, pow_invalid, pow_expired)",
                {"200": ("a ticket and its status", STATUS)},
                (400, 403, 404, 409, 429),
                _obj({"access_code": STR, "pow": POW}),
            )
        },
        f"{room_p}/challenge": {
            "get": _op(
                "a signed proof-of-work challenge for a join (stateless, valid expires_in_s)",
                {"200": ("challenge", CHALLENGE)},
                (404,),
            )
        },
        "/rooms/{room}": {
            "get": _op(
                "the waiting-room page (self-contained HTML)",
                {"200": ("HTML", STR)},
                (404,),
                media="text/html",
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
                "status stream (SSE, event 'status'); ticket also as ?ticket= or cookie;"
                " 429 rate_limited, or too_many_streams when the client holds too many",
                {"200": ("stream", STATUS)},
                (401, 403, 404, 429),
                None,
                "ticket",
                sse=True,
            )
        },
        f"{room_p}/bookings": {
            "post": _op(
                "request a paired appointment" + ONE_PAIR,
                {"202": ("accepted", _obj({"booking_id": STR, "state": STR}))},
                (400, 401, 403, 404, 409, 503),
                _obj({**WISH, **WAITLIST_FLAG}, ["county"]),
                "booking_token",
            )
        },
        f"{room_p}/waitlist": {
            "post": _op(
                "join the county's waitlist while the room is sold out (one per ticket)" + ONE_PAIR,
                {
                    "202": (
                        "accepted",
                        _obj({"booking_id": STR, "state": STR, "booking_token": STR}),
                    )
                },
                (400, 401, 403, 404, 409, 503),
                _obj(WISH, ["county"]),
                "ticket",
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
                "booking stream (SSE, event 'booking'); token also as ?token=; 429"
                " too_many_streams when the client holds too many",
                {"200": ("stream", BOOKING)},
                (401, 403, 404, 429),
                None,
                "booking_token",
                sse=True,
            )
        },
        "/api/bookings/{booking_id}/calendar.ics": {
            "get": _op(
                "the confirmed appointments as an iCalendar file (RFC 5545, one event per dose,"
                " start in UTC, the center's address); token also as ?token= (a download"
                " link); ?lang=de|en (default de); 409 not_confirmed before confirmation",
                {"200": ("iCalendar", STR)},
                (400, 401, 403, 404, 409),
                None,
                "booking_token",
                media="text/calendar",
            )
        },
        "/api/bookings/{booking_id}/confirm": {
            "post": _optional_body(
                _op(
                    "confirm a held pair, optionally with an identity key",
                    {"200": ("confirmed", BOOKING), "202": ("no answer yet", BOOKING)},
                    (400, 401, 403, 404, 409, 503),
                    CONFIRM,
                    "booking_token",
                )
            )
        },
        "/api/bookings/{booking_id}/move": {
            "post": _op(
                "move a held or confirmed booking to another pair, in any county, atomically",
                {"200": ("moved", BOOKING), "202": ("no answer yet", BOOKING)},
                (400, 401, 403, 404, 409, 503),
                MOVE,
                "booking_token",
            )
        },
        "/api/bookings/{booking_id}/cancel": {
            "post": _op(
                "cancel a held or confirmed pair, or a place on the waitlist",
                {"200": ("cancelled", BOOKING), "202": ("no answer yet", BOOKING)},
                (401, 403, 404, 409, 503),
                None,
                "booking_token",
            )
        },
        "/api/admin/campaigns/{campaign}": {
            "put": _op(
                "create a campaign with its inventory (the same document again: a retry)",
                {
                    "201": ("created", ANY_OBJ),
                    "200": ("sent again: what was missing is loaded", ANY_OBJ),
                    "202": ("sent again, not every answer in yet", ANY_OBJ),
                },
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
                "add inventory (a delivery; with a delivery_id it may be sent again safely)",
                {"200": ("added", ANY_OBJ), "202": ("not every answer in yet", ANY_OBJ)},
                (400, 403, 404, 409, 503),
                _obj(
                    {
                        "schedules": {"type": "array"},
                        "slots": {"type": "array"},
                        "delivery_id": {"type": "string"},
                    }
                ),
                "operator",
            )
        },
        "/api/admin/campaigns/{campaign}/inventory/remove": {
            "post": _op(
                "remove slots (start times) of a center and vaccine, all or none",
                {"200": ("removed", ANY_OBJ), "202": ("no answer yet", ANY_OBJ)},
                (400, 403, 404, 409, 503),
                _obj(
                    {"center": STR, "vaccine": STR, "starts": {"type": "array", "items": STR}},
                    ["center", "vaccine", "starts"],
                ),
                "operator",
            )
        },
        "/api/admin/campaigns/{campaign}/reserves": {
            "post": _op(
                "reserve a share of a center's slots on days for a priority group",
                {"200": ("answered", ANY_OBJ), "202": ("not all answered yet", ANY_OBJ)},
                (400, 403, 404, 503),
                _obj(
                    {
                        "center": STR,
                        "from": DATE,
                        "to": DATE,
                        "group": STR,
                        "share_pct": bounds.schema("share_pct"),
                        "mode": {"enum": ["over_and_above", "minimum_guarantee"]},
                        "release_at": {"type": "string", "format": "date-time"},
                    },
                    ["center", "from", "group", "share_pct", "mode", "release_at"],
                ),
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
        **_console_paths(),
        "/api/admin/campaigns/{campaign}/codes": {
            "post": _op(
                "issue access codes for a group (?format=csv: letters for a mail house)",
                {"201": ("codes (JSON, or CSV with ?format=csv)", ANY_OBJ)},
                (400, 403, 404),
                _obj({"group": STR, "count": bounds.schema("count")}, ["group", "count"]),
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
                        **{
                            field: bounds.schema(field)
                            for field in ("opens_in_s", "hold_s", "admit_window_s", "prequeue_s")
                        },
                        "language": {
                            "enum": sorted(LANGUAGES),
                            "description": "the page's language where the browser asks for neither",
                        },
                        **ADMISSION,
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
                "change admission live: rate, cap on active bookers, ramp at opening,"
                " manual/auto mode, proof-of-work difficulty (only the fields given)",
                {"200": ("room stats", ROOM_STATS)},
                (400, 403, 404),
                _obj(ADMISSION),
                "operator",
            )
        },
        f"{admin_room}/message": {
            "put": _op(
                "the operator's message to the room's visitors, in German and/or English"
                " (1 to 500 characters each; {} clears it): in the room info, the status and"
                " its events; the page shows it in the visitor's language, else the other",
                {
                    "200": (
                        "set",
                        _obj({"room": STR, "message": {"oneOf": [MESSAGE, {"type": "null"}]}}),
                    )
                },
                (400, 403, 404),
                MESSAGE,
                "operator",
            )
        },
        f"{admin_room}/audit": {
            "get": _query(
                _op(
                    "the opening lottery's seed, pre-queue size, algorithm and a page of the order"
                    " (?offset=&limit=)",
                    {"200": ("audit", ANY_OBJ)},
                    (400, 403, 404),
                    None,
                    "operator",
                ),
                "offset",
                "limit",
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
                "operator": bearer
                | {
                    "description": "the operator key; the console's session cookie"
                    " (fairq_operator, with X-CSRF-Token on changes) is taken too"
                },
                "agent": bearer
                | {
                    "description": "an agent key (FAIRQ_AGENT_KEYS) or the operator key; the"
                    " call-center screen's session cookie (fairq_agent, with X-CSRF-Token on"
                    " changes) is taken too"
                },
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
