"""The admitters' and the allocators' state as seen from a gateway: ``GET /api/admin/system``.

What Redis and the broker can tell, without asking those processes:

- the allocator group's lag per partition of the commands topic: the end offset
  minus the group's committed offset (the allocator commits after it has applied
  a record and sent its answers);
- the allocator's newest whole snapshot per partition (the snapshots topic, read
  with the allocator's own ``SnapshotStore``): the input offset it reflects;
- each room's admitter leader (``keys.room_leader``, its lease) and fencing token.

Reading the snapshots topic costs a scan of it: the console asks every few
seconds, not per change.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiokafka import TopicPartition

from allocator.settings import snapshot_topic
from allocator.snapshotstore import SnapshotStore, SnapshotStoreError
from fairq import kafkaclient
from fairq.topics import partitions_of
from gateway.admin import require_operator
from gateway.contracts import Document, operation
from gateway.http import json_response
from gateway.state import Gateway
from waitingroom import keys
from waitingroom.rooms import text

routes = web.RouteTableDef()


async def allocator_state(gw: Gateway) -> dict[str, Any]:
    """The allocator group's committed offsets, lag and newest snapshot per partition.

    Read in this order, each figure no newer than the next: the snapshots, the
    committed offsets, the end offsets (so that a snapshot or a commit is never shown past the
    end, although records keep coming while they are read).
    """
    conn = gw.settings.connections
    group = gw.settings.allocator_group
    consumer = kafkaclient.consumer(conn.kafka)
    admin = kafkaclient.admin(conn.kafka)
    # only read here: the chunk size matters to a writer
    store = SnapshotStore(conn.kafka, snapshot_topic(conn.topics.commands), 1)
    await consumer.start()
    await admin.start()
    try:
        numbers = sorted(await partitions_of(consumer, conn.topics.commands))
        tps = [TopicPartition(conn.topics.commands, p) for p in numbers]
        snapshots = await asyncio.gather(*(_newest_snapshot(store, tp.partition) for tp in tps))
        committed = await admin.list_consumer_group_offsets(group, partitions=tps)
        ends = await consumer.end_offsets(tps) if tps else {}
    finally:
        await admin.close()
        await kafkaclient.stop(consumer)
    partitions = []
    for tp, snapshot in zip(tps, snapshots, strict=True):
        done = committed.get(tp)
        offset = done.offset if done is not None and done.offset >= 0 else None
        partitions.append(
            {
                "partition": tp.partition,
                "end_offset": ends[tp],
                "committed_offset": offset,
                "lag": ends[tp] - (offset or 0),
                **snapshot,
            }
        )
    return {"group": group, "topic": conn.topics.commands, "partitions": partitions}


async def _newest_snapshot(store: SnapshotStore, partition: int) -> dict[str, Any]:
    """The input offset and size of the partition's newest whole snapshot (None: none),
    or why it could not be read."""
    try:
        latest = await store.latest(partition, max_offset=2**62)
    except SnapshotStoreError as e:
        return {"snapshot_offset": None, "snapshot_bytes": None, "snapshot_error": str(e)}
    manifest = latest[0] if latest else None
    return {
        "snapshot_offset": manifest.offset if manifest else None,
        "snapshot_bytes": manifest.size if manifest else None,
    }


async def admitter_state(gw: Gateway) -> list[dict[str, Any]]:
    """Each room's admitter leader, the lease left and the fencing token."""
    names = await gw.store.room_names()
    async with gw.redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.get(keys.room_leader(name))
            pipe.pttl(keys.room_leader(name))
            pipe.get(keys.room_fence(name))
        replies = await pipe.execute()
    rooms = []
    for i, name in enumerate(names):
        leader, ttl_ms, fence = replies[3 * i : 3 * i + 3]
        rooms.append(
            {
                "room": name,
                "leader": text(leader) if leader else None,
                "lease_left_s": round(ttl_ms / 1000, 1) if leader and ttl_ms > 0 else None,
                "fence": int(fence) if fence else None,
            }
        )
    return rooms


@routes.get("/api/admin/system")
@operation(
    "allocator lag and snapshots per partition, admitter leader per room",
    {200: Document},
    tag="operators",
)
async def system(request: web.Request) -> web.Response:
    gw = require_operator(request)
    return json_response(
        {"allocator": await allocator_state(gw), "admitters": await admitter_state(gw)}
    )
