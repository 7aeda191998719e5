"""A rehearsal's report: one self-contained HTML file, and the verdict.

Everything a ministry would ask of a launch, from what the rehearsal gathered
(``loadtest.rehearse``): the client side (requests per second and latency
percentiles per request name over time, failures), the system's side (the series
``loadtest.scrape`` kept), the correctness checks (from the log, by
``tests.eventlog.audit``, and the order of admission as the visitors saw it), the
time from the last pair held until every visitor then waiting was told sold out,
the honesty of the estimated wait (against when the room's cursor, as scraped, reached
the visitor's place), click-to-held, and each service level of the
scenario met or not. The plots are matplotlib's SVG written into the page: the file
needs nothing from any other host. ``Report.passed`` is the verdict (the exit code).
"""

from __future__ import annotations

import bisect
import dataclasses
import html
import io
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: render to SVG only
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from loadtest.bench_click_to_held import Probe
from loadtest.click_path import TAIL_PERCENTILE
from loadtest.scenario import Scenario
from loadtest.timeline import percentile

FIRST_MINUTE_S = 60.0
MIN_WAIT_S = 1.0  # the relative error of an estimate is over at least this wait
ADMISSIONS = "admissions"  # loadtest.scrape's series of the room's cursor
LOOP_LAG = "Event loop lag, worst in each second, per process (s)"
LOOP_LAG_SERIES = "event loop lag (s) ("  # loadtest.scrape's, one per process
PAUSE_COLOR, CAP_COLOR = "#f0c36d", "#8fb8e8"  # the operator's windows, shaded in the plots
# how launchday.order_inversions words what it finds
ORDER_PROBLEMS = ("ticket ", "place ", "post tickets are not in arrival order")

# the log's findings (tests.eventlog.Audit.findings) as the report names them
LOG_CHECKS = {
    "bad_histories": "every booking: one path to one final answer",
    "unanswered": "every Book answered",
    "over_capacity": "no slot over its capacity",
    "broken_pairs": "whole pairs (doses 1 and 2, one center and vaccine, in the interval)",
    "two_pairs": "nobody with two pairs",
    "false_rejections": "no rejection while a pair was free",
}


@dataclass(frozen=True, slots=True)
class Level:
    """One service level: what it asks, what the run measured, met or not."""

    name: str
    limit: str
    measured: str
    met: bool


@dataclass
class Run:
    """What a rehearsal gathered (``loadtest.rehearse`` fills it)."""

    scenario: Scenario
    host: str
    started_at: float  # wall clock: locust started
    opens_at: float  # wall clock: the room opened
    timeline: Mapping[str, Any]  # loadtest.timeline.Timeline.summary()
    outcomes: Mapping[str, Any]  # launchday's --outcomes-json
    scrape: Mapping[str, Any]  # loadtest.scrape.Scraper.to_json()
    log_findings: Mapping[str, Sequence[str]] | None  # None: the log was not read
    log_note: str  # how the log was read, or why not
    probes: Sequence[Probe] = ()
    paused: tuple[float, float] | None = None  # wall clock: the operator's pause
    capped: tuple[float, float] | None = None  # wall clock: the operator's lowered cap
    locust_exit: int = 0
    command: str = ""
    click_path: Sequence[Mapping[str, Any]] = ()  # loadtest.click_path.breakdown of the probes

    def to_json(self) -> dict[str, Any]:
        """Everything but the scenario (named), for judging again later."""
        return {
            "scenario": self.scenario.name,
            "host": self.host,
            "started_at": self.started_at,
            "opens_at": self.opens_at,
            "timeline": self.timeline,
            "outcomes": self.outcomes,
            "scrape": self.scrape,
            "log_findings": self.log_findings,
            "log_note": self.log_note,
            "probes": [dataclasses.asdict(p) for p in self.probes],
            "paused": self.paused,
            "capped": self.capped,
            "locust_exit": self.locust_exit,
            "command": self.command,
            "click_path": list(self.click_path),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], scenario: Scenario) -> Run:
        windows = ("paused", "capped")
        fields = {k: v for k, v in data.items() if k not in ("scenario", "probes", *windows)}
        paused, capped = (_window(data.get(k)) for k in windows)
        probes = [Probe(**p) for p in data["probes"]]
        return cls(scenario=scenario, probes=probes, paused=paused, capped=capped, **fields)


def _window(value: Sequence[float] | None) -> tuple[float, float] | None:
    return None if not value else (value[0], value[1])


@dataclass
class Report:
    run: Run
    levels: list[Level] = field(default_factory=list)
    checks: list[tuple[str, Sequence[str] | None]] = field(default_factory=list)
    figures: dict[str, str] = field(default_factory=dict)  # heading -> inline SVG
    estimates: list[Judged] = field(default_factory=list)  # judge_estimates(run)

    @property
    def passed(self) -> bool:
        return all(lv.met for lv in self.levels) and all(p == [] for _, p in self.checks)

    def verdict_lines(self) -> list[str]:
        """The verdict as text, one line per level and check, for the terminal."""
        lines = [f"verdict: {'PASS' if self.passed else 'FAIL'} ({self.run.scenario.name})"]
        for lv in self.levels:
            lines.append(
                f"  {'ok  ' if lv.met else 'FAIL'} {lv.name}: {lv.measured} (limit {lv.limit})"
            )
        for name, problems in self.checks:
            state = "not run" if problems is None else f"{len(problems)} problem(s)"
            lines.append(f"  {'ok  ' if problems == [] else 'FAIL'} {name}: {state}")
        return lines


# -- measures --------------------------------------------------------------------------


def failure_share(totals: Mapping[str, Mapping[str, float]]) -> tuple[float, int, int]:
    n = sum(int(t["n"]) for t in totals.values())
    failed = sum(int(t["failures"]) for t in totals.values())
    return (failed / n if n else 0.0), failed, n


def in_baskets_first_minute(held_at: Sequence[float], opens_at: float) -> int:
    """Pairs held (a basket's appointment: both doses) in the minute after the opening."""
    return sum(1 for t in held_at if opens_at <= t < opens_at + FIRST_MINUTE_S)


def sold_out_notice_s(
    held_at: Sequence[float], sold_out_at: Sequence[Sequence[float]]
) -> float | None:
    """From the last pair held before the first sold-out answer until the last visitor
    who had joined by then was told sold out; None if nobody was told sold out."""
    if not sold_out_at:
        return None
    first_told = min(told for _, told in sold_out_at)
    last_held = max((t for t in held_at if t <= first_told), default=None)
    if last_held is None:
        return None
    waiting = [told for joined, told in sold_out_at if joined <= last_held]
    return max(waiting, default=first_told) - last_held


def estimate_errors(values: Sequence[float]) -> tuple[float, float, int]:
    """Median and p90 of the relative errors of the estimated waits, and how many."""
    if not values:
        return math.nan, math.nan, 0
    return statistics.median(values), percentile(values, 90), len(values)


@dataclass(frozen=True, slots=True)
class Cursor:
    """The room's cursor (every place up to it admitted) as the scrapes saw it: the
    gateways' largest ``fairq_room_admitted`` each second (``loadtest.scrape``), its
    times the rehearsal's wall clock (the same clock as the visitors' on this machine)."""

    times: Sequence[float]
    values: Sequence[float]  # non-decreasing

    @classmethod
    def scraped(cls, times: Sequence[float], values: Sequence[float | None]) -> Cursor:
        """The series without its gaps (no gateway answered) and never going back: a
        cursor does not, so a lower value is a gateway behind the others answering alone."""
        kept_t: list[float] = []
        kept_v: list[float] = []
        for t, v in zip(times, values, strict=False):
            if v is not None:
                kept_t.append(t)
                kept_v.append(max(v, kept_v[-1]) if kept_v else v)
        return cls(kept_t, kept_v)

    def reached(self, place: int) -> float | None:
        """When the cursor first reached ``place``: between the last scrape below it and
        the first at or past it, in proportion (the admitter lets people in at a rate, not
        in one jump a second). None if no scrape was below it or none reached it."""
        i = bisect.bisect_left(self.values, place)
        if i == 0 or i == len(self.values):
            return None
        (t0, t1), (v0, v1) = self.times[i - 1 : i + 1], self.values[i - 1 : i + 1]
        return t0 + (t1 - t0) * (place - v0) / (v1 - v0)


def admission_time(
    cursor: Cursor, *, place: int | None, seen_at: float, last_waiting: float
) -> tuple[float, bool]:
    """When a visit was admitted, and whether the cursor said so: when the cursor reached
    its place, for the visitor polling every few seconds saw it up to a poll late (the
    page, on its event stream, learns at once). Never after the visitor saw it admitted
    nor before its last answer saying waiting (those answers are proof; the scrapes are a
    second apart). The moment seen when the cursor cannot tell (no place, no scrape)."""
    reached = None if place is None else cursor.reached(place)
    if reached is None:
        return seen_at, False
    return min(max(reached, last_waiting), seen_at), True


@dataclass(frozen=True, slots=True)
class Judged:
    """One estimate shown, against the wait it then had (wall clock)."""

    shown_at: float
    error: float  # relative: |estimate - wait had| / max(wait had, MIN_WAIT_S)
    admitted_at: float
    by_cursor: bool  # the admission time from the room's cursor, not the visitor's poll
    phase: str  # phase_of: where it belongs in the report, and whether the level judges it


def judge_estimates(run: Run) -> list[Judged]:
    """Every estimate of the timeline (``Timeline.estimates``) judged, in its order."""
    estimates = run.timeline.get("estimates", [])
    cursor = Cursor.scraped(
        run.scrape.get("t", []), run.scrape.get("series", {}).get(ADMISSIONS) or []
    )
    last_waiting: dict[tuple[int | None, float], float] = {}  # per visit
    for shown_at, _, place, seen_at in estimates:
        last_waiting[place, seen_at] = max(last_waiting.get((place, seen_at), shown_at), shown_at)
    admitted = {
        visit: admission_time(cursor, place=visit[0], seen_at=visit[1], last_waiting=last)
        for visit, last in last_waiting.items()
    }
    out = []
    for shown_at, estimate_s, place, seen_at in estimates:
        admitted_at, by_cursor = admitted[place, seen_at]
        had_s = admitted_at - shown_at
        error = abs(estimate_s - had_s) / max(had_s, MIN_WAIT_S)
        phase = phase_of(run, shown_at, admitted_at)
        out.append(Judged(shown_at, error, admitted_at, by_cursor, phase))
    return out


def admission_source(judged: Sequence[Judged]) -> str:
    """How the admission times were taken, said aloud (the poll's are up to a poll late)."""
    n = sum(j.by_cursor for j in judged)
    return (
        f"admission time from the room's cursor for {n} of {len(judged)} estimates; "
        "the rest from the visitor's own poll"
    )


CAP_LIMITED = "cap-limited (active bookers at max_active)"
CROSSED_PAUSE = "the wait crossed the operator's pause"
CROSSED_CAP = "the wait crossed the operator's change of the cap"
# An operator's decision that no estimate shown before it can foresee: the estimates
# whose wait it crossed are shown apart and left out of the level.
CROSSED = (CROSSED_PAUSE, CROSSED_CAP)


def phase_of(run: Run, at: float, admitted_at: float) -> str:
    """Where an estimate shown at ``at`` (wall clock) belongs: its wait crossed the
    operator's pause (a paused room shows no estimate: those shown before it are judged
    here) or a change of the cap on active bookers (lowered or raised again), which no
    estimate shown before can foresee; it was shown while admission was held back by the
    cap (as the next scrape saw them: active bookers at the room's max_active, the
    scenario's if no process exported it); or the arrivals' phase it was shown in."""
    if run.paused is not None and at < run.paused[1] and admitted_at > run.paused[0]:
        return CROSSED_PAUSE
    if run.capped is not None and any(at < change < admitted_at for change in run.capped):
        return CROSSED_CAP
    series = run.scrape.get("series", {})
    times, active = run.scrape.get("t", []), series.get("active bookers")
    if times and active:
        i = min(bisect.bisect_left(times, at), len(times) - 1)
        caps = series.get("cap on active bookers")
        cap = caps[i] if caps else None
        if (active[i] or 0) >= (run.scenario.room.max_active if cap is None else cap):
            return CAP_LIMITED
    return _arrival_phase(run.scenario, at - run.started_at)


def lowered_cap(run: Run) -> str:
    """What the operator lowered the cap to: as scraped during the stretch, else as the
    scenario says."""
    room, times = run.scenario.room, run.scrape.get("t", [])
    caps = run.scrape.get("series", {}).get("cap on active bookers") or []
    if run.capped is not None:
        start, end = run.capped
        seen = [c for t, c in zip(times, caps, strict=False) if start < t < end and c]
        if seen:
            return f"{min(seen):.0f}"
    if room.capped_below_active:
        return f"{room.capped_below_active} under the active bookers of that moment (not scraped)"
    return f"{room.capped_max_active} (as the scenario says; not scraped)"


def no_estimates(timeline: Mapping[str, Any], judged: Sequence[Judged]) -> str:
    """Why the level has no estimate to judge."""
    if judged:
        return f"none of the {len(judged)} estimates: an operator's decision crossed every wait"
    if timeline.get("estimate_errors"):  # a run.json from before the cursor timed them
        return "recorded in an older form (timeline.estimate_errors): not judged again"
    return "no estimates"


def foreseeable(judged: Sequence[Judged]) -> list[Judged]:
    """The estimates whose wait no operator's decision crossed: those the level judges."""
    return [j for j in judged if j.phase not in CROSSED]


def _arrival_phase(scenario: Scenario, since_start_s: float) -> str:
    a = scenario.arrivals
    bounds = (
        (a.pre_opening_s, "before the opening"),
        (a.pre_opening_s + a.ramp_s, "ramp"),
        (a.pre_opening_s + a.ramp_s + a.peak_s, "peak"),
    )
    return next((name for end, name in bounds if since_start_s < end), "tail")


# -- the verdict ------------------------------------------------------------------------


def judge(run: Run) -> Report:
    report = Report(run)
    sl, tl = run.scenario.service_levels, run.timeline
    totals: Mapping[str, Mapping[str, float]] = tl.get("totals", {})
    share, failed, n = failure_share(totals)
    report.levels.append(
        Level(
            "failed requests",
            f"≤ {sl.max_failure_share:.2%}",
            f"{share:.3%} ({failed} of {n})",
            share <= sl.max_failure_share and n > 0,
        )
    )
    for route, limit in sorted(sl.p99_ms.items()):
        p99 = totals.get(route, {}).get("p99", math.nan)
        report.levels.append(
            Level(f"p99 latency of {route}", f"≤ {limit:.0f} ms", f"{p99:.0f} ms", p99 <= limit)
        )
    held = in_baskets_first_minute(tl.get("held_at", []), run.opens_at)
    wanted = sl.min_appointments_in_baskets_first_minute
    report.levels.append(
        Level("pairs in baskets in the first minute", f"≥ {wanted}", str(held), held >= wanted)
    )
    notice = sold_out_notice_s(tl.get("held_at", []), tl.get("sold_out_at", []))
    report.levels.append(
        Level(
            "last pair held → every waiting visitor told sold out",
            f"≤ {sl.max_sold_out_notice_s:.0f} s",
            "not sold out" if notice is None else f"{notice:.1f} s",
            notice is None or notice <= sl.max_sold_out_notice_s,
        )
    )
    report.estimates = judge_estimates(run)
    judged = foreseeable(report.estimates)
    median, p90, count = estimate_errors([j.error for j in judged])
    report.levels.append(
        Level(
            "estimated wait: p90 relative error",
            f"≤ {sl.max_estimate_error_p90:.0%}",
            f"{p90:.0%} (median {median:.0%}; the {count} of {len(report.estimates)} estimates"
            f" whose wait no operator's pause or change of the cap crossed;"
            f" {admission_source(report.estimates)})"
            if count
            else no_estimates(tl, report.estimates),
            count > 0 and p90 <= sl.max_estimate_error_p90,
        )
    )
    probe_ms = [p.ms for p in run.probes]
    c2h = percentile(probe_ms, 99)
    report.levels.append(
        Level(
            "click-to-held p99",
            f"≤ {sl.max_click_to_held_p99_ms:.0f} ms",
            f"{c2h:.0f} ms (p50 {percentile(probe_ms, 50):.0f} ms, {len(probe_ms)} probes)"
            if probe_ms
            else "no probes",
            bool(probe_ms) and c2h <= sl.max_click_to_held_p99_ms,
        )
    )
    counts: Mapping[str, int] = run.outcomes.get("counts", {})
    inversions = [p for p in run.outcomes.get("problems", []) if p.startswith(ORDER_PROBLEMS)]
    checked = counts.get("order checked (tickets)", 0)
    report.checks.append(
        (
            f"zero inversions in admission order ({checked} tickets checked)",
            inversions if checked else None,
        )
    )
    others = [p for p in run.outcomes.get("problems", []) if p not in inversions]
    report.checks.append(("the visitors' own checks (pairs as seen, answers in time)", others))
    findings = run.log_findings
    for key, name in LOG_CHECKS.items():
        report.checks.append((f"log: {name}", None if findings is None else findings.get(key, [])))
    report.figures = figures(run, report.estimates)
    return report


# -- the plots --------------------------------------------------------------------------


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]  # no XML prologue inside the HTML


def _axes(title: str, ylabel: str, log: bool = False) -> tuple[Figure, Any]:
    fig, ax = plt.subplots(figsize=(9, 3.2))
    ax.set_title(title, fontsize=11, loc="left")
    ax.set_xlabel("seconds since the opening")
    ax.set_ylabel(ylabel)
    ax.axvline(0, color="#888", linestyle=":", linewidth=1)  # the opening
    ax.grid(alpha=0.3)
    if log:
        ax.set_yscale("log")
    return fig, ax


def figures(run: Run, estimates: Sequence[Judged]) -> dict[str, str]:
    out: dict[str, str] = {}

    ends = [t - run.opens_at for t in run.scrape.get("t", [])[-1:]]
    span = (run.started_at - run.opens_at, *ends)  # every plot on the run's time axis

    def axes(title: str, ylabel: str, log: bool = False) -> tuple[Figure, Any]:
        fig, ax = _axes(title, ylabel, log)
        if len(span) == 2:
            ax.set_xlim(*span)
        for window, color in ((run.paused, PAUSE_COLOR), (run.capped, CAP_COLOR)):
            if window is not None:  # the operator's pause and lowered cap, shaded
                start, end = (t - run.opens_at for t in window)
                ax.axvspan(start, end, color=color, alpha=0.3, linewidth=0)
        return fig, ax

    routes: Mapping[str, list[Mapping[str, float]]] = run.timeline.get("routes", {})
    opens = run.opens_at
    fig, ax = axes("Requests per second, by request name", "requests/s")
    total: dict[float, float] = {}
    for name, rows in sorted(routes.items()):
        ax.plot([r["t"] - opens for r in rows], [r["n"] for r in rows], label=name, linewidth=1)
        for r in rows:
            total[r["t"] - opens] = total.get(r["t"] - opens, 0.0) + r["n"]
    seconds = sorted(total)
    ax.plot(seconds, [total[t] for t in seconds], color="k", linewidth=1.6, label="all")
    a = run.scenario.arrivals
    ts = [float(t) for t in range(int(a.duration_s) + 1)]
    target = [a.clicks_per_s(t) or 0.0 for t in ts]
    start = run.started_at - opens
    ax.plot([start + t for t in ts], target, "k--", linewidth=1.2, label="scenario's click rate")
    ax.legend(fontsize=7, ncol=4)
    out["Client side: requests per second"] = _svg(fig)

    fig, ax = axes("Latency per request name: p50 (thin) and p99 (thick)", "ms", log=True)
    for i, (name, rows) in enumerate(sorted(routes.items())):
        color = f"C{i % 10}"
        x = [r["t"] - opens for r in rows]
        ax.plot(x, [r["p50"] for r in rows], color=color, linewidth=0.7)
        ax.plot(x, [r["p99"] for r in rows], color=color, linewidth=1.6, label=name)
    if routes:  # a run without requests has nothing to name
        ax.legend(fontsize=7, ncol=4)
    out["Client side: latency percentiles over time"] = _svg(fig)

    fig, ax = axes("Failed requests per second", "failures/s")
    for name, rows in sorted(routes.items()):
        if any(r["failures"] for r in rows):
            x = [r["t"] - opens for r in rows]
            ax.plot(x, [r["failures"] for r in rows], label=name)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no failed request", transform=ax.transAxes, ha="center")
    out["Client side: errors"] = _svg(fig)

    series: Mapping[str, list[float | None]] = run.scrape.get("series", {})
    x = [t - opens for t in run.scrape.get("t", [])]
    groups = (
        ("The line", ("queue depth", "active bookers", "cap on active bookers")),
        ("Arrivals and admissions (cumulative)", ("arrivals (tickets issued)", "admissions")),
        ("Inventory (pairs)", ("pairs left", "pairs held", "pairs confirmed")),
        ("Expiries (cumulative) and 5xx answers (cumulative)", ("expiries", "5xx answers")),
        ("Allocator lag (records behind the log's end)", ("allocator lag (records)",)),
        (
            LOOP_LAG,
            tuple(sorted(n for n in series if n.startswith(LOOP_LAG_SERIES)))
            or ("event loop lag (s)",),
        ),
    )
    for title, names in groups:
        fig, ax = axes(title, "")
        for name in names:
            values = series.get(name, [])
            if any(v is not None for v in values):
                ax.plot(x, [math.nan if v is None else v for v in values], label=name)
            else:
                ax.plot([], [], label=f"{name} (no process exported it)")
        ax.legend(fontsize=7)
        out[f"System side: {title}"] = _svg(fig)

    fig, ax = axes("Click-to-held probes (one a second, a room of their own)", "ms")
    ax.scatter([p.at - opens for p in run.probes], [p.ms for p in run.probes], s=6)
    ax.axhline(run.scenario.service_levels.max_click_to_held_p99_ms, color="r", linewidth=0.8)
    out["Click to held over time"] = _svg(fig)

    fig, ax = axes(
        "Estimated wait: relative error of each estimate shown", "|estimate - wait had| / wait had"
    )
    sources = ((True, "admission from the room's cursor"), (False, "from the visitor's poll"))
    for by_cursor, label in sources:
        shown = [j for j in estimates if j.by_cursor is by_cursor]
        ax.scatter([j.shown_at - opens for j in shown], [j.error for j in shown], s=4, label=label)
    ax.legend(fontsize=7)
    out["Honesty of the estimated wait"] = _svg(fig)
    return out


# -- the page ---------------------------------------------------------------------------

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 980px; color: #222 }
h1 { margin-bottom: .2rem } .sub { color: #555 }
.verdict { font-size: 1.6rem; font-weight: 700; padding: .6rem 1rem; border-radius: 6px }
.pass { background: #e3f4e6; color: #145c24 } .fail { background: #fbe4e4; color: #8a1414 }
table { border-collapse: collapse; margin: .6rem 0 1.2rem; width: 100% }
td, th { border-bottom: 1px solid #ddd; padding: .3rem .5rem; text-align: left }
td.ok { color: #145c24; font-weight: 600 } td.bad { color: #8a1414; font-weight: 600 }
figure { margin: 0 0 1.2rem } svg { max-width: 100%; height: auto }
code { background: #f3f3f3; padding: 0 .2rem }
"""


def _row(cells: Sequence[str], css: Sequence[str] = ()) -> str:
    tds = "".join(
        f'<td class="{c}">{v}</td>' if c else f"<td>{v}</td>"
        for v, c in zip(cells, [*css, *[""] * len(cells)], strict=False)
    )
    return f"<tr>{tds}</tr>"


def render(report: Report) -> str:
    run, e = report.run, html.escape
    s = run.scenario
    verdict = "PASS" if report.passed else "FAIL"
    levels = "".join(
        _row(
            [e(lv.name), e(lv.limit), e(lv.measured), "met" if lv.met else "missed"],
            ["", "", "", "ok" if lv.met else "bad"],
        )
        for lv in report.levels
    )
    checks = []
    for name, problems in report.checks:
        if problems is None:
            state, css, detail = "not run", "bad", ""
        else:
            state = "none" if not problems else f"{len(problems)} found"
            css = "ok" if not problems else "bad"
            detail = "<br>".join(e(p) for p in problems[:20])
        checks.append(_row([e(name), state, detail], ["", css]))
    counts = run.outcomes.get("counts", {})
    outcome_rows = "".join(_row([e(k), str(v)]) for k, v in sorted(counts.items()))
    median, p90, n_est = estimate_errors([j.error for j in report.estimates])
    by_phase: dict[str, list[float]] = {}
    for j in report.estimates:
        by_phase.setdefault(j.phase, []).append(j.error)
    phase_rows = "".join(
        _row(
            [
                e(p),
                str(len(v)),
                f"{statistics.median(v):.0%}",
                f"{percentile(v, 90):.0%}",
                "no" if p in CROSSED else "yes",
            ]
        )
        for p, v in by_phase.items()
    )
    click_path = (
        "<table><tr><th>stage</th><th>p50</th><th>p90</th><th>p99</th><th>max</th>"
        "<th>tail</th></tr>"
        + "".join(
            _row(
                [e(r["stage"]), *(f"{r[k]:.1f}" for k in ("p50", "p90", "p99", "max", "tail_mean"))]
            )
            for r in run.click_path
        )
        + "</table>"
        if run.click_path
        else "<p>Not measured: the log was not read, or no probe was found in it.</p>"
    )
    figs = "".join(
        f"<figure><h3>{e(title)}</h3>{svg}</figure>" for title, svg in report.figures.items()
    )
    failed_scrapes = run.scrape.get("failed", {})
    pause = ""
    if run.paused is not None:
        start, end = (t - run.opens_at for t in run.paused)
        pause = f" The operator paused admission from {start:.0f} s to {end:.0f} s (shaded yellow)."
    if run.capped is not None:
        start, end = (t - run.opens_at for t in run.capped)
        pause += (
            f" The operator lowered the cap on active bookers to {lowered_cap(run)} "
            f"from {start:.0f} s to {end:.0f} s (shaded blue)."
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>fairq rehearsal: {e(s.name)} — {verdict}</title><style>{STYLE}</style></head>
<body>
<h1>Launch rehearsal: {e(s.name)}</h1>
<p class="sub">{e(s.description)} (scale {s.scale:g} of the reference launch) against
<code>{e(run.host)}</code>; {len(run.scrape.get("t", []))} scrapes of
{len(run.scrape.get("targets", []))} /metrics endpoint(s)
({sum(failed_scrapes.values())} failed); locust exited {run.locust_exit}.{pause}</p>
<p class="verdict {"pass" if report.passed else "fail"}">Verdict: {verdict}</p>
<h2>Service levels</h2>
<table><tr><th>level</th><th>limit</th><th>measured</th><th></th></tr>{levels}</table>
<h2>Fairness and correctness</h2>
<p>{e(run.log_note)}</p>
<table><tr><th>check</th><th>problems</th><th>first ones</th></tr>{"".join(checks)}</table>
<h2>Honesty of the estimated wait</h2>
<p>For each admitted visitor, each estimate shown while waiting against the wait it then
had, until the room's cursor reached the visitor's place (between the two scrapes around
it; not after the visitor saw it admitted): median relative error {median:.0%}, p90
{p90:.0%}, over all {n_est} estimates; {e(admission_source(report.estimates))}. The
service level judges the estimates whose wait no operator's pause or change of the cap
crossed: no estimate shown before such a decision can foresee it.</p>
<table><tr><th>phase</th><th>estimates</th><th>median</th><th>p90</th><th>in the level</th></tr>
{phase_rows}</table>
<h2>Click to held: where the time goes</h2>
<p>Each probe cut at its Book's and its answer's record timestamps in the log
(<code>loadtest.click_path</code>); ms; tail: the mean over the probes at or above the
p{TAIL_PERCENTILE} of click-to-held.</p>
{click_path}
<h2>Plots</h2>
{figs}
<h2>What the visitors met</h2>
<table>{outcome_rows}</table>
<p class="sub">Command: <code>{e(run.command)}</code></p>
</body></html>
"""
