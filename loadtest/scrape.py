"""The system's side of a rehearsal: every fairq process's ``/metrics``, once a second.

``Scraper`` reads a list of ``/metrics`` URLs (the gateways', the admitter's, the
allocator's: any Prometheus text endpoint) every ``interval_s`` while the storm runs
and keeps, per second, the series of ``SERIES`` (of one room and campaign: ``where``,
other rooms and campaigns of the deployment left out): each is the sum of one metric's
samples (those whose labels pass the series' filter) in one process, then summed
over the processes that count their own (requests, lag) or the largest of them for
the figures every gateway reports alike (the room's queue, the inventory). A target
that does not answer leaves a gap for that second and is counted, not fatal: the
rehearsal goes on, and the report says how many scrapes failed.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

Labels = Mapping[str, str]


def _any(_labels: Labels) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class SeriesSpec:
    name: str  # as the report shows it
    metric: str  # the family's name (a counter's samples end in _total)
    # over processes: "sum" (each counts its own), "max" (the same), or "each" (one
    # series per process, named "NAME (host:port)")
    across: str = "max"
    keep: Callable[[Labels], bool] = _any


SERIES: tuple[SeriesSpec, ...] = (
    SeriesSpec("queue depth", "fairq_room_queue_depth"),
    SeriesSpec("arrivals (tickets issued)", "fairq_room_joined"),
    SeriesSpec("admissions", "fairq_room_admitted"),
    SeriesSpec("active bookers", "fairq_room_active"),
    SeriesSpec("cap on active bookers", "fairq_room_max_active"),
    SeriesSpec("pairs held", "fairq_inventory_held"),
    SeriesSpec("pairs confirmed", "fairq_inventory_confirmed"),
    SeriesSpec(
        "expiries", "fairq_booking_events", keep=lambda labels: labels.get("type") == "expired"
    ),
    SeriesSpec("pairs left", "fairq_inventory_pairs_left"),
    SeriesSpec("allocator lag (records)", "fairq_allocator_lag_records", across="sum"),
    SeriesSpec("event loop lag (s)", "fairq_event_loop_lag_seconds", across="each"),
    SeriesSpec(
        "5xx answers",
        "fairq_gateway_requests",
        across="sum",
        keep=lambda labels: labels.get("status", "").startswith("5"),
    ),
)


def read_series(
    text: str, specs: Sequence[SeriesSpec] = SERIES, where: Mapping[str, str] | None = None
) -> dict[str, float]:
    """One process's value of each series it exports (absent: not in the result), of
    the samples whose labels agree with ``where`` (a label a sample lacks agrees)."""
    only = dict(where or {})
    wanted = {s.metric: s for s in specs}
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        spec = wanted.get(family.name)
        if spec is None:
            continue
        samples = [
            s.value
            for s in family.samples
            if s.name in (family.name, f"{family.name}_total")
            and spec.keep(s.labels)
            and all(s.labels.get(k, v) == v for k, v in only.items())
        ]
        out[spec.name] = float(sum(samples))
    return out


def combine(
    per_target: Sequence[Mapping[str, float]],
    specs: Sequence[SeriesSpec],
    names: Sequence[str] | None = None,
) -> dict[str, float]:
    """The processes' values of one second, combined as each series says (``names``:
    the processes', for the series kept per process; their numbers if not given)."""
    out: dict[str, float] = {}
    named = [str(i) for i in range(len(per_target))] if names is None else names
    for spec in specs:
        if spec.across == "each":
            for name, values in zip(named, per_target, strict=True):
                if spec.name in values:
                    out[f"{spec.name} ({name})"] = values[spec.name]
            continue
        found = [v[spec.name] for v in per_target if spec.name in v]
        if found:
            out[spec.name] = sum(found) if spec.across == "sum" else max(found)
    return out


@dataclass
class Scraper:
    targets: list[str]  # /metrics URLs
    where: Mapping[str, str] = field(default_factory=dict)  # e.g. this run's room, campaign
    interval_s: float = 1.0
    specs: Sequence[SeriesSpec] = SERIES
    times: list[float] = field(default_factory=list)  # wall clock of each round
    rows: list[dict[str, float]] = field(default_factory=list)
    failed: dict[str, int] = field(default_factory=dict)  # scrapes that failed, per target

    async def run(self, http: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        """Scrape every ``interval_s`` until ``stop`` is set (one last round then)."""
        while True:
            started = time.monotonic()
            await self.once(http)
            if stop.is_set():
                return
            remaining = self.interval_s - (time.monotonic() - started)
            try:
                await asyncio.wait_for(stop.wait(), max(0.0, remaining))
            except TimeoutError:
                continue

    async def once(self, http: aiohttp.ClientSession) -> None:
        at = time.time()
        texts = await asyncio.gather(*(self._get(http, url) for url in self.targets))
        answered = [(url, t) for url, t in zip(self.targets, texts, strict=True) if t is not None]
        per_target = [read_series(t, self.specs, self.where) for _, t in answered]
        names = [urllib.parse.urlsplit(url).netloc for url, _ in answered]
        self.times.append(at)
        self.rows.append(combine(per_target, self.specs, names))

    async def _get(self, http: aiohttp.ClientSession, url: str) -> str | None:
        try:
            async with http.get(url, timeout=aiohttp.ClientTimeout(total=self.interval_s)) as r:
                if r.status == 200:
                    return await r.text()
        except (aiohttp.ClientError, TimeoutError):
            pass
        self.failed[url] = self.failed.get(url, 0) + 1
        return None

    def to_json(self) -> dict[str, Any]:
        names = [s.name for s in self.specs if s.across != "each"]
        names += sorted({n for row in self.rows for n in row} - set(names))  # per process
        return {
            "targets": self.targets,
            "failed": self.failed,
            "t": self.times,
            "series": {n: [row.get(n) for row in self.rows] for n in names},
        }
