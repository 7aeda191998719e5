"""Prometheus metrics of one gateway process, on a registry of its own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from gateway.bookingviews import BookingViews
    from gateway.roomcache import RoomCache


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests_total = Counter(
            "fairq_gateway_requests_total",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "fairq_gateway_request_seconds",
            "HTTP request latency (not of event streams)",
            ["route"],
            registry=self.registry,
        )
        self.joins_total = Counter(
            "fairq_gateway_joins_total", "Joins by kind of ticket", ["kind"], registry=self.registry
        )
        self.bookings_total = Counter(
            "fairq_gateway_bookings_total", "Booking requests accepted", registry=self.registry
        )
        self.streams = Gauge(
            "fairq_gateway_streams", "Open event streams", ["kind"], registry=self.registry
        )

    def middleware(self) -> Middleware:
        @web.middleware
        async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
            route = request.match_info.route.resource
            name = route.canonical if route is not None else "unmatched"
            with self.request_seconds.labels(name).time():
                response = await handler(request)
            self.requests_total.labels(name, str(response.status)).inc()
            return response

        return count


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
                "queue_depth": max(0, snap.queue_length - snap.cursor),
                "active": snap.active,
                "max_active": snap.config.max_active,
                "rate_per_s": snap.config.rate_per_s,
                "measured_rate_per_s": view.meter.rate_per_s or 0.0,
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
        for campaign, counties in sorted(self._views.summaries.items()):
            for county, summary in sorted(counties.items()):
                for field, family in families.items():
                    family.add_metric([campaign, county], getattr(summary, field))
        yield from families.values()
