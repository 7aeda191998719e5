import dataclasses

import pytest
import redis.asyncio as aioredis

from waitingroom import scripts

SOURCES = {
    name: getattr(scripts, name)
    for name in (
        "JOIN",
        "JOIN_MANY",
        "OPEN",
        "SET_STATE",
        "SET_ADMISSION",
        "SET_SOLD_OUT",
        "ADMIT",
        "ACQUIRE",
        "RENEW",
        "RELEASE",
        "UPDATE_INVENTORY",
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
