"""Putting a booking's Book on the log, and never taking back one that may be there.

A Book is accepted once the broker acknowledges it. A send that timed out is not
"not accepted": a broker that was stopped or slow may write what it had received
and answer too late (DESIGN: "A send that timed out may still be in the log"). Had
the gateway given up the booking's identity claim then, the same person could book
again in another county while the first Book was held: two pairs.

So a Book handed to the producer is never taken back. Its booking record carries the
packed Book, and the booking stays in ``keys.bookings_unplaced`` until the broker has
acknowledged it: the record, the identity claim and the token's used-key are kept,
and the client is told with 503 ``in_doubt`` (the booking id included) that the
booking may still come. The same Book — the same bytes, the same command id, which
the allocator answers once — is then sent again by the client's retry (the same
token: ``send_again``) or, should nobody retry, by the resender every gateway runs
(``run_resender``), until the broker acknowledges it. So every Book written to a
record ends on the log and gets the allocator's answer, and its claim is given back
(``gateway.identities.has_ended``) only after that answer. The same holds for a
gateway that stops between the record and the send.

Only a send refused before anything was handed to the producer is undone.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from typing import cast

import msgspec
from redis.exceptions import RedisError

from fairq.tasks import stopped_within
from gateway import identities
from gateway.commanding import RETRY_AFTER_S
from gateway.errors import ApiError, Code
from gateway.identities import Claim, not_taken
from gateway.producer import CommandNotAccepted
from gateway.state import Gateway
from schemas import SchemaError
from schemas.commands import Book, decode_command
from waitingroom import keys
from waitingroom.bookingrecord import PLACED, BookingRecord, from_hash
from waitingroom.rooms import text

logger = logging.getLogger(__name__)

BOOKING_RECORD_TTL_S = 90 * 86400
RESEND_EVERY_S = 1.0  # how often each gateway looks for Books in doubt
RESEND_BATCH = 200  # Books in doubt sent again per look (the oldest first)


class SendInDoubt(ApiError):
    """A booking's Book was handed to the broker without an acknowledgement: it may
    be in the log, and it will be (it is sent again until the broker has it)."""

    def __init__(self, booking_id: str, *, change: str | None = None) -> None:
        """``change`` names a confirm, cancel or move of the booking in doubt; those
        carry a new command id each time, so the client reads the booking first."""
        what = f"the {change}" if change else "the booking"
        then = (
            "read the booking before sending it again"
            if change
            else "follow it by its booking_id, or send the same request again (it sends"
            " the same booking, never a second one)"
        )
        super().__init__(
            Code.IN_DOUBT,
            f"{what} was sent but the log has not confirmed it yet: it may still be made; {then}",
            headers={"Retry-After": RETRY_AFTER_S},
            extra={"booking_id": booking_id},
        )
        self.booking_id = booking_id


async def place(gw: Gateway, command: Book, origin: BookingRecord, *undo: str) -> None:
    """Record where a booking came from, claim its identity, then put it on the log.

    The admitter reads the record's room and position to free the place when the
    booking ends; ``GET /api/bookings/{id}`` reads it to say "pending". The record
    (with the packed Book, and its entry among the unplaced bookings) is written
    before the claim, in the same round trip, so a claim's holder always has a record
    and every record's Book gets sent. A refused claim (409 ``already_booked``) or a
    send refused before it left the gateway (503 ``unavailable``) undoes the record,
    the claim and the ``undo`` keys; a send in doubt keeps them all (503 ``in_doubt``).
    """
    booking_id = command.booking_id
    record = msgspec.structs.replace(
        origin,
        campaign=command.campaign,
        county=command.county,
        identity=command.identity,
        at_s=int(gw.clock()),
        command=command.pack(),
    )
    booking_key = keys.booking(booking_id)
    claim = Claim(command.campaign, command.identity, booking_id)
    async with gw.redis.pipeline(transaction=False) as pipe:
        pipe.zadd(keys.bookings_unplaced(), {booking_id: gw.clock()})  # first: see module
        pipe.hset(booking_key, mapping=record.to_hash())
        pipe.expire(booking_key, BOOKING_RECORD_TTL_S)
        await identities.request(gw, claim, pipe, BOOKING_RECORD_TTL_S)
        *_, claimed = await pipe.execute()
    try:
        await identities.settle(gw, claim, claimed, BOOKING_RECORD_TTL_S)
    except ApiError:  # IdentityTaken, or 503: the claims are not durable now
        await _undo(gw, booking_id, *undo)
        raise
    try:
        await gw.commands.send(command.county, command)
    except CommandNotAccepted as e:
        if e.maybe_in_log:
            gw.metrics.sends_in_doubt.labels("book").inc()
            logger.warning("booking %s: the broker did not acknowledge its Book", booking_id)
            raise SendInDoubt(booking_id) from e
        await _undo(gw, booking_id, *undo, claim=claim)
        raise not_taken() from e
    await _placed(gw, claim)
    gw.metrics.bookings_total.inc()


async def _undo(gw: Gateway, booking_id: str, *undo: str, claim: Claim | None = None) -> None:
    async with gw.redis.pipeline(transaction=False) as pipe:
        if claim is not None:
            await identities.release(gw, claim, pipe)  # first: a holder always has a record
        pipe.delete(keys.booking(booking_id), *undo)
        pipe.zrem(keys.bookings_unplaced(), booking_id)  # last: the record goes first
        await pipe.execute()


async def _placed(gw: Gateway, claim: Claim) -> None:
    """The broker has the booking's Book: marked so (``identities.has_ended`` reads the
    mark), no longer to be sent, and its claim recorded in the state log. The two at
    once: each may go first (a Book still listed as unplaced is sent again, and the
    allocator applies a command id once), and the 202 waits for the slower only."""

    async def mark() -> None:
        async with gw.redis.pipeline(transaction=False) as pipe:
            pipe.hset(keys.booking(claim.booking_id), mapping=PLACED)
            pipe.zrem(keys.bookings_unplaced(), claim.booking_id)
            await pipe.execute()

    await asyncio.gather(mark(), identities.record_placed(gw, claim, BOOKING_RECORD_TTL_S))


class Resent(enum.Enum):
    """What ``send_again`` found."""

    SENT = "sent"  # the recorded Book was sent again, and the broker has it now
    PLACED = "placed"  # the broker had acknowledged it before: nothing to send
    NO_RECORD = "no_record"  # never recorded (or long gone, or not a Book): nothing to send


async def send_again(gw: Gateway, booking_id: str) -> Resent:
    """Send a booking's recorded Book again if the broker has not acknowledged it yet.

    The same Book, the same command id: the allocator answers it once, however many
    copies reach the log. Raises ``SendInDoubt`` while the broker does not acknowledge.
    """
    record = await _record(gw, booking_id)
    if record is None:
        return Resent.NO_RECORD
    if record.placed:
        return Resent.PLACED
    if record.command is None:
        return Resent.NO_RECORD
    try:
        command = decode_command(record.command)
    except SchemaError as e:  # written by this code, so only a foreign hand gets here
        logger.error("booking %s: its record holds no command: %s", booking_id, e)
        return Resent.NO_RECORD
    if not isinstance(command, Book):
        logger.error("booking %s: its record holds a %s, not a Book", booking_id, command.TYPE)
        return Resent.NO_RECORD
    try:
        await gw.commands.send(command.county, command)
    except CommandNotAccepted as e:
        raise SendInDoubt(booking_id) from e
    await _placed(gw, Claim(command.campaign, command.identity, booking_id))
    gw.metrics.bookings_resent.inc()
    logger.info("booking %s: its Book was sent again and acknowledged", booking_id)
    return Resent.SENT


async def _record(gw: Gateway, booking_id: str) -> BookingRecord | None:
    """The booking's record; None (logged) when it is malformed, which only a foreign
    hand can make: this code writes it."""
    try:
        return from_hash(await gw.redis.hgetall(keys.booking(booking_id)))
    except SchemaError as e:
        logger.error("booking %s: its record is malformed: %s", booking_id, e)
        return None


async def resend_unplaced(gw: Gateway, older_than_s: float) -> int:
    """Send again the Books not acknowledged for ``older_than_s`` (oldest first).

    A booking the allocator has answered is in the log: it is only marked. Stops at
    the first send in doubt (the broker is not answering; the next look tries again).
    Returns how many were sent and acknowledged.
    """
    due = await gw.redis.zrangebyscore(
        keys.bookings_unplaced(), "-inf", gw.clock() - older_than_s, start=0, num=RESEND_BATCH
    )
    sent = 0
    for raw in due:
        booking_id = text(cast(bytes, raw))  # the client does not decode
        if await gw.views.get(booking_id) is not None:  # answered: it is on the log
            record = await _record(gw, booking_id) or BookingRecord()
            if record.campaign is not None and record.identity is not None:
                await _placed(gw, Claim(record.campaign, record.identity, booking_id))
            continue
        try:
            if await send_again(gw, booking_id) is Resent.SENT:
                sent += 1
            else:
                await gw.redis.zrem(keys.bookings_unplaced(), booking_id)
        except SendInDoubt:
            logger.warning("%d booking(s) wait for the broker to acknowledge them", len(due))
            break
    return sent


async def run_resender(gw: Gateway, stop: asyncio.Event) -> None:
    """Every gateway sends the Books in doubt again until ``stop``; several gateways
    sending one Book is harmless (one command id, answered once)."""
    while not stop.is_set():
        try:
            await resend_unplaced(gw, older_than_s=gw.settings.send_timeout_s)
        except RedisError as e:
            logger.warning("looking for bookings in doubt failed: %r", e)
        await stopped_within(stop, RESEND_EVERY_S)
