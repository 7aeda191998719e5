"""Proof of work for anonymous joins: signed challenges, checking, solving, replay guard.

A **challenge** is a stateless signed string ``kid.payload.sig`` like a ticket:

- ``payload`` is base64url (no padding) of the JSON object
  ``{"t": "pow", "room": ..., "d": difficulty, "n": nonce, "iat": issued_at_s,
  "exp": expires_at_s}`` where ``n`` is 16 random bytes in base64url;
- ``sig`` is as for a ticket (``waitingroom.tickets.Signer.sign_token``); the type
  marker ``"t": "pow"`` keeps challenges and tickets apart under one key.

A **solution** is a decimal integer written without sign or leading zeros
(``"0"``, ``"1"``, ... at most 20 digits). It is good when

    SHA-256( ASCII bytes of  challenge + ":" + solution )

starts with at least ``d`` zero bits (big-endian: the first byte's high bit
first). Example: for the challenge ``k1.eyJ0Ijo.abc`` and the solution ``"42"``
the hashed bytes are ``k1.eyJ0Ijo.abc:42``. The browser page
(``gateway/static/room.html``) computes exactly this with WebCrypto.

Each try costs one hash, so a difficulty of ``d`` bits costs 2**d hashes on average.

Run ``python -m waitingroom.pow solve --url http://127.0.0.1:8080 --room demo``
to fetch and solve challenges (one JSON ``pow`` object per line, for load tests),
or ``python -m waitingroom.pow hashrate`` to see what this machine does per second.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import secrets
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from waitingroom.errors import InvalidTicket, WaitingRoomError
from waitingroom.tickets import Signer, b64url_encode

MAX_DIFFICULTY = 28
DEFAULT_CHALLENGE_TTL_S = 120.0
MAX_SOLUTION_DIGITS = 20
MAX_CHALLENGE_CHARS = 512
TYPE_POW = "pow"
NONCE_BYTES = 16
_SOLUTION = re.compile(r"0|[1-9][0-9]{0,19}")


class PowError(WaitingRoomError):
    """A proof of work that cannot be accepted."""


class PowInvalid(PowError):
    """Malformed, forged, for another room, too weak, already used, or a wrong solution."""


class PowExpired(PowError):
    """A genuine challenge whose lifetime is over."""


@dataclass(frozen=True, slots=True)
class Challenge:
    room: str
    difficulty: int
    nonce: str  # base64url of NONCE_BYTES random bytes
    issued_at_s: float
    expires_at_s: float


def check_difficulty(difficulty: int) -> None:
    if isinstance(difficulty, bool) or not 0 <= difficulty <= MAX_DIFFICULTY:
        raise ValueError(f"pow_difficulty must be within 0..{MAX_DIFFICULTY}, got {difficulty}")


class ChallengeSigner:
    """Issues challenges with ``keys[current_kid]``; verifies with any key in ``keys``.

    The tokens are signed and opened by a ticket ``Signer``: one token scheme.
    """

    def __init__(
        self,
        keys: Mapping[str, bytes],
        current_kid: str,
        ttl_s: float = DEFAULT_CHALLENGE_TTL_S,
    ) -> None:
        if not ttl_s > 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s}")
        self._tokens = Signer(keys, current_kid)
        self.ttl_s = ttl_s

    def issue(self, room: str, difficulty: int, now_s: float) -> tuple[str, Challenge]:
        check_difficulty(difficulty)
        challenge = Challenge(
            room=room,
            difficulty=difficulty,
            nonce=b64url_encode(secrets.token_bytes(NONCE_BYTES)),
            issued_at_s=now_s,
            expires_at_s=now_s + self.ttl_s,
        )
        payload = {
            "t": TYPE_POW,
            "room": room,
            "d": difficulty,
            "n": challenge.nonce,
            "iat": challenge.issued_at_s,
            "exp": challenge.expires_at_s,
        }
        return self._tokens.sign_token(payload), challenge

    def verify(self, token: str, room: str, now_s: float) -> Challenge:
        """The challenge in ``token``; raises PowInvalid or PowExpired."""
        if len(token) > MAX_CHALLENGE_CHARS:
            raise PowInvalid("challenge too long")
        try:
            p = self._tokens.open_token(token, TYPE_POW)
        except InvalidTicket as e:
            raise PowInvalid(f"not a valid challenge: {e}") from e
        try:
            challenge = Challenge(
                room=_field(p, "room", str),
                difficulty=_field(p, "d", int),
                nonce=_field(p, "n", str),
                issued_at_s=float(_field(p, "iat", (int, float))),
                expires_at_s=float(_field(p, "exp", (int, float))),
            )
        except (TypeError, KeyError) as e:
            raise PowInvalid(f"malformed challenge: {e}") from e
        if challenge.room != room:
            raise PowInvalid(f"challenge for room {challenge.room!r}, not {room!r}")
        if now_s >= challenge.expires_at_s:
            raise PowExpired("challenge expired")
        return challenge


def _field(p: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = p[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise TypeError(f"'{key}' has the wrong type")
    return value


def digest(challenge: str, solution: str) -> bytes:
    """SHA-256 of the ASCII bytes ``challenge:solution``."""
    return hashlib.sha256(f"{challenge}:{solution}".encode("ascii")).digest()


def leading_zero_bits(data: bytes) -> int:
    value = int.from_bytes(data, "big")
    return len(data) * 8 - value.bit_length()


def is_solution(challenge: str, solution: str, difficulty: int) -> bool:
    """Whether ``solution`` is well formed and meets ``difficulty`` for ``challenge``."""
    if not _SOLUTION.fullmatch(solution):
        return False
    return leading_zero_bits(digest(challenge, solution)) >= difficulty


def solve(challenge: str, difficulty: int, start: int = 0) -> str:
    """The first solution counting up from ``start`` (2**difficulty tries on average)."""
    check_difficulty(difficulty)
    prefix = hashlib.sha256(f"{challenge}:".encode("ascii"))
    limit = 1 << (256 - difficulty)  # a digest below this has >= difficulty zero bits
    n = start
    while True:
        h = prefix.copy()
        h.update(str(n).encode("ascii"))
        if int.from_bytes(h.digest(), "big") < limit:
            return str(n)
        n += 1


class ReplayGuard:
    """Remembers the challenges used until they expire, so one solution serves one join.

    Held in one process's memory (no Redis round trip): entries are grouped by
    expiry into buckets of ``ttl_s`` and a whole bucket is dropped once all of its
    challenges have expired, so memory is bounded by the joins of about two
    challenge lifetimes (some 50 bytes each). Time is passed in.
    """

    def __init__(self, ttl_s: float = DEFAULT_CHALLENGE_TTL_S) -> None:
        if not ttl_s > 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s}")
        self._ttl_s = ttl_s
        self._buckets: dict[int, set[int]] = {}

    def __len__(self) -> int:
        return sum(len(b) for b in self._buckets.values())

    def first_use(self, nonce: str, expires_at_s: float, now_s: float) -> bool:
        """True the first time ``nonce`` is presented, False afterwards."""
        self._forget_before(now_s)
        key = int.from_bytes(hashlib.blake2b(nonce.encode(), digest_size=8).digest(), "big")
        bucket = self._buckets.setdefault(math.floor(expires_at_s / self._ttl_s), set())
        if key in bucket:
            return False
        bucket.add(key)
        return True

    def _forget_before(self, now_s: float) -> None:
        for index in [i for i in self._buckets if (i + 1) * self._ttl_s <= now_s]:
            del self._buckets[index]


# -- command line, for load tests ---------------------------------------------------------------


def fetch_challenge(base_url: str, room: str, timeout_s: float = 10.0) -> dict[str, Any]:
    """GET the room's challenge from a gateway: ``{"challenge", "difficulty", ...}``."""
    url = f"{base_url.rstrip('/')}/api/rooms/{urllib.parse.quote(room)}/challenge"
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        data: dict[str, Any] = json.loads(response.read())
    return data


def solve_fetched(data: Mapping[str, Any]) -> dict[str, str]:
    """The join body's ``pow`` object for a challenge as the gateway served it."""
    challenge = str(data["challenge"])
    return {"challenge": challenge, "solution": solve(challenge, int(data["difficulty"]))}


def hashrate(seconds: float = 1.0) -> float:
    """Hashes per second of ``solve`` on this machine (a difficulty no try can meet)."""
    prefix = hashlib.sha256(b"hashrate-probe:")
    tries, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for n in range(tries, tries + 10_000):
            h = prefix.copy()
            h.update(str(n).encode("ascii"))
            h.digest()
        tries += 10_000
    return tries / elapsed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m waitingroom.pow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("solve", help="fetch challenges from a gateway and print solved pow objects")
    s.add_argument("--url", required=True, help="the gateway, e.g. http://127.0.0.1:8080")
    s.add_argument("--room", required=True)
    s.add_argument("--count", type=int, default=1, help="how many to fetch and solve")
    h = sub.add_parser("hashrate", help="hashes per second of the Python solver here")
    h.add_argument("--seconds", type=float, default=1.0, help="how long to measure")
    args = parser.parse_args(argv)
    if args.command == "hashrate":
        rate = hashrate(args.seconds)
        print(f"{rate:,.0f} hashes/s; difficulty d takes 2**d / rate s on average", flush=True)
        return 0
    for _ in range(args.count):
        started = time.perf_counter()
        solved = solve_fetched(fetch_challenge(args.url, args.room))
        took_s = time.perf_counter() - started
        print(json.dumps({"pow": solved, "took_s": round(took_s, 3)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
