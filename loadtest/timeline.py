"""What a rehearsal's client side saw, second by second, for the report.

Each request (its name, latency, failed or not) goes into the second it ended in;
each visit adds when it was told sold out and, once admitted, how far each
estimated wait it was shown was from the wait it had. Locust workers send what they
gathered to the master with their stats (``take``/``add``), and the master writes
``summary()``: per request name and second, the count, the failures and the latency
percentiles. Plain Python (no gevent), so that the report and the tests read it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

PERCENTILES = (50, 95, 99)
MIN_WAIT_S = 1.0  # the relative error of an estimate is over at least this wait


class Visit(Protocol):
    """A visit's timings (``launchday.TicketSeen``): wall clock seconds."""

    estimates: list[tuple[float, float]]  # (shown at, estimated wait in s)
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
    # (shown at, relative error, admitted at)
    estimate_errors: list[tuple[float, float, float]] = field(default_factory=list)

    def request(self, at: float, name: str, ms: float, failed: bool) -> None:
        second = str(int(at))
        self.latencies.setdefault(second, {}).setdefault(name, []).append(ms)
        if failed:
            per_name = self.failures.setdefault(second, {})
            per_name[name] = per_name.get(name, 0) + 1

    def held(self, at: float) -> None:
        self.held_at.append(at)

    def visits(self, seen: Iterable[Visit]) -> None:
        """Each visit's sold-out notice, and each estimate against the wait it had."""
        for v in seen:
            if v.sold_out_at is not None:
                self.sold_out_at.append((v.joined_at, v.sold_out_at))
            if v.admitted_at is None:
                continue
            for shown_at, estimate_s in v.estimates:
                had_s = v.admitted_at - shown_at
                error = abs(estimate_s - had_s) / max(had_s, MIN_WAIT_S)
                self.estimate_errors.append((shown_at, error, v.admitted_at))

    def take(self) -> dict[str, Any]:
        """All of it as plain data (and forget it here): a worker's report to the master."""
        out = self.raw()
        self.latencies, self.failures = {}, {}
        self.held_at, self.sold_out_at, self.estimate_errors = [], [], []
        return out

    def raw(self) -> dict[str, Any]:
        return {
            "latencies": self.latencies,
            "failures": self.failures,
            "held_at": self.held_at,
            "sold_out_at": self.sold_out_at,
            "estimate_errors": self.estimate_errors,
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
        self.estimate_errors += [tuple(e) for e in raw.get("estimate_errors", [])]

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
            "estimate_errors": sorted(self.estimate_errors),
        }
