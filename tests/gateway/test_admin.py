"""Operator routes: campaigns and inventory deliveries that may be sent again safely.

Real gateway, allocator, Redis and broker.
"""

from __future__ import annotations

import collections
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from fairq.config import Connections
from fairq.demo import small_campaign
from schemas.events import InventoryAdded, decode_event
from tests.allocator.eventlogs import read_topic
from tests.conftest import TEST_PARTITIONS
from tests.gateway.conftest import create_campaign, gateway_client, operator

pytestmark = pytest.mark.usefixtures("allocator")

Client = TestClient[Any, Any]
INVENTORY = "/api/admin/campaigns/camp/inventory"


@pytest.fixture
async def client(connections: Connections) -> AsyncIterator[Client]:
    """A gateway that waits for the allocator's answers to inventory (as deployed)."""
    async with gateway_client(connections, inventory_wait_s=30.0) as c:
        yield c


def delivery(first_day: dt.date, capacity: int, **extra: Any) -> dict[str, Any]:
    starts = (first_day, first_day + dt.timedelta(days=21))
    slots = [
        {"center": "county-1-center-1", "vaccine": "comirnaty", "start": f"{d}T11:00"}
        | {"capacity": capacity}
        for d in starts
    ]
    return {"slots": slots} | extra


async def inventory_answers(connections: Connections) -> collections.Counter[str]:
    """How often the allocator answered each inventory command id."""
    records = await read_topic(
        connections.kafka_bootstrap, connections.topics.events, TEST_PARTITIONS
    )
    events = (decode_event(r.value) for rs in records.values() for r in rs if r.value)
    return collections.Counter(e.command_id for e in events if isinstance(e, InventoryAdded))


async def test_a_delivery_sent_again_is_applied_once(
    client: Client, first_day: dt.date, connections: Connections
) -> None:
    await create_campaign(client, first_day, counties=1)
    first = await client.post(
        INVENTORY, json=delivery(first_day, 3, delivery_id="truck-7"), headers=operator()
    )
    assert first.status == 200, await first.text()
    body = await first.json()
    assert (body["delivery_id"], body["repeated"], body["answered"]) == ("truck-7", False, 1)

    # The operator's tool times out and sends it again: nothing is added twice.
    again = await client.post(
        INVENTORY, json=delivery(first_day, 3, delivery_id="truck-7"), headers=operator()
    )
    repeated = await again.json()
    assert (again.status, repeated["repeated"], repeated["answered"]) == (200, True, 1)
    assert repeated["already_applied"] == 1
    other = await client.post(
        INVENTORY, json=delivery(first_day, 2, delivery_id="truck-7"), headers=operator()
    )
    assert (other.status, (await other.json())["error"]["code"]) == (409, "delivery_id_reused")
    # A later delivery on the same partition is answered after the repeated one was read.
    later = await client.post(
        INVENTORY, json=delivery(first_day, 1, delivery_id="truck-8"), headers=operator()
    )
    assert later.status == 200, await later.text()
    answers = await inventory_answers(connections)
    assert answers["delivery-truck-7-0"] == 1 and answers["delivery-truck-8-0"] == 1


async def test_a_campaign_sent_again_loads_what_is_missing_only(
    client: Client, first_day: dt.date, connections: Connections
) -> None:
    created = await create_campaign(client, first_day, counties=2)
    assert created["repeated"] is False
    path = "/api/admin/campaigns/camp"
    again = await client.put(path, json=small_campaign(first_day, counties=2), headers=operator())
    body = await again.json()
    assert (again.status, body["repeated"]) == (200, True)
    assert body["answered"] == body["already_applied"] == created["inventory_commands"]
    other = await client.put(path, json=small_campaign(first_day, counties=3), headers=operator())
    assert (other.status, (await other.json())["error"]["code"]) == (409, "campaign_exists")
    answers = await inventory_answers(connections)
    loaded = {i: n for i, n in answers.items() if i.startswith("campaign-camp-")}
    assert len(loaded) == created["inventory_commands"] and set(loaded.values()) == {1}
