"""How long a new consumer group's first member waits for its partitions, by session timeout.

Every allocator and admitter joins a consumer group when it starts. The development
broker (Tansu) holds a new group's first join for a while that follows the member's
session timeout; this prints the time from ``start()`` to the first assignment for
each timeout given. Not a test; run it:

    python -m loadtest.bench_group_join [--session-timeouts-ms 10000 6000 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from fairq.config import Kafka, Topics
from fairq.devservices import kafka_broker
from fairq.groups import group_member
from fairq.topics import ensure_topics
from loadtest.bench_allocator_core import print_header


async def first_assignment_s(bootstrap: str, topic: str, session_timeout_ms: int) -> float:
    """Seconds from starting a member of a new group to its first assignment."""
    consumer = group_member(
        Kafka(bootstrap), f"bench-{uuid.uuid4().hex[:8]}", session_timeout_ms, topic
    )
    started = time.perf_counter()
    await consumer.start()
    try:
        while not consumer.assignment():
            await asyncio.sleep(0.01)
        return time.perf_counter() - started
    finally:
        await consumer.stop()


async def measure(timeouts_ms: list[int]) -> None:
    with kafka_broker() as broker:
        topics = Topics(commands="bench-commands", events="bench-events")
        await ensure_topics(Kafka(broker.url), topics, partitions=4)
        for timeout_ms in timeouts_ms:
            waited_s = await first_assignment_s(broker.url, topics.commands, timeout_ms)
            print(
                f"session timeout {timeout_ms:>6} ms: first assignment after {waited_s:.2f} s"
                f" ({waited_s * 1000 / timeout_ms:.2f} of the timeout)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--session-timeouts-ms", type=int, nargs="+", default=[10_000, 6_000, 2_000]
    )
    args = parser.parse_args()
    print_header("loadtest.bench_group_join")
    asyncio.run(measure(args.session_timeouts_ms))


if __name__ == "__main__":
    main()
