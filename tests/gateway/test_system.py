"""The admitters' and allocators' state as a gateway reads it from Redis and the broker."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from aiohttp.test_utils import TestClient

from fairq.config import Connections
from tests.gateway.conftest import (
    allocator_running,
    create_campaign,
    create_room,
    gateway_client,
    operator,
)
from tests.waitingroom.test_admitter import eventually

Client = TestClient[Any, Any]


async def system(client: Client) -> dict[str, Any]:
    response = await client.get("/api/admin/system", headers=operator())
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def test_without_services_nothing_is_committed_nor_led(
    client: Client, first_day: dt.date
) -> None:
    await create_campaign(client, first_day)
    await create_room(client)
    body = await system(client)
    partitions = body["allocator"]["partitions"]
    assert [p["partition"] for p in partitions] == [0, 1, 2, 3]
    assert all(p["committed_offset"] is None for p in partitions)
    assert all(p["lag"] == p["end_offset"] for p in partitions)
    assert sum(p["end_offset"] for p in partitions) > 0  # the campaign's inventory commands
    nobody = {"room": "room", "leader": None, "lease_left_s": None, "fence": None}
    assert body["admitters"] == [nobody]


async def test_a_running_allocator_catches_up_and_snapshots(
    connections: Connections, first_day: dt.date, admitter: None
) -> None:
    group = f"console-{uuid.uuid4().hex[:8]}"
    async with (
        allocator_running(connections, group, snapshot_every_records=1),
        gateway_client(connections, allocator_group=group) as client,
    ):
        await create_campaign(client, first_day)
        await create_room(client)

        async def caught_up() -> bool:
            body = await system(client)
            partitions = body["allocator"]["partitions"]
            led = all(room["leader"] for room in body["admitters"])
            return led and all(
                p["committed_offset"] is not None and p["snapshot_offset"] is not None
                for p in partitions
            )

        await eventually(caught_up)
        body = await system(client)
        for p in body["allocator"]["partitions"]:
            assert p["lag"] == p["end_offset"] - p["committed_offset"] >= 0
            assert p["snapshot_offset"] <= p["end_offset"]
        (room,) = body["admitters"]
        assert room["fence"] >= 1 and room["lease_left_s"] > 0
