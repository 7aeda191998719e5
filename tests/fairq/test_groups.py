"""A restarted member removes its dead predecessor from the group (``fairq.groups``)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

import pytest

from fairq.config import Kafka, Topics
from fairq.devservices import Server
from fairq.groups import evict_predecessors, group_member, group_members
from waitingroom.settings import SESSION_TIMEOUT_MS as ADMITTER_SESSION_MS

pytestmark = pytest.mark.timeout(60)

SESSION_TIMEOUT_MS = 12_000  # longer than kill to eviction: the dead member does not time out first

MEMBER = """
import asyncio, sys
from fairq.config import Kafka
from fairq.groups import group_member
async def main():
    bootstrap, group_id, session_ms, topic, client_id = sys.argv[1:]
    member = group_member(Kafka(bootstrap), group_id, int(session_ms), topic, client_id=client_id)
    await member.start()
    while not member.assignment():
        await member.getmany(timeout_ms=100)
    print("assigned", flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


async def until_members(kafka: Kafka, group_id: str, count: int) -> list[str]:
    while len(members := await group_members(kafka, group_id)) != count:
        await asyncio.sleep(0.05)
    return members


async def test_a_killed_predecessor_is_removed_and_nobody_else(
    kafka_srv: Server, topics: Topics
) -> None:
    kafka = Kafka(kafka_srv.url)
    group_id = f"g-{uuid.uuid4().hex[:8]}"
    other = group_member(kafka, group_id, SESSION_TIMEOUT_MS, topics.commands, client_id="other")
    await other.start()
    arguments = [kafka.bootstrap, group_id, str(SESSION_TIMEOUT_MS), topics.commands]
    dead = subprocess.Popen(
        [sys.executable, "-c", MEMBER, *arguments, "fairq-allocator-a0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert dead.stdout is not None
        # The other member must go on heartbeating (and rejoin) meanwhile: read in a thread.
        assert (await asyncio.to_thread(dead.stdout.readline)).strip() == "assigned"
        await until_members(kafka, group_id, 2)
        dead.kill()  # no LeaveGroup: it stays a member until its session times out
        dead.wait()
        assert await evict_predecessors(kafka, group_id, "fairq-allocator-a") == []
        evicted = await evict_predecessors(kafka, group_id, "fairq-allocator-a0")
        assert len(evicted) == 1 and evicted[0].startswith("fairq-allocator-a0-")
        [left] = await until_members(kafka, group_id, 1)
        assert left.startswith("other-")
    finally:
        dead.kill()
        dead.wait()
        await other.stop()


@pytest.mark.both_brokers
async def test_a_member_with_the_admitters_session_joins_a_new_group(
    kafka_srv: Server, topics: Topics
) -> None:
    """Tansu holds a new group's first join half a session (5 s of the admitter's 10 s),
    longer than the clients' request timeout: the member waits for it all the same
    (``join_wait_ms``) instead of giving it up and joining again for ever."""
    kafka = Kafka(kafka_srv.url)
    member = group_member(kafka, f"g-{uuid.uuid4().hex[:8]}", ADMITTER_SESSION_MS, topics.commands)
    await member.start()
    try:
        while not member.assignment():
            await member.getmany(timeout_ms=100)
    finally:
        await member.stop()
