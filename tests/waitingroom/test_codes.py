import hashlib
import re

import pytest
import redis.asyncio as aioredis

from waitingroom import codes, keys
from waitingroom.codes import ALPHABET, find_code, hash_code, issue_codes, normalise_code

CODE_FORMAT = re.compile(rf"^[{ALPHABET}]{{4}}-[{ALPHABET}]{{4}}-[{ALPHABET}]{{4}}$")
SECRET = b"a-secret-of-the-service-0123456789"


def test_alphabet_has_no_look_alikes() -> None:
    assert not set("IL0O1") & set(ALPHABET)
    assert len(set(ALPHABET)) == len(ALPHABET)


@pytest.mark.parametrize("secret", [SECRET, b""])
def test_hash_ignores_case_spaces_and_dashes(secret: bytes) -> None:
    assert normalise_code(" abcd-efgh jkmn ") == "ABCDEFGHJKMN"
    assert hash_code("abcd efgh-jkmn", secret) == hash_code("ABCD-EFGH-JKMN", secret)
    assert hash_code("ABCD-EFGH-JKMN", secret) != hash_code("ABCD-EFGH-JKMP", secret)
    assert len(hash_code("x", secret)) == 64


def test_a_secret_keys_the_hash() -> None:
    plain = hashlib.sha256(b"ABCDEFGHJKMN").hexdigest()
    assert hash_code("ABCD-EFGH-JKMN", b"") == plain  # no secret: the plain hash
    keyed = hash_code("ABCD-EFGH-JKMN", SECRET)
    assert keyed not in (plain, hash_code("ABCD-EFGH-JKMN", SECRET + b"x"))


async def test_issued_codes_are_stored_keyed_and_resolve_to_their_group(
    redis: aioredis.Redis,
) -> None:
    nurses = await issue_codes(redis, "flu", "nurses", 50, SECRET)
    teachers = await issue_codes(redis, "flu", "teachers", 3, SECRET)
    assert len(set(nurses + teachers)) == 53
    assert all(CODE_FORMAT.match(c) for c in nurses + teachers)
    stored = await redis.hgetall(keys.campaign_codes("flu"))
    assert set(stored) == {hash_code(c, SECRET).encode() for c in nurses + teachers}
    # A copy of Redis holds neither the codes nor hashes anyone can compute without the secret.
    assert not any(c.encode() in k or c.encode() in v for c in nurses for k, v in stored.items())
    assert not {hash_code(c, b"").encode() for c in nurses} & set(stored)
    assert await find_code(redis, "flu", nurses[7], SECRET) == (
        hash_code(nurses[7], SECRET),
        "nurses",
    )
    spelled = teachers[0].lower().replace("-", " ")
    assert await find_code(redis, "flu", spelled, SECRET) == (
        hash_code(teachers[0], SECRET),
        "teachers",
    )
    assert await find_code(redis, "flu", nurses[7], b"another-secret-0123456789") is None


async def test_codes_issued_before_the_secret_still_work(redis: aioredis.Redis) -> None:
    [old] = await issue_codes(redis, "flu", "80plus", 1, b"")  # stored under the plain hash
    [new] = await issue_codes(redis, "flu", "80plus", 1, SECRET)
    assert await find_code(redis, "flu", old, SECRET) == (hash_code(old, b""), "80plus")
    assert await find_code(redis, "flu", new, SECRET) == (hash_code(new, SECRET), "80plus")


async def test_unknown_codes_have_no_group(redis: aioredis.Redis) -> None:
    [code] = await issue_codes(redis, "flu", "nurses", 1, SECRET)
    assert await find_code(redis, "covid", code, SECRET) is None  # another campaign
    assert await find_code(redis, "flu", "AAAA-AAAA-AAAA", SECRET) is None
    assert await find_code(redis, "flu", "not a code", SECRET) is None
    assert await find_code(redis, "flu", code + "A", SECRET) is None


async def test_issue_checks_its_arguments(redis: aioredis.Redis) -> None:
    assert await issue_codes(redis, "flu", "nurses", 0, SECRET) == []
    with pytest.raises(ValueError):
        await issue_codes(redis, "flu", "", 1, SECRET)
    with pytest.raises(ValueError):
        await issue_codes(redis, "flu", "nurses", -1, SECRET)


async def test_a_code_drawn_again_is_stored_once_and_another_drawn_in_its_place(
    redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    draws = iter(["AAAA-BBBB-CCCC", "AAAA-BBBB-CCCC", "DDDD-EEEE-FFFF", "AAAA-BBBB-CCCC"])
    monkeypatch.setattr(codes, "new_code", lambda: next(draws))
    # Within one batch, then across calls: the repetition is dropped, the next draw kept.
    assert await issue_codes(redis, "flu", "nurses", 2, SECRET) == [
        "AAAA-BBBB-CCCC",
        "DDDD-EEEE-FFFF",
    ]
    monkeypatch.setattr(codes, "new_code", lambda: next(draws, "GGGG-HHHH-JJJJ"))
    assert await issue_codes(redis, "flu", "teachers", 1, SECRET) == ["GGGG-HHHH-JJJJ"]
    assert await find_code(redis, "flu", "aaaa-bbbb-cccc", SECRET) == (
        hash_code("AAAA-BBBB-CCCC", SECRET),
        "nurses",
    )


def test_codes_are_drawn_from_the_whole_alphabet_in_every_place() -> None:
    drawn = [codes.new_code() for _ in range(3000)]
    assert all(CODE_FORMAT.match(c) for c in drawn)
    drawn = [normalise_code(c) for c in drawn]
    for place in range(codes.CODE_CHARS):
        assert {c[place] for c in drawn} == set(ALPHABET), place
