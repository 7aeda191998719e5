import base64
import hashlib
import hmac

import orjson
import pytest
from msgspec.structs import replace

from waitingroom.errors import InvalidTicket, TicketExpired, WrongRoom
from waitingroom.tickets import (
    BookingToken,
    HmacSha256,
    Signer,
    Ticket,
    VerifiedTickets,
    new_ticket_id,
)

KEY_A = b"a" * 32
KEY_B = b"b" * 32
NOW = 1_700_000_000.25
TICKET = Ticket(room="demo", ticket_id="tid", kind="pre", number=7, issued_at_s=NOW)
BOOKING = BookingToken(
    room="demo",
    ticket_id="tid",
    position=42,
    identity="code:abc",
    group="nurses",
    expires_at_s=NOW + 600,
)


def test_ticket_round_trips() -> None:
    signer = Signer({"k1": KEY_A}, "k1")
    coded = replace(TICKET, code_hash="c0ffee", group="nurses")
    assert signer.verify_ticket(signer.sign_ticket(TICKET), "demo", NOW) == TICKET
    assert signer.verify_ticket(signer.sign_ticket(coded), "demo", NOW + 60) == coded


@pytest.mark.parametrize("key", [KEY_A, b"k" * 64, b"long" * 40])
def test_hmac_is_standard_hmac_sha256(key: bytes) -> None:
    for message in (b"", b"k1.payload", b"x" * 1000):
        expected = hmac.new(key, message, hashlib.sha256).digest()
        assert HmacSha256(key).digest(message) == expected


def test_signature_is_hmac_sha256_of_kid_and_payload() -> None:
    token = Signer({"k1": KEY_A}, "k1").sign_ticket(TICKET)
    kid, body, sig = token.split(".")
    expected = hmac.new(KEY_A, f"{kid}.{body}".encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(sig + "=") == expected


def _payload(token: str) -> dict[str, object]:
    body = token.split(".")[1]
    decoded: dict[str, object] = orjson.loads(
        base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    )
    return decoded


def test_anonymous_ticket_leaves_out_code_and_group_and_older_nulls_verify() -> None:
    signer = Signer({"k1": KEY_A}, "k1")
    payload = _payload(signer.sign_ticket(TICKET))
    assert "code" not in payload and "grp" not in payload
    with_nulls = orjson.dumps(payload | {"code": None, "grp": None})
    body = base64.urlsafe_b64encode(with_nulls).rstrip(b"=").decode()
    sig = hmac.new(KEY_A, f"k1.{body}".encode(), hashlib.sha256).digest()
    older = f"k1.{body}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"
    assert signer.verify_ticket(older, "demo", NOW) == TICKET


def test_token_is_url_safe() -> None:
    token = Signer({"k1": KEY_A}, "k1").sign_ticket(TICKET)
    assert token.count(".") == 2
    assert all(c.isalnum() or c in "-_." for c in token)


def _forge(token: str, **changes: object) -> str:
    kid, body, sig = token.split(".")
    payload = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload.update(changes)
    forged = base64.urlsafe_b64encode(orjson.dumps(payload)).rstrip(b"=").decode()
    return f"{kid}.{forged}.{sig}"


def test_changed_payload_is_refused() -> None:
    signer = Signer({"k1": KEY_A}, "k1")
    token = signer.sign_ticket(TICKET)
    with pytest.raises(InvalidTicket):
        signer.verify_ticket(_forge(token, n=1), "demo", NOW)


def test_forged_signature_is_refused() -> None:
    token = Signer({"k1": KEY_A}, "k1").sign_ticket(TICKET)
    other = Signer({"k1": KEY_B}, "k1")
    with pytest.raises(InvalidTicket):
        other.verify_ticket(token, "demo", NOW)


@pytest.mark.parametrize(
    "token", ["", "a.b", "k1.!!!.xyz", "k1.e30.", "k1..sig", "é.x.y", "x" * 5000]
)
def test_garbage_is_refused(token: str) -> None:
    with pytest.raises(InvalidTicket):
        Signer({"k1": KEY_A}, "k1").verify_ticket(token, "demo", NOW)


def test_unknown_kid_is_refused() -> None:
    token = Signer({"old": KEY_A}, "old").sign_ticket(TICKET)
    with pytest.raises(InvalidTicket):
        Signer({"new": KEY_A}, "new").verify_ticket(token, "demo", NOW)


def test_key_rotation_accepts_old_and_signs_new() -> None:
    old = Signer({"k1": KEY_A}, "k1")
    rotated = Signer({"k1": KEY_A, "k2": KEY_B}, "k2")
    assert rotated.verify_ticket(old.sign_ticket(TICKET), "demo", NOW) == TICKET
    fresh = rotated.sign_ticket(TICKET)
    assert fresh.startswith("k2.")
    with pytest.raises(InvalidTicket):
        old.verify_ticket(fresh, "demo", NOW)


def test_wrong_room_is_refused() -> None:
    signer = Signer({"k1": KEY_A}, "k1")
    with pytest.raises(WrongRoom):
        signer.verify_ticket(signer.sign_ticket(TICKET), "other", NOW)
    with pytest.raises(WrongRoom):
        signer.verify_booking_token(signer.sign_booking_token(BOOKING), NOW, room="other")


def test_ticket_expires_after_ttl() -> None:
    signer = Signer({"k1": KEY_A}, "k1", ticket_ttl_s=100)
    token = signer.sign_ticket(TICKET)
    assert signer.verify_ticket(token, "demo", NOW + 100) == TICKET
    with pytest.raises(TicketExpired):
        signer.verify_ticket(token, "demo", NOW + 100.5)


def test_booking_token_round_trips_and_expires() -> None:
    signer = Signer({"k1": KEY_A}, "k1")
    token = signer.sign_booking_token(BOOKING)
    assert signer.verify_booking_token(token, NOW, room="demo") == BOOKING
    assert signer.verify_booking_token(token, NOW + 599) == BOOKING
    with pytest.raises(TicketExpired):
        signer.verify_booking_token(token, NOW + 600)
    assert BOOKING.token_id == "tid:42"


def test_ticket_is_not_a_booking_token_and_vice_versa() -> None:
    signer = Signer({"k1": KEY_A}, "k1")
    with pytest.raises(InvalidTicket):
        signer.verify_booking_token(signer.sign_ticket(TICKET), NOW)
    with pytest.raises(InvalidTicket):
        signer.verify_ticket(signer.sign_booking_token(BOOKING), "demo", NOW)


def test_signer_refuses_weak_setup() -> None:
    with pytest.raises(ValueError, match="shorter"):
        Signer({"k1": b"short"}, "k1")
    with pytest.raises(ValueError, match="current"):
        Signer({"k1": KEY_A}, "k2")
    with pytest.raises(ValueError, match="key id"):
        Signer({"k.1": KEY_A}, "k.1")


def test_ticket_fields_are_checked() -> None:
    with pytest.raises(ValueError):
        Ticket(room="demo", ticket_id="t", kind="vip", number=1, issued_at_s=NOW)
    with pytest.raises(ValueError):
        Ticket(room="demo", ticket_id="t", kind="pre", number=0, issued_at_s=NOW)


def test_ticket_ids_are_unique() -> None:
    ids = {new_ticket_id() for _ in range(1000)}
    assert len(ids) == 1000


def _wire(token: str) -> str:
    """The same characters in a new string object, as a request would carry them."""
    return "".join(list(token))


def test_a_remembered_ticket_is_still_checked_for_room_and_expiry() -> None:
    issuer = Signer({"k1": KEY_A}, "k1")
    checker = Signer({"k1": KEY_A}, "k1", ticket_ttl_s=100)
    token = issuer.sign_ticket(TICKET)
    assert checker.verify_ticket(_wire(token), "demo", NOW) == TICKET  # verified in full
    assert checker.verify_ticket(_wire(token), "demo", NOW + 100) == TICKET  # remembered
    with pytest.raises(WrongRoom):
        checker.verify_ticket(_wire(token), "other", NOW)
    with pytest.raises(TicketExpired):
        checker.verify_ticket(_wire(token), "demo", NOW + 100.5)


def test_a_forged_ticket_is_never_remembered() -> None:
    signer = Signer({"k1": KEY_A}, "k1")
    token = signer.sign_ticket(TICKET)
    assert signer.verify_ticket(token, "demo", NOW) == TICKET
    forged = _forge(token, n=1)
    for _ in range(2):
        with pytest.raises(InvalidTicket):
            signer.verify_ticket(forged, "demo", NOW)


def test_a_signer_without_the_key_refuses_what_another_remembered() -> None:
    both = Signer({"k1": KEY_A, "k2": KEY_B}, "k2")
    token = both.sign_ticket(TICKET)
    assert both.verify_ticket(token, "demo", NOW) == TICKET
    with pytest.raises(InvalidTicket):  # k2 retired: a new Signer, nothing remembered
        Signer({"k1": KEY_A}, "k1").verify_ticket(token, "demo", NOW)


def test_verified_tickets_are_bounded_and_keep_the_recently_used() -> None:
    cache = VerifiedTickets(4)
    tickets = {f"t{i}": replace(TICKET, ticket_id=f"id{i}") for i in range(10)}
    for i, (token, ticket) in enumerate(tickets.items()):
        cache.add(token, ticket)
        assert cache.get("t0") == tickets["t0"]  # polled all along: never dropped
        assert len(cache) <= 4
        if i >= 4:
            assert cache.get(f"t{i - 3}") is None  # not used since: dropped
    with pytest.raises(ValueError):
        VerifiedTickets(1)
