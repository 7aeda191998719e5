import re

import pytest
import redis.asyncio as aioredis

from waitingroom import keys
from waitingroom.codes import ALPHABET, code_group, hash_code, issue_codes, normalise_code

CODE_FORMAT = re.compile(rf"^[{ALPHABET}]{{4}}-[{ALPHABET}]{{4}}-[{ALPHABET}]{{4}}$")


def test_alphabet_has_no_look_alikes() -> None:
    assert not set("IL0O1") & set(ALPHABET)
    assert len(set(ALPHABET)) == len(ALPHABET)


def test_hash_ignores_case_spaces_and_dashes() -> None:
    assert normalise_code(" abcd-efgh jkmn ") == "ABCDEFGHJKMN"
    assert hash_code("abcd efgh-jkmn") == hash_code("ABCD-EFGH-JKMN")
    assert hash_code("ABCD-EFGH-JKMN") != hash_code("ABCD-EFGH-JKMP")
    assert len(hash_code("x")) == 64


async def test_issued_codes_are_stored_hashed_and_resolve_to_their_group(
    redis: aioredis.Redis,
) -> None:
    nurses = await issue_codes(redis, "flu", "nurses", 50)
    teachers = await issue_codes(redis, "flu", "teachers", 3)
    assert len(set(nurses + teachers)) == 53
    assert all(CODE_FORMAT.match(c) for c in nurses + teachers)
    stored = await redis.hgetall(keys.campaign_codes("flu"))
    assert set(stored) == {hash_code(c).encode() for c in nurses + teachers}
    assert not any(c.encode() in k or c.encode() in v for c in nurses for k, v in stored.items())
    assert await code_group(redis, "flu", nurses[7]) == "nurses"
    assert await code_group(redis, "flu", teachers[0].lower().replace("-", " ")) == "teachers"


async def test_unknown_codes_have_no_group(redis: aioredis.Redis) -> None:
    [code] = await issue_codes(redis, "flu", "nurses", 1)
    assert await code_group(redis, "covid", code) is None  # another campaign
    assert await code_group(redis, "flu", "AAAA-AAAA-AAAA") is None
    assert await code_group(redis, "flu", "not a code") is None
    assert await code_group(redis, "flu", code + "A") is None


async def test_issue_checks_its_arguments(redis: aioredis.Redis) -> None:
    assert await issue_codes(redis, "flu", "nurses", 0) == []
    with pytest.raises(ValueError):
        await issue_codes(redis, "flu", "", 1)
    with pytest.raises(ValueError):
        await issue_codes(redis, "flu", "nurses", -1)
