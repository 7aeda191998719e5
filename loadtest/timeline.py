"""What a rehearsal's client side saw, second by second, for the report.

Each request (its name, latency, failed or not) goes into the second it ended in;
each visit adds when it was told sold out and, once admitted, each estimated wait it
was shown with its place in the line and when it saw itself admitted: the report
judges the estimates, for only it has the room's cursor as scraped (when the place
was really reached, which a visitor polling every few seconds learns late). Locust
workers send what they gathered to the master with their stats (``take``/``add``),
and the master writes ``summary()``: per request name and second, the count, the
failures and the latency percentiles. Plain Python (no gevent), so that the report
and the tests read it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

PERCENTILES = (50, 95, 99)

# (shown at, estimated wait in s, place on the room's timeline or None, admission seen
# at): wall clock; a list, not a tuple, once it has been through msgpack or JSON
Estimate = tuple[float, float, int | None, float]


class Visit(Protocol):
    """A visit's timings (``launchday.TicketSeen``): wall clock seconds."""

    estimates: list[tuple[float, float]]  # (shown at, estimated wait in s)
    place: int | None  # on the room's timeline, once admitted (its booking token's)
    joined_at: float
    admitted_at: float | None
    sold_out_at: float | None


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``values``; NaN if there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Timeline:
    # str(second) -> request name -> latencies in ms (str keys: locust ships them as msgpack)
    latencies: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    failures: dict[str, dict[str, int]] = field(default_factory=dict)
    held_at: list[float] = field(default_factory=list)
    sold_out_at: list[tuple[float, float]] = field(default_factory=list)  # (joined, told)
    estimates: list[Estimate] = field(default_factory=list)  # of visits admitted

    def request(self, at: float, name: str, ms: float, failed: bool) -> None:
        second = str(int(at))
        self.latencies.setdefault(second, {}).setdefault(name, []).append(ms)
        if failed:
            per_name = self.failures.setdefault(second, {})
            per_name[name] = per_name.get(name, 0) + 1

    def held(self, at: float) -> None:
        self.held_at.append(at)

    def visits(self, seen: Iterable[Visit]) -> None:
        """Each visit's sold-out notice, and each estimate of a visit later admitted
        (only those have a wait to judge the estimate against)."""
        for v in seen:
            if v.sold_out_at is not None:
                self.sold_out_at.append((v.joined_at, v.sold_out_at))
            if v.admitted_at is None:
                continue
            for shown_at, estimate_s in v.estimates:
                self.estimates.append((shown_at, estimate_s, v.place, v.admitted_at))

    def take(self) -> dict[str, Any]:
        """All of it as plain data (and forget it here): a worker's report to the master."""
        out = self.raw()
        self.latencies, self.failures = {}, {}
        self.held_at, self.sold_out_at, self.estimates = [], [], []
        return out

    def raw(self) -> dict[str, Any]:
        return {
            "latencies": self.latencies,
            "failures": self.failures,
            "held_at": self.held_at,
            "sold_out_at": self.sold_out_at,
            "estimates": self.estimates,
        }

    @staticmethod
    def requests_in(raw: Mapping[str, Any]) -> int:
        """How many requests a ``take()`` holds."""
        return sum(len(v) for names in raw.get("latencies", {}).values() for v in names.values())

    def add(self, raw: Mapping[str, Any]) -> None:
        for second, names in raw.get("latencies", {}).items():
            for name, values in names.items():
                self.latencies.setdefault(second, {}).setdefault(name, []).extend(values)
        for second, names in raw.get("failures", {}).items():
            for name, n in names.items():
                per_name = self.failures.setdefault(second, {})
                per_name[name] = per_name.get(name, 0) + n
        self.held_at += raw.get("held_at", [])
        self.sold_out_at += [tuple(s) for s in raw.get("sold_out_at", [])]
        self.estimates += [(e[0], e[1], e[2], e[3]) for e in raw.get("estimates", [])]

    def summary(self) -> dict[str, Any]:
        """Per request name: one row a second (t, n, failures, p50, p95, p99), and the
        totals over the run; the visits' timings as they are."""
        routes: dict[str, list[dict[str, float]]] = {}
        every: dict[str, list[float]] = {}
        failed: dict[str, int] = {}
        for second in sorted(self.latencies, key=int):
            for name, values in sorted(self.latencies[second].items()):
                n_failed = self.failures.get(second, {}).get(name, 0)
                row = {"t": float(second), "n": len(values), "failures": n_failed}
                row |= {f"p{p}": percentile(values, p) for p in PERCENTILES}
                routes.setdefault(name, []).append(row)
                every.setdefault(name, []).extend(values)
                failed[name] = failed.get(name, 0) + n_failed
        totals = {
            name: {"n": len(values), "failures": failed[name]}
            | {f"p{p}": percentile(values, p) for p in PERCENTILES}
            for name, values in every.items()
        }
        return {
            "routes": routes,
            "totals": totals,
            "held_at": sorted(self.held_at),
            "sold_out_at": sorted(self.sold_out_at),
            # by time shown (a place may be None: tuples with it do not compare)
            "estimates": sorted(self.estimates, key=lambda e: (e[0], e[3])),
        }
