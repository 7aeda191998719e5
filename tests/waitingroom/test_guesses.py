"""The limits on wrong access codes: their settings, windows and the prefix a code counts under.

How the join's script checks and counts them is tested with the store
(tests/waitingroom/test_rooms.py) and through the gateway (tests/gateway/test_ratelimit.py).
"""

from __future__ import annotations

import pytest

from fairq.config import ConfigError
from waitingroom.guesses import MAX_PREFIX_CHARS, GuessLimit, code_prefix

SECRET = b"a-secret-of-the-service-0123456789"


def test_the_default_limits_are_on() -> None:
    limit = GuessLimit()
    assert limit.per_client > 0 and limit.per_prefix > 0
    assert limit.per_client <= limit.per_prefix  # one client meets its own limit first


@pytest.mark.parametrize(
    ("kwargs", "variable"),
    [
        ({"per_client": -1}, "FAIRQ_CODE_GUESSES_PER_CLIENT"),
        ({"per_prefix": -1}, "FAIRQ_CODE_GUESSES_PER_PREFIX"),
        ({"window_s": 0}, "FAIRQ_CODE_GUESS_WINDOW_S"),
        ({"prefix_chars": 0}, "FAIRQ_CODE_GUESS_PREFIX_CHARS"),
        ({"prefix_chars": MAX_PREFIX_CHARS + 1}, "FAIRQ_CODE_GUESS_PREFIX_CHARS"),
    ],
)
def test_a_bad_limit_is_refused_naming_its_variable(kwargs: dict[str, int], variable: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        GuessLimit(**kwargs)


def test_windows_are_numbered_from_the_epoch_and_end_when_the_counts_start_again() -> None:
    limit = GuessLimit(window_s=600)
    assert [limit.window(t) for t in (0.0, 599.9, 600.0, 1_700_000_000.0)] == [0, 0, 1, 2_833_333]
    assert limit.retry_after_s(1_200.0) == 600.0
    assert limit.retry_after_s(1_799.5) == pytest.approx(0.5)


def test_a_code_counts_under_its_first_characters_however_it_is_typed() -> None:
    prefix = code_prefix("7KQM-R2XH-9PDT", 3, SECRET)
    assert code_prefix(" 7kq m-ZZZZ-ZZZZ", 3, SECRET) == prefix
    assert code_prefix("7KQN-R2XH-9PDT", 3, SECRET) == prefix  # the 4th character is not in it
    assert code_prefix("7KQM-R2XH-9PDT", 4, SECRET) != prefix
    assert code_prefix("7KP", 3, SECRET) != prefix
    assert code_prefix("7KQ", 3, b"another-secret-0123456789") != prefix  # keyed
    assert "7KQ" not in code_prefix("7KQ", 3, b"") and len(prefix) == 16  # never in the clear
