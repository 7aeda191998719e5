"""HTTP errors as JSON: ``{"error": {"code": ..., "message": ...}}``, never an HTML page.

``Code`` is the catalogue of every code the gateway answers with, each with its HTTP
status and what it means, written once: ``ApiError`` takes a ``Code`` (its status comes
from there), the front door's answers use it, and the OpenAPI document
(``gateway.openapi``) derives each operation's error responses from the codes the
operation declares (``gateway.contracts``). A booking, confirm, cancel or move the
allocator refuses is answered 409 with the allocator's reason as its code
(``refused``): those reasons are the allocator's catalogue (``schemas.events.REASONS``).
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any

import orjson
from aiohttp import web
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from schemas import SchemaError
from waitingroom.errors import StateUnavailable

logger = logging.getLogger(__name__)


class Code(StrEnum):
    """An error code of the HTTP API, with its HTTP ``status`` and what it ``means``."""

    status: int
    means: str

    def __new__(cls, code: str, status: int, means: str) -> Code:
        member = str.__new__(cls, code)
        member._value_ = code
        member.status = status
        member.means = means
        return member

    # 400: the request is not what the route takes
    INVALID_REQUEST = (
        "invalid_request",
        400,
        "a field of the body, or a query or path parameter, is not what the route takes;"
        " the message names it",
    )
    INVALID_JSON = "invalid_json", 400, "the body is not a JSON object"
    BAD_REQUEST = "bad_request", 400, "the HTTP request is malformed"
    UNKNOWN_COUNTY = "unknown_county", 400, "the campaign books no such county"
    UNKNOWN_CENTER = "unknown_center", 400, "the campaign has no such center"
    CENTER_NOT_IN_COUNTY = "center_not_in_county", 400, "the center is in another county"
    INVALID_IDENTITY_KEY = "invalid_identity_key", 400, "the identity key is too short or long"
    IDENTITY_KEYS_OFF = "identity_keys_off", 400, "this service takes no identity keys"
    IDENTITY_KEY_REQUIRED = (
        "identity_key_required",
        400,
        "the campaign confirms only with the person's identity key",
    )
    # 401: no credential, or one that is not (or no longer) valid
    UNAUTHORIZED = "unauthorized", 401, "a bearer token (or key) is required"
    INVALID_TICKET = "invalid_ticket", 401, "the ticket is not valid"
    TICKET_EXPIRED = "ticket_expired", 401, "the ticket has expired; join again"
    INVALID_TOKEN = "invalid_token", 401, "the booking token is not valid"
    TOKEN_EXPIRED = "token_expired", 401, "the booking token has expired"
    NOT_SIGNED_IN = "not_signed_in", 401, "the session cookie is not valid"
    SESSION_EXPIRED = "session_expired", 401, "the session has expired"
    SESSION_ENDED = "session_ended", 401, "the session was ended, or its key changed"
    # 403: a valid credential that may not do this
    FORBIDDEN = "forbidden", 403, "the key is not valid"
    WRONG_ROOM = "wrong_room", 403, "the ticket or token belongs to another room"
    NOT_YOUR_BOOKING = "not_your_booking", 403, "the token did not make that booking"
    INVALID_ACCESS_CODE = "invalid_access_code", 403, "the access code is not valid"
    POW_REQUIRED = "pow_required", 403, "the room asks anonymous joins for a proof of work"
    POW_INVALID = "pow_invalid", 403, "the proof of work is not valid (or was used)"
    POW_EXPIRED = "pow_expired", 403, "the proof-of-work challenge has expired"
    CROSS_ORIGIN = "cross_origin", 403, "a signed-in change from another origin"
    CSRF_TOKEN_MISSING = "csrf_token_missing", 403, "a signed-in change without X-CSRF-Token"
    # 404
    NOT_FOUND = "not_found", 404, "no such path or file"
    UNKNOWN_ROOM = "unknown_room", 404, "there is no such room"
    UNKNOWN_CAMPAIGN = "unknown_campaign", 404, "there is no such campaign"
    UNKNOWN_BOOKING = "unknown_booking", 404, "there is no such booking"
    # 405, 413
    METHOD_NOT_ALLOWED = "method_not_allowed", 405, "the path takes other methods (Allow)"
    PAYLOAD_TOO_LARGE = "payload_too_large", 413, "the body is larger than the gateway takes"
    # 409: the state does not allow it (now)
    TOO_EARLY = "too_early", 409, "the room's queue is not open yet (opens_prequeue_at)"
    ROOM_CLOSED = "room_closed", 409, "the room is closed"
    NOT_ADMITTED = "not_admitted", 409, "the ticket has no place on the timeline yet"
    ADMISSION_LAPSED = "admission_lapsed", 409, "the turn passed without a booking"
    TOKEN_USED = "token_used", 409, "the booking token has made its booking already"
    ALREADY_WAITING = "already_waiting", 409, "the ticket is on the waitlist already"
    ALREADY_BOOKED = "already_booked", 409, "the person holds or has a pair of the campaign"
    NOT_SOLD_OUT = "not_sold_out", 409, "the room is not sold out: no waitlist yet"
    PENDING = "pending", 409, "the booking has no answer from the allocator yet"
    NOT_HELD = "not_held", 409, "only a held booking can be confirmed"
    NOT_CANCELLABLE = "not_cancellable", 409, "the booking cannot be cancelled in its state"
    NOT_MOVABLE = "not_movable", 409, "only a held or confirmed booking can be moved"
    NOT_CONFIRMED = "not_confirmed", 409, "only confirmed appointments go into a calendar"
    CAMPAIGN_EXISTS = "campaign_exists", 409, "another campaign document has that name"
    DELIVERY_ID_REUSED = "delivery_id_reused", 409, "the delivery id came with other slots"
    REFUSED = (
        "refused",
        409,
        "the allocator refused the command: the code is its reason (schemas.events.REASONS)",
    )
    # 429: a limit per client
    RATE_LIMITED = "rate_limited", 429, "too many requests from this client (Retry-After)"
    TOO_MANY_ATTEMPTS = "too_many_attempts", 429, "too many wrong access codes (Retry-After)"
    TOO_MANY_STREAMS = "too_many_streams", 429, "the client holds too many event streams"
    TOO_MANY_SIGN_INS = "too_many_sign_ins", 429, "too many failed sign-ins from the address"
    # 5xx
    INTERNAL = "internal", 500, "an unexpected failure (logged)"
    UNAVAILABLE = "unavailable", 503, "a backend is unavailable; try again (Retry-After)"
    IN_DOUBT = "in_doubt", 503, "sent, not yet confirmed by the log; it may still be made"
    NOT_READY = "not_ready", 503, "a check of the readiness probe fails (the message names it)"
    ASSET_MISSING = "asset_missing", 503, "a file of the page is missing (npm ci not run)"
    HTTP_ERROR = "http_error", 400, "another HTTP error (its status as given)"


CODES: dict[str, Code] = {c.value: c for c in Code}


class ApiError(Exception):
    """An answer other than success: its ``Code`` (which gives the HTTP status), words,
    and the body's extra fields. ``wire_code`` replaces the code in the body (only for
    ``Code.REFUSED``, whose code is the allocator's reason)."""

    def __init__(
        self,
        code: Code,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
        wire_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = code.status
        self.code: str = wire_code or code.value
        self.message = message
        self.headers = headers or {}
        self.extra = extra or {}


def refused(reason: str, message: str, extra: dict[str, Any] | None = None) -> ApiError:
    """The 409 for a command the allocator refused, its reason as the code."""
    return ApiError(Code.REFUSED, message, extra=extra, wire_code=reason)


def error_response(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> web.Response:
    body: dict[str, Any] = {"error": {"code": code, "message": message, **(extra or {})}}
    return web.Response(
        status=status,
        body=orjson.dumps(body),
        content_type="application/json",
        headers=headers,
    )


# aiohttp's own refusals, by status (any other: HTTP_ERROR)
HTTP_CODES = {
    c.status: c
    for c in (Code.NOT_FOUND, Code.METHOD_NOT_ALLOWED, Code.PAYLOAD_TOO_LARGE, Code.BAD_REQUEST)
}


ANSWERED = (ApiError, SchemaError, RedisError, KafkaError, StateUnavailable, web.HTTPException)


def error_answer(request: web.Request, e: Exception) -> web.Response:
    """The JSON answer for one of the ``ANSWERED`` failures, raised serving ``request``.

    Re-raises an HTTPException below 400 (a redirect is an answer, not a failure).
    """
    if isinstance(e, ApiError):
        return error_response(e.status, e.code, e.message, e.headers, e.extra)
    if isinstance(e, SchemaError):
        code = CODES.get(e.code, Code.INVALID_REQUEST)
        return error_response(code.status, e.code, e.message)
    if isinstance(e, RedisError | KafkaError | StateUnavailable):
        logger.warning("backend unavailable on %s %s: %r", request.method, request.path, e)
        return error_response(
            Code.UNAVAILABLE.status,
            Code.UNAVAILABLE,
            "a backend is unavailable; try again shortly",
            {"Retry-After": "2"},
        )
    if isinstance(e, web.HTTPException) and e.status >= 400:
        code = HTTP_CODES.get(e.status, Code.HTTP_ERROR)
        allow = {"Allow": e.headers["Allow"]} if "Allow" in e.headers else None
        return error_response(e.status, code, e.reason, allow)
    raise e


def internal_error() -> web.Response:
    """The answer to a failure nobody expected (log it where it is caught)."""
    return error_response(Code.INTERNAL.status, Code.INTERNAL, "internal error; it has been logged")
