"""Signed tickets (a place in a room's line) and booking tokens (the right to book once).

Both travel as one URL-safe string ``kid.payload.sig``:

- ``kid`` names the signing key (key rotation: any known kid verifies, the
  current one signs);
- ``payload`` is base64url (no padding) of a JSON object whose ``t`` field says
  what it is (``"ticket"`` or ``"booking"``), so neither passes for the other;
- ``sig`` is base64url of HMAC-SHA256(key, ``kid + "." + payload``).

The server keeps no copy of either: a status check is answered from the
ticket's number alone. A ``Signer`` remembers the tickets it verified recently
(``VerifiedTickets``), so a visitor polling its status costs one dict lookup, not
an HMAC and a payload decode; expiry and room are still checked on every hit.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson

from schemas.state import CounterKind
from waitingroom.errors import InvalidTicket, TicketExpired, WrongRoom

TICKET_KINDS = tuple(k.value for k in CounterKind)  # joins before the opening, and after
TYPE_TICKET = "ticket"
TYPE_BOOKING = "booking"
DEFAULT_TICKET_TTL_S = 7 * 86_400.0
MIN_KEY_BYTES = 16
MAX_TOKEN_CHARS = 2048
# Verified tickets remembered per Signer. An entry (the token string, its Ticket with
# its id, a dict slot) takes ~360 B for an anonymous ticket and ~530 B for one with an
# access code (tracemalloc, 100,000 entries): at most ~55 MB for 100,000 entries.
DEFAULT_VERIFIED_TICKETS = 100_000
TICKET_ID_BYTES = 16  # 128 random bits
KID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
_SHA256_BLOCK_BYTES = 64
_INNER_PAD = bytes(x ^ 0x36 for x in range(256))
_OUTER_PAD = bytes(x ^ 0x5C for x in range(256))


class Ticket(msgspec.Struct, frozen=True, gc=False):
    """A place in a room's line: ``number`` counts the pre- or post-opening joins.

    A frozen msgspec Struct: built in C, a fraction of a frozen dataclass's cost (one
    ``object.__setattr__`` per field), once per join.
    """

    room: str
    ticket_id: str
    kind: str  # "pre" | "post"
    number: int  # 1, 2, 3, ... within its kind
    issued_at_s: float
    code_hash: str | None = None  # the access code it was issued for, hashed
    group: str | None = None  # the code's priority group

    def __post_init__(self) -> None:
        if self.kind not in TICKET_KINDS:
            raise ValueError(f"ticket kind must be 'pre' or 'post', got {self.kind!r}")
        if self.number < 1:
            raise ValueError(f"ticket number must be at least 1, got {self.number}")


@dataclass(frozen=True, slots=True)
class BookingToken:
    """Given to an admitted visitor: lets ``identity`` make one booking from ``position``."""

    room: str
    ticket_id: str
    position: int
    identity: str
    group: str | None
    expires_at_s: float

    @property
    def token_id(self) -> str:
        """Stable for one admitted place, however often the token is re-issued."""
        return f"{self.ticket_id}:{self.position}"


def new_ticket_id() -> str:
    """128 random bits, URL-safe."""
    return secrets.token_urlsafe(TICKET_ID_BYTES)


def b64url_encode(data: bytes) -> str:
    """base64url without padding (binascii directly: this runs on every status check)."""
    return _b64url_bytes(data).decode("ascii")


def _b64url_bytes(data: bytes) -> bytes:
    """base64url without padding, as ASCII bytes."""
    return binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE).rstrip(b"=")


def b64url_decode(text: bytes) -> bytes:
    """Strict base64url (padding optional); raises binascii.Error on anything else."""
    return binascii.a2b_base64(
        text.translate(_FROM_URLSAFE) + b"=" * (-len(text) % 4), strict_mode=True
    )


class HmacSha256:
    """HMAC-SHA256 (RFC 2104) under one key, its padded inner and outer hash states kept.

    The same digest as ``hmac.new(key, message, "sha256")``; keying the HMAC costs as
    much as hashing a short message, and a ticket is checked on every status request.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) > _SHA256_BLOCK_BYTES:
            key = hashlib.sha256(key).digest()
        block = key.ljust(_SHA256_BLOCK_BYTES, b"\0")
        self._inner = hashlib.sha256(block.translate(_INNER_PAD))
        self._outer = hashlib.sha256(block.translate(_OUTER_PAD))

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


class VerifiedTickets:
    """Tickets by token, each verified in full once: at most ``max_tickets``.

    Two generations of half the size each: a lookup tries the young one, then the
    old one (moving the ticket back to the young one); when the young generation
    is full, the old one is dropped and the young one becomes old. So memory is
    bounded, every operation is O(1), and a ticket polled at least once per
    generation is never evicted (least recently used go first, roughly).

    Only a token seen verbatim before is found: the same characters were checked
    under the same keys (a Signer's keys never change; a rotation makes a new one).
    """

    def __init__(self, max_tickets: int) -> None:
        if max_tickets < 2:
            raise ValueError(f"max_tickets must be at least 2, got {max_tickets}")
        self._generation_size = max_tickets // 2
        self._young: dict[str, Ticket] = {}
        self._old: dict[str, Ticket] = {}

    def __len__(self) -> int:
        return len(self._young) + len(self._old)

    def get(self, token: str) -> Ticket | None:
        ticket = self._young.get(token)
        if ticket is None:
            ticket = self._old.pop(token, None)
            if ticket is not None:
                self.add(token, ticket)
        return ticket

    def add(self, token: str, ticket: Ticket) -> None:
        if len(self._young) >= self._generation_size:
            self._old, self._young = self._young, {}
        self._young[token] = ticket


class Signer:
    """Signs with ``keys[current_kid]``; verifies with any key in ``keys``."""

    def __init__(
        self,
        keys: Mapping[str, bytes],
        current_kid: str,
        ticket_ttl_s: float = DEFAULT_TICKET_TTL_S,
        verified_tickets: int = DEFAULT_VERIFIED_TICKETS,
    ) -> None:
        for kid, key in keys.items():
            if not KID_PATTERN.match(kid):
                raise ValueError(f"key id {kid!r} must match {KID_PATTERN.pattern}")
            if len(key) < MIN_KEY_BYTES:
                raise ValueError(f"key {kid!r} is shorter than {MIN_KEY_BYTES} bytes")
        if current_kid not in keys:
            raise ValueError(f"the current key id {current_kid!r} is not among the keys")
        if not ticket_ttl_s > 0:
            raise ValueError(f"ticket_ttl_s must be positive, got {ticket_ttl_s}")
        self._macs = {kid: HmacSha256(key) for kid, key in keys.items()}
        self._kid = current_kid
        self._kid_dot = f"{current_kid}.".encode("ascii")  # KID_PATTERN: ASCII only
        self._signing_mac = self._macs[current_kid]
        self._ticket_ttl_s = ticket_ttl_s
        self._verified = VerifiedTickets(verified_tickets)

    def sign_ticket(self, t: Ticket) -> str:
        payload: dict[str, Any] = {
            "t": TYPE_TICKET,
            "room": t.room,
            "id": t.ticket_id,
            "kind": t.kind,
            "n": t.number,
            "iat": t.issued_at_s,
        }
        if t.code_hash is not None:  # absent means None: anonymous tickets stay short
            payload["code"] = t.code_hash
        if t.group is not None:
            payload["grp"] = t.group
        return self.sign_token(payload)

    def verify_ticket(self, token: str, room: str, now_s: float) -> Ticket:
        """The ticket in ``token``; raises InvalidTicket, WrongRoom or TicketExpired.

        A token verified before is found in ``VerifiedTickets``; room and expiry are
        checked again on every call, whether the ticket was remembered or not.
        """
        ticket = self._verified.get(token)
        if ticket is None:
            ticket = self._read_ticket(token)
            self._verified.add(token, ticket)
        if ticket.room != room:
            raise WrongRoom(f"ticket for room {ticket.room!r}, not {room!r}")
        if now_s > ticket.issued_at_s + self._ticket_ttl_s:
            raise TicketExpired("ticket expired")
        return ticket

    def _read_ticket(self, token: str) -> Ticket:
        """The ticket in ``token`` after checking its signature and fields (not room or age)."""
        p = self.open_token(token, TYPE_TICKET)
        # One pass over the fields (this runs on every status check): the MAC vouches
        # for the payload, so a failure here means a bug or a leaked key, not a visitor.
        t_room, t_id, kind, number = p.get("room"), p.get("id"), p.get("kind"), p.get("n")
        issued_at_s, code, group = p.get("iat"), p.get("code"), p.get("grp")
        if not (
            type(t_room) is str
            and t_room
            and type(t_id) is str
            and t_id
            and kind in TICKET_KINDS
            and type(number) is int
            and number >= 1
            and isinstance(issued_at_s, int | float)
            and type(issued_at_s) is not bool
            and (code is None or (type(code) is str and code))
            and (group is None or (type(group) is str and group))
        ):
            raise InvalidTicket("malformed ticket")
        return Ticket(t_room, t_id, kind, number, float(issued_at_s), code, group)

    def sign_booking_token(self, b: BookingToken) -> str:
        return self.sign_token(
            {
                "t": TYPE_BOOKING,
                "room": b.room,
                "id": b.ticket_id,
                "pos": b.position,
                "sub": b.identity,
                "grp": b.group,
                "exp": b.expires_at_s,
            }
        )

    def verify_booking_token(
        self, token: str, now_s: float, room: str | None = None, check_expiry: bool = True
    ) -> BookingToken:
        """The booking token in ``token``; raises InvalidTicket, WrongRoom or TicketExpired
        (the latter only when ``check_expiry``)."""
        p = self.open_token(token, TYPE_BOOKING)
        b = BookingToken(
            room=_str(p, "room"),
            ticket_id=_str(p, "id"),
            position=_int(p, "pos"),
            identity=_str(p, "sub"),
            group=_opt_str(p, "grp"),
            expires_at_s=_num(p, "exp"),
        )
        if room is not None and b.room != room:
            raise WrongRoom(f"booking token for room {b.room!r}, not {room!r}")
        if check_expiry and now_s >= b.expires_at_s:
            raise TicketExpired("booking token expired")
        return b

    def _mac(self, kid: str, signed: bytes) -> str:
        """base64url HMAC-SHA256 of ``signed`` (``kid.payload``) under ``kid``'s key."""
        return b64url_encode(self._macs[kid].digest(signed))

    def sign_token(self, payload: dict[str, Any]) -> str:
        """``payload`` signed with the current key: ``kid.payload.sig`` (any token type).

        Built as bytes and decoded once (this runs on every join).
        """
        signed = self._kid_dot + _b64url_bytes(orjson.dumps(payload))
        return (signed + b"." + _b64url_bytes(self._signing_mac.digest(signed))).decode("ascii")

    def open_token(self, token: str, expected_type: str) -> Mapping[str, Any]:
        """Check the signature and the type marker ``t``; return the payload (InvalidTicket
        if either is wrong)."""
        if len(token) > MAX_TOKEN_CHARS:
            raise InvalidTicket("token too long")
        if not token.isascii():
            raise InvalidTicket("a token is base64url text")
        raw = token.encode("ascii")
        kid_end, sig_start = raw.find(b"."), raw.rfind(b".") + 1
        kid = token[:kid_end]
        if kid_end <= 0 or sig_start - 1 == kid_end or b"." in raw[kid_end + 1 : sig_start - 1]:
            raise InvalidTicket("token must have three parts")
        if kid not in self._macs:
            raise InvalidTicket("unknown key id")
        # Comparing the encoded MAC also refuses other encodings of the same bytes; once
        # it matches, the payload is one this service encoded.
        if not hmac.compare_digest(token[sig_start:], self._mac(kid, raw[: sig_start - 1])):
            raise InvalidTicket("bad signature")
        try:
            payload = orjson.loads(b64url_decode(raw[kid_end + 1 : sig_start - 1]))
        except (ValueError, binascii.Error) as e:  # bad base64 or bad JSON
            raise InvalidTicket("payload is not base64url JSON") from e
        if not isinstance(payload, dict) or payload.get("t") != expected_type:
            raise InvalidTicket(f"not a {expected_type} token")
        return payload


def _str(p: Mapping[str, Any], key: str) -> str:
    value = p.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidTicket(f"'{key}' missing")
    return value


def _opt_str(p: Mapping[str, Any], key: str) -> str | None:
    return None if p.get(key) is None else _str(p, key)


def _int(p: Mapping[str, Any], key: str) -> int:
    value = p.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidTicket(f"'{key}' must be an integer")
    return value


def _num(p: Mapping[str, Any], key: str) -> float:
    value = p.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise InvalidTicket(f"'{key}' must be a number")
    return float(value)
