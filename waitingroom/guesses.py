"""Limits on guessing access codes, counted in Redis so that every gateway shares them.

A code is worth an appointment, so wrong codes are counted twice, in fixed windows of
``window_s`` seconds (numbered from the epoch; time comes from the caller):

- per **client** (``Guesser.client``: its address, an IPv6 client by its /64): one
  source trying codes is slowed down whatever gateway it reaches;
- per **code prefix** (``Guesser.prefix``: a keyed digest of the normalised code's first
  ``prefix_chars`` characters): many sources working one region of the code space are
  slowed down together, as a botnet spreading its guesses over addresses would.

When either count of the window has reached its limit, a join with a code is refused
(``TooManyAttempts``) before the code is looked up, a right code too: otherwise the
refusal would tell right codes from wrong ones and limit nothing. The check and the
count are part of the join's own script (``scripts.JOIN``): a join with a code still
costs one Redis round trip, and concurrent wrong codes are counted exactly. Across a
window's end a source may try up to twice a limit in a short time (fixed windows).
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass

from fairq.config import ConfigError
from waitingroom.codes import CODE_CHARS, normalise_code

DEFAULT_PER_CLIENT = 10  # wrong codes one client may try per window
DEFAULT_PER_PREFIX = 100  # wrong codes with one prefix per window, from all clients
DEFAULT_WINDOW_S = 900
DEFAULT_PREFIX_CHARS = 3  # 31^3 = 29,791 prefixes: mistyped codes spread thinly over them
MAX_PREFIX_CHARS = CODE_CHARS // 2  # a longer prefix would say too much of a real code
PREFIX_DIGEST_CHARS = 16


@dataclass(frozen=True, slots=True)
class GuessLimit:
    """How many wrong codes a client, and a code prefix, may see per window; 0: no limit."""

    per_client: int = DEFAULT_PER_CLIENT
    per_prefix: int = DEFAULT_PER_PREFIX
    window_s: int = DEFAULT_WINDOW_S
    prefix_chars: int = DEFAULT_PREFIX_CHARS

    def __post_init__(self) -> None:
        if self.per_client < 0 or self.per_prefix < 0:
            raise ConfigError(
                "FAIRQ_CODE_GUESSES_PER_CLIENT and FAIRQ_CODE_GUESSES_PER_PREFIX must be >= 0"
                f" (0: no limit), got {self.per_client} and {self.per_prefix}"
            )
        if self.window_s < 1:
            raise ConfigError(f"FAIRQ_CODE_GUESS_WINDOW_S must be at least 1, got {self.window_s}")
        if not 1 <= self.prefix_chars <= MAX_PREFIX_CHARS:
            raise ConfigError(
                f"FAIRQ_CODE_GUESS_PREFIX_CHARS must be within 1..{MAX_PREFIX_CHARS},"
                f" got {self.prefix_chars}"
            )

    def window(self, now_s: float) -> int:
        """The number of the window ``now_s`` falls in (its counters' name)."""
        return math.floor(now_s / self.window_s)

    def retry_after_s(self, now_s: float) -> float:
        """Seconds from ``now_s`` to the end of its window, when the counts start again."""
        return (self.window(now_s) + 1) * self.window_s - now_s


# What an exempt source (a load-test rehearsal) joins with: nothing checked, nothing counted.
NO_LIMIT = GuessLimit(per_client=0, per_prefix=0)


@dataclass(frozen=True, slots=True)
class Guesser:
    """Who tries a code: the counters a wrong code of theirs goes to, and the limit it is
    tried under (``NO_LIMIT`` for an exempt source)."""

    client: str
    prefix: str
    limit: GuessLimit


def code_prefix(code: str, chars: int, secret: bytes) -> str:
    """The counter name of ``code``'s region: a digest of its first ``chars`` normalised
    characters, keyed with ``secret`` like the codes' hashes (so Redis holds no part of a
    code in the clear)."""
    head = b"prefix:" + normalise_code(code)[:chars].encode()
    digest = hmac.new(secret, head, hashlib.sha256) if secret else hashlib.sha256(head)
    return digest.hexdigest()[:PREFIX_DIGEST_CHARS]
