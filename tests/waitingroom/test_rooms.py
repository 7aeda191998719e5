import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
import redis.asyncio as aioredis

from fairq.devservices import Server
from waitingroom import keys
from waitingroom.errors import (
    InvalidAccessCode,
    InvalidRoomConfig,
    RoomClosed,
    RoomNotFound,
    TooEarly,
    TooManyAttempts,
)
from waitingroom.guesses import NO_LIMIT, Guesser, GuessLimit
from waitingroom.lottery import position_of, prequeue_order
from waitingroom.rooms import AdmissionChange, RoomConfig, RoomStore

T0 = 1_700_000_000.0
CONFIG = RoomConfig(
    name="demo",
    campaign="flu",
    opens_at_s=T0 + 3600,
    rate_per_s=5.5,
    max_active=50,
    hold_s=300,
    admit_window_s=120,
)

# who joins with a code in these tests, under the default limits on wrong codes
ANYONE = {"guesser": Guesser(client="192.0.2.1", prefix="p", limit=GuessLimit())}


@pytest.fixture
async def store(redis: aioredis.Redis) -> RoomStore:
    s = RoomStore(redis)
    await s.put_room(CONFIG)
    return s


@pytest.fixture
async def wide_store(store: RoomStore, redis_srv: Server) -> AsyncIterator[RoomStore]:
    """A store whose client may open a connection per concurrent call (a real race)."""
    client = aioredis.Redis.from_url(redis_srv.url, max_connections=512)
    try:
        yield RoomStore(client)
    finally:
        await client.aclose()


async def test_new_room_is_scheduled_and_empty(store: RoomStore) -> None:
    snap = await store.load("demo")
    assert snap is not None
    assert snap.config == CONFIG
    assert (snap.state, snap.sold_out, snap.opened, snap.seed) == ("scheduled", False, False, None)
    assert (snap.queue_length, snap.cursor, snap.active) == (0, 0, 0)
    assert await store.room_names() == ["demo"]
    assert await store.load("nope") is None


async def test_put_room_updates_config_and_keeps_counters(store: RoomStore) -> None:
    await store.join("demo", T0)
    await store.join("demo", T0)
    changed = RoomConfig(
        name="demo",
        campaign="flu",
        opens_at_s=T0 + 60,
        rate_per_s=1.0,
        ramp_s=20,
        admission_mode="auto",
        pow_difficulty=8,
    )
    await store.put_room(changed)
    await store.put_room(RoomConfig(name="second", campaign="covid", opens_at_s=T0))
    snap = await store.load("demo")
    assert snap is not None
    assert (snap.config, snap.prequeue_size, snap.state) == (changed, 2, "scheduled")
    assert await store.room_names() == ["demo", "second"]
    assert await store.rooms_of_campaign("flu") == ["demo"]


async def test_joins_before_opening_are_pre_and_after_are_post(store: RoomStore) -> None:
    pre = [await store.join("demo", T0 + i) for i in range(3)]
    opened = await store.open_now("demo", T0 + 10)
    again = await store.open_now("demo", T0 + 20)
    post = [await store.join("demo", T0 + 30) for _ in range(2)]
    assert [(o.ticket.kind, o.ticket.number, o.new) for o in pre] == [
        ("pre", 1, True),
        ("pre", 2, True),
        ("pre", 3, True),
    ]
    assert [(o.ticket.kind, o.ticket.number) for o in post] == [("post", 1), ("post", 2)]
    assert pre[1].ticket.issued_at_s == T0 + 1
    assert len({o.ticket.ticket_id for o in pre + post}) == 5
    assert (opened.state, opened.prequeue_size, opened.opened_at_s) == ("open", 3, T0 + 10)
    assert opened.seed is not None and len(opened.seed) == 32
    assert (again.seed, again.opened_at_s, again.prequeue_size) == (opened.seed, T0 + 10, 3)
    snap = await store.load("demo")
    assert snap is not None and (snap.prequeue_size, snap.post_count, snap.queue_length) == (
        3,
        2,
        5,
    )


async def test_joins_racing_the_opening_get_one_timeline(wide_store: RoomStore) -> None:
    store = wide_store
    await store.put_room(RoomConfig(name="warmup", campaign="flu", opens_at_s=T0))
    await store.open_now("warmup", T0)  # the server knows both scripts before the race
    first = await store.join("demo", T0)  # surely before the opening
    before = [asyncio.create_task(store.join("demo", T0)) for _ in range(100)]
    opening = asyncio.create_task(store.open_now("demo", T0))
    after = [asyncio.create_task(store.join("demo", T0)) for _ in range(100)]
    await asyncio.gather(*before, opening, *after)
    last = await store.join("demo", T0)  # surely after it
    tickets = [first.ticket, *(t.result().ticket for t in before + after), last.ticket]
    snap = await store.load("demo")
    assert snap is not None and snap.seed is not None
    size = snap.prequeue_size
    pre = sorted(t.number for t in tickets if t.kind == "pre")
    post = sorted(t.number for t in tickets if t.kind == "post")
    assert pre == list(range(1, size + 1)) and size >= 1
    assert post == list(range(1, 202 - size + 1)) and len(post) >= 1
    assert snap.queue_length == 202
    order = prequeue_order(snap.seed, size)
    positions = sorted(position_of(t, snap, order) or 0 for t in tickets)
    assert positions == list(range(1, 203))


async def issue(redis: aioredis.Redis, groups: dict[str, str]) -> None:
    """Store code hashes (as ``codes.issue_codes`` does) for the room's campaign."""
    for code_hash, group in groups.items():
        await redis.hset(keys.campaign_codes(CONFIG.campaign), code_hash, group)


async def test_one_place_per_access_code(wide_store: RoomStore, redis: aioredis.Redis) -> None:
    store = wide_store
    await issue(redis, {"c1": "80plus", "c2": "medical"})
    outcomes = await asyncio.gather(
        *(store.join_with_code("demo", T0, "flu", ["c1"], **ANYONE) for _ in range(100))
    )
    assert len({o.ticket for o in outcomes}) == 1
    assert sum(o.new for o in outcomes) == 1
    assert (outcomes[0].ticket.code_hash, outcomes[0].ticket.group) == ("c1", "80plus")
    await store.open_now("demo", T0)
    later = await store.join_with_code("demo", T0 + 5, "flu", ["c1"], **ANYONE)
    other = await store.join_with_code("demo", T0 + 5, "flu", ["c2"], **ANYONE)
    assert (later.new, later.ticket) == (False, outcomes[0].ticket)
    assert (later.ticket.kind, later.ticket.number) == ("pre", 1)
    assert (other.new, other.ticket.kind, other.ticket.number) == (True, "post", 1)
    assert other.ticket.group == "medical"


async def test_a_code_join_takes_the_first_hash_the_code_is_stored_under(
    store: RoomStore, redis: aioredis.Redis
) -> None:
    await issue(redis, {"plain": "80plus", "keyed": "medical"})
    old = await store.join_with_code("demo", T0, "flu", ["not-issued", "plain"], **ANYONE)
    new = await store.join_with_code("demo", T0, "flu", ["keyed", "plain"], **ANYONE)
    assert (old.ticket.code_hash, old.ticket.group) == ("plain", "80plus")
    assert (new.ticket.code_hash, new.ticket.group) == ("keyed", "medical")
    assert new.ticket != old.ticket


async def test_a_code_not_issued_for_the_campaign_gets_no_place(
    store: RoomStore, redis: aioredis.Redis
) -> None:
    await issue(redis, {"c1": "80plus"})
    await redis.hset(keys.campaign_codes("covid"), "c2", "80plus")  # another campaign's
    before = await store.load("demo")
    for hashes in (["c2"], ["nope", "c3"], []):
        with pytest.raises(InvalidAccessCode):
            await store.join_with_code("demo", T0, "flu", hashes, **ANYONE)
    assert await store.load("demo") == before
    assert await redis.hlen(keys.room_code_tickets("demo")) == 0
    with pytest.raises(RoomNotFound):
        await store.join_with_code("nope", T0, "flu", ["c1"], **ANYONE)


class Counted(aioredis.Connection):
    """A connection that counts the replies it reads: one per round trip."""

    replies = 0

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        Counted.replies += 1
        return await super().read_response(*args, **kwargs)


@pytest.fixture
async def counted(redis_srv: Server) -> AsyncIterator[RoomStore]:
    """A store on the test's Redis whose connections count their replies."""
    pool = aioredis.ConnectionPool.from_url(redis_srv.url, connection_class=Counted)
    client = aioredis.Redis(connection_pool=pool)
    try:
        yield RoomStore(client)
    finally:
        await client.aclose()


async def test_a_code_join_is_one_round_trip(
    store: RoomStore, redis: aioredis.Redis, counted: RoomStore
) -> None:
    await issue(redis, {"c1": "80plus", "c2": "80plus"})
    await counted.join_with_code("demo", T0, "flu", ["c1"], **ANYONE)  # connected, script known
    Counted.replies = 0
    outcome = await counted.join_with_code("demo", T0, "flu", ["x", "c2"], **ANYONE)
    assert outcome.new and outcome.ticket.code_hash == "c2"
    assert Counted.replies == 1
    # a wrong code is counted, and a guesser over the limit refused, in that one trip too
    one_wrong = guesses_of("192.0.2.1", "p", GuessLimit(per_client=1))
    for refusal in (InvalidAccessCode, TooManyAttempts):
        Counted.replies = 0
        with pytest.raises(refusal):
            await counted.join_with_code("demo", T0, "flu", ["wrong"], **one_wrong)
        assert Counted.replies == 1


def guesses_of(client: str, prefix: str, limit: GuessLimit) -> dict[str, Guesser]:
    return {"guesser": Guesser(client=client, prefix=prefix, limit=limit)}


async def counts(redis: aioredis.Redis, client: str, prefix: str, now_s: float) -> list[int]:
    """The wrong codes counted for ``client`` and ``prefix`` in the window of ``now_s``."""
    window = GuessLimit().window(now_s)
    client_key = keys.code_guesses_of_client(CONFIG.campaign, client, window)
    prefix_key = keys.code_guesses_of_prefix(CONFIG.campaign, prefix, window)
    return [int(await redis.get(key) or 0) for key in (client_key, prefix_key)]


async def test_a_client_over_its_wrong_codes_is_refused_even_a_right_code(
    store: RoomStore, redis: aioredis.Redis
) -> None:
    await issue(redis, {"c1": "80plus"})
    limit = GuessLimit(per_client=3, per_prefix=0)
    guesser = guesses_of("198.51.100.7", "p1", limit)
    for wrong in ("w1", "w2", "w3"):
        with pytest.raises(InvalidAccessCode):
            await store.join_with_code("demo", T0, "flu", [wrong], **guesser)
    assert await counts(redis, "198.51.100.7", "p1", T0) == [3, 0]  # the prefix: not limited
    with pytest.raises(TooManyAttempts) as refused:  # the right code: refused all the same
        await store.join_with_code("demo", T0, "flu", ["c1"], **guesser)
    assert refused.value.limit == "client"
    assert await counts(redis, "198.51.100.7", "p1", T0) == [3, 0]  # a refusal adds nothing
    assert await redis.hlen(keys.room_code_tickets("demo")) == 0
    other = await store.join_with_code("demo", T0, "flu", ["c1"], **guesses_of("x", "p1", limit))
    assert other.new and other.ticket.code_hash == "c1"  # a client under the limit joins


async def test_a_prefix_over_its_wrong_codes_is_refused_for_every_client(
    store: RoomStore, redis: aioredis.Redis
) -> None:
    await issue(redis, {"c1": "80plus"})
    limit = GuessLimit(per_client=0, per_prefix=4)
    for i in range(4):  # a guesser spreading one region's guesses over addresses
        with pytest.raises(InvalidAccessCode):
            await store.join_with_code("demo", T0, "flu", ["w"], **guesses_of(f"c{i}", "p", limit))
    assert await counts(redis, "c0", "p", T0) == [0, 4]
    with pytest.raises(TooManyAttempts) as refused:
        await store.join_with_code("demo", T0, "flu", ["c1"], **guesses_of("new", "p", limit))
    assert refused.value.limit == "prefix"
    other = await store.join_with_code("demo", T0, "flu", ["c1"], **guesses_of("new", "q", limit))
    assert other.new  # a code of another prefix is looked up


async def test_wrong_codes_are_counted_again_in_the_next_window(
    store: RoomStore, redis: aioredis.Redis
) -> None:
    await issue(redis, {"c1": "80plus"})
    limit = GuessLimit(per_client=1, per_prefix=1, window_s=60)
    start = limit.window(T0) * 60.0  # a window's first second
    guesser = guesses_of("198.51.100.7", "p", limit)
    with pytest.raises(InvalidAccessCode):
        await store.join_with_code("demo", start, "flu", ["w"], **guesser)
    window_key = keys.code_guesses_of_client("flu", "198.51.100.7", limit.window(start))
    assert 0 < await redis.ttl(window_key) <= 60  # the counters go away by themselves
    with pytest.raises(TooManyAttempts):
        await store.join_with_code("demo", start + 59.9, "flu", ["c1"], **guesser)
    outcome = await store.join_with_code("demo", start + 60, "flu", ["c1"], **guesser)
    assert outcome.new


async def test_concurrent_wrong_codes_are_counted_exactly(
    wide_store: RoomStore, redis: aioredis.Redis
) -> None:
    limit = GuessLimit(per_client=10, per_prefix=0)
    guesser = guesses_of("198.51.100.7", "p", limit)
    outcomes = await asyncio.gather(
        *(wide_store.join_with_code("demo", T0, "flu", [f"w{i}"], **guesser) for i in range(40)),
        return_exceptions=True,
    )
    refusals = [type(o).__name__ for o in outcomes]
    assert sorted(set(refusals)) == ["InvalidAccessCode", "TooManyAttempts"]
    assert refusals.count("InvalidAccessCode") == 10
    assert await counts(redis, "198.51.100.7", "p", T0) == [10, 0]


async def test_an_exempt_guesser_is_neither_limited_nor_counted(
    store: RoomStore, redis: aioredis.Redis
) -> None:
    await issue(redis, {"c1": "80plus"})
    guesser = guesses_of("198.51.100.7", "p", NO_LIMIT)
    for i in range(30):
        with pytest.raises(InvalidAccessCode):
            await store.join_with_code("demo", T0, "flu", [f"w{i}"], **guesser)
    assert await counts(redis, "198.51.100.7", "p", T0) == [0, 0]
    assert [k async for k in redis.scan_iter(match=keys.code_guesses_pattern("flu"))] == []
    assert (await store.join_with_code("demo", T0, "flu", ["c1"], **guesser)).new


async def test_an_admitted_ticket_joining_again_is_one_round_trip(
    store: RoomStore, redis: aioredis.Redis, counted: RoomStore
) -> None:
    """It keeps its place while the place is active (deadline >= now), else gets a new
    number after the others; in one round trip either way."""
    await store.open_now("demo", T0)
    first = (await store.join("demo", T0 + 1)).ticket
    active = keys.room_active("demo")
    await redis.zadd(active, {"1": T0 + 100})
    await counted.rejoin("demo", T0 + 2, 1)  # connected, script known
    for now_s, kept in ((T0 + 100, True), (T0 + 100.5, False)):
        Counted.replies = 0
        ticket = await counted.rejoin("demo", now_s, 1)
        assert Counted.replies == 1
        assert (ticket is None) is kept
    assert ticket is not None and ticket.ticket_id != first.ticket_id
    assert (ticket.room, ticket.kind, ticket.number, ticket.issued_at_s) == (
        "demo",
        "post",
        first.number + 1,
        T0 + 100.5,
    )
    snap = await store.load("demo")
    assert snap is not None and snap.post_count == first.number + 1  # one number taken


async def test_a_kept_turn_survives_a_closed_room_a_new_place_does_not(
    store: RoomStore, redis: aioredis.Redis
) -> None:
    await store.open_now("demo", T0)
    await redis.zadd(keys.room_active("demo"), {"1": T0 + 100})
    await store.set_state("demo", "closed")
    assert await store.rejoin("demo", T0 + 50, 1) is None
    with pytest.raises(RoomClosed):
        await store.rejoin("demo", T0 + 50, 2)
    with pytest.raises(RoomNotFound):
        await store.rejoin("nope", T0 + 50, 1)
    snap = await store.load("demo")
    assert snap is not None and snap.post_count == 0


async def test_closed_room_refuses_joins_and_unknown_rooms_are_reported(
    store: RoomStore, redis: aioredis.Redis
) -> None:
    await store.set_state("demo", "closed")
    with pytest.raises(RoomClosed):
        await store.join("demo", T0)
    await issue(redis, {"c1": "80plus"})
    with pytest.raises(RoomClosed):
        await store.join_with_code("demo", T0, "flu", ["c1"], **ANYONE)
    assert await redis.hlen(keys.room_code_tickets("demo")) == 0
    for call in (
        store.join("nope", T0),
        store.open_now("nope", T0),
        store.set_state("nope", "paused"),
        store.set_admission("nope", AdmissionChange(rate_per_s=1.0)),
        store.set_sold_out("nope", True),
    ):
        with pytest.raises(RoomNotFound):
            await call
    assert await store.room_names() == ["demo"]


async def test_resume_returns_to_scheduled_or_open(store: RoomStore) -> None:
    assert (await store.set_state("demo", "paused")).state == "paused"
    assert (await store.join("demo", T0)).ticket.kind == "pre"  # paused still takes joins
    assert (await store.set_state("demo", "open")).state == "scheduled"
    await store.set_state("demo", "paused")
    opened = await store.open_now("demo", T0)
    assert (opened.opened, opened.state) == (True, "paused")
    assert (await store.set_state("demo", "open")).state == "open"
    with pytest.raises(InvalidRoomConfig):
        await store.set_state("demo", "scheduled")


async def test_set_admission(store: RoomStore) -> None:
    snap = await store.set_admission("demo", AdmissionChange(rate_per_s=2.5, max_active=7))
    assert (snap.config.rate_per_s, snap.config.max_active) == (2.5, 7)
    assert await store.load("demo") == snap
    changed = await store.set_admission(
        "demo", AdmissionChange(ramp_s=30, admission_mode="auto", pow_difficulty=12)
    )
    assert changed.config == replace(
        snap.config, ramp_s=30, admission_mode="auto", pow_difficulty=12
    )
    assert await store.set_admission("demo", AdmissionChange()) == changed  # nothing to change


@pytest.mark.parametrize(
    "change",
    [
        {"rate_per_s": -1.0},
        {"rate_per_s": float("nan")},
        {"max_active": -1},
        {"ramp_s": -1},
        {"ramp_s": 86_401},
        {"admission_mode": "fast"},
        {"pow_difficulty": -1},
        {"pow_difficulty": 29},
    ],
)
def test_admission_changes_are_checked(change: dict[str, object]) -> None:
    with pytest.raises(InvalidRoomConfig):
        AdmissionChange(**change)  # type: ignore[arg-type]


def test_rate_at_ramps_from_a_tenth_after_the_opening() -> None:
    config = RoomConfig(name="r", campaign="c", opens_at_s=T0, rate_per_s=100.0, ramp_s=10)
    assert config.rate_at(None, T0 + 5) == 100.0  # not opened: no ramp to speak of
    assert config.rate_at(T0, T0) == pytest.approx(10.0)
    assert config.rate_at(T0, T0 + 5) == pytest.approx(55.0)
    assert config.rate_at(T0, T0 + 10) == config.rate_at(T0, T0 + 99) == 100.0
    assert replace(config, ramp_s=0).rate_at(T0, T0) == 100.0


async def test_a_booking_starts_only_on_an_active_position(
    store: RoomStore, redis: aioredis.Redis
) -> None:
    active = keys.room_active("demo")
    await redis.zadd(active, {"1": T0 + 100, "2": T0 + 100})
    await redis.zadd(active, {"4": T0 + 10})
    assert await store.booking_started("demo", 1, T0 + 20, T0 + 500) == T0 + 100
    assert await store.booking_started("demo", 2, T0 + 20, T0 + 50) == T0 + 100  # not shorter
    assert await store.booking_started("demo", 3, T0 + 20, T0 + 500) is None  # never admitted
    assert await store.booking_started("demo", 4, T0 + 20, T0 + 500) is None  # lapsed at T0 + 10
    assert await redis.zrange(active, 0, -1, withscores=True) == [
        (b"4", T0 + 10),  # the admitter's next step removes it
        (b"2", T0 + 100),
        (b"1", T0 + 500),
    ]
    assert await store.booking_not_started("demo", 1, T0 + 500, T0 + 100)  # refused
    assert not await store.booking_not_started("demo", 3, T0 + 500, T0 + 100)  # not added
    # 2's first booking set no deadline (T0 + 50 < T0 + 100): its refusal changes nothing
    assert not await store.booking_not_started("demo", 2, T0 + 50, T0 + 100)
    assert await redis.zrange(active, 0, -1, withscores=True) == [
        (b"4", T0 + 10),
        (b"1", T0 + 100),  # its admission deadline again
        (b"2", T0 + 100),
    ]
    await store.booking_finished("demo", 1)
    snap = await store.load("demo")
    assert snap is not None and snap.active == 2  # 2, and 4 until the admitter removes it


async def test_a_refused_booking_leaves_a_concurrent_one_its_deadline(
    store: RoomStore, redis: aioredis.Redis
) -> None:
    """Two bookings of one place at once (one token, two requests): the one refused
    after the other started does not cut the other's deadline back."""
    active = keys.room_active("demo")
    await redis.zadd(active, {"1": T0 + 100})
    first = await store.booking_started("demo", 1, T0 + 20, T0 + 500)
    second = await store.booking_started("demo", 1, T0 + 21, T0 + 501)
    assert (first, second) == (T0 + 100, T0 + 500)
    assert first is not None
    assert not await store.booking_not_started("demo", 1, T0 + 500, first)  # refused
    assert await redis.zscore(active, "1") == T0 + 501  # the second still books


async def test_sold_out_verdicts_do_not_go_back(store: RoomStore) -> None:
    assert await store.set_sold_out("demo", True, seq=5) is True
    assert await store.set_sold_out("demo", False, seq=4) is False  # an older verdict
    snap = await store.load("demo")
    assert snap is not None and snap.sold_out
    assert await store.set_sold_out("demo", True, seq=6) is False  # applied, unchanged
    assert await store.set_sold_out("demo", False) is True  # an operator's word always applies
    snap = await store.load("demo")
    assert snap is not None and not snap.sold_out


@pytest.mark.parametrize(
    "changes",
    [
        {"name": "a{b}"},
        {"name": ""},
        {"campaign": "x y"},
        {"rate_per_s": -1.0},
        {"max_active": -1},
        {"hold_s": 0},
        {"admit_window_s": 0},
        {"opens_at_s": float("inf")},
        {"prequeue_s": -1},
        {"prequeue_s": 31 * 86_400},
        {"ramp_s": -5},
        {"admission_mode": "automatic"},
        {"pow_difficulty": 40},
    ],
)
def test_room_config_is_checked(changes: dict[str, object]) -> None:
    fields: dict[str, object] = {"name": "demo", "campaign": "flu", "opens_at_s": T0} | changes
    with pytest.raises(InvalidRoomConfig):
        RoomConfig(**fields)  # type: ignore[arg-type]


async def test_joins_before_the_prequeue_window_are_refused(store: RoomStore) -> None:
    await store.put_room(RoomConfig(name="w", campaign="flu", opens_at_s=T0 + 600, prequeue_s=60))
    with pytest.raises(TooEarly) as refused:
        await store.join("w", T0 + 539.5)
    assert refused.value.prequeue_opens_at_s == T0 + 540
    assert (await store.join("w", T0 + 540)).ticket.kind == "pre"
    snap = await store.load("w")
    assert snap is not None and snap.config.prequeue_s == 60


async def test_an_opened_room_takes_joins_whatever_its_window(store: RoomStore) -> None:
    await store.put_room(RoomConfig(name="w", campaign="flu", opens_at_s=T0 + 600, prequeue_s=0))
    with pytest.raises(TooEarly):
        await store.join("w", T0)
    await store.open_now("w", T0)
    assert (await store.join("w", T0)).ticket.kind == "post"
