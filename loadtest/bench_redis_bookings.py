"""Redis memory per booking: what each Book leaves in Redis, for docs/capacity.md.

A booking writes its routing record (``keys.booking``: room, campaign, county, place,
identity, the packed Book), the booking token's used-key and the identity claim, each
kept ``BOOKING_RECORD_TTL_S`` (90 days), so a launch's Redis grows with its Books, held
or rejected, on top of the waiting line (``bench_gateway --redis-visitors``: 0.05 B per
anonymous visitor, 232 B per visitor with an access code).

On a stack of its own (redis-server, the broker, allocator, admitter, one gateway, as
``tests.harness`` starts them), ``--bookings`` visitors each join an open room, are
admitted and book a pair (``--concurrency`` at a time; every Book gets a pair: the
campaign has one more place than Books); the used_memory delta (after ``MEMORY PURGE``)
is divided by the Books once every one has its answer, and ``MEMORY USAGE`` of one
booking's keys says where it goes:

    python -m loadtest.bench_redis_bookings [--bookings 2000] [--concurrency 16] [--confirm]

``--confirm`` confirms each hold (a booking's whole life on launch day: a Book and a
Confirm, their events and its claim).

``--codes N`` also issues N access codes on a Redis of its own and prints the bytes
each adds (``--bookings 0 --codes N`` for that alone).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import fnmatch
import platform
import tempfile
import uuid
from pathlib import Path

import aiohttp
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition

from fairq.topics import partitions_of
from loadtest.bench_click_to_held import (
    PROBE_ROOM,
    _auth,
    admitted_token,
    first_answer,
    open_probe_room,
)
from waitingroom import keys
from waitingroom.codes import MAX_CODES_PER_CALL, issue_codes

# places per slot at most (schemas.campaign.MAX_CAPACITY): more Books use more centers
PLACES_PER_CENTER = 10_000


async def book_one(
    http: aiohttp.ClientSession, base: str, county: str, loadtest_key: str, confirm: bool
) -> tuple[str, str]:
    """Join, be admitted, book (and confirm the hold when ``confirm``); returns (booking
    id, its last state)."""
    token = await admitted_token(http, base, loadtest_key)
    headers = _auth(token, loadtest_key)
    async with http.post(
        f"{base}/api/rooms/{PROBE_ROOM}/bookings", json={"county": county}, headers=headers
    ) as r:
        body = await r.json()
        if r.status != 202:
            raise RuntimeError(f"book: {r.status} {body}")
    booking_id = str(body["booking_id"])
    state = await first_answer(http, f"{base}/api/bookings/{booking_id}/events", headers)
    if confirm and state == "held":
        async with http.post(f"{base}/api/bookings/{booking_id}/confirm", headers=headers) as r:
            body = await r.json()
            if r.status != 200:
                raise RuntimeError(f"confirm: {r.status} {body}")
            state = str(body["state"])
    return booking_id, state


async def used_memory(redis: aioredis.Redis) -> int:
    await redis.memory_purge()
    return int((await redis.info("memory"))["used_memory"])


async def measure(bookings: int, concurrency: int, confirm: bool) -> None:
    from fairq.config import Connections, Kafka, Topics
    from fairq.demo import small_campaign
    from fairq.devservices import kafka_broker, redis_server
    from fairq.topics import ensure_topics
    from tests.conftest import TEST_PARTITIONS
    from tests.harness import LOADTEST_KEY, OPERATOR_KEY, running_system

    centers = -(-(bookings + 1) // PLACES_PER_CENTER)
    places = -(-(bookings + 1) // centers)
    with (
        tempfile.TemporaryDirectory(prefix="fairq-redis-bookings-") as tmp,
        redis_server() as server,
        kafka_broker() as kafka,
    ):
        prefix = f"rb{uuid.uuid4().hex[:8]}-"
        topics = Topics(
            commands=f"{prefix}booking-commands",
            events=f"{prefix}booking-events",
            state=f"{prefix}fairq-state",
        )
        await ensure_topics(Kafka(kafka.url), topics, partitions=TEST_PARTITIONS)
        connections = Connections(redis_url=server.url, kafka_bootstrap=kafka.url, topics=topics)
        redis = aioredis.Redis.from_url(server.url)
        with running_system(connections, Path(tmp), gateways=1) as system:
            base = system.gateways[0]
            doc = small_campaign(
                dt.date.today() + dt.timedelta(days=2),
                counties=1,
                centers_per_county=centers,
                places=places,
            )
            operator = {"Authorization": f"Bearer {OPERATOR_KEY}"}
            async with aiohttp.ClientSession() as http:
                url = f"{base}/api/admin/campaigns/probe"
                async with http.put(url, json=doc, headers=operator) as r:
                    if r.status != 201:
                        raise RuntimeError(f"campaign: {r.status} {await r.text()}")
                await open_probe_room(http, base, OPERATOR_KEY, "probe")
                async with http.get(f"{base}/api/rooms/{PROBE_ROOM}") as r:
                    county = (await r.json())["counties"][0]["id"]
                await book_one(http, base, county, LOADTEST_KEY, confirm)  # first-time writes
                before_keys = int(await redis.dbsize())
                before_keys_set = {key async for key in redis.scan_iter(count=1000)}
                before = await used_memory(redis)
                queue: asyncio.Queue[int] = asyncio.Queue()
                for i in range(bookings):
                    queue.put_nowait(i)
                answers: dict[str, str] = {}

                async def worker() -> None:
                    while not queue.empty():
                        queue.get_nowait()
                        booking_id, state = await book_one(
                            http, base, county, LOADTEST_KEY, confirm
                        )
                        answers[booking_id] = state

                await asyncio.gather(*(worker() for _ in range(concurrency)))
                after = await used_memory(redis)
                after_keys = int(await redis.dbsize())
            logged = {
                t: await topic_bytes(kafka.url, t)
                for t in (topics.commands, topics.events, topics.state)
            }
        states = {state: list(answers.values()).count(state) for state in set(answers.values())}
        by_kind = await memory_by_kind(redis, before_keys_set)
        await redis.aclose()
        print(f"machine: {platform.platform()}, Python {platform.python_version()}")
        print(f"{bookings:,} Books ({concurrency} at a time), ending {states}")
        print(
            f"Redis used_memory: +{after - before:,} B = {(after - before) / bookings:.0f} B"
            f" per Book; keys: +{after_keys - before_keys:,}"
            f" = {(after_keys - before_keys) / bookings:.2f} per Book"
        )
        print("the broker's topics, whole (the campaign, the room and the first Book included):")
        for topic, (records, size) in logged.items():
            print(
                f"  {topic.removeprefix(prefix)}: {records:,} records, {size:,} B of keys and"
                f" values = {size / (bookings + 1):.0f} B per Book"
            )
        print("MEMORY USAGE of the keys the Books added, per Book:")
        for kind, (count, size) in sorted(by_kind.items(), key=lambda kv: -kv[1][1]):
            print(f"  {kind}: {count:,} keys, {size / bookings:.0f} B per Book")


async def topic_bytes(bootstrap: str, topic: str) -> tuple[int, int]:
    """(records, bytes of their keys and values) of a whole topic."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in await partitions_of(consumer, topic)]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        records = size = 0
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                records += len(batch)
                size += sum(len(r.key or b"") + len(r.value or b"") for r in batch)
        return records, size
    finally:
        await consumer.stop()


# the kinds of key a Book adds, as globs of their names (waitingroom.keys)
KINDS = {
    keys.booking("*"): "booking record",
    keys.token_booking("*"): "token used",
    keys.identity_claim("*", "*"): "identity claim",
}


async def memory_by_kind(redis: aioredis.Redis, before: set[bytes]) -> dict[str, tuple[int, int]]:
    """MEMORY USAGE of every key that was not there before, summed by kind (``KINDS``;
    any other key by its own name)."""
    kinds: dict[str, tuple[int, int]] = {}
    async for key in redis.scan_iter(count=1000):
        if key in before:
            continue
        name = key.decode()
        kind = next((k for glob, k in KINDS.items() if fnmatch.fnmatchcase(name, glob)), name)
        count, size = kinds.get(kind, (0, 0))
        kinds[kind] = (count + 1, size + int(await redis.memory_usage(key) or 0))
    return kinds


async def codes_memory(codes: int) -> None:
    """Redis bytes per issued access code (``waitingroom.codes.issue_codes``: its hash
    in the campaign's codes hash), on a Redis of its own."""
    from fairq.devservices import redis_server

    with redis_server() as server:
        redis = aioredis.Redis.from_url(server.url)
        before = await used_memory(redis)
        while issued := min(MAX_CODES_PER_CALL, codes):
            await issue_codes(redis, "bench", "80plus", issued, b"bench-identity-secret-0123")
            codes -= issued
        after = await used_memory(redis)
        total = int(await redis.hlen(keys.campaign_codes("bench")))
        await redis.aclose()
    print(
        f"{total:,} access codes issued: Redis +{after - before:,} B"
        f" = {(after - before) / total:.0f} B per code"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bookings", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--confirm", action="store_true", help="confirm every hold too")
    parser.add_argument("--codes", type=int, default=0, help="also: bytes per issued access code")
    args = parser.parse_args()
    if args.bookings:
        asyncio.run(measure(args.bookings, args.concurrency, args.confirm))
    if args.codes:
        asyncio.run(codes_memory(args.codes))


if __name__ == "__main__":
    main()
