"""The scraper's reading of Prometheus text, from the gateway's real metrics registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from gateway.metrics import GatewayMetrics
from loadtest.scrape import SERIES, combine, read_series


def test_a_gateway_s_5xx_are_summed_over_routes_and_other_answers_left_out() -> None:
    metrics = GatewayMetrics()
    route = metrics.counters.route("/api/rooms/{room}/status")
    for status in (200, 200, 503, 500):
        route.observe(status, 0.01)
    metrics.counters.route("/api/rooms/{room}/join").observe(502, 0.01)
    values = read_series(generate_latest(metrics.registry).decode())
    assert values["5xx answers"] == 3


def test_only_the_rehearsal_s_room_counts() -> None:
    registry = CollectorRegistry()
    depth = Gauge("fairq_room_queue_depth", "", ["room"], registry=registry)
    depth.labels("demo").set(1000)
    depth.labels("rh-1").set(12)
    text = generate_latest(registry).decode()
    assert read_series(text, where={"room": "rh-1", "campaign": "rh-1"}) == {"queue depth": 12}


def test_processes_are_summed_or_maxed_as_each_series_says() -> None:
    registry = CollectorRegistry()
    lag = Gauge("fairq_allocator_lag_records", "", ["partition"], registry=registry)
    lag.labels("0").set(4)
    lag.labels("1").set(6)
    allocator = read_series(generate_latest(registry).decode())
    assert allocator == {"allocator lag (records)": 10}
    gateways = [{"queue depth": 7.0, "5xx answers": 1.0}, {"queue depth": 9.0, "5xx answers": 2.0}]
    both = combine([*gateways, allocator], SERIES)
    assert both == {"queue depth": 9.0, "5xx answers": 3.0, "allocator lag (records)": 10.0}


def test_the_event_loop_lag_is_kept_per_process() -> None:
    lags = [{"event loop lag (s)": 0.02}, {"event loop lag (s)": 0.3}]
    assert combine(lags, SERIES, ["127.0.0.1:8080", "127.0.0.1:9101"]) == {
        "event loop lag (s) (127.0.0.1:8080)": 0.02,
        "event loop lag (s) (127.0.0.1:9101)": 0.3,
    }
