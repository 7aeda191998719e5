"""Proof of work: signed challenges, the exact hashed bytes, solving, and the replay guard."""

from __future__ import annotations

import hashlib

import pytest

from waitingroom import pow
from waitingroom.errors import InvalidTicket
from waitingroom.pow import (
    ChallengeSigner,
    PowExpired,
    PowInvalid,
    ReplayGuard,
    is_solution,
    leading_zero_bits,
    solve,
)
from waitingroom.tickets import Signer, Ticket

T0 = 1_700_000_000.0
KEYS = {"k1": b"first-key-0123456789", "k2": b"second-key-0123456789"}


def test_a_challenge_verifies_for_its_room_until_it_expires() -> None:
    signer = ChallengeSigner(KEYS, "k1", ttl_s=120)
    token, issued = signer.issue("demo", 12, T0)
    assert signer.verify(token, "demo", T0 + 119.9) == issued
    assert (issued.difficulty, issued.expires_at_s) == (12, T0 + 120)
    with pytest.raises(PowExpired):
        signer.verify(token, "demo", T0 + 120)
    with pytest.raises(PowInvalid):
        signer.verify(token, "other", T0)
    assert signer.issue("demo", 12, T0)[1].nonce != issued.nonce  # a fresh nonce each time


def test_rotated_keys_still_verify_and_unknown_ones_do_not() -> None:
    old, _ = ChallengeSigner(KEYS, "k2").issue("demo", 4, T0)
    assert ChallengeSigner(KEYS, "k1").verify(old, "demo", T0).difficulty == 4
    with pytest.raises(PowInvalid):
        ChallengeSigner({"k1": KEYS["k1"]}, "k1").verify(old, "demo", T0)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # signature
        lambda t: t.replace(".", ".x", 1),  # payload
        lambda t: t + ".extra",
        lambda t: "",
        lambda t: "k1.!!.??",
        lambda t: "k1." + "A" * 600 + ".B",
    ],
)
def test_tampered_challenges_are_refused(tamper: object) -> None:
    signer = ChallengeSigner(KEYS, "k1")
    token, _ = signer.issue("demo", 4, T0)
    with pytest.raises(PowInvalid):
        signer.verify(tamper(token), "demo", T0)  # type: ignore[operator]


def test_a_ticket_under_the_same_key_is_no_challenge() -> None:
    ticket = Signer(KEYS, "k1").sign_ticket(
        Ticket(room="demo", ticket_id="t", kind="post", number=1, issued_at_s=T0)
    )
    with pytest.raises(PowInvalid):
        ChallengeSigner(KEYS, "k1").verify(ticket, "demo", T0)


def test_a_challenge_under_the_same_key_is_no_ticket() -> None:
    challenge, _ = ChallengeSigner(KEYS, "k1").issue("demo", 4, T0)
    with pytest.raises(InvalidTicket):
        Signer(KEYS, "k1").verify_ticket(challenge, "demo", T0)


def test_the_hashed_bytes_are_challenge_colon_solution() -> None:
    expected = hashlib.sha256(b"example-challenge:438264").digest()
    assert pow.digest("example-challenge", "438264") == expected
    assert expected.hex().startswith("0000c39a")  # the vector docs/api.md gives for the page
    assert solve("example-challenge", 16) == "438264"  # the first solution counting from 0
    assert is_solution("example-challenge", "438264", 16)
    assert not is_solution("example-challenge", "438264", 17)


def test_leading_zero_bits() -> None:
    assert leading_zero_bits(b"\x00\x0f" + b"\xff" * 30) == 12
    assert leading_zero_bits(b"\x80" + b"\x00" * 31) == 0
    assert leading_zero_bits(b"\x00" * 32) == 256


@pytest.mark.parametrize("difficulty", [0, 1, 8, 14])
def test_solve_meets_the_difficulty(difficulty: int) -> None:
    challenge = f"challenge-{difficulty}"
    solution = solve(challenge, difficulty)
    assert leading_zero_bits(pow.digest(challenge, solution)) >= difficulty
    assert is_solution(challenge, solution, difficulty)


@pytest.mark.parametrize("solution", ["", "01", "-1", "+1", "1e3", " 1", "1" * 21, "\u0661", "1\n"])
def test_only_plain_decimal_solutions_count(solution: str) -> None:
    assert not is_solution("c", solution, 0)


def test_difficulty_is_bounded() -> None:
    with pytest.raises(ValueError):
        ChallengeSigner(KEYS, "k1").issue("demo", pow.MAX_DIFFICULTY + 1, T0)
    with pytest.raises(ValueError):
        solve("c", -1)


def test_replay_guard_takes_each_nonce_once_and_forgets_expired_ones() -> None:
    guard = ReplayGuard(ttl_s=120)
    assert guard.first_use("n1", T0 + 120, T0)
    assert not guard.first_use("n1", T0 + 120, T0 + 1)
    assert guard.first_use("n2", T0 + 121, T0 + 1)
    assert len(guard) == 2
    assert guard.first_use("n3", T0 + 400, T0 + 280)  # all of n1, n2 have expired by now
    assert len(guard) == 1


def test_cli_hashrate_prints_a_rate(capsys: pytest.CaptureFixture[str]) -> None:
    assert pow.main(["hashrate", "--seconds", "0.05"]) == 0
    assert "hashes/s" in capsys.readouterr().out
