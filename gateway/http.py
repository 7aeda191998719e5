"""Small request/response helpers shared by the gateway's route modules."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec
import orjson
from aiohttp import hdrs, web
from multidict import CIMultiDict

from gateway.bounds import OPERATOR_NUMBERS
from gateway.contracts import Body, Elsewhere, check_bounds
from gateway.errors import ApiError, Code
from schemas import SchemaError
from schemas.fields import Bound

_JSON_HEADERS: CIMultiDict[str] = CIMultiDict({hdrs.CONTENT_TYPE: "application/json"})  # copied


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """``data`` as a JSON answer (``Content-Type: application/json``, no charset parameter).

    Without extra headers, the headers are copied from a ready-made set (``web.Response``
    copies what it is given) rather than built by ``content_type=``, which checks and
    sets the content type on every call.
    """
    if headers is None:
        return web.Response(status=status, body=orjson.dumps(data), headers=_JSON_HEADERS)
    return web.Response(
        status=status, body=orjson.dumps(data), content_type="application/json", headers=headers
    )


B = TypeVar("B", bound=Body)
_DECODERS: dict[type[Any], msgspec.json.Decoder[Any]] = {}


async def read_body(request: web.Request, body: type[B], *, optional: bool = False) -> B:
    """The request's body decoded as ``body`` (a ``gateway.contracts`` Struct), its
    operator numbers checked: 400 ``invalid_json`` when it is not a JSON object, 400
    ``invalid_request`` naming the field that is not what the Struct says. An empty
    body is ``{}`` when ``optional``."""
    raw = await request.read() if request.body_exists else b""
    decoder = _DECODERS.get(body)
    if decoder is None:
        decoder = _DECODERS[body] = msgspec.json.Decoder(body)
    if not raw.strip():
        if not optional:
            raise SchemaError("a JSON object body is required", "invalid_json")
        raw = b"{}"
    try:
        try:
            value: B = decoder.decode(raw)
        except msgspec.ValidationError as e:
            if "got `float`" not in str(e):
                raise
            value = decoder.decode(_integral_floats_as_ints(raw))
    except msgspec.ValidationError as e:
        raise body_error(str(e)) from e
    except msgspec.DecodeError as e:
        raise SchemaError(f"the body is not valid JSON: {e}", "invalid_json") from e
    check_bounds(value)
    return value


def _integral_floats_as_ints(raw: bytes) -> bytes:
    """The JSON ``raw`` with each number such as ``5.0`` written ``5``: JSON Schema's
    integer is any number with no fraction, and the OpenAPI document promises that
    (msgspec's decoders take only ``5``). Only a body refused for a float comes here."""

    def walk(value: Any) -> Any:
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
            return int(value)
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        return value

    return orjson.dumps(walk(orjson.loads(raw)))


def body_error(text: str) -> SchemaError:
    """A msgspec validation error in the words of the API: the field named first."""
    if text.startswith("Expected `object`") and text.endswith("at `$`"):
        return SchemaError("the body must be a JSON object", "invalid_json")
    if text.startswith("Expected `object`") and " - at " not in text:
        return SchemaError("the body must be a JSON object", "invalid_json")
    what, _, where = text.partition(" - at `$")
    where = where.rstrip("`").lstrip(".")
    if what.startswith("Object missing required field `"):
        name = what.split("`")[1]
        at = f"{where}.{name}" if where else name
        return SchemaError(f"'{at}' is required")
    if what.startswith("Object contains unknown field `"):
        name = what.split("`")[1]
        at = f"{where}.{name}" if where else name
        return SchemaError(f"unknown field '{at}'")
    if not where:
        return SchemaError(f"the body: {what}")
    if where in OPERATOR_NUMBERS:  # its range in the words the document quotes
        return SchemaError(f"'{where}' must be {OPERATOR_NUMBERS[where].bound.describe()}")
    return SchemaError(f"'{where}': {what[:1].lower()}{what[1:]}")


async def read_json(request: web.Request) -> Mapping[str, Any]:
    """The request's JSON object, any fields (the campaign document, which
    ``schemas.campaign`` reads; every other body has a Struct: ``read_body``)."""
    raw = await request.read()
    if not raw.strip():
        raise SchemaError("a JSON object body is required", "invalid_json")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise SchemaError(f"the body is not valid JSON: {e}", "invalid_json") from e
    if not isinstance(data, dict):
        raise SchemaError("the body must be a JSON object", "invalid_json")
    return data


def bearer(request: web.Request, *elsewhere: Elsewhere) -> str:
    """The bearer token from the Authorization header, else from the first place of
    ``elsewhere`` (a query parameter or a cookie) that holds one."""
    header = request.headers.get(hdrs.AUTHORIZATION, "")  # an istr: no case folding per call
    if header.startswith("Bearer "):  # the usual spelling: one slice
        token = header[7:].strip()
        if token:
            return token
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(Code.UNAUTHORIZED, "Authorization must be 'Bearer <token>'")
        return token.strip()
    for way in elsewhere:
        value = (request.query if way.place == "query" else request.cookies).get(way.name)
        if value:
            return value
    raise ApiError(Code.UNAUTHORIZED, "a bearer token is required")


def key_holder(request: web.Request, keys: Mapping[str, str], what: str) -> str:
    """Whose key (a name of ``keys``) the request's bearer token is (``holder_of``)."""
    return holder_of(bearer(request), keys, what)


def holder_of(presented: str, keys: Mapping[str, str], what: str) -> str:
    """Whose key ``presented`` is: the one place a presented secret is compared.

    401 for a token no key can be (not UTF-8 text: aiohttp keeps undecodable header
    bytes as lone surrogates), 403 for a wrong one (``what`` names the kind of key).
    """
    if not (presented.isascii() or _is_text(presented)):
        raise ApiError(Code.UNAUTHORIZED, "the bearer token is not UTF-8 text")
    raw = _secret_bytes(presented)
    for name, key in keys.items():
        if hmac.compare_digest(raw, _secret_bytes(key)):
            return name
    raise ApiError(Code.FORBIDDEN, f"the {what} key is not valid")


def _is_text(value: str) -> bool:
    """Whether ``value`` has no lone surrogates, i.e. is the decoding of UTF-8 bytes."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _secret_bytes(secret: str) -> bytes:
    """A secret as bytes for a constant-time comparison, for any ``str``.

    ``surrogatepass`` encodes lone surrogates too (a key read from an environment with
    undecodable bytes has them) and is one-to-one, so equal bytes mean equal strings.
    """
    return secret.encode("utf-8", "surrogatepass")


MAX_QUERY_DIGITS = 12  # more is out of any range: not worth converting


def query_int(request: web.Request, name: str, default: int, bound: Bound) -> int:
    """The query parameter ``name`` as an integer within ``bound`` (400 naming it)."""
    raw = request.query.get(name)
    if raw is None:
        return default
    # isdigit alone takes "²"
    if not (raw.isascii() and raw.isdigit() and len(raw) <= MAX_QUERY_DIGITS):
        raise SchemaError(f"'{name}' must be {bound.describe()}")
    value = int(raw)
    bound.check(name, value)
    return value
