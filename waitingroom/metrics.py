"""Prometheus metrics of one admitter process, on a registry of its own.

Served on the admitter's health port (``fairq.health``): what this instance did, so
an operator sees a stuck or idle admitter; the rooms' own figures are the gateways'.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class AdmitterMetrics:
    """Prometheus metrics of one admitter process, on a registry of its own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.admitted_total = Counter(
            "fairq_admitter_admitted_total",
            "Positions admitted by this instance's steps, by room",
            ["room"],
            registry=self.registry,
        )
        self.ticks_total = Counter(
            "fairq_admitter_ticks_total",
            "Admission ticks run",
            registry=self.registry,
        )
        self.tick_failures_total = Counter(
            "fairq_admitter_tick_failures_total",
            "Admission ticks that failed on Redis (retried next tick)",
            registry=self.registry,
        )
        self.rooms_led = Gauge(
            "fairq_admitter_rooms_led",
            "Rooms this instance leads",
            registry=self.registry,
        )
        self.events_total = Counter(
            "fairq_admitter_events_total",
            "Booking events applied to the rooms, by type",
            ["type"],
            registry=self.registry,
        )
        self.event_retries_total = Counter(
            "fairq_admitter_event_retries_total",
            "Booking events whose application failed on Redis and was tried again",
            registry=self.registry,
        )
