"""The HTTP API's bodies, declared once as msgspec Structs, and each route's contract.

A request body is decoded by its Struct's decoder (``gateway.http.read_body``): a
wrong type, a value out of range, a missing or unknown field is 400
``invalid_request`` naming the field, before the handler does anything. A response
body's Struct is what the OpenAPI document (``gateway.openapi``) says the route
answers, and schemathesis checks every answer against it
(``tests/gateway/test_schemathesis.py``); handlers on the hot paths (join, status)
still build their answers as dicts with orjson, which is faster.

``operation`` attaches a route's contract to its handler: summary, body, answers,
the error codes it gives besides those its security, body and parameters imply, its
query parameters. The document is generated from the router and these.

Times of day and reserve modes are the ``schemas.states`` enums the commands carry;
the room's admission modes and languages are Literals checked against the tuples they
copy (``waitingroom.rooms``) when this module is imported.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, TypeVar, get_args

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from gateway import bounds
from gateway.errors import Code
from schemas.campaign import CampaignDoc
from schemas.fields import ID_PATTERN, Bound
from schemas.states import ReserveMode, TimeOfDay
from schemas.types import MAX_ID_LEN
from waitingroom.rooms import ADMISSION_MODES, LANGUAGES, MAX_MESSAGE_LEN

# -- field types ------------------------------------------------------------------------

Name = Annotated[str, Meta(min_length=1, max_length=MAX_ID_LEN)]
Ident = Annotated[
    str, Meta(pattern=ID_PATTERN.pattern, description="a name: lower-case letters, digits, _ -")
]
AccessCode = Annotated[str, Meta(min_length=1, max_length=64, description="an access code")]
AwareTime = Annotated[dt.datetime, Meta(tz=True, description="ISO date-time with a UTC offset")]
AdmissionMode = Literal["manual", "auto"]
Language = Literal["de", "en"]
MessageText = Annotated[str, Meta(min_length=1, max_length=MAX_MESSAGE_LEN)]
# the tuples the Literals copy (msgspec and mypy need the values written out)
for _literal, _values in (
    (AdmissionMode, ADMISSION_MODES),
    (Language, LANGUAGES),
):
    if get_args(_literal) != tuple(_values):
        raise RuntimeError(f"{_literal} no longer matches {_values}")


def range_meta(b: Bound, what: str) -> Meta:
    """The JSON Schema and first check of a number in ``b`` (0 too where ``b.zero``:
    ``check_bounds`` refuses what lies between), its range in words (``bounds.schema``)."""
    return Meta(
        ge=0 if b.zero is not None else b.lo,
        le=b.hi,
        extra_json_schema=bounds.range_schema(b, what),
    )


def _bounded(name: str) -> Meta:
    """An operator number's ``range_meta`` (``gateway.bounds``)."""
    return range_meta(bounds.bound(name), bounds.OPERATOR_NUMBERS[name].what)


RatePerS = Annotated[float, _bounded("rate_per_s")]
MaxActive = Annotated[int, _bounded("max_active")]
RampS = Annotated[int, _bounded("ramp_s")]
PowDifficulty = Annotated[int, _bounded("pow_difficulty")]
OpensInS = Annotated[float, _bounded("opens_in_s")]
PrequeueS = Annotated[int, _bounded("prequeue_s")]
HoldS = Annotated[int, _bounded("hold_s")]
AdmitWindowS = Annotated[int, _bounded("admit_window_s")]
CodeCount = Annotated[int, _bounded("count")]
SharePct = Annotated[int, _bounded("share_pct")]


class Body(Struct, forbid_unknown_fields=True, kw_only=True):
    """A request body: unknown fields are refused (a typo is not silently ignored).

    ``JSON_SCHEMA`` adds what msgspec cannot say (e.g. one of two fields required)."""

    JSON_SCHEMA: ClassVar[dict[str, Any]] = {}


def check_bounds(body: Body) -> None:
    """The operator numbers of ``body`` within their ranges, 0 included where it means
    something below a larger minimum (``Bound.zero``): ``Meta`` checked the rest."""
    for name in body.__struct_fields__:
        value = getattr(body, name)
        if name in bounds.OPERATOR_NUMBERS and isinstance(value, int | float):
            bounds.bound(name).check(name, value)


# -- request bodies ---------------------------------------------------------------------


class Proof(Body, kw_only=True):
    challenge: str
    solution: Annotated[str, Meta(pattern="^[0-9]+$")] | Annotated[int, Meta(ge=0)]


class JoinRequest(Body, kw_only=True):
    """Optional: an anonymous join has no body."""

    access_code: AccessCode | None = None
    pow: Proof | None = None


class Wish(Body, kw_only=True):
    """Where and when a pair is wished for: a county, or a center (then its county)."""

    county: Name | None = None
    center: Name | None = None
    earliest: dt.date | None = None
    time_of_day: TimeOfDay | None = None


COUNTY_OR_CENTER: dict[str, Any] = {
    "anyOf": [
        {"required": [name], "properties": {name: {"type": "string"}}}
        for name in ("county", "center")
    ]
}


class WaitlistRequest(Wish, kw_only=True):
    JSON_SCHEMA = COUNTY_OR_CENTER


class BookingRequest(Wish, kw_only=True):
    JSON_SCHEMA = COUNTY_OR_CENTER
    waitlist: bool | None = None


class PhoneBookingRequest(BookingRequest, kw_only=True):
    access_code: AccessCode


class MoveRequest(Wish, kw_only=True):
    """No county: the center's, else the booking's own."""


class ConfirmRequest(Body, kw_only=True):
    """Optional. ``identity_key``: e.g. an insurance number, one pair per key and
    campaign; case, spaces and dashes do not matter."""

    identity_key: str | None = None


MAX_NAME_CHARS = 60  # an operator's name, as the record of actions shows it


class OperatorSignIn(Body, kw_only=True):
    key: Annotated[str, Meta(min_length=1, max_length=1024)]
    name: Annotated[str, Meta(min_length=1, max_length=MAX_NAME_CHARS, pattern=r"\S")]


class AgentSignIn(Body, kw_only=True):
    key: Annotated[str, Meta(min_length=1, max_length=1024)]


class CodesRequest(Body, kw_only=True):
    group: Ident
    count: CodeCount


class ReserveRequest(Body, kw_only=True):
    center: Name
    from_: dt.date = msgspec.field(name="from")
    to: dt.date | None = None
    group: Ident
    share_pct: SharePct
    mode: ReserveMode
    release_at: AwareTime


MAX_REMOVE_SLOTS = 20_000


class RemoveRequest(Body, kw_only=True):
    center: Name
    vaccine: Name
    starts: Annotated[list[AwareTime], Meta(min_length=1, max_length=MAX_REMOVE_SLOTS)]


class AdmissionRequest(Body, kw_only=True):
    """Only the fields given change."""

    rate_per_s: RatePerS | None = None
    max_active: MaxActive | None = None
    ramp_s: RampS | None = None
    admission_mode: AdmissionMode | None = None
    pow_difficulty: PowDifficulty | None = None


class RoomRequest(AdmissionRequest, kw_only=True):
    """A new room needs ``campaign`` and ``opens_at`` or ``opens_in_s``."""

    campaign: Ident | None = None
    opens_at: AwareTime | None = None
    opens_in_s: OpensInS | None = None
    prequeue_s: PrequeueS | None = None
    hold_s: HoldS | None = None
    admit_window_s: AdmitWindowS | None = None
    language: Language | None = None


class MessageRequest(Body, kw_only=True):
    """``{}`` clears the message."""

    de: MessageText | UnsetType | None = UNSET
    en: MessageText | UnsetType | None = UNSET


class InventoryRequest(Body, kw_only=True):
    """A delivery: schedules and/or slots as in the campaign document."""

    schedules: list[dict[str, Any]] | None = None
    slots: list[dict[str, Any]] | None = None
    delivery_id: Ident | None = None


# The campaign document: its Struct is the one ``schemas.campaign.parse_campaign``
# decodes it with (which also checks what a schema cannot: days, time zones, centers).
CampaignDocument = CampaignDoc


# -- response bodies --------------------------------------------------------------------


class Answer(Struct, forbid_unknown_fields=True, kw_only=True):
    """A response body: nothing beyond what is declared."""


class RoomMessage(Answer, kw_only=True):
    de: str | None
    en: str | None


StatusState = Literal["prequeue", "waiting", "admitted", "turn_passed", "sold_out", "closed"]


class TicketStatus(Answer, kw_only=True):
    room: str
    ticket: str
    state: StatusState
    position: int | None
    eta_s: float | None
    chance: Literal["likely", "unlikely", "none"] | None
    message: RoomMessage | None
    booking_token: str | UnsetType = UNSET
    waitlist: Annotated[str, Meta(description="when sold out: where to join the waitlist")] | (
        UnsetType
    ) = UNSET
    join: Annotated[str, Meta(description="when the turn passed: where to join again")] | (
        UnsetType
    ) = UNSET


class RoomInfo(Answer, kw_only=True):
    name: str
    campaign: str
    title: str | None
    opens_at: str | None
    opens_prequeue_at: str | None
    state: str
    sold_out: bool
    hold_s: int
    admit_window_s: int
    language: str
    message: RoomMessage | None
    identity_key: str
    counties: list[Any]
    centers: list[Any]
    vaccines: list[Any]


class Challenge(Answer, kw_only=True):
    room: str
    required: bool
    difficulty: int
    challenge: str
    expires_in_s: float
    algorithm: str


class Appointment(Answer, kw_only=True):
    dose: int
    center: str
    center_name: str
    vaccine: str
    start: str


BookingState = Literal[
    "pending", "held", "confirmed", "rejected", "expired", "cancelled", "waitlisted"
]


class Booking(Answer, kw_only=True):
    booking_id: str
    campaign: Annotated[str | None, Meta(description="null until the allocator has answered")]
    state: BookingState
    appointments: list[Appointment]
    hold_expires_at: str | None
    reason: str | None
    offered: Annotated[bool, Meta(description="the pair came from the waitlist")]
    moves: int


class Pending(Answer, kw_only=True):
    booking_id: str
    state: Literal["pending"]


class WaitlistPending(Pending, kw_only=True):
    booking_token: str


class RoomStats(Answer, kw_only=True):
    room: str
    campaign: str
    state: str
    sold_out: bool
    opens_at: str | None
    opened_at: str | None
    rate_per_s: float
    rate_now_per_s: float
    max_active: int
    ramp_s: int
    admission_mode: str
    pow_difficulty: int
    language: str
    message: RoomMessage | None
    hold_s: int
    admit_window_s: int
    prequeue_s: int
    opens_prequeue_at: str | None
    measured_rate_per_s: float | None
    measured_dwell_s: float | None  # how long an admitted visitor stays active (smoothed)
    joined: int
    prequeue_size: int
    queue_depth: int
    admitted: int
    active: int
    lottery_seed: str | None
    restored_at: str | None
    held: int
    confirmed: int
    pairs_left: int
    counties: dict[str, dict[str, Any]]


class MessageSet(Answer, kw_only=True):
    room: str
    message: RoomMessage | None


class Codes(Answer, kw_only=True):
    campaign: str
    group: str
    codes: list[str]


class Refusal(Answer, kw_only=True):
    center: str | None = None
    day: str | None = None
    reason: str | None


class InventoryLoaded(Answer, kw_only=True):
    campaign: str
    delivery_id: str | UnsetType | None = UNSET
    repeated: bool
    inventory_commands: int
    slots: int
    places: int
    answered: int
    already_applied: int
    refused: list[Refusal]


class ReservesSet(Answer, kw_only=True):
    campaign: str
    center: str
    group: str
    days: int
    answered: int
    places_reserved: int
    refused: list[Refusal]


class SlotsRemoved(Answer, kw_only=True):
    campaign: str
    center: str
    slots_removed: int | UnsetType = UNSET
    state: Literal["pending"] | UnsetType = UNSET


class SignedInSession(Answer, kw_only=True):
    role: str
    who: str
    expires_at_s: int
    csrf_token: str


class SessionState(Answer, kw_only=True):
    signed_in: bool
    role: str | UnsetType = UNSET
    who: str | UnsetType = UNSET
    expires_at_s: int | UnsetType = UNSET
    csrf_token: str | UnsetType = UNSET
    reason: str | UnsetType = UNSET
    message: str | UnsetType = UNSET


class SignedOut(Answer, kw_only=True):
    signed_out: bool


class Health(Answer, kw_only=True):
    status: str
    checks: dict[str, str] | UnsetType = UNSET


# A document the API describes in words, not field by field (operator figures).
Document = dict[str, Any]


Offset = Annotated[int, _bounded("offset")]
Limit = Annotated[int, _bounded("limit")]


# -- route contracts --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Media:
    """An answer that is not JSON: its media type (an event stream, a page, a file),
    and any other it may have."""

    type: str
    also: tuple[str, ...] = ()


HTML = Media("text/html")
EVENTS = Media("text/event-stream")
JS = Media("text/javascript", ("text/css",))
CSV = Media("text/csv")
CALENDAR = Media("text/calendar")
METRICS = Media("text/plain")


@dataclass(frozen=True, slots=True)
class Query:
    """An optional query parameter: its name, type (for the schema) and words."""

    name: str
    type: Any
    what: str


PAGE_QUERY = (
    Query("offset", Offset, "the first entry of the page"),
    Query("limit", Limit, "entries in the page"),
)

# What each way of presenting a credential can be refused with. A ticket or booking
# token may come in a query parameter or cookie too; the operator's and the agents'
# routes take the console's session cookie (``gateway.operators``), with a CSRF token
# on changes.
SESSION_CODES = (
    Code.NOT_SIGNED_IN,
    Code.SESSION_EXPIRED,
    Code.SESSION_ENDED,
    Code.CROSS_ORIGIN,
    Code.CSRF_TOKEN_MISSING,
)
SECURITY: dict[str, tuple[Code, ...]] = {
    "ticket": (Code.UNAUTHORIZED, Code.INVALID_TICKET, Code.TICKET_EXPIRED, Code.WRONG_ROOM),
    "booking_token": (
        Code.UNAUTHORIZED,
        Code.INVALID_TOKEN,
        Code.TOKEN_EXPIRED,
        Code.NOT_YOUR_BOOKING,
    ),
    "operator": (Code.UNAUTHORIZED, Code.FORBIDDEN, *SESSION_CODES),
    "agent": (Code.UNAUTHORIZED, Code.FORBIDDEN, *SESSION_CODES),
}
# the signed-in screens' session cookies, taken wherever their key is
SESSION_SCHEMES = {"operator": ("operator_session",), "agent": ("agent_session",)}


@dataclass(frozen=True, slots=True)
class Elsewhere:
    """A place besides the Authorization header where a route takes its credential: a
    query parameter (a browser's EventSource sends no headers) or a cookie (the page's,
    sent by itself). Named once, for the handler that reads it (``gateway.http.bearer``)
    and for the document's security scheme ``scheme``."""

    scheme: str
    place: Literal["query", "cookie"]
    name: str


TICKET_IN_QUERY = Elsewhere("ticket_query", "query", "ticket")
TICKET_IN_COOKIE = Elsewhere("ticket_cookie", "cookie", "fairq_ticket")
TOKEN_IN_QUERY = Elsewhere("booking_token_query", "query", "token")
TICKET_ELSEWHERE = (TICKET_IN_QUERY, TICKET_IN_COOKIE)  # the status, as a poll or a stream
BODY_CODES = (Code.INVALID_JSON, Code.INVALID_REQUEST, Code.PAYLOAD_TOO_LARGE)


@dataclass(frozen=True, slots=True)
class Operation:
    """What a route takes and answers (``operation`` attaches it to the handler)."""

    summary: str
    # status: a response Struct (or JSON type), a Media, or a tuple of both kinds
    ok: dict[int, Any]
    errors: tuple[Code, ...] = ()
    body: Any = None  # a request Body Struct
    body_required: bool = True
    # a visitor's credential (``ticket``, ``booking_token``); an operator's or agent's
    # route takes its own from the front door's declaration (``gateway.openapi``)
    security: str | None = None
    also: tuple[Elsewhere, ...] = ()  # other places to present the credential
    query: tuple[Query, ...] = ()
    backend: bool = True  # reads Redis or the broker: 503 unavailable when they are down
    tag: str = "visitors"

    def credentials(self) -> tuple[str, ...]:
        """Each way the route takes its credential (one suffices)."""
        if self.security is None:
            return ()
        sessions = SESSION_SCHEMES.get(self.security, ())
        return (self.security, *sessions, *(way.scheme for way in self.also))

    def codes(self) -> tuple[Code, ...]:
        """Every error code the route can answer: its own and those implied."""
        implied: list[Code] = []
        if self.security is not None:
            implied += SECURITY[self.security]
        if self.body is not None:
            implied += BODY_CODES
        if self.query:
            implied.append(Code.INVALID_REQUEST)
        if self.backend:
            implied.append(Code.UNAVAILABLE)
        return tuple(dict.fromkeys([*implied, *self.errors]))


OPERATIONS: dict[Callable[..., Any], Operation] = {}
H = TypeVar("H", bound=Callable[..., Any])


def operation(summary: str, ok: dict[int, Any], *codes: Code, **kw: Any) -> Callable[[H], H]:
    """Declare the decorated handler's contract (see ``Operation``); ``codes`` are the
    error codes it gives besides those its security, body and parameters imply."""

    def attach(handler: H) -> H:
        OPERATIONS[handler] = Operation(summary, ok, codes, **kw)
        return handler

    return attach
