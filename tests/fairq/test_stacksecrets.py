"""``fairq up``'s secrets: generated once into the state directory, reused, refused when
others may read them or when the file is not what was written."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from fairq import envfile
from fairq.config import ConfigError
from fairq.stacksecrets import SECRETS, SECRETS_FILE, stack_secrets
from gateway.settings import parse_identity_secret, parse_signing_keys


def test_secrets_are_generated_once_private_and_reused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = stack_secrets(state, {})
    assert set(first) == set(SECRETS)
    parse_signing_keys(first["FAIRQ_SIGNING_KEYS"])
    parse_identity_secret(first["FAIRQ_IDENTITY_SECRET"])
    path = state / SECRETS_FILE
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert envfile.read(path) == first
    assert stack_secrets(state, {}) == first  # the next start: the same
    assert stack_secrets(tmp_path / "other", {}) != first  # another stack: its own


def test_a_secret_set_in_the_environment_wins_and_the_file_keeps_its_own(tmp_path: Path) -> None:
    stored = stack_secrets(tmp_path, {})
    mine = "operator-key-of-my-own-0123456789"
    assert stack_secrets(tmp_path, {"FAIRQ_OPERATOR_KEY": mine}) == stored | {
        "FAIRQ_OPERATOR_KEY": mine
    }
    assert envfile.read(tmp_path / SECRETS_FILE) == stored


def test_a_secrets_file_others_may_read_is_refused_not_replaced(tmp_path: Path) -> None:
    stored = stack_secrets(tmp_path, {})
    path = tmp_path / SECRETS_FILE
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="other users may read it"):
        stack_secrets(tmp_path, {})
    path.chmod(0o600)
    assert stack_secrets(tmp_path, {}) == stored


@pytest.mark.parametrize(
    "text,why",
    [
        (
            "",
            "expected FAIRQ_OPERATOR_KEY, FAIRQ_SIGNING_KEYS, FAIRQ_IDENTITY_SECRET, found nothing",
        ),
        ("FAIRQ_OPERATOR_KEY=o123456789abcdefgh\n", "found FAIRQ_OPERATOR_KEY"),
        (
            "FAIRQ_OPERATOR_KEY=o123456789abcdefgh\nFAIRQ_SIGNING_KEYS=nokid\n"
            "FAIRQ_IDENTITY_SECRET=i123456789abcdefgh\n",
            "FAIRQ_SIGNING_KEYS must look like",
        ),
        (
            "FAIRQ_OPERATOR_KEY=short\nFAIRQ_SIGNING_KEYS=k1:s123456789abcdefgh\n"
            "FAIRQ_IDENTITY_SECRET=i123456789abcdefgh\n",
            "FAIRQ_OPERATOR_KEY must be at least 16",
        ),
    ],
)
def test_a_corrupt_secrets_file_is_refused_not_replaced(
    tmp_path: Path, text: str, why: str
) -> None:
    path = tmp_path / SECRETS_FILE
    path.write_text(text)
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="is corrupt") as refused:
        stack_secrets(tmp_path, {})
    assert why in str(refused.value) and "remove it to generate new secrets" in str(refused.value)
    assert path.read_text() == text


def test_a_garbled_line_is_named_with_its_number(tmp_path: Path) -> None:
    path = tmp_path / SECRETS_FILE
    path.write_text("FAIRQ_OPERATOR_KEY=o123456789abcdefgh\n\x00garbage here\n")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match=f"is corrupt \\(.*{SECRETS_FILE}:2: expected NAME=value"):
        stack_secrets(tmp_path, {})
