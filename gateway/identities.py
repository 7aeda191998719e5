"""One pair per person per campaign, across partitions: a Redis claim per identity.

The allocator refuses a second active booking of an identity only on its own
partition, and commands are keyed by county: two counties on two partitions have
two writers. So the gateway claims ``(campaign, identity)`` in Redis
(``keys.identity_claim``) before a Book goes on the log, and before a Confirm that
carries an identity key. The claim's value is the holder's booking id.

A claim held by another booking is *alive* unless that booking has ended: the
booking read model (``gateway.readmodel``) says rejected, expired or cancelled, or
there is neither a view nor a booking record (it was never placed). An ended holder is taken over
with compare-and-set (``scripts.CLAIM_IDENTITY``: of two gateways racing, one
wins); an alive one refuses the new booking with 409 ``already_booked``. Stale
claims are thus cleared lazily, by the next claimer. A read model that lags
refuses where it could have taken over; it never lets a second booking live.
That needs the holder's booking record to exist whenever it holds the claim:
``gateway.placement.place`` writes the record before the claim, in the same round
trip. A record whose Book the broker has not acknowledged yet is alive too: that
Book may be in the log (a send that timed out), and it will be, as every gateway
sends it again until the broker has it; the claim is given back only once the
allocator's answer says the booking ended.

Claims are durable (``waitingroom.durable``): no claim is taken while Redis has lost
them and they are not restored yet (503), and a claim taken is written to the state
log (``ClaimTaken``): a Book's claim once the broker has the Book (``record``, from
``gateway.placement``: so a stalled broker leaves the Book in doubt, as that module
says, rather than stopped before it), an identity key's claim before its Confirm is
sent (``take``). A Book's claim the state log did not take (a warning) is in Redis
only: a loss of Redis before a later claim of that identity is logged would lose it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from gateway.commanding import RETRY_AFTER_S
from gateway.errors import ApiError, Code
from gateway.readmodel import ENDED_STATES
from gateway.state import Gateway
from schemas.state import ClaimTaken
from waitingroom import keys
from waitingroom.codes import normalise_code
from waitingroom.errors import StateNotAccepted

logger = logging.getLogger(__name__)

MIN_KEY_CHARS = 4
MAX_KEY_CHARS = 64
MAX_RAW_KEY_CHARS = 256  # before spaces and dashes are dropped
MAX_TAKE_OVERS = 4  # each failed take-over means another booking took the claim meanwhile


class IdentityTaken(ApiError):
    """Another booking of the same campaign and identity is alive."""

    def __init__(self, holder: str) -> None:
        super().__init__(
            Code.ALREADY_BOOKED, "this person holds or has an appointment in this campaign"
        )
        self.holder = holder


@dataclass(frozen=True, slots=True)
class Claim:
    """Booking ``booking_id`` is the one pair of ``identity`` in ``campaign``."""

    campaign: str
    identity: str
    booking_id: str

    @property
    def key(self) -> str:
        return keys.identity_claim(self.campaign, self.identity)


def key_identity(key_hash: str) -> str:
    """Who confirmed with an identity key (e.g. an insurance number)."""
    return f"key:{key_hash}"


def read_identity_key(raw: str | None, secret: bytes) -> str | None:
    """The identity of a confirm body's optional ``identity_key`` (``raw``); only its
    hash is ever kept.

    Typed like an access code: case, spaces and dashes do not matter (the same
    normalisation as ``waitingroom.codes``). The hash is keyed with ``secret``
    (HMAC-SHA-256): an identity key, unlike a random access code, is guessable (an
    insurance number), so a plain hash in Redis would give it away to whoever reads
    Redis. Without a secret, identity keys are refused.
    """
    if raw is None:
        return None
    if len(raw) > MAX_RAW_KEY_CHARS:
        raise _bad_key()
    normalised = normalise_code(raw)
    if not MIN_KEY_CHARS <= len(normalised) <= MAX_KEY_CHARS or not normalised.isprintable():
        raise _bad_key()
    if not secret:
        raise ApiError(
            Code.IDENTITY_KEYS_OFF,
            "this service takes no identity keys (FAIRQ_IDENTITY_SECRET is not set)",
        )
    return key_identity(key_hash(normalised, secret))


def key_hash(key: str, secret: bytes) -> str:
    """HMAC-SHA-256 hex of an identity key, as normalised (``normalise_code``)."""
    return hmac.new(secret, normalise_code(key).encode(), hashlib.sha256).hexdigest()


def _bad_key() -> ApiError:
    return ApiError(
        Code.INVALID_IDENTITY_KEY,
        f"'identity_key' must be a string of {MIN_KEY_CHARS} to {MAX_KEY_CHARS} characters"
        " (spaces and dashes not counted)",
    )


async def request(
    gw: Gateway, claim: Claim, client: aioredis.Redis | Pipeline, ttl_s: int, ended: str = ""
) -> Any:
    """Run the claim script on ``client``; on a pipeline, its reply comes with ``execute``.

    ``ended`` is a holder seen to have ended, which the claim may replace.
    """
    durable = "0" if gw.store.ledger is None else "1"
    return await gw.store.scripts.claim_identity(
        keys=[claim.key, keys.state_marker()],
        args=[claim.booking_id, ended, ttl_s, durable],
        client=client,
    )


async def settle(gw: Gateway, claim: Claim, reply: Any, ttl_s: int) -> bool:
    """Finish a claim from the script's first ``reply``: take over ended holders.

    Returns True if the claim was taken now, False if the booking held it already.
    Raises ``IdentityTaken`` while another booking is alive, and ApiError 503 while Redis
    has lost the claims (not restored from the state log yet).
    """
    take_overs = 0
    while True:
        outcome, holder = (_text(part) for part in reply)
        if outcome == "restoring":
            raise not_taken()
        if outcome != "held":
            return outcome == "taken"
        # A claim that keeps changing hands is refused too: safe, and it ends the loop.
        if take_overs == MAX_TAKE_OVERS or not await has_ended(gw, holder):
            raise IdentityTaken(holder)
        take_overs += 1
        logger.info("booking %s takes over the claim of ended %s", claim.booking_id, holder)
        reply = await request(gw, claim, gw.redis, ttl_s, ended=holder)


async def record(gw: Gateway, claim: Claim, ttl_s: int) -> None:
    """Write a claim to the state log (raises ``StateNotAccepted``)."""
    if gw.store.ledger is None:
        return
    now = gw.clock()
    await gw.store.ledger.write(
        ClaimTaken(claim.campaign, claim.identity, claim.booking_id, now, now + ttl_s)
    )


async def record_placed(gw: Gateway, claim: Claim, ttl_s: int) -> None:
    """The claim of a Book the broker has: to the state log, or a warning (the Book is
    on the log: the booking goes on, its claim in Redis only)."""
    try:
        await record(gw, claim, ttl_s)
    except StateNotAccepted as e:
        logger.warning("booking %s: its claim is not in the state log: %s", claim.booking_id, e)


def not_taken() -> ApiError:
    """The 503 of a command that never left the gateway: nothing was booked or changed."""
    return ApiError(
        Code.UNAVAILABLE,
        "bookings cannot be taken right now; try again",
        headers={"Retry-After": RETRY_AFTER_S},
    )


async def take(gw: Gateway, claim: Claim, ttl_s: int) -> bool:
    """Claim the identity for the booking (see ``settle``); a claim taken now is in the
    state log before this returns (else it is given up again, and 503)."""
    taken = await settle(gw, claim, await request(gw, claim, gw.redis, ttl_s), ttl_s)
    if taken:
        try:
            await record(gw, claim, ttl_s)
        except StateNotAccepted as e:
            await release(gw, claim)
            raise not_taken() from e
    return taken


async def release(
    gw: Gateway, claim: Claim, client: aioredis.Redis | Pipeline | None = None
) -> None:
    """Give the claim up if the booking holds it (compare-and-delete)."""
    await gw.store.scripts.release(
        keys=[claim.key], args=[claim.booking_id], client=client or gw.redis
    )


async def has_ended(gw: Gateway, booking_id: str) -> bool:
    """Whether the booking can hold no pair any more (see the module's docstring)."""
    view = await gw.views.get(booking_id)
    if view is not None:
        return view.state in ENDED_STATES
    # No record: never placed, or long gone. A record's Book is on the log, or is sent
    # until the broker has it (``gateway.placement``): its answer says whether it ended.
    return not await gw.redis.exists(keys.booking(booking_id))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
