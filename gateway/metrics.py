"""Prometheus metrics of one gateway process, on a registry of its own.

The per-request figures (requests by route and status, their latency, joins by
kind) are plain counters in this process's memory, exported at scrape time by a
collector: each route's counters are bound once when the app starts, so a request
adds to a dict entry and a list slot, with no label lookup, no key to build and no
lock (the gateway is one event loop). The rest are ordinary ``prometheus_client`` metrics.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

if TYPE_CHECKING:
    from gateway.bookingviews import BookingViews
    from gateway.roomcache import RoomCache

LATENCY_BUCKETS_S = tuple(b for b in Histogram.DEFAULT_BUCKETS if b != float("inf"))


class RouteCounters:
    """One route's requests by status and latency counts, bound once when the app starts.

    ``latency`` holds a count per bucket (+Inf last), then the sum of the seconds.
    The front door adds to these directly: no key to build, no call per request.
    """

    __slots__ = ("bounds_s", "by_status", "latency")

    def __init__(self, bounds_s: tuple[float, ...]) -> None:
        self.bounds_s = bounds_s
        self.by_status: dict[int, int] = {}
        self.latency: list[float] = [0.0] * (len(bounds_s) + 2)

    def observe(self, status: int, seconds: float | None) -> None:
        """One answered request; ``seconds`` None for an event stream (not a latency)."""
        by_status = self.by_status
        by_status[status] = by_status.get(status, 0) + 1
        if seconds is not None:
            latency = self.latency
            latency[bisect_left(self.bounds_s, seconds)] += 1  # buckets hold values <= le
            latency[-1] += seconds


class RequestCounters:
    """Requests by (route, status), their latency by route, joins by kind; a collector."""

    def __init__(self, buckets_s: tuple[float, ...] = LATENCY_BUCKETS_S) -> None:
        self._buckets_s = buckets_s
        self._routes: dict[str, RouteCounters] = {}
        self.joins: dict[str, int] = {}

    def route(self, route: str) -> RouteCounters:
        """The counters of ``route`` (made on first use; the front door binds them once)."""
        counters = self._routes.get(route)
        if counters is None:
            counters = self._routes[route] = RouteCounters(self._buckets_s)
        return counters

    def observe(self, route: str, status: int, seconds: float | None) -> None:
        """One answered request; ``seconds`` None for an event stream (not a latency)."""
        self.route(route).observe(status, seconds)

    @property
    def requests(self) -> dict[tuple[str, int], int]:
        """Requests by (route, status) so far."""
        return {
            (route, status): count
            for route, counters in self._routes.items()
            for status, count in counters.by_status.items()
        }

    @property
    def latency(self) -> dict[str, list[float]]:
        """Per route with at least one latency: the count per bucket (+Inf last), then the sum."""
        return {
            route: list(counters.latency)
            for route, counters in self._routes.items()
            if any(counters.latency[:-1])
        }

    def joined(self, kind: str) -> None:
        self.joins[kind] = self.joins.get(kind, 0) + 1

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "fairq_gateway_requests",
            "HTTP requests by route and status",
            labels=["route", "status"],
        )
        for (route, status), count in sorted(self.requests.items()):
            requests.add_metric([route, str(status)], count)
        latency = HistogramMetricFamily(
            "fairq_gateway_request_seconds",
            "HTTP request latency (not of event streams)",
            labels=["route"],
        )
        bounds = [*map(str, self._buckets_s), "+Inf"]
        for route, counts in sorted(self.latency.items()):
            cumulative: list[tuple[str, float]] = []
            running = 0.0
            for bound, in_bucket in zip(bounds, counts[:-1], strict=True):
                running += in_bucket
                cumulative.append((bound, running))
            latency.add_metric([route], cumulative, sum_value=counts[-1])
        joins = CounterMetricFamily(
            "fairq_gateway_joins", "Joins by kind of ticket", labels=["kind"]
        )
        for kind, count in sorted(self.joins.items()):
            joins.add_metric([kind], count)
        yield from (requests, latency, joins)


class GatewayMetrics:
    def __init__(
        self, registry: CollectorRegistry | None = None, worker: int | None = None
    ) -> None:
        self.registry = registry or CollectorRegistry()
        if worker is not None:
            # Which of ``fairq gateway --workers N``'s processes answered this scrape: each
            # has its own counters, scraped on its own port (docs/scale-out.md).
            Info(
                "fairq_gateway_worker",
                "The gateway worker (fairq gateway --workers) these figures are of",
                registry=self.registry,
            ).info({"worker": str(worker)})
        self.counters = RequestCounters()
        self.registry.register(self.counters)
        self.bookings_total = Counter(
            "fairq_gateway_bookings_total", "Booking requests accepted", registry=self.registry
        )
        self.streams = Gauge(
            "fairq_gateway_streams", "Open event streams", ["kind"], registry=self.registry
        )
        self.sends_in_doubt = Counter(
            "fairq_gateway_sends_in_doubt_total",
            "Commands handed to the producer and not acknowledged in time (maybe in the log)",
            ["kind"],
            registry=self.registry,
        )
        self.bookings_resent = Counter(
            "fairq_gateway_bookings_resent_total",
            "Books in doubt sent again (same command id) and acknowledged",
            registry=self.registry,
        )
        self.restores = Counter(
            "fairq_state_restores_total",
            "Times this gateway restored Redis from the state log (Redis had lost its state)",
            registry=self.registry,
        )


class DashboardCollector:
    """Room and inventory figures for operators' dashboards, read at scrape time.

    Everything comes from the gateway's memory (the room cache, refreshed a few
    times a second, and the allocator's inventory summaries), so a scrape costs
    no Redis round trip.
    """

    def __init__(self, rooms: RoomCache, views: BookingViews) -> None:
        self._rooms = rooms
        self._views = views

    def collect(self) -> Iterator[Metric]:
        yield from self._room_metrics()
        yield from self._inventory_metrics()
        events = CounterMetricFamily(
            "fairq_booking_events", "Booking events read from the log, by type", labels=["type"]
        )
        for kind, count in sorted(self._views.seen.items()):
            events.add_metric([kind], count)
        yield events

    def _room_metrics(self) -> Iterator[Metric]:
        joined = CounterMetricFamily("fairq_room_joined", "Tickets issued", labels=["room"])
        admitted = CounterMetricFamily("fairq_room_admitted", "Visitors admitted", labels=["room"])
        gauges = {
            name: GaugeMetricFamily(f"fairq_room_{name}", text, labels=["room"])
            for name, text in (
                ("queue_depth", "Visitors waiting (joined, not yet admitted)"),
                ("active", "Admitted visitors still booking"),
                ("max_active", "Cap on active bookers"),
                ("rate_per_s", "Configured admission rate"),
                ("measured_rate_per_s", "Measured admission rate (smoothed)"),
                ("dwell_seconds", "How long an admitted visitor stays active (smoothed)"),
                ("sold_out", "1 when the allocator reports no pair left"),
            )
        }
        state = GaugeMetricFamily(
            "fairq_room_state", "1 for the room's state", labels=["room", "state"]
        )
        for name, view in sorted(self._rooms.known().items()):
            snap = view.snap
            joined.add_metric([name], snap.queue_length)
            admitted.add_metric([name], snap.cursor)
            values = {
                "queue_depth": snap.queue_depth,
                "active": snap.active,
                "max_active": snap.config.max_active,
                "rate_per_s": snap.config.rate_per_s,
                "measured_rate_per_s": view.meter.rate_per_s or 0.0,
                "dwell_seconds": view.meter.dwell_s or 0.0,
                "sold_out": int(snap.sold_out),
            }
            for key, value in values.items():
                gauges[key].add_metric([name], value)
            state.add_metric([name, snap.state], 1)
        yield from (joined, admitted, state, *gauges.values())

    def _inventory_metrics(self) -> Iterator[Metric]:
        labels = ["campaign", "county"]
        families = {
            field: GaugeMetricFamily(f"fairq_inventory_{field}", text, labels=labels)
            for field, text in (
                ("pairs_left", "Pairs that can still be formed"),
                ("free", "Free slot places"),
                ("held", "Pairs held in baskets"),
                ("confirmed", "Pairs confirmed"),
            )
        }
        by_vaccine = GaugeMetricFamily(
            "fairq_inventory_pairs_left_by_vaccine",
            "Pairs that can still be formed, of one vaccine",
            labels=[*labels, "vaccine"],
        )
        for campaign, counties in sorted(self._views.summaries.items()):
            for county, summary in sorted(counties.items()):
                for field, family in families.items():
                    family.add_metric([campaign, county], getattr(summary, field))
                for vaccine, pairs in (summary.pairs_left_by_vaccine or {}).items():
                    by_vaccine.add_metric([campaign, county, vaccine], pairs)
        yield from (*families.values(), by_vaccine)
