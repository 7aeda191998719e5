import asyncio
import time

import pytest
import redis.asyncio as aioredis

from fairq.devservices import free_port
from waitingroom.errors import RoomClosed, RoomNotFound, TooEarly
from waitingroom.joinbatch import DEFAULT_LINGER_S, JoinBatcher
from waitingroom.rooms import DEFAULT_PREQUEUE_S, JoinOutcome, RoomConfig, RoomStore
from waitingroom.scripts import Scripts
from waitingroom.tickets import TICKET_ID_BYTES, b64url_decode, b64url_encode, new_ticket_id

T0 = 1_700_000_000.0
URL_SAFE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
CONFIG = RoomConfig(name="demo", campaign="flu", opens_at_s=T0 + 3600, prequeue_s=3600)


@pytest.fixture
async def store(redis: aioredis.Redis) -> RoomStore:
    s = RoomStore(redis)
    await s.put_room(CONFIG)
    return s


def batcher(redis: aioredis.Redis, max_batch: int = 500) -> JoinBatcher:
    return JoinBatcher(Scripts.register(redis).join_many, DEFAULT_PREQUEUE_S, max_batch)


async def script_calls(redis: aioredis.Redis) -> int:
    stats = await redis.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("evalsha", "eval"))


async def test_concurrent_joins_share_calls_and_are_numbered_in_arrival_order(
    redis: aioredis.Redis, store: RoomStore
) -> None:
    b = batcher(redis, max_batch=64)
    await b.join("demo", T0)  # the server knows the script before the count starts
    calls = await script_calls(redis)
    joins = [b.join("demo", T0 + i) for i in range(200)]  # in line in call order
    tickets = await asyncio.gather(*joins)
    assert [(t.kind, t.number) for t in tickets] == [("pre", n) for n in range(2, 202)]
    assert [t.issued_at_s for t in tickets] == [T0 + i for i in range(200)]
    assert len({t.ticket_id for t in tickets}) == 200
    assert {len(t.ticket_id) for t in tickets} == {len(new_ticket_id())}  # 128 bits, base64url
    assert all(set(t.ticket_id) <= URL_SAFE for t in tickets)
    for t in tickets:  # the base64url of 16 bytes, as new_ticket_id makes it
        raw = b64url_decode(t.ticket_id.encode())
        assert len(raw) == TICKET_ID_BYTES and b64url_encode(raw) == t.ticket_id
    assert 4 <= await script_calls(redis) - calls < 200  # 200 joins in batches of <= 64
    snap = await store.load("demo")
    assert snap is not None and snap.prequeue_size == 201


async def test_joins_arriving_while_a_batch_is_in_flight_keep_their_order(
    redis: aioredis.Redis, store: RoomStore
) -> None:
    order: list[int] = []

    async def visitor(i: int) -> JoinOutcome:
        await asyncio.sleep(0)  # arrive over several loop iterations
        for _ in range(i % 7):
            await asyncio.sleep(0)
        order.append(i)
        return await store.join("demo", T0)

    tickets = await asyncio.gather(*(visitor(i) for i in range(300)))
    numbers = {i: t.ticket.number for i, t in zip(range(300), tickets, strict=True)}
    assert [numbers[i] for i in order] == list(range(1, 301))


async def test_a_batch_is_pre_or_post_around_the_opening(
    redis: aioredis.Redis, store: RoomStore
) -> None:
    before = [asyncio.create_task(store.join("demo", T0)) for _ in range(50)]
    opening = asyncio.create_task(store.open_now("demo", T0))
    after = [asyncio.create_task(store.join("demo", T0)) for _ in range(50)]
    await asyncio.gather(*before, opening, *after)
    tickets = [t.result().ticket for t in before + after]
    snap = await store.load("demo")
    assert snap is not None and snap.opened
    kinds = [t.kind for t in tickets]
    size = kinds.count("pre")
    assert kinds == ["pre"] * size + ["post"] * (100 - size)  # pre is a prefix of arrival
    assert [t.number for t in tickets] == [*range(1, size + 1), *range(1, 100 - size + 1)]
    assert snap.prequeue_size == size and snap.post_count == 100 - size


async def test_a_closed_or_unknown_room_refuses_every_join_of_the_batch(
    store: RoomStore,
) -> None:
    await store.set_state("demo", "closed")
    closed = await asyncio.gather(
        *(store.join("demo", T0) for _ in range(20)), return_exceptions=True
    )
    unknown = await asyncio.gather(
        *(store.join("nope", T0) for _ in range(20)), return_exceptions=True
    )
    assert all(isinstance(r, RoomClosed) for r in closed)
    assert all(isinstance(r, RoomNotFound) for r in unknown)
    snap = await store.load("demo")
    assert snap is not None and snap.queue_length == 0


async def test_only_the_early_joins_of_a_batch_are_refused(store: RoomStore) -> None:
    nows = [T0 - 1, T0, T0 - 5, T0 + 1]  # the pre-queue opens at T0
    results = await asyncio.gather(
        *(store.join("demo", now) for now in nows), return_exceptions=True
    )
    early = [r for r in results if isinstance(r, TooEarly)]
    taken = [r.ticket.number for r in results if not isinstance(r, BaseException)]
    assert [isinstance(r, TooEarly) for r in results] == [True, False, True, False]
    assert {e.prequeue_opens_at_s for e in early} == {T0}
    assert taken == [1, 2]


async def test_batches_of_different_rooms_do_not_mix(store: RoomStore) -> None:
    await store.put_room(RoomConfig(name="other", campaign="flu", opens_at_s=T0))
    await store.open_now("other", T0)
    outcomes = await asyncio.gather(
        *(store.join("demo" if i % 2 else "other", T0) for i in range(40))
    )
    demo = [o.ticket for o in outcomes if o.ticket.room == "demo"]
    other = [o.ticket for o in outcomes if o.ticket.room == "other"]
    assert [(t.kind, t.number) for t in demo] == [("pre", n) for n in range(1, 21)]
    assert [(t.kind, t.number) for t in other] == [("post", n) for n in range(1, 21)]


async def test_a_redis_failure_reaches_every_join_of_the_batch() -> None:
    client = aioredis.Redis(port=free_port())  # nothing listens there
    try:
        b = batcher(client)
        results = await asyncio.gather(
            *(b.join("demo", T0) for _ in range(5)), return_exceptions=True
        )
    finally:
        await client.aclose()
    assert all(isinstance(r, aioredis.ConnectionError) for r in results)


def test_max_batch_must_be_positive(redis: aioredis.Redis) -> None:
    with pytest.raises(ValueError, match="max_batch"):
        batcher(redis, max_batch=0)


async def test_a_drainer_keeps_one_connection_and_gives_it_back(
    redis: aioredis.Redis, store: RoomStore
) -> None:
    b = batcher(redis, max_batch=8)
    pool = redis.connection_pool
    await b.join("demo", T0)  # the pool has made its connection
    made = len(pool._available_connections) + len(pool._in_use_connections)
    tickets = await asyncio.gather(*(b.join("demo", T0) for _ in range(100)))  # 13 batches
    assert [t.number for t in tickets] == list(range(2, 102))
    assert len(pool._in_use_connections) == 1  # kept a while for the joins to come
    assert (await b.join("demo", T0)).number == 102  # on the same connection
    await asyncio.sleep(DEFAULT_LINGER_S * 2)
    assert len(pool._in_use_connections) == 0  # given back once the line stayed empty
    assert len(pool._available_connections) + len(pool._in_use_connections) == made


async def test_a_lingering_drainer_sends_the_next_join_at_once(
    redis: aioredis.Redis, store: RoomStore
) -> None:
    linger_s = 1.0
    b = JoinBatcher(Scripts.register(redis).join_many, DEFAULT_PREQUEUE_S, linger_s=linger_s)
    assert (await b.join("demo", T0)).number == 1
    started = time.monotonic()
    assert (await b.join("demo", T0)).number == 2  # woken by the join, not after the linger
    assert time.monotonic() - started < linger_s / 2
    await asyncio.sleep(linger_s * 1.5)
    assert len(redis.connection_pool._in_use_connections) == 0  # given back after it


def test_linger_must_not_be_negative(redis: aioredis.Redis) -> None:
    with pytest.raises(ValueError, match="linger_s"):
        JoinBatcher(Scripts.register(redis).join_many, DEFAULT_PREQUEUE_S, linger_s=-1.0)


async def test_joins_go_on_after_redis_forgot_the_script(
    redis: aioredis.Redis, store: RoomStore
) -> None:
    b = batcher(redis)
    assert (await b.join("demo", T0)).number == 1
    await redis.script_flush()
    tickets = await asyncio.gather(*(b.join("demo", T0) for _ in range(3)))
    assert [t.number for t in tickets] == [2, 3, 4]


async def test_a_refused_join_keeps_the_numbers_of_the_batch_contiguous(
    store: RoomStore,
) -> None:
    nows = [T0, T0 - 1, T0 + 1, T0 - 2, T0 + 2]
    results = await asyncio.gather(
        *(store.join("demo", now) for now in nows), return_exceptions=True
    )
    assert [r.ticket.number if isinstance(r, JoinOutcome) else None for r in results] == [
        1,
        None,
        2,
        None,
        3,
    ]
    assert [r.ticket.issued_at_s for r in results if isinstance(r, JoinOutcome)] == [
        T0,
        T0 + 1,
        T0 + 2,
    ]
