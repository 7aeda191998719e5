"""The booking's routing record, as Redis keeps it: written whole, read back typed; a
record a restore wrote (three fields) reads with the rest missing; a malformed field
is refused naming it."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from schemas import SchemaError
from waitingroom import keys
from waitingroom.bookingrecord import PLACED, BookingRecord, from_hash


async def test_a_record_reads_back_as_it_was_written(redis: aioredis.Redis) -> None:
    record = BookingRecord(
        campaign="flu",
        county="a",
        identity="id-1",
        at_s=1_700_000_000,
        command=b"\x81\xa4type\xa4book\xff",  # bytes that are no text stay bytes
        room="demo",
        position=42,
    )
    await redis.hset(keys.booking("bk1"), mapping=record.to_hash())
    assert from_hash(await redis.hgetall(keys.booking("bk1"))) == record
    await redis.hset(keys.booking("bk1"), mapping=PLACED)
    read = from_hash(await redis.hgetall(keys.booking("bk1")))
    assert read.placed and read.position == 42 and read.agent is None


async def test_a_restored_record_has_only_its_three_fields(redis: aioredis.Redis) -> None:
    restored = BookingRecord(campaign="flu", identity="id-1", at_s=5)
    assert set(restored.to_hash()) == {"campaign", "identity", "at_s"}
    await redis.hset(keys.booking("bk2"), mapping=restored.to_hash())
    read = from_hash(await redis.hgetall(keys.booking("bk2")))
    assert read == restored and read.command is None and not read.placed


async def test_no_record_reads_as_all_missing(redis: aioredis.Redis) -> None:
    assert from_hash(await redis.hgetall(keys.booking("none"))) == BookingRecord()


@pytest.mark.parametrize(("field", "value"), [("position", b"x"), ("at_s", b"soon")])
async def test_a_malformed_field_is_refused_naming_it(
    redis: aioredis.Redis, field: str, value: bytes
) -> None:
    await redis.hset(keys.booking("bad"), mapping={"room": "demo", field: value})
    with pytest.raises(SchemaError, match=f"'{field}'"):
        from_hash(await redis.hgetall(keys.booking("bad")))
