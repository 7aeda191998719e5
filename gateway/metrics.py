"""Prometheus metrics of one gateway process, on a registry of its own."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


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
