import redis.asyncio as aioredis

from waitingroom import keys
from waitingroom.inventory import (
    counties_with_inventory,
    note_supplied,
    pairs_left_of,
    supplied_of,
)
from waitingroom.scripts import Scripts


async def test_reported_and_supplied_counties_are_read_back(redis: aioredis.Redis) -> None:
    await note_supplied(redis, "flu", ["a", "b"])
    await note_supplied(redis, "flu", [])  # nothing sent: nothing noted
    await note_supplied(redis, "covid", ["z"])  # another campaign's
    update = Scripts.register(redis).update_inventory
    await update(keys=[keys.campaign_inventory("flu")], args=[1000, "a", 3, "c", 0])
    inventory = await redis.hgetall(keys.campaign_inventory("flu"))
    assert pairs_left_of(inventory) == {"a": 3, "c": 0}
    assert supplied_of(inventory) == {"a", "b"}
    assert counties_with_inventory(inventory) == {"a", "b", "c"}


def test_an_empty_inventory_has_no_county() -> None:
    assert pairs_left_of({}) == {} and supplied_of({}) == set()
    assert counties_with_inventory({b"seq": b"4"}) == set()
