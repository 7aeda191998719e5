"""Operators' dashboard figures on /metrics: rooms and inventory, from gateway memory."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import GatewayMetrics
from tests.gateway.conftest import create_campaign, create_room, operator
from tests.gateway.test_flow import admitted_visitor, join, request_pair

pytestmark = pytest.mark.usefixtures("allocator", "admitter")

Client = TestClient[Any, Any]


async def scrape(client: Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = await (await client.get("/metrics")).text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape_until(client: Client, key: Any, value: float) -> dict[Any, float]:
    """Scrape until ``key`` shows ``value``: the figures come from memory that is refreshed
    a few times a second (rooms) or on the allocator's ticks (inventory)."""
    while (figures := await scrape(client)).get(key) != value:
        await asyncio.sleep(0.05)
    return figures


async def test_room_and_inventory_figures(client: Client, first_day: dt.date) -> None:
    await create_campaign(client, first_day, counties=1, places=3)
    await create_room(client, opens_in_s=3600)
    waiting = [await join(client) for _ in range(4)]
    room = (("room", "room"),)
    figures = await scrape_until(client, ("fairq_room_joined_total", room), 4)
    assert figures[("fairq_room_queue_depth", room)] == 4
    assert figures[("fairq_room_state", (("room", "room"), ("state", "scheduled")))] == 1
    assert len(waiting) == 4

    await client.post("/api/admin/rooms/room/open", headers=operator())
    token = await admitted_visitor(client)
    assert (await request_pair(client, token))[1]["state"] == "held"
    county = (("campaign", "camp"), ("county", "county-1"))
    figures = await scrape_until(client, ("fairq_inventory_held", county), 1)
    assert figures[("fairq_inventory_pairs_left", county)] == 2
    comirnaty = (*county, ("vaccine", "comirnaty"))
    assert figures[("fairq_inventory_pairs_left_by_vaccine", comirnaty)] == 2
    assert figures[("fairq_room_admitted_total", room)] >= 1
    assert figures[("fairq_booking_events_total", (("type", "held"),))] == 1
    # one visitor active since the opening: it has stayed at least that long
    assert figures[("fairq_room_dwell_seconds", room)] > 0


def test_request_counters_export_counts_latency_and_joins() -> None:
    metrics = GatewayMetrics()
    counters = metrics.counters
    for seconds in (0.001, 0.02, 3.0):
        counters.observe("/api/rooms/{room}/status", 200, seconds)
    counters.observe("/api/rooms/{room}/status", 401, 0.004)
    counters.observe("/api/rooms/{room}/events", 200, None)  # a stream: no latency
    counters.joined("post")
    counters.joined("post")
    text = generate_latest(metrics.registry).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    status = ("route", "/api/rooms/{room}/status")
    assert samples[("fairq_gateway_requests_total", (status, ("status", "200")))] == 3
    assert samples[("fairq_gateway_requests_total", (status, ("status", "401")))] == 1
    events = (("route", "/api/rooms/{room}/events"), ("status", "200"))
    assert samples[("fairq_gateway_requests_total", events)] == 1
    bucket = "fairq_gateway_request_seconds_bucket"
    assert samples[(bucket, (("le", "0.005"), status))] == 2  # buckets count values <= le
    assert samples[(bucket, (("le", "0.025"), status))] == 3
    assert samples[(bucket, (("le", "+Inf"), status))] == 4
    assert samples[("fairq_gateway_request_seconds_count", (status,))] == 4
    assert samples[("fairq_gateway_request_seconds_sum", (status,))] == pytest.approx(3.025)
    assert not any(
        k[0].startswith("fairq_gateway_request_seconds") and events[0] in k[1] for k in samples
    )
    assert samples[("fairq_gateway_joins_total", (("kind", "post"),))] == 2
