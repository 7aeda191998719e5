import asyncio
import dataclasses

import pytest
import redis.asyncio as aioredis

from waitingroom import keys, scripts

SOURCES = {
    name: getattr(scripts, name)
    for name in (
        "JOIN",
        "JOIN_MANY",
        "REJOIN",
        "OPEN",
        "SET_STATE",
        "SET_ADMISSION",
        "SET_SOLD_OUT",
        "ADMIT",
        "ACQUIRE",
        "RENEW",
        "RELEASE",
        "UPDATE_INVENTORY",
        "CLAIM_IDENTITY",
        "START_BOOKING",
        "UNDO_START_BOOKING",
        "RECORD_POINT",
        "RAISE_CEILING",
        "MARK_OPENING_LOGGED",
        "CHECK_MARKER",
        "RESTORE_ROOM",
    )
}


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_script_has_its_header(name: str) -> None:
    header = [line for line in SOURCES[name].splitlines() if line.startswith("-- ")]
    assert any(line.startswith("-- KEYS[1]") for line in header)
    assert any(line.startswith("-- ARGV[1]") for line in header)
    assert any(line.startswith("-- Returns") for line in header)


async def test_every_script_compiles_and_is_registered_once(redis: aioredis.Redis) -> None:
    registered = scripts.Scripts.register(redis)
    shas = {getattr(registered, f.name).sha for f in dataclasses.fields(registered)}
    assert len(shas) == len(SOURCES)
    for source in SOURCES.values():  # SCRIPT LOAD compiles, so a syntax error fails here
        assert await redis.script_load(source) in shas


async def test_identity_claim_is_a_compare_and_set(redis: aioredis.Redis) -> None:
    claim = scripts.Scripts.register(redis).claim_identity
    key = keys.identity_claim("camp", "code:abc")

    async def take(booking: str, ended: str = "") -> list[bytes]:
        reply: list[bytes] = await claim(keys=[key], args=[booking, ended, 60])
        return reply

    assert await take("bk_x") == [b"taken", b""]
    assert 0 < await redis.ttl(key) <= 60
    assert await take("bk_x") == [b"kept", b""]  # the holder claims again: nothing changes
    assert await take("bk_y") == [b"held", b"bk_x"]
    assert await take("bk_y", ended="bk_other") == [b"held", b"bk_x"]  # not the one seen end
    assert await redis.get(key) == b"bk_x"
    assert await take("bk_y", ended="bk_x") == [b"taken", b""]  # take-over of an ended holder
    # A second caller that saw bk_x end too comes late: the claim is bk_y's now.
    assert await take("bk_z", ended="bk_x") == [b"held", b"bk_y"]
    assert await redis.get(key) == b"bk_y"


async def test_identity_claim_is_given_up_only_by_its_holder(redis: aioredis.Redis) -> None:
    registered = scripts.Scripts.register(redis)
    key = keys.identity_claim("camp", "key:abc")
    await registered.claim_identity(keys=[key], args=["bk_x", "", 60])
    assert await registered.release(keys=[key], args=["bk_y"]) == 0
    assert await redis.get(key) == b"bk_x"
    assert await registered.release(keys=[key], args=["bk_x"]) == 1
    assert await redis.exists(key) == 0
    assert await registered.claim_identity(keys=[key], args=["bk_y", "", 60]) == [b"taken", b""]


async def test_concurrent_claims_have_one_winner(redis: aioredis.Redis) -> None:
    claim = scripts.Scripts.register(redis).claim_identity
    key = keys.identity_claim("camp", "code:abc")
    await redis.set(key, "bk_ended")
    replies = await asyncio.gather(
        *(claim(keys=[key], args=[f"bk_{i}", "bk_ended", 60]) for i in range(30))
    )
    winners = [i for i, reply in enumerate(replies) if reply[0] == b"taken"]
    assert len(winners) == 1
    assert await redis.get(key) == f"bk_{winners[0]}".encode()
    assert {reply[1] for reply in replies if reply[0] == b"held"} == {f"bk_{winners[0]}".encode()}
