"""HTTP errors as JSON: ``{"error": {"code": ..., "message": ...}}``, never an HTML page."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from aiohttp import web
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from schemas import SchemaError
from waitingroom.errors import StateUnavailable

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An answer other than success, with its HTTP status and a machine-readable code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extra = extra or {}


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


_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    400: "bad_request",
}


ANSWERED = (ApiError, SchemaError, RedisError, KafkaError, StateUnavailable, web.HTTPException)


def error_answer(request: web.Request, e: Exception) -> web.Response:
    """The JSON answer for one of the ``ANSWERED`` failures, raised serving ``request``.

    Re-raises an HTTPException below 400 (a redirect is an answer, not a failure).
    """
    if isinstance(e, ApiError):
        return error_response(e.status, e.code, e.message, e.headers, e.extra)
    if isinstance(e, SchemaError):
        return error_response(400, e.code, e.message)
    if isinstance(e, RedisError | KafkaError | StateUnavailable):
        logger.warning("backend unavailable on %s %s: %r", request.method, request.path, e)
        return error_response(
            503, "unavailable", "a backend is unavailable; try again shortly", {"Retry-After": "2"}
        )
    if isinstance(e, web.HTTPException) and e.status >= 400:
        code = _HTTP_CODES.get(e.status, "http_error")
        allow = {"Allow": e.headers["Allow"]} if "Allow" in e.headers else None
        return error_response(e.status, code, e.reason, allow)
    raise e


def internal_error() -> web.Response:
    """The answer to a failure nobody expected (log it where it is caught)."""
    return error_response(500, "internal", "internal error; it has been logged")
