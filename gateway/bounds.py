"""The range of every number an operator sets through the HTTP API, each written once.

The handlers read with these (a number outside its range is 400 ``invalid_request``
naming the field and the range, before anything is changed), the OpenAPI document
quotes them (``gateway.openapi``), and docs/api.md's table is ``markdown_table()``
(a test holds the two together). They are sane operating ranges, narrower than
what the waiting room's own checks (``waitingroom.rooms``) take: an admission rate
of 3e-45 per second is a number, but no operator means it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schemas.campaign import MIN_HOLD_S
from schemas.commands import MAX_HOLD_S
from schemas.fields import Bound
from waitingroom.codes import MAX_CODES_PER_CALL
from waitingroom.pow import MAX_DIFFICULTY
from waitingroom.rooms import MAX_PREQUEUE_S, MAX_RAMP_S

DAY_S = 86_400
ROOM = "rooms/{room}"
LIVE = "rooms/{room}, rooms/{room}/admission"


@dataclass(frozen=True, slots=True)
class OperatorNumber:
    bound: Bound
    where: str  # the routes that take it, under /api/admin/
    what: str


# The field names are those of the request bodies (and of the audit's query string),
# unique across the operator routes.
OPERATOR_NUMBERS: dict[str, OperatorNumber] = {
    "opens_in_s": OperatorNumber(Bound(0, 365 * DAY_S), ROOM, "seconds from now to the opening"),
    "prequeue_s": OperatorNumber(
        Bound(0, MAX_PREQUEUE_S, integer=True),
        ROOM,
        "seconds before the opening from which joins are taken",
    ),
    "rate_per_s": OperatorNumber(
        Bound(0.01, 1_000_000, zero="admit nobody"),
        LIVE,
        "people admitted per second; below 0.01 (36 an hour) nobody would see the line move",
    ),
    "max_active": OperatorNumber(
        Bound(0, 10_000_000, integer=True),
        LIVE,
        "cap on the people admitted and not yet done booking",
    ),
    "ramp_s": OperatorNumber(
        Bound(0, MAX_RAMP_S, integer=True),
        LIVE,
        "seconds over which the rate rises after the opening (0: off)",
    ),
    "pow_difficulty": OperatorNumber(
        Bound(0, MAX_DIFFICULTY, integer=True),
        LIVE,
        "leading zero bits asked of anonymous joins (0: off)",
    ),
    "hold_s": OperatorNumber(
        Bound(MIN_HOLD_S, MAX_HOLD_S, integer=True),
        ROOM,
        "seconds a booking holds its pair before it must be confirmed",
    ),
    "admit_window_s": OperatorNumber(
        Bound(10, DAY_S, integer=True), ROOM, "seconds an admitted visitor has to start booking"
    ),
    "count": OperatorNumber(
        Bound(1, MAX_CODES_PER_CALL, integer=True),
        "campaigns/{c}/codes",
        "access codes issued by one call",
    ),
    "share_pct": OperatorNumber(
        Bound(0, 100, integer=True),
        "campaigns/{c}/reserves",
        "percent of each slot kept for the group (0 removes the reserve)",
    ),
    "offset": OperatorNumber(
        Bound(0, 2**31, integer=True), "rooms/{room}/audit?", "the first pre ticket of the page"
    ),
    "limit": OperatorNumber(
        Bound(0, 10_000, integer=True), "rooms/{room}/audit?", "pre tickets in the page"
    ),
}


def bound(field: str) -> Bound:
    return OPERATOR_NUMBERS[field].bound


def schema(field: str) -> dict[str, Any]:
    """The field's JSON Schema (OpenAPI 3.1), its range included."""
    return range_schema(bound(field), OPERATOR_NUMBERS[field].what)


def range_schema(b: Bound, what: str) -> dict[str, Any]:
    """The JSON Schema of a number in ``b`` (what it is: ``what``)."""
    span = {"type": "integer" if b.integer else "number", "minimum": b.lo, "maximum": b.hi}
    described = {"description": f"{b.describe()}: {what}"}
    if b.zero is None:
        return span | described
    return {"anyOf": [{"const": 0}, span]} | described


def markdown_table() -> str:
    """docs/api.md's table of these ranges."""
    rows = [
        f"| `{field}` | {n.bound.describe()} | {n.where} | {n.what} |"
        for field, n in OPERATOR_NUMBERS.items()
    ]
    return "\n".join(["| field | range | routes | what |", "| --- | --- | --- | --- |", *rows])
