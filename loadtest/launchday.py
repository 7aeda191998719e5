"""Launch-day rehearsal: simulated citizens click through a running fairq, as the page does.

Run it against any deployment (``make up`` starts one locally with the demo room)::

    locust -f loadtest/launchday.py --headless -H http://127.0.0.1:8080 -u 200 -r 20 -t 60s

Each locust user is a browser tab; each task iteration is one citizen's visit:

1. **join** the room (``POST /api/rooms/{room}/join``): a share of citizens with an
   access code (issued here with the operator key, or read from ``--codes-file``),
   the others anonymously, first fetching the room's proof-of-work **challenge**
   and solving it with ``waitingroom.pow.solve`` when the room asks for one (as the
   page does before every anonymous join);
2. **wait**: poll ``GET /api/rooms/{room}/status`` every ``--poll-s`` seconds (3 s,
   the page's polling interval; ``Retry-After`` when told), until admitted, sold out,
   closed, or ``--max-wait-s``. Polling rather than holding the SSE stream: a poll
   is one request/response that locust times and counts like any other, and for the
   request path it is the costlier way to wait (a request every 3 s per visitor
   instead of a pushed event per change); the streams' memory and fan-out are
   measured by ``bench_gateway``;
3. **book** (``POST /api/rooms/{room}/bookings``) with the booking token: a county,
   for some a center, an earliest date, a time of day; **follow** the booking
   (``GET /api/bookings/{id}``) until it is held or rejected; **confirm** a share of
   the holds, **cancel** a share of the rest and let the others expire; **move** a
   share of the confirmed pairs to a new wish (``--move-share``), often another
   county's, and check the new pair as a held one;
4. when told sold out, a share joins the **waitlist** and follows that booking for
   ``--waitlist-wait-s``, confirming an offer like a hold.

Outcomes are counted (admitted, told sold out, held, rejected by reason, confirmed,
waitlisted, ...) and printed at the end; ``--outcomes-json`` writes them to a file.
The run exits non-zero when a request failed unexpectedly (a 5xx, a refused
connection, a 4xx the journey does not expect) or when a check the client side
can make failed:

- **fair order** (DESIGN: admission order equals ticket order): a ticket still told
  ``waiting`` after a ticket behind it was seen admitted (with ``--order-slack-s``
  for gateways whose memory lags the cursor). Places come from the tokens: an
  admitted ticket's booking token carries its place; post-opening tickets follow
  the whole pre-queue in arrival order (``waitingroom.lottery``), so one admitted
  post ticket gives every post ticket's place and the pre-queue's size;
- **whole pairs**: a held pair is dose 1 and 2 at the same center with the same
  vaccine, dose 2 inside the vaccine's interval, in the wished county (and center),
  dose 1 on or after the earliest date, both at the wished time of day;
- **one answer**: a booking accepted (202) must get its answer (held, rejected,
  waitlisted) within ``--answer-limit-s``.

Not a check: a booking rejected ``sold_out`` after the room said ``chance: likely``.
The chance compares people ahead with the pairs left in the whole campaign, while
a booking looks in one county (docs/operators.md says so under Admission), so that is
counted (``likely_then_sold_out``) but is no broken promise.

**A scenario** (``--scenario``, a TOML file of ``loadtest.scenario``) gives the storm
its shape: ``ScenarioShape`` asks locust for as many users as the scenario's click
rate at each second needs (the pre-queue crowd, the opening, the ramp, the peak, the
tail), and the scenario's journey shares replace the options above. ``--timeline-json``
writes each second's requests, failures and latency percentiles per request name,
with what the report needs of the visits (each estimated wait shown, with the
visitor's place and when it saw itself admitted, to judge it against the wait had;
when pairs were held and visitors told sold out); ``loadtest.rehearse`` runs all that
and writes the report.

The load-test key (``--loadtest-key`` / ``FAIRQ_LOADTEST_KEY``, the same variable the
gateway reads) is sent as ``X-Fairq-Loadtest-Key`` on every request, so an operator
who issued one exempts the rehearsal from every per-client limit (on by default) and
the proof of work. With a key, a 429 is a failure; without one it is expected and waited out.
"""

from __future__ import annotations

import binascii
import bisect
import dataclasses
import datetime as dt
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import gevent
from gevent.lock import BoundedSemaphore
from locust import FastHttpUser, LoadTestShape, between, events, task
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

from loadtest.scenario import Scenario
from loadtest.scenario import load as load_scenario
from loadtest.timeline import Timeline
from waitingroom.pow import solve
from waitingroom.tickets import b64url_decode

logger = logging.getLogger(__name__)

DEFAULT_HOST = "http://127.0.0.1:8080"
LOADTEST_HEADER = "X-Fairq-Loadtest-Key"  # as gateway.ratelimit.LOADTEST_HEADER
TIMES_OF_DAY = {"morning": (0, 12), "afternoon": (12, 17), "evening": (17, 24)}
JOIN_ATTEMPTS = 5
CODES_PER_CALL = 500
MAX_RETRY_AFTER_S = 30.0
OPEN_STATES = ("pending", "waitlisted")
# why a move may be refused (the old pair stays): nothing fits the new wish, or a step of
# another move of the same booking is still under way
MOVE_REFUSALS = (
    "sold_out",
    "no_pair_in_window",
    "no_pair_at_time_of_day",
    "reserved_for_priority_group",
    "move_in_progress",
)
FINAL_ROOM_STATES = {
    "admitted": "admitted",
    "turn_passed": "told the turn passed",
    "sold_out": "told sold out",
    "closed": "told closed",
}  # a booking waiting for its answer or offer


Handler = TypeVar("Handler", bound=Callable[..., None])


def listen(hook: Any) -> Callable[[Handler], Handler]:
    """``@listen(events.test_start)``: locust's ``add_listener`` as a typed decorator."""

    def register(handler: Handler) -> Handler:
        hook.add_listener(handler)
        return handler

    return register


# -- options --------------------------------------------------------------------------------


@listen(events.init_command_line_parser)
def add_options(parser: Any) -> None:
    """The rehearsal's options; each has an environment variable of the same meaning."""
    parser.set_defaults(num_users=200, spawn_rate=20)  # -u / -r: a laptop against `make up`

    def opt(name: str, env: str, default: Any, text: str, **kw: Any) -> None:
        parser.add_argument(name, env_var=env, default=default, help=f"{text} [env {env}]", **kw)

    opt("--room", "FAIRQ_REHEARSAL_ROOM", "demo", "the waiting room to rehearse")
    opt(
        "--loadtest-key",
        "FAIRQ_LOADTEST_KEY",
        "",
        "the operator's load-test key, sent as X-Fairq-Loadtest-Key (exempts from the limits "
        "and proof of work); with it a 429 is a failure",
        is_secret=True,
    )
    opt(
        "--operator-key",
        "FAIRQ_OPERATOR_KEY",
        "",
        "issues access codes for the citizens joining with one",
        is_secret=True,
    )
    opt("--code-share", "FAIRQ_REHEARSAL_CODE_SHARE", 0.1, "share joining with a code", type=float)
    opt("--code-group", "FAIRQ_REHEARSAL_CODE_GROUP", "rehearsal", "priority group of the codes")
    opt(
        "--codes-file",
        "FAIRQ_REHEARSAL_CODES_FILE",
        "",
        "access codes to use instead of issuing them: one a line, or the codes CSV export",
    )
    opt(
        "--pow",
        "FAIRQ_REHEARSAL_POW",
        "solve",
        "solve: fetch a challenge before each anonymous join and solve it if required (as the "
        "page); skip: send no proof (for an exempt source)",
        choices=["solve", "skip"],
    )
    opt("--poll-s", "FAIRQ_REHEARSAL_POLL_S", 3.0, "status poll interval (the page's)", type=float)
    opt("--booking-poll-s", "FAIRQ_REHEARSAL_BOOKING_POLL_S", 1.0, "booking poll", type=float)
    opt("--max-wait-s", "FAIRQ_REHEARSAL_MAX_WAIT_S", 600.0, "give up waiting after", type=float)
    opt("--think-s", "FAIRQ_REHEARSAL_THINK_S", 3.0, "mean time to fill the form", type=float)
    opt("--center-share", "FAIRQ_REHEARSAL_CENTER_SHARE", 0.3, "share naming a center", type=float)
    opt("--earliest-share", "FAIRQ_REHEARSAL_EARLIEST_SHARE", 0.2, "... a date", type=float)
    opt("--time-of-day-share", "FAIRQ_REHEARSAL_TOD_SHARE", 0.2, "... a time of day", type=float)
    opt("--confirm-share", "FAIRQ_REHEARSAL_CONFIRM_SHARE", 0.8, "holds confirmed", type=float)
    opt(
        "--cancel-share",
        "FAIRQ_REHEARSAL_CANCEL_SHARE",
        0.5,
        "of the holds not confirmed, the share cancelled (the others expire)",
        type=float,
    )
    opt(
        "--move-share",
        "FAIRQ_REHEARSAL_MOVE_SHARE",
        0.1,
        "of the confirmed pairs, the share then moved to a new wish (often another county)",
        type=float,
    )
    opt(
        "--waitlist-share",
        "FAIRQ_REHEARSAL_WAITLIST_SHARE",
        0.5,
        "told sold out: join the waitlist",
        type=float,
    )
    opt(
        "--waitlist-wait-s",
        "FAIRQ_REHEARSAL_WAITLIST_WAIT_S",
        60.0,
        "wait for an offer",
        type=float,
    )
    opt(
        "--answer-limit-s",
        "FAIRQ_REHEARSAL_ANSWER_LIMIT_S",
        120.0,
        "a booking without an answer after this long fails the run",
        type=float,
    )
    opt(
        "--order-slack-s",
        "FAIRQ_REHEARSAL_ORDER_SLACK_S",
        2.0,
        "how long a gateway's memory may lag the admission cursor (fair-order check)",
        type=float,
    )
    opt(
        "--journeys",
        "FAIRQ_REHEARSAL_JOURNEYS",
        0,
        "stop after this many visits in this process (0: run until -t or Ctrl-C)",
        type=int,
    )
    opt("--outcomes-json", "FAIRQ_REHEARSAL_OUTCOMES_JSON", "", "write the outcomes to this file")
    opt(
        "--scenario",
        "FAIRQ_REHEARSAL_SCENARIO",
        "",
        "a launch scenario (TOML, loadtest/scenarios): the load's shape and the journey's "
        "shares (these replace -u, -r and the share options)",
    )
    opt(
        "--timeline-json",
        "FAIRQ_REHEARSAL_TIMELINE_JSON",
        "",
        "write each second's requests and latencies per name, and the visits' timings",
    )


@dataclass(frozen=True, slots=True)
class Settings:
    room: str
    loadtest_key: str
    operator_key: str
    code_share: float
    code_group: str
    pow: str
    poll_s: float
    booking_poll_s: float
    max_wait_s: float
    think_s: float
    center_share: float
    earliest_share: float
    time_of_day_share: float
    confirm_share: float
    cancel_share: float
    move_share: float
    waitlist_share: float
    waitlist_wait_s: float
    answer_limit_s: float
    order_slack_s: float
    journeys: int
    outcomes_json: str
    timeline_json: str
    book_share: float = 1.0  # admitted visitors who book (a scenario's; others leave)
    move_across_counties: bool = True  # a scenario's moves stay in the county (log audit)

    @classmethod
    def from_options(cls, options: Any) -> Settings:
        names = [n for n in cls.__dataclass_fields__ if hasattr(options, n)]
        settings = cls(**{name: getattr(options, name) for name in names})
        scenario = getattr(options, "scenario", "")
        return settings.following(_scenario(scenario)) if scenario else settings

    def following(self, scenario: Scenario) -> Settings:
        """These settings with the scenario's journey in place of the options'."""
        j = scenario.journey
        return dataclasses.replace(
            self,
            book_share=j.book_share,
            confirm_share=j.confirm_share,
            cancel_share=j.cancel_share,
            move_share=j.change_share,
            waitlist_share=j.retry_share,
            code_share=j.code_share,
            poll_s=j.poll_s,
            booking_poll_s=j.booking_poll_s,
            think_s=j.think_s,
            max_wait_s=j.max_wait_s,
            waitlist_wait_s=j.waitlist_wait_s,
            move_across_counties=False,
        )

    def headers(self, token: str | None = None) -> dict[str, str]:
        out = {LOADTEST_HEADER: self.loadtest_key} if self.loadtest_key else {}
        if token:
            out["Authorization"] = f"Bearer {token}"
        return out


# -- what the client side can check ---------------------------------------------------------


@dataclass(slots=True)
class TicketSeen:
    """One ticket's observations, for the fair-order check (times: wall clock, so that the
    tickets of locust's workers, on other machines too, are checked together)."""

    kind: str | None  # "pre" | "post", from the ticket's payload
    number: int | None
    place: int | None = None  # on the room's timeline, from the booking token once admitted
    admitted_seen_s: float | None = None  # first answer saying admitted (received)
    waiting_sent_s: float | None = None  # last request answered waiting or sold_out (sent)
    # (wall clock sent, eta_s shown) of every waiting answer, for the estimate's honesty
    estimates: list[tuple[float, float]] = field(default_factory=list)
    admitted_at: float | None = None  # wall clock of the first answer saying admitted
    joined_at: float = field(default_factory=time.time)  # wall clock
    sold_out_at: float | None = None  # wall clock of the first answer saying sold out

    ORDER_FIELDS = ("kind", "number", "place", "admitted_seen_s", "waiting_sent_s")

    def for_order(self) -> list[Any]:
        """What the fair-order check needs of it, as plain data (a worker's report)."""
        return [getattr(self, name) for name in self.ORDER_FIELDS]

    @classmethod
    def from_order(cls, values: Sequence[Any]) -> TicketSeen:
        return cls(**dict(zip(cls.ORDER_FIELDS, values, strict=True)))


def token_payload(token: str) -> dict[str, Any]:
    """The JSON payload of a signed ``kid.payload.sig`` token; {} if it is not readable."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        payload = json.loads(b64url_decode(parts[1].encode("ascii")))
    except (binascii.Error, ValueError):  # UnicodeEncodeError is a ValueError
        return {}
    return payload if isinstance(payload, dict) else {}


def order_inversions(tickets: Sequence[TicketSeen], slack_s: float) -> tuple[int, list[str]]:
    """(tickets checked, problems): nobody is told waiting after one behind was admitted."""
    problems: list[str] = []
    offsets = {t.place - t.number for t in tickets if t.kind == "post" and t.place and t.number}
    if len(offsets) > 1:
        problems.append(f"post tickets are not in arrival order: place - number is {offsets}")
    places = Counter(t.place for t in tickets if t.place is not None)
    problems += [f"place {p} was given to {n} tickets" for p, n in places.items() if n > 1]
    offset = min(offsets) if offsets else None
    admitted = sorted(
        (t.place, t.admitted_seen_s)
        for t in tickets
        if t.place is not None and t.admitted_seen_s is not None
    )
    admitted_places = [p for p, _ in admitted]
    earliest_behind = [float("inf")] * (len(admitted) + 1)  # min admission time from i on
    for i in range(len(admitted) - 1, -1, -1):
        earliest_behind[i] = min(earliest_behind[i + 1], admitted[i][1])
    checked = 0
    for t in tickets:
        bound = _place_bound(t, offset)
        if t.waiting_sent_s is None or bound is None:
            continue
        checked += 1
        first_behind = earliest_behind[bisect.bisect_right(admitted_places, bound)]
        if first_behind + slack_s < t.waiting_sent_s:
            problems.append(
                f"ticket {t.kind} {t.number} (place <= {bound}) was told waiting "
                f"{t.waiting_sent_s - first_behind:.1f}s after a ticket behind it was admitted"
            )
    return checked, problems


def _place_bound(t: TicketSeen, offset: int | None) -> int | None:
    """The ticket's place, or a place it cannot be behind; None if not known."""
    if t.place is not None:
        return t.place
    if offset is None or t.number is None:
        return None
    if t.kind == "post":
        return offset + t.number
    return offset if t.kind == "pre" else None  # every pre ticket stands in the pre-queue


def pair_problems(
    booking: Mapping[str, Any], wish: Mapping[str, Any], room: Mapping[str, Any]
) -> list[str]:
    """What is wrong with a held (or offered, or confirmed) pair for this wish."""
    apps = sorted(booking.get("appointments") or [], key=lambda a: a.get("dose", 0))
    if [a.get("dose") for a in apps] != [1, 2]:
        return [f"a pair needs doses 1 and 2, got {[a.get('dose') for a in apps]}"]
    first, second = apps
    problems = []
    if (first["center"], first["vaccine"]) != (second["center"], second["vaccine"]):
        problems.append(f"doses at {first['center']}/{first['vaccine']} and {second['center']}")
    county = {c["id"]: c.get("county") for c in room.get("centers", [])}.get(first["center"])
    if county != wish["county"]:
        problems.append(f"center {first['center']} is not in the wished county {wish['county']}")
    if wish.get("center") not in (None, first["center"]):
        problems.append(f"wished center {wish['center']}, got {first['center']}")
    window = {v["id"]: (v["min_days"], v["max_days"]) for v in room.get("vaccines", [])}
    lo, hi = window.get(first["vaccine"], (0, 10_000))
    gap = (_day(second["start"]) - _day(first["start"])).days
    if not lo <= gap <= hi:
        problems.append(f"dose 2 {gap} days after dose 1, outside {lo}-{hi}")
    if wish.get("earliest") and _day(first["start"]) < dt.date.fromisoformat(wish["earliest"]):
        problems.append(f"dose 1 on {first['start'][:10]}, before {wish['earliest']}")
    if wish.get("time_of_day"):
        start_h, end_h = TIMES_OF_DAY[wish["time_of_day"]]
        if not all(start_h <= int(a["start"][11:13]) < end_h for a in apps):
            problems.append(f"not both in the {wish['time_of_day']}: {[a['start'] for a in apps]}")
    return [f"booking {booking.get('booking_id')}: {p}" for p in problems]


def _day(iso: str) -> dt.date:
    return dt.date.fromisoformat(iso[:10])  # the local date as written


# -- shared state of this process ---------------------------------------------------------


@dataclass
class Outcomes:
    """What happened to the visits of this process (merged from workers on a master)."""

    counts: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    confirmed_ids: list[str] = field(default_factory=list)
    timeline: Timeline = field(default_factory=Timeline)
    tickets: list[TicketSeen] = field(default_factory=list)  # visits over, for the order check
    # on a master: each worker's share (its counts, and its requests in the timeline)
    workers: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": dict(self.counts),
            "problems": list(self.problems),
            "confirmed_ids": list(self.confirmed_ids),
        } | ({"workers": self.workers} if self.workers else {})

    def take_report(self) -> dict[str, Any]:
        """The outcomes since the last report, for the master (and forget them here)."""
        report = self.to_json() | {
            "timeline": self.timeline.take(),
            "tickets": [t.for_order() for t in self.tickets],
        }
        self.counts, self.problems, self.confirmed_ids, self.tickets = Counter(), [], [], []
        return report

    def add_report(self, report: Mapping[str, Any], worker: str) -> None:
        counts, timeline = report.get("counts", {}), report.get("timeline", {})
        self.counts.update(counts)
        self.problems += report.get("problems", [])
        self.confirmed_ids += report.get("confirmed_ids", [])
        self.timeline.add(timeline)
        self.tickets += [TicketSeen.from_order(t) for t in report.get("tickets", [])]
        share = self.workers.setdefault(worker, {"counts": {}, "requests": 0})
        for name, n in counts.items():
            share["counts"][name] = share["counts"].get(name, 0) + n
        share["requests"] += Timeline.requests_in(timeline)


@dataclass
class Rehearsal:
    settings: Settings
    room: dict[str, Any]  # GET /api/rooms/{room}
    codes: list[str]
    can_issue_codes: bool
    outcomes: Outcomes = field(default_factory=Outcomes)
    tickets: list[TicketSeen] = field(default_factory=list)
    started: int = 0
    finished: int = 0
    problems_total: int = 0  # kept when the outcomes go to the master
    code_lock: BoundedSemaphore = field(default_factory=BoundedSemaphore)

    def count(self, what: str, n: int = 1) -> None:
        self.outcomes.counts[what] += n

    def visits_over(self) -> None:
        """The visits of this process have ended: their timings into the timeline, their
        tickets kept for the fair-order check (made where the outcomes are written)."""
        self.outcomes.timeline.visits(self.tickets)
        self.outcomes.tickets += self.tickets
        self.tickets = []

    def check_order(self) -> None:
        """The fair-order check over every ticket (of every worker, on a master)."""
        tickets, self.outcomes.tickets = self.outcomes.tickets, []
        checked, problems = order_inversions(tickets, self.settings.order_slack_s)
        self.count("order checked (tickets)", checked)
        self.count("order inversions", len(problems))
        for p in problems:
            self.problem(p)

    def problem(self, text: str) -> None:
        logger.error("check failed: %s", text)
        self.outcomes.problems.append(text)
        self.problems_total += 1


REHEARSAL: Rehearsal | None = None
SETUP_FAILED: list[str] = []


@listen(events.test_start)
def setup(environment: Environment, **_kw: Any) -> None:
    """Read the room (its counties, centers, vaccines) and the access codes to use."""
    global REHEARSAL
    settings = Settings.from_options(environment.parsed_options)
    if isinstance(environment.runner, MasterRunner):  # it only merges the workers' outcomes
        REHEARSAL = Rehearsal(settings, {}, [], False)
        return
    import requests  # locust's dependency; imported after locust has patched ssl (gevent)

    host = (environment.host or DEFAULT_HOST).rstrip("/")
    try:
        r = requests.get(
            f"{host}/api/rooms/{settings.room}", headers=settings.headers(), timeout=30
        )
    except requests.RequestException as e:
        return _abort(environment, f"the gateway at {host} did not answer: {e}")
    if r.status_code != 200:
        return _abort(environment, f"GET /api/rooms/{settings.room}: {r.status_code} {r.text}")
    codes = _read_codes(getattr(environment.parsed_options, "codes_file", ""))
    can_issue = bool(settings.operator_key) and not codes
    if settings.code_share > 0 and not (codes or can_issue):
        logger.warning("no --operator-key nor --codes-file: every citizen joins anonymously")
    REHEARSAL = Rehearsal(settings, r.json(), codes, can_issue)
    logger.info("rehearsing room %s at %s (state %s)", settings.room, host, REHEARSAL.room["state"])


def _read_codes(path: str) -> list[str]:
    if not path:
        return []
    with open(path, encoding="utf-8") as f:
        rows = [line.split(",")[0].strip() for line in f]
    return [c for c in rows if c and c != "code"]


def _abort(environment: Environment, why: str) -> None:
    logger.error("cannot rehearse: %s", why)
    SETUP_FAILED.append(why)
    environment.process_exit_code = 2
    if environment.runner is not None:
        gevent.spawn(environment.runner.quit)


# -- locust's distributed mode: each worker's outcomes to the master ----------------------

STOP_MESSAGE = "fairq_stop"  # master -> worker: the storm is over, stop and report
FINAL_MESSAGE = "fairq_final"  # worker -> master: that was this worker's last report
FINAL_WAIT_S = 120.0  # for every worker's last report, once the storm is over
FINALS: set[str] = set()  # on a master: the workers whose last report came


@listen(events.report_to_master)
def report_outcomes(data: dict[str, Any], **_kw: Any) -> None:
    """A worker sends its outcomes with its stats (and forgets them)."""
    if REHEARSAL is not None:
        data["fairq_outcomes"] = REHEARSAL.outcomes.take_report()


@listen(events.worker_report)
def merge_outcomes(client_id: str, data: Mapping[str, Any], **_kw: Any) -> None:
    if REHEARSAL is not None and "fairq_outcomes" in data:
        REHEARSAL.outcomes.add_report(data["fairq_outcomes"], client_id)


@listen(events.init)
def register_messages(environment: Environment, **_kw: Any) -> None:
    """The end of a distributed run: locust's master quits once its shape ends and waits
    only half a second for the workers' last stats, so a worker's last visits could be
    lost. Instead the shape's end asks each worker to stop and report (``finish_workers``)
    and waits until each said that was its last report."""
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        runner.register_message(FINAL_MESSAGE, last_report)
    elif isinstance(runner, WorkerRunner):
        runner.register_message(STOP_MESSAGE, lambda **_: stop_and_report(runner), concurrent=True)


def stop_and_report(runner: WorkerRunner) -> None:
    """On a worker: stop every user (``test_stop`` ends the visits), then send the last
    report: the stats and outcomes since the last one, as locust's own report has them."""
    runner.stop()
    data: dict[str, Any] = {}
    runner.environment.events.report_to_master.fire(client_id=runner.client_id, data=data)  # type: ignore[no-untyped-call]
    runner.send_message(FINAL_MESSAGE, data)


def last_report(environment: Environment, msg: Any, **_kw: Any) -> None:
    """On a master: a worker's last report, merged as locust merges its periodic ones."""
    environment.events.worker_report.fire(client_id=msg.node_id, data=msg.data)  # type: ignore[no-untyped-call]
    FINALS.add(msg.node_id)


def finish_workers(runner: MasterRunner) -> None:
    """On a master, at the storm's end: every worker's last report, or a failed check."""
    workers = {c.id for c in runner.clients.all}
    logger.info("the storm is over: asking %d worker(s) for their last report", len(workers))
    for worker in workers:
        runner.send_message(STOP_MESSAGE, client_id=worker)
    deadline = time.monotonic() + FINAL_WAIT_S
    while not workers <= FINALS and time.monotonic() < deadline:
        gevent.sleep(0.1)
    logger.info("last reports from %d of %d worker(s)", len(workers & FINALS), len(workers))
    if REHEARSAL is not None:
        for worker in sorted(workers - FINALS):
            REHEARSAL.problem(f"locust worker {worker} sent no last report in {FINAL_WAIT_S}s")


@listen(events.test_stop)
def visits_over(environment: Environment, **_kw: Any) -> None:
    if REHEARSAL is not None and not isinstance(environment.runner, MasterRunner):
        REHEARSAL.visits_over()


@listen(events.quitting)
def report(environment: Environment, **_kw: Any) -> None:
    """Print the outcomes; exit non-zero on an unexpected failure or a failed check."""
    r = REHEARSAL
    failures = environment.stats.total.num_failures
    if r is not None and not isinstance(environment.runner, WorkerRunner):
        r.check_order()
        out = r.outcomes
        lines = [f"  {name:<40} {n:>10}" for name, n in sorted(out.counts.items())]
        print("\nfairq rehearsal outcomes:\n" + "\n".join(lines), flush=True)
        for p in out.problems[:50]:
            print(f"  CHECK FAILED: {p}", flush=True)
        print(f"  unexpected request failures: {failures}; failed checks: {len(out.problems)}")
        if r.settings.outcomes_json:
            with open(r.settings.outcomes_json, "w", encoding="utf-8") as f:
                json.dump(out.to_json() | {"unexpected_failures": failures}, f, indent=1)
        if r.settings.timeline_json:
            with open(r.settings.timeline_json, "w", encoding="utf-8") as f:
                json.dump(out.timeline.summary(), f)
    if failures or SETUP_FAILED or (r is not None and (r.problems_total or r.outcomes.problems)):
        environment.process_exit_code = max(1, environment.process_exit_code or 0)


@listen(events.request)
def note_request(
    name: str, response_time: float, exception: BaseException | None, **_kw: Any
) -> None:
    """Every request into this second's timeline (its name, latency, failed or not)."""
    if REHEARSAL is not None:
        REHEARSAL.outcomes.timeline.request(time.time(), name, response_time, exception is not None)


class ScenarioShape(LoadTestShape):
    """The storm of ``--scenario``: each second as many users as its click rate needs.

    Without a scenario, the plain load of ``-u`` users started ``-r`` a second (``-t``
    ends the run), as before there were scenarios."""

    def tick(self) -> tuple[int, float] | None:
        options = self.runner.environment.parsed_options if self.runner else None
        scenario = getattr(options, "scenario", "")
        if not scenario:
            return int(getattr(options, "num_users", 1)), float(getattr(options, "spawn_rate", 1))
        users = _scenario(scenario).arrivals.users(self.get_run_time())  # type: ignore[no-untyped-call]
        if users is None:
            if isinstance(self.runner, MasterRunner):
                finish_workers(self.runner)
            return None
        change = abs(users - (self.runner.user_count if self.runner else 0))
        return users, float(max(change, 1))  # there within the second


_SCENARIOS: dict[str, Scenario] = {}


def _scenario(path: str) -> Scenario:
    if path not in _SCENARIOS:
        _SCENARIOS[path] = load_scenario(path)
    return _SCENARIOS[path]


# -- one citizen ----------------------------------------------------------------------------


class Unexpected(Exception):
    """An answer the journey cannot go on from (already counted as a failed request)."""


@dataclass(slots=True)
class Answer:
    status: int
    body: dict[str, Any]
    retry_after_s: float | None
    sent_s: float
    received_s: float

    @property
    def code(self) -> str | None:
        error = self.body.get("error")
        return error.get("code") if isinstance(error, dict) else None


class Citizen(FastHttpUser):
    """A browser tab: each task iteration is one person's visit, from join to booking."""

    host = DEFAULT_HOST
    wait_time = between(0.0, 2.0)  # then the next citizen comes in this tab
    told_likely = False  # this visit's status said chance "likely" while waiting

    @property
    def r(self) -> Rehearsal:
        if REHEARSAL is None:
            raise StopUser()
        return REHEARSAL

    def call(
        self,
        method: str,
        path: str,
        name: str,
        *,
        token: str | None = None,
        body: Any = None,
        expected: Iterable[tuple[int, str | None]] = (),
    ) -> Answer:
        """One request, in locust's stats under ``name``; an expected 4xx counts as success.

        Anything else that is not 2xx is a failure; ``Unexpected`` ends the visit.
        """
        allowed = set(expected)
        sent = time.time()
        with self.client.request(
            method,
            path,
            name=name,
            json=body,
            headers=self.r.settings.headers(token),
            catch_response=True,
        ) as resp:
            answer = Answer(resp.status_code, _json(resp.text), _retry_after(resp), sent, 0.0)
            answer.received_s = time.time()
            if 200 <= answer.status < 300:
                resp.success()
                return answer
            if (answer.status, answer.code) in allowed or (answer.status, None) in allowed:
                resp.success()
                self.r.count(f"told {name}: {answer.status} {answer.code}")
                return answer
            resp.failure(f"{answer.status} {answer.code}: {resp.text!s:.200}")
        raise Unexpected(f"{name}: {answer.status} {answer.code}")

    @task
    def visit(self) -> None:
        r = self.r
        limit = r.settings.journeys
        if limit and r.started >= limit:
            raise StopUser()
        r.started += 1
        try:
            self.journey()
        except Unexpected as e:
            r.count("visits ended by an unexpected answer")
            logger.debug("visit ended: %s", e)
        finally:
            r.finished += 1
            if limit and r.finished >= limit and self.environment.runner is not None:
                gevent.spawn(self.environment.runner.quit)

    def journey(self) -> None:
        self.told_likely = False
        # Each journey is another person: without the ticket cookie of the last one (with
        # it, the join would give that ticket's place back).
        self.client.cookiejar.clear()
        joined = self.join()
        if joined is None:
            return
        ticket = joined.body["ticket"]
        seen = self.ticket_seen(ticket)
        status = self.wait_in_line(ticket, joined, seen)
        if status is None:
            return
        if status["state"] == "admitted":
            if random.random() < self.r.settings.book_share:
                self.book(ticket, status)
            else:
                self.r.count("admitted, left without booking")
        elif status["state"] == "sold_out" and random.random() < self.r.settings.waitlist_share:
            self.join_waitlist(ticket)

    def ticket_seen(self, ticket: str) -> TicketSeen:
        payload = token_payload(ticket)
        number = payload.get("n")
        seen = TicketSeen(payload.get("kind"), number if isinstance(number, int) else None)
        self.r.tickets.append(seen)
        return seen

    # -- 1. join --------------------------------------------------------------------------

    def join(self) -> Answer | None:
        r, room = self.r, self.r.settings.room
        code = self.access_code() if random.random() < r.settings.code_share else None
        expected = [(403, "pow_required"), (403, "pow_invalid"), (403, "pow_expired")]
        expected += [(409, "too_early"), (409, "room_closed")]
        if not r.settings.loadtest_key:
            expected.append((429, "rate_limited"))
        for _ in range(JOIN_ATTEMPTS):
            body: dict[str, Any] = {"access_code": code} if code else {}
            if code is None and r.settings.pow == "solve":
                proof = self.proof_of_work()
                if proof is not None:
                    body["pow"] = proof
            a = self.call("POST", f"/api/rooms/{room}/join", "join", body=body, expected=expected)
            if a.status == 200:
                r.count("joined with a code" if code else "joined anonymously")
                return a
            if a.code == "room_closed":
                return None
            if a.code in ("too_early", "rate_limited"):
                gevent.sleep(min(a.retry_after_s or r.settings.poll_s, MAX_RETRY_AFTER_S))
        r.count("join given up")
        return None

    def proof_of_work(self) -> dict[str, str] | None:
        """The page's step before an anonymous join: fetch a challenge, solve it if required."""
        a = self.call("GET", f"/api/rooms/{self.r.settings.room}/challenge", "challenge")
        if not a.body.get("required"):
            return None
        self.r.count("proofs of work solved")
        challenge = str(a.body["challenge"])
        return {"challenge": challenge, "solution": solve(challenge, int(a.body["difficulty"]))}

    def access_code(self) -> str | None:
        r = self.r
        with r.code_lock:
            if not r.codes and r.can_issue_codes:
                self.issue_codes()
            return r.codes.pop() if r.codes else None

    def issue_codes(self) -> None:
        r = self.r
        campaign = r.room.get("campaign")
        with self.client.request(
            "POST",
            f"/api/admin/campaigns/{campaign}/codes",
            name="issue codes (operator)",
            json={"group": r.settings.code_group, "count": CODES_PER_CALL},
            headers={"Authorization": f"Bearer {r.settings.operator_key}"},
            catch_response=True,
        ) as resp:
            if resp.status_code != 201:
                resp.failure(f"{resp.status_code}: {resp.text!s:.200}")
                r.can_issue_codes = False
                return
            r.codes += _json(resp.text).get("codes", [])

    # -- 2. wait --------------------------------------------------------------------------

    def wait_in_line(self, ticket: str, joined: Answer, seen: TicketSeen) -> dict[str, Any] | None:
        """Poll the status until admitted, sold out or closed; None if given up."""
        r = self.r
        a, give_up_at = joined, time.monotonic() + r.settings.max_wait_s
        expected = [] if r.settings.loadtest_key else [(429, "rate_limited")]
        path = f"/api/rooms/{r.settings.room}/status"
        while True:
            status = a.body
            if a.status == 200:
                self.note_status(status, seen, a)
                if status["state"] in FINAL_ROOM_STATES:
                    r.count(FINAL_ROOM_STATES[status["state"]])
                    return status
                if status.get("chance") == "likely":
                    self.told_likely = True
            if time.monotonic() > give_up_at:
                r.count("gave up waiting")
                return None
            gevent.sleep(a.retry_after_s or r.settings.poll_s)
            a = self.call("GET", path, "status", token=ticket, expected=expected)

    def note_status(self, status: Mapping[str, Any], seen: TicketSeen, a: Answer) -> None:
        now = time.time()
        if status["state"] in ("waiting", "sold_out"):
            seen.waiting_sent_s = a.sent_s
        if status["state"] == "waiting" and isinstance(status.get("eta_s"), int | float):
            seen.estimates.append((now - (a.received_s - a.sent_s), float(status["eta_s"])))
        if status["state"] == "sold_out" and seen.sold_out_at is None:
            seen.sold_out_at = now
        elif status["state"] == "admitted":
            if seen.admitted_seen_s is None:
                seen.admitted_seen_s = a.received_s
                seen.admitted_at = now
            place = token_payload(str(status.get("booking_token", ""))).get("pos")
            if isinstance(place, int):
                seen.place = place

    # -- 3. book --------------------------------------------------------------------------

    def wish(self, county: str | None = None) -> dict[str, Any]:
        """A random wish, in ``county`` if given."""
        s, room = self.r.settings, self.r.room
        county = county or random.choice(room["counties"])["id"]
        wish: dict[str, Any] = {"county": county}
        centers = [c["id"] for c in room.get("centers", []) if c.get("county") == county]
        if centers and random.random() < s.center_share:
            wish["center"] = random.choice(centers)
        if random.random() < s.earliest_share:
            days = random.randint(1, 21)
            wish["earliest"] = (dt.date.today() + dt.timedelta(days=days)).isoformat()
        if random.random() < s.time_of_day_share:
            wish["time_of_day"] = random.choice(list(TIMES_OF_DAY))
        return wish

    def book(self, ticket: str, status: dict[str, Any]) -> None:
        r, token = self.r, str(status["booking_token"])
        gevent.sleep(random.uniform(0.0, 2.0 * r.settings.think_s))  # filling in the form
        wish = self.wish()
        expected = [(401, "token_expired"), (409, "token_used")]
        path = f"/api/rooms/{r.settings.room}/bookings"
        a = self.call("POST", path, "book", token=token, body=wish, expected=expected)
        if a.code == "token_expired":  # as the page: the status re-issues the token
            r.count("booking token renewed")
            again = self.call("GET", f"/api/rooms/{r.settings.room}/status", "status", token=ticket)
            token = str(again.body.get("booking_token", ""))
            a = self.call("POST", path, "book", token=token, body=wish)
        booking_id = a.body.get("booking_id") or (a.body.get("error") or {}).get("booking_id")
        booking = self.follow(str(booking_id), token)
        if booking is not None:
            self.decide(booking, token, wish)

    def follow(
        self, booking_id: str, token: str, offer_wait_s: float = 0.0
    ) -> dict[str, Any] | None:
        """Poll the booking until it is answered (held, rejected, ...); None if it waits on
        the waitlist for longer than ``offer_wait_s``. The answer itself is due within
        ``--answer-limit-s`` (every accepted command gets one), else a check fails."""
        r = self.r
        started = time.monotonic()
        answer_due, waitlisted = started + r.settings.answer_limit_s, False
        while True:
            a = self.call("GET", f"/api/bookings/{booking_id}", "booking", token=token)
            state = a.body.get("state")
            if state not in OPEN_STATES:
                return a.body
            if state == "waitlisted" and not waitlisted:
                r.count("waitlisted")
                waitlisted = True
            now = time.monotonic()
            if state == "pending" and now > answer_due:
                r.problem(f"booking {booking_id} got no answer in {r.settings.answer_limit_s}s")
                return None
            if state == "waitlisted" and now > started + offer_wait_s:
                r.count("left the waitlist unserved")
                return None
            gevent.sleep(r.settings.booking_poll_s)

    def decide(self, booking: dict[str, Any], token: str, wish: Mapping[str, Any]) -> None:
        """A held pair: check it, then confirm, cancel, or walk away and let it expire."""
        r, state = self.r, booking["state"]
        if state == "rejected":
            r.count(f"rejected: {booking.get('reason')}")
            if booking.get("reason") == "sold_out" and self.told_likely:
                r.count("likely_then_sold_out")
            return
        if state != "held":
            r.count(f"booking ended {state}")
            return
        r.count("offered from the waitlist" if booking.get("offered") else "held")
        r.outcomes.timeline.held(time.time())
        for p in pair_problems(booking, wish, r.room):
            r.problem(p)
        path = f"/api/bookings/{booking['booking_id']}"
        if random.random() < r.settings.confirm_share:
            body = None
            if r.room.get("identity_key") == "required":  # a person's own, as the page asks
                body = {"identity_key": f"LT-{random.getrandbits(48):012x}"}
            a = self.call("POST", f"{path}/confirm", "confirm", token=token, body=body)
            final = a.body if a.status == 200 else self.follow_to(path, token, "confirmed")
            if final.get("state") != "confirmed":
                r.problem(f"confirmed booking {booking['booking_id']} is {final.get('state')}")
                return
            r.count("confirmed")
            r.outcomes.confirmed_ids.append(str(booking["booking_id"]))
            if random.random() < r.settings.move_share:
                self.move(final, token)
        elif random.random() < r.settings.cancel_share:
            self.call("POST", f"{path}/cancel", "cancel", token=token)
            r.count("cancelled")
        else:
            r.count("walked away from a hold")

    def move(self, booking: dict[str, Any], token: str) -> None:
        """Change a confirmed pair to the best one for a new wish; it stays confirmed, and
        the new pair is checked like a held one. A refusal leaves the old pair."""
        r = self.r
        wish = self.wish(None if r.settings.move_across_counties else self.county_of(booking))
        path = f"/api/bookings/{booking['booking_id']}/move"
        expected = [(409, reason) for reason in MOVE_REFUSALS]
        a = self.call("POST", path, "move", token=token, body=wish, expected=expected)
        if a.status == 409:
            r.count(f"move refused: {a.code}")
            return
        if a.status == 202:  # answered later; a refusal then shows nowhere to check
            r.count("move answered after the gateway's wait")
            return
        if a.body.get("state") != "confirmed" or a.body.get("moves") != booking.get("moves", 0) + 1:
            r.problem(f"moved booking {booking['booking_id']} is {a.body}")
            return
        for p in pair_problems(a.body, wish, r.room):
            r.problem(p)
        before, after = (self.county_of(b) for b in (booking, a.body))
        r.count("moved to another county" if before != after else "moved in its county")

    def county_of(self, booking: Mapping[str, Any]) -> str | None:
        centers = {c["id"]: c.get("county") for c in self.r.room.get("centers", [])}
        first = (booking.get("appointments") or [{}])[0]
        return centers.get(first.get("center"))

    def follow_to(self, path: str, token: str, state: str) -> dict[str, Any]:
        """After a 202 (no answer within the gateway's wait): poll until ``state`` or final."""
        until = time.monotonic() + self.r.settings.answer_limit_s
        while True:
            a = self.call("GET", path, "booking", token=token)
            if a.body.get("state") != "held" or time.monotonic() > until:
                return a.body
            gevent.sleep(self.r.settings.booking_poll_s)

    # -- 4. waitlist ----------------------------------------------------------------------

    def join_waitlist(self, ticket: str) -> None:
        r = self.r
        wish = self.wish()
        a = self.call(
            "POST",
            f"/api/rooms/{r.settings.room}/waitlist",
            "waitlist",
            token=ticket,
            body=wish,
            expected=[(409, "not_sold_out")],  # inventory came back in the meantime
        )
        if a.status != 202:
            return
        token = str(a.body["booking_token"])
        booking = self.follow(str(a.body["booking_id"]), token, r.settings.waitlist_wait_s)
        if booking is not None:
            self.decide(booking, token, wish)


def _json(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _retry_after(resp: Any) -> float | None:
    try:
        return float(resp.headers.get("Retry-After") or 0) or None
    except (TypeError, ValueError):
        return None
