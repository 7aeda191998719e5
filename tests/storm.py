"""A storm of visitors against running gateways, every answer recorded and judged.

Each visitor arrives at its time, joins (two in three with an access code), polls its
status until admitted, books a pair in its county, polls the booking until the
allocator answers, and confirms it (every tenth cancels it instead). It behaves as a
patient client would when things go wrong: it waits as ``Retry-After`` says after a
503 and asks again with the same token (a retry of a booking carries the same
booking id), tries the other gateway when its own does not answer, and a visitor
with an access code whose online booking got a 503 also phones the call center to
book in another county (the path by which one person got two pairs in issue 17); an
agent who answers that the caller has a booking already names it, and the caller
has it confirmed (or cancelled) on the phone.

Every HTTP answer is recorded (``Recorder``) with its route kind, gateway and times,
and checked against the contract: a success, a 4xx with a JSON error body, or a 503
with ``Retry-After`` and a JSON error body; anything else (a 500, an error that is
not JSON, no answer within ``CLIENT_TIMEOUT_S``) is a problem. A connection that
fails (a gateway down) is recorded as such: it is no answer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiokafka.partitioner import DefaultPartitioner

from fairq.demo import small_campaign
from gateway.ratelimit import LOADTEST_HEADER
from gateway.readmodel import FINAL_STATES
from tests.harness import LOADTEST_KEY, OPERATOR_KEY

CLIENT_TIMEOUT_S = 30.0  # longer than any fault: a request without an answer by then hangs
MAX_RETRY_AFTER_S = 5.0  # a longer Retry-After is waited this long: the storm stays short
FAILOVER_PAUSE_S = 0.2  # after both gateways failed to connect
ACTION_AGAIN_S = 10.0  # a confirm/cancel answered 202 is sent again if nothing changed by then
GROUP = "storm"


@dataclass(frozen=True, slots=True)
class StormPlan:
    visitors: int = 300
    anonymous_every: int = 3  # every third visitor joins without an access code
    cancel_every: int = 10  # every tenth cancels its hold instead of confirming it
    arrival_s: float = 24.0  # visitors arrive evenly over this time (longer than a fault)
    status_poll_s: float = 0.5
    booking_poll_s: float = 0.3
    deadline_s: float = 120.0  # a visitor still busy this long after the start gives up
    counties: int = 4
    pairs_per_county: int = 40  # 160 pairs for 300 visitors: the campaign sells out
    rate_per_s: float = 40.0
    max_active: int = 80


@dataclass(frozen=True, slots=True)
class Answer:
    # what was asked: join, status, book, booking, confirm, cancel, phone_*; or "answer":
    # the allocator's answer to a booking seen, sent when the booking was accepted
    kind: str
    gateway: str
    request: str  # method and path
    sent_s: float  # time.monotonic()
    answered_s: float
    status: int | None  # None: no HTTP answer (connection failed or timed out)
    detail: str  # the error code, or what went wrong
    problem: str | None = None  # how the answer breaks the HTTP contract

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(slots=True)
class Recorder:
    """Every answer of a storm, and the bookings the visitors were told were accepted."""

    trigger_after: int  # ``triggered`` is set once this many bookings were accepted
    # ``booking_sent`` is set, once triggered, as a visitor with an access code sends its
    # booking to this gateway (None: to any): a fault can strike with a booking on its way
    strike_on: str | None = None
    answers: list[Answer] = field(default_factory=list)
    # booking id -> how a visitor was told of it: "online 202", "online 409 token_used" (a
    # retry's answer: the token made its booking before), "phone 201", "phone 202" or
    # "phone 409 already_booked" (the agent names the caller's booking)
    accepted: dict[str, str] = field(default_factory=dict)
    triggered: asyncio.Event = field(default_factory=asyncio.Event)
    booking_sent: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, answer: Answer) -> None:
        self.answers.append(answer)

    def accept(self, booking_id: str, how: str) -> None:
        self.accepted.setdefault(booking_id, how)
        if len(self.accepted) >= self.trigger_after:
            self.triggered.set()

    def sending_booking(self, gateway: str) -> None:
        """A visitor with an access code is about to send its booking to ``gateway``."""
        if self.triggered.is_set() and self.strike_on in (None, gateway):
            self.booking_sent.set()

    def problems(self) -> list[Answer]:
        return [a for a in self.answers if a.problem is not None]

    def first_success(
        self, kind: str, sent_from_s: float, answered_from_s: float, gateway: str | None = None
    ) -> float | None:
        """When the first successful answer of ``kind`` to a request sent at or after
        ``sent_from_s`` came at or after ``answered_from_s`` (on ``gateway`` if given)."""
        times = [
            a.answered_s
            for a in self.answers
            if a.kind == kind
            and a.ok
            and a.sent_s >= sent_from_s
            and a.answered_s >= answered_from_s
            and (gateway is None or a.gateway == gateway)
        ]
        return min(times, default=None)


def contract_problem(status: int, headers: Any, body: bytes) -> str | None:
    """How an HTTP answer breaks the contract, or None."""
    if 200 <= status < 300:
        return None
    if status >= 500 and status != 503:
        return f"{status}: {body[:200]!r}"
    try:
        error = orjson.loads(body)["error"]
        if not (isinstance(error["code"], str) and isinstance(error["message"], str)):
            raise TypeError("code and message must be strings")
    except (ValueError, KeyError, TypeError) as e:
        return f"{status} without a JSON error body ({e!r}): {body[:200]!r}"
    if status == 503 and "Retry-After" not in headers:
        return f"503 without Retry-After: {body[:200]!r}"
    return None


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: Any  # the parsed JSON body
    gateway: str  # the gateway that answered

    @property
    def error_code(self) -> str:
        return str(self.body["error"].get("code", "")) if _is_error(self.body) else ""


class Unfinished(Exception):
    """A visitor's deadline passed while it still waited for something."""


@dataclass(slots=True)
class Client:
    http: aiohttp.ClientSession
    gateways: list[str]
    recorder: Recorder
    deadline_s: float  # time.monotonic() after which a visitor gives up

    async def call(
        self,
        kind: str,
        home: str,
        method: str,
        path: str,
        *,
        auth: str | None = None,
        body: dict[str, Any] | None = None,
        on_unavailable: Callable[[], None] | None = None,
    ) -> Reply:
        """Ask until an answer other than 503 comes: the home gateway first, the others
        when it cannot be reached."""
        headers = {"Authorization": f"Bearer {auth}"} if auth else {}
        order = [home, *(g for g in self.gateways if g != home)]
        while time.monotonic() < self.deadline_s:
            for gateway in order:
                answer = await self._once(kind, gateway, method, path, headers, body)
                if answer is None:
                    continue  # not reachable: the next gateway
                reply, retry_after_s = answer
                if reply.status != 503:
                    return reply
                if on_unavailable is not None:
                    on_unavailable()
                await asyncio.sleep(retry_after_s)
                break
            else:
                await asyncio.sleep(FAILOVER_PAUSE_S)
        raise Unfinished(f"{kind} {method} {path}")

    async def _once(
        self,
        kind: str,
        gateway: str,
        method: str,
        path: str,
        headers: dict[str, str],
        body: dict[str, Any] | None,
    ) -> tuple[Reply, float] | None:
        """One request: its reply and how long to wait before asking again, or None
        when no HTTP answer came (recorded either way)."""
        sent = time.monotonic()

        def record(status: int | None, detail: str, problem: str | None = None) -> None:
            request = f"{method} {path}"
            answered = time.monotonic()
            self.recorder.add(
                Answer(kind, gateway, request, sent, answered, status, detail, problem)
            )

        try:
            async with self.http.request(
                method, gateway + path, json=body, headers=headers
            ) as response:
                raw = await response.read()
                status, response_headers = response.status, response.headers
        except TimeoutError:
            record(None, "timeout", f"no answer within {CLIENT_TIMEOUT_S}s")
            return None
        except aiohttp.ClientConnectionError as e:
            record(None, repr(e))
            return None
        try:
            parsed = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            parsed = None
        reply = Reply(status, parsed, gateway)
        record(status, reply.error_code, contract_problem(status, response_headers, raw))
        retry_after = response_headers.get("Retry-After", "1")
        wait_s = float(retry_after) if retry_after.isdigit() else 1.0
        return reply, min(MAX_RETRY_AFTER_S, wait_s)


def _is_error(parsed: Any) -> bool:
    return isinstance(parsed, dict) and isinstance(parsed.get("error"), dict)


@dataclass(frozen=True, slots=True)
class Launch:
    """The campaign and room a storm visits."""

    campaign: str
    room: str
    counties: list[str]
    codes: list[str]
    partitions: int  # of the commands topic

    def elsewhere(self, county: str) -> str:
        """The next county whose commands go to another partition than ``county``'s (a
        booking there is decided by another writer), or the next county if none."""

        def partition(c: str) -> int:
            return int(DefaultPartitioner()(c.encode(), list(range(self.partitions)), []))

        i = self.counties.index(county)
        others = self.counties[i + 1 :] + self.counties[:i]
        return next((c for c in others if partition(c) != partition(county)), others[0])


async def launch(
    http: aiohttp.ClientSession, gateway: str, plan: StormPlan, partitions: int
) -> Launch:
    """A small campaign (fewer pairs than visitors), its access codes, an open room."""
    op = {"Authorization": f"Bearer {OPERATOR_KEY}"}
    first_day = dt.date.today() + dt.timedelta(days=2)
    doc = small_campaign(first_day, counties=plan.counties, places=plan.pairs_per_county)
    async with http.put(f"{gateway}/api/admin/campaigns/camp", json=doc, headers=op) as r:
        assert r.status == 201, await r.text()
        loaded = await r.json()
    assert loaded["answered"] == loaded["inventory_commands"] and loaded["refused"] == []
    wanted = {"group": GROUP, "count": plan.visitors}
    async with http.post(f"{gateway}/api/admin/campaigns/camp/codes", json=wanted, headers=op) as r:
        assert r.status == 201, await r.text()
        codes = (await r.json())["codes"]
    room = {
        "campaign": "camp",
        "opens_in_s": 3600,
        "rate_per_s": plan.rate_per_s,
        "max_active": plan.max_active,
        "admit_window_s": 300,  # longer than any fault: nobody loses a turn to one
    }
    async with http.put(f"{gateway}/api/admin/rooms/room", json=room, headers=op) as r:
        assert r.status == 201, await r.text()
    async with http.post(f"{gateway}/api/admin/rooms/room/open", headers=op) as r:
        assert r.status == 200, await r.text()
    return Launch("camp", "room", [c["id"] for c in doc["counties"]], codes, partitions)


@dataclass(slots=True)
class Visitor:
    index: int
    home: str
    county: str
    other_county: str  # where one with a code books by phone after a 503 (another partition)
    code: str | None
    cancels: bool
    outcome: str = ""  # how the visit ended
    gave_up: bool = False  # its deadline passed while it waited for something
    # the bookings it follows -> the last state seen ("" before the first answer)
    seen: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Paths:
    """Where a booking is read and changed, and with which credential."""

    read: str
    confirm: str
    cancel: str
    auth: str
    kind: str  # "" online, "phone_" by phone


def online_paths(booking_id: str, token: str) -> Paths:
    base = f"/api/bookings/{booking_id}"
    return Paths(base, f"{base}/confirm", f"{base}/cancel", token, "")


def phone_paths(booking_id: str) -> Paths:
    base = f"/api/callcenter/bookings/{booking_id}"
    return Paths(base, f"{base}/confirm", f"{base}/cancel", OPERATOR_KEY, "phone_")


@dataclass(slots=True)
class Storm:
    client: Client
    launch: Launch
    plan: StormPlan
    visitors: list[Visitor] = field(default_factory=list)

    def __post_init__(self) -> None:
        counties, gateways = self.launch.counties, self.client.gateways
        codes = iter(self.launch.codes)
        for i in range(self.plan.visitors):
            county = counties[i % len(counties)]
            self.visitors.append(
                Visitor(
                    index=i,
                    home=gateways[i % len(gateways)],
                    county=county,
                    other_county=self.launch.elsewhere(county),
                    code=None if i % self.plan.anonymous_every == 0 else next(codes),
                    cancels=i % self.plan.cancel_every == self.plan.cancel_every - 1,
                )
            )

    async def run(self) -> list[Visitor]:
        started = time.monotonic()
        await asyncio.gather(*(self._visit(v, started) for v in self.visitors))
        return self.visitors

    async def _visit(self, v: Visitor, started_s: float) -> None:
        arrive_s = started_s + self.plan.arrival_s * v.index / self.plan.visitors
        await asyncio.sleep(max(0.0, arrive_s - time.monotonic()))
        try:
            v.outcome = await self._book(v)
        except Unfinished as e:
            v.outcome, v.gave_up = f"gave up waiting for {e}", True

    async def _book(self, v: Visitor) -> str:
        room, client = self.launch.room, self.client
        join_body = {"access_code": v.code} if v.code else None
        joined = await client.call(
            "join", v.home, "POST", f"/api/rooms/{room}/join", body=join_body
        )
        if joined.status != 200:
            return f"join {joined.status} {joined.error_code}"
        token, state = await self._admitted(v, joined.body["ticket"])
        if token is None:
            return state
        phone: list[asyncio.Task[str]] = []

        def phone_instead() -> None:  # a 503 online: the person also calls the hotline
            if v.code is not None and not phone:
                phone.append(asyncio.create_task(self._phone(v)))

        if v.code is not None:
            client.recorder.sending_booking(v.home)
        booked = await client.call(
            "book",
            v.home,
            "POST",
            f"/api/rooms/{room}/bookings",
            auth=token,
            body={"county": v.county},
            on_unavailable=phone_instead,
        )
        if booked.status == 202 or booked.error_code == "token_used":  # token_used: a retry
            booking_id = (
                booked.body["booking_id"]
                if booked.status == 202
                else booked.body["error"]["booking_id"]
            )
            how = f"online {booked.status} {booked.error_code}".rstrip()
            outcome = await self._follow(v, booking_id, how, online_paths(booking_id, token))
        else:
            outcome = f"book {booked.status} {booked.error_code}"
        if phone:
            outcome += f"; phone: {await phone[0]}"
        return outcome

    async def _admitted(self, v: Visitor, ticket: str) -> tuple[str | None, str]:
        """(the booking token, "admitted"), or (None, the state the visit ends in)."""
        path = f"/api/rooms/{self.launch.room}/status"
        while True:
            reply = await self.client.call("status", v.home, "GET", path, auth=ticket)
            if reply.status != 200:
                return None, f"status {reply.status} {reply.error_code}"
            state = reply.body["state"]
            if state == "admitted":
                return reply.body["booking_token"], state
            if state not in ("prequeue", "waiting"):
                return None, state
            await asyncio.sleep(self.plan.status_poll_s)

    async def _phone(self, v: Visitor) -> str:
        path = f"/api/callcenter/campaigns/{self.launch.campaign}/bookings"
        body = {"access_code": v.code, "county": v.other_county}
        reply = await self.client.call(
            "phone_book", v.home, "POST", path, auth=OPERATOR_KEY, body=body
        )
        if reply.status in (201, 202):
            booking_id = reply.body["booking_id"]
        elif _is_error(reply.body) and "booking_id" in reply.body["error"]:
            booking_id = reply.body["error"]["booking_id"]  # the agent names the caller's
        else:
            return f"phone_book {reply.status} {reply.error_code}"
        how = f"phone {reply.status} {reply.error_code}".rstrip()
        return await self._follow(v, booking_id, how, phone_paths(booking_id))

    async def _follow(self, v: Visitor, booking_id: str, how: str, paths: Paths) -> str:
        """Poll the booking the visitor was told of (``how``) until it is final; confirm
        (or cancel) it once held. A booking the visitor follows already (told of it
        online and by phone) is left to that."""
        if booking_id in v.seen:
            return f"{how}: {booking_id} followed already"
        v.seen[booking_id] = ""
        recorder, kind = self.client.recorder, paths.kind
        recorder.accept(booking_id, how)
        action = "cancel" if v.cancels else "confirm"
        acted_s = -ACTION_AGAIN_S
        accepted_s = time.monotonic()
        answered = False
        while True:
            read = await self.client.call(
                f"{kind}booking", v.home, "GET", paths.read, auth=paths.auth
            )
            if read.status != 200:
                return f"{kind}booking {read.status} {read.error_code}"
            state = v.seen[booking_id] = str(read.body["state"])
            if not answered and state != "pending":
                answered = True  # the allocator's answer reached this gateway
                seen = Answer(
                    "answer", read.gateway, paths.read, accepted_s, time.monotonic(), 200, state
                )
                recorder.add(seen)
            if state in FINAL_STATES:
                return state
            if state == "held" and time.monotonic() - acted_s >= ACTION_AGAIN_S:
                acted_s = time.monotonic()
                path = paths.cancel if v.cancels else paths.confirm
                done = await self.client.call(
                    f"{kind}{action}", v.home, "POST", path, auth=paths.auth
                )
                if done.status == 200:
                    state = v.seen[booking_id] = str(done.body["state"])
                    if state in FINAL_STATES:
                        return state
            await asyncio.sleep(self.plan.booking_poll_s)


def client_session() -> aiohttp.ClientSession:
    """Unlimited connections, ``CLIENT_TIMEOUT_S`` per request, and the load-test header
    (the storm comes from one address: exempt from the per-client limits)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        timeout=aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_S),
        headers={LOADTEST_HEADER: LOADTEST_KEY},
    )
