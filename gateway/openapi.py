"""The OpenAPI 3.1 document of the gateway's HTTP API, generated from the router.

Every route's handler carries its contract (``gateway.contracts.operation``); the
document is made from the routes the app has, their path parameters, those contracts
and the bodies' msgspec Structs (``msgspec.json.schema_components``), and the error
catalogue (``gateway.errors.Code``): each error status lists the codes the route can
answer with, in its schema too, so an answer with another code does not conform. A
route without a contract stops the app from being made. ``/api/reference`` is the
same document as a page (``gateway.reference``).
"""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import msgspec
import orjson
from aiohttp import web

from gateway import reference
from gateway.contracts import (
    EVENTS,
    OPERATIONS,
    TICKET_IN_COOKIE,
    TICKET_IN_QUERY,
    TOKEN_IN_QUERY,
    Document,
    Ident,
    Media,
    Name,
    Operation,
    Query,
    operation,
)
from gateway.errors import Code
from gateway.frontdoor import FRONT_DOOR, Access, add_routes
from gateway.ratelimit import LIMITED_ROUTES, STREAM_ROUTES
from gateway.sessions import AGENT, OPERATOR
from schemas.events import REASONS

VERSION = "0.1.0"
REF = "#/components/schemas/{name}"
# every path parameter's type, by name
PATH_PARAMS: dict[str, Any] = {"room": Ident, "campaign": Ident, "booking_id": Name, "asset": Name}
_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")
SKIPPED_METHODS = {"HEAD"}  # aiohttp adds HEAD to every GET

BEARER = {"type": "http", "scheme": "bearer"}
SECURITY_SCHEMES = {
    "ticket": BEARER
    | {
        "description": f"the ticket a join gives; also as ?{TICKET_IN_QUERY.name}= or the"
        f" {TICKET_IN_COOKIE.name} cookie"
    },
    "booking_token": BEARER
    | {
        "description": "the booking token an admitted status gives; also as"
        f" ?{TOKEN_IN_QUERY.name}="
    },
    "operator": BEARER
    | {
        "description": f"the operator key; the console's session cookie ({OPERATOR.cookie},"
        " with X-CSRF-Token on changes) is taken too"
    },
    "agent": BEARER
    | {
        "description": "an agent key (FAIRQ_AGENT_KEYS) or the operator key; the call-center"
        f" screen's session cookie ({AGENT.cookie}, with X-CSRF-Token on changes) is taken too"
    },
}

SECURITY_SCHEMES |= {
    way.scheme: {"type": "apiKey", "in": way.place, "name": way.name}
    for way in (TICKET_IN_QUERY, TICKET_IN_COOKIE, TOKEN_IN_QUERY)
} | {
    f"{role.name}_session": {
        "type": "apiKey",
        "in": "cookie",
        "name": role.cookie,
        "description": f"the {screen}'s session (with X-CSRF-Token on changes)",
    }
    for role, screen in ((OPERATOR, "console"), (AGENT, "call-center screen"))
}
TEXT = {"type": "string"}
# one server-sent event: its name, and its data (the JSON of the route's document)
EVENT = {
    "type": "object",
    "properties": {"event": TEXT, "data": TEXT, "id": TEXT, "retry": {"type": "integer"}},
}
OPENAPI_JSON: web.AppKey[bytes] = web.AppKey("openapi_json", bytes)
routes = web.RouteTableDef()


@routes.get("/api/openapi.json")
@operation("this document", {200: Document}, backend=False, tag="documents")
async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI_JSON], content_type="application/json")


def install(app: web.Application) -> None:
    """Add the document's routes and make the document and its page (after every
    other route is added)."""
    add_routes(app, routes, Access.PUBLIC)
    add_routes(app, reference.routes, Access.PUBLIC)
    document = openapi_document(app.router, app[FRONT_DOOR].access_of)
    app[OPENAPI_JSON] = orjson.dumps(document)
    reference.install(app, document)


def route_operations(
    router: web.UrlDispatcher, access_of: Callable[[web.AbstractRoute], Access]
) -> list[tuple[str, str, Operation]]:
    """(method, canonical path, contract) of every route; a route without one raises.
    An operator's or agent's route takes its credential from who may call it, as the
    front door declares it (``gateway.frontdoor.add_routes``), not from its contract."""
    found = []
    for route in router.routes():
        if route.method in SKIPPED_METHODS or route.resource is None:
            continue
        op = OPERATIONS.get(route.handler)
        path = route.resource.canonical
        if op is None:
            raise LookupError(f"{route.method} {path} has no contract (gateway.contracts)")
        access = access_of(route)
        if access is not Access.PUBLIC:
            op = dataclasses.replace(op, security=access.value)
        found.append((route.method, path, op))
    return found


def path_params(path: str) -> list[str]:
    return _PARAM.findall(path)


def error_codes(method: str, path: str, op: Operation) -> tuple[Code, ...]:
    """The contract's codes, and those of the per-client limits on the route."""
    codes = list(op.codes())
    if (method, path) in LIMITED_ROUTES:
        codes.append(Code.RATE_LIMITED)
    if (method, path) in STREAM_ROUTES:
        codes.append(Code.TOO_MANY_STREAMS)
    return tuple(dict.fromkeys(codes))


def openapi_document(
    router: web.UrlDispatcher, access_of: Callable[[web.AbstractRoute], Access]
) -> dict[str, Any]:
    ops = route_operations(router, access_of)
    types: list[Any] = []
    for _, _, op in ops:
        if op.body is not None:
            types.append(op.body)
        types += [
            t for answer in op.ok.values() for t in _kinds(answer) if not isinstance(t, Media)
        ]
        types += [q.type for q in op.query]
    types += list(PATH_PARAMS.values())
    schemas, components = msgspec.json.schema_components(types, ref_template=REF)
    schema_of = dict(zip(map(_key, types), schemas, strict=True))
    for op_type in {op.body for _, _, op in ops if op.body is not None}:
        extra = getattr(op_type, "JSON_SCHEMA", None)
        if extra:
            components[op_type.__name__] |= extra
    paths: dict[str, dict[str, Any]] = defaultdict(dict)
    for method, path, op in ops:
        paths[_openapi_path(path)][method.lower()] = _operation(
            method, path, op, schema_of, _operation_id(method, path)
        )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "fairq gateway",
            "version": VERSION,
            "description": "The HTTP API of fairq's gateway: the waiting room, bookings, the"
            " call center and the operators' routes. Every error is JSON"
            ' {"error": {"code", "message"}}; the codes of each answer are listed with it.',
        },
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": components, "securitySchemes": SECURITY_SCHEMES},
    }


def _key(t: Any) -> str:
    return repr(t)


def _openapi_path(path: str) -> str:
    """aiohttp's ``{name:regex}`` as OpenAPI's ``{name}``."""
    return _PARAM.sub(lambda m: "{" + m.group(1) + "}", path)


def _operation_id(method: str, path: str) -> str:
    words = re.sub(r"[^a-zA-Z0-9]+", "_", _openapi_path(path)).strip("_")
    return f"{method.lower()}_{words}"


def _operation(
    method: str, path: str, op: Operation, schema_of: dict[str, Any], op_id: str
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "operationId": op_id,
        "summary": op.summary,
        "tags": [op.tag],
    }
    params = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": schema_of[_key(PATH_PARAMS[name])],
        }
        for name in path_params(path)
    ]
    params += [_query(q, schema_of) for q in op.query]
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": schema_of[_key(op.body)]}},
        }
    if op.security is not None:
        out["security"] = [{scheme: []} for scheme in op.credentials()]
    responses: dict[str, Any] = {}
    for status, answer in sorted(op.ok.items()):
        responses[str(status)] = _answer(answer, schema_of)
    by_status: dict[int, list[Code]] = defaultdict(list)
    for code in error_codes(method, path, op):
        by_status[code.status].append(code)
    for status, codes in sorted(by_status.items()):
        responses[str(status)] = _errors(codes)
    out["responses"] = responses
    return out


def _query(q: Query, schema_of: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": q.name,
        "in": "query",
        "required": False,
        "description": q.what,
        "schema": schema_of[_key(q.type)],
    }


def _kinds(answer: Any) -> tuple[Any, ...]:
    """An answer's kinds: a tuple of them, or one."""
    return answer if isinstance(answer, tuple) else (answer,)


def _answer(answer: Any, schema_of: dict[str, Any]) -> dict[str, Any]:
    content: dict[str, Any] = {}
    names = []
    for kind in _kinds(answer):
        if isinstance(kind, Media):
            for media in (kind.type, *kind.also):
                content[media] = {"schema": EVENT if media == EVENTS.type else TEXT}
                names.append(media)
        else:
            content["application/json"] = {"schema": schema_of[_key(kind)]}
            names.append(getattr(kind, "__name__", "a JSON document"))
    return {"description": " or ".join(names), "content": content}


def _errors(codes: list[Code]) -> dict[str, Any]:
    """An error status's answer: its codes in words and as the schema's enum."""
    wire: list[str] = []
    for code in codes:
        wire += sorted(REASONS) if code is Code.REFUSED else [code.value]
    detail = {
        "type": "object",
        "properties": {"code": {"enum": wire}, "message": {"type": "string"}},
        "required": ["code", "message"],
    }
    return {
        "description": "\n".join(f"{c.value}: {c.means}" for c in codes),
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"error": detail},
                    "required": ["error"],
                }
            }
        },
    }


__all__ = ["OPENAPI_JSON", "install", "openapi_document"]
