"""Access codes for priority groups, stored only as hashes per campaign.

A code is 12 characters from an alphabet without look-alikes (no I, L, O, 0, 1),
shown in groups of four: ``7KQM-R2XH-9PDT`` (about 59 random bits). Typing is
forgiving: case, spaces and dashes do not matter.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

import redis.asyncio as aioredis

from schemas.state import CodesIssued
from waitingroom import keys
from waitingroom.scripts import STORE_CODES
from waitingroom.statelog import StateLog

ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_CHARS = 12
GROUP_CHARS = 4
MAX_GROUP_LEN = 64
MAX_CODES_PER_CALL = 100_000
BATCH = 1_000


def normalise_code(code: str) -> str:
    """Upper case, without whitespace and dashes."""
    return "".join(code.split()).replace("-", "").upper()


def code_identity(code_hash: str) -> str:
    """Who holds an access code, online or on the phone: one pair per code per campaign."""
    return f"code:{code_hash}"


def hash_code(code: str, secret: bytes) -> str:
    """What is stored of a code and what its tickets carry: HMAC-SHA-256 hex of the
    normalised code keyed with ``secret``; plain SHA-256 hex without one.

    A code has about 59 random bits: unkeyed, a copy of Redis holding a million codes
    gives some of them away to a few minutes of GPU hashing (2^39 guesses). Keyed, the
    copy is worthless without the secret.
    """
    normalised = normalise_code(code).encode()
    if not secret:
        return hashlib.sha256(normalised).hexdigest()
    return hmac.new(secret, b"code:" + normalised, hashlib.sha256).hexdigest()


def is_well_formed(code: str) -> bool:
    n = normalise_code(code)
    return len(n) == CODE_CHARS and all(c in ALPHABET for c in n)


CODES = len(ALPHABET) ** CODE_CHARS  # how many codes there are


def new_code() -> str:
    """A code drawn uniformly from all ``CODES``: one draw from the system's random
    source, written in base ``len(ALPHABET)``, rather than a draw (a system call) per
    character: an operator issues up to ``MAX_CODES_PER_CALL`` in one request."""
    n = secrets.randbelow(CODES)
    chars = []
    for _ in range(CODE_CHARS):
        n, digit = divmod(n, len(ALPHABET))
        chars.append(ALPHABET[digit])
    return "-".join("".join(chars[i : i + GROUP_CHARS]) for i in range(0, CODE_CHARS, GROUP_CHARS))


async def issue_codes(
    redis: aioredis.Redis,
    campaign: str,
    group: str,
    count: int,
    secret: bytes,
    ledger: StateLog | None = None,
) -> list[str]:
    """``count`` new codes for ``group``; only their hashes (``hash_code`` with
    ``secret``) are stored. Shown once.

    With a ``ledger`` each batch's hashes go to the state log before any code is
    shown: a letter posted with a code stays good after Redis forgets (raises
    ``StateNotAccepted``; the codes stored until then were never shown: harmless).
    """
    if not 0 < len(group) <= MAX_GROUP_LEN:
        raise ValueError(f"a group name has 1 to {MAX_GROUP_LEN} characters")
    if not 0 <= count <= MAX_CODES_PER_CALL:
        raise ValueError(f"count must be between 0 and {MAX_CODES_PER_CALL}, got {count}")
    key = keys.campaign_codes(campaign)
    store = redis.register_script(STORE_CODES)
    issued: list[str] = []
    while len(issued) < count:
        batch = [new_code() for _ in range(min(BATCH, count - len(issued)))]
        hashed = [(code, hash_code(code, secret)) for code in batch]
        stored = await store(keys=[key], args=[group, *(h for _, h in hashed)])
        # A code already issued (a collision) is dropped and drawn again.
        new = [pair for pair, ok in zip(hashed, stored, strict=True) if ok]
        if ledger is not None and new:
            await ledger.write(CodesIssued(campaign, group, tuple(h for _, h in new)))
        issued.extend(code for code, _ in new)
    return issued


def stored_hashes(code: str, secret: bytes) -> list[str]:
    """The hashes ``code`` may be stored under, in the order to try them: keyed with
    ``secret``, then the plain hash of a code issued before the service had a secret
    (such a code keeps that hash, its tickets and its identity, for good). Empty for a
    code that is not well formed: nothing to look up."""
    if not is_well_formed(code):
        return []
    return list(dict.fromkeys([hash_code(code, secret), hash_code(code, b"")]))


async def find_code(
    redis: aioredis.Redis, campaign: str, code: str, secret: bytes
) -> tuple[str, str] | None:
    """The code's hash and priority group, or None if it was not issued for the campaign
    (one round trip; a join looks the code up inside its own script instead)."""
    hashes = stored_hashes(code, secret)
    if not hashes:
        return None
    groups = await redis.hmget(keys.campaign_codes(campaign), hashes)
    for code_hash, group in zip(hashes, groups, strict=True):
        if group is not None:
            return code_hash, group.decode() if isinstance(group, bytes) else str(group)
    return None
