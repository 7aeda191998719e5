"""Environment files: what ``render`` writes, ``parse`` reads back (and a shell too), and
files holding secrets are private."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from fairq import envfile
from fairq.config import ConfigError

VALUES = {
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "FAIRQ_AGENT_KEYS": "ana:key with spaces,bo:it's $HOME",
    "FAIRQ_EMPTY": "",
}


def test_what_is_rendered_parses_back_here_and_in_a_shell(tmp_path: Path) -> None:
    text = envfile.render(VALUES, "two lines\nof header")
    assert text.startswith("# two lines\n# of header\n")
    assert envfile.parse(text, "x") == VALUES
    path = tmp_path / "stack.env"
    path.write_text(text)
    shell = f'set -a; . "{path}"; printf %s "$FAIRQ_AGENT_KEYS"'
    out = subprocess.run(["sh", "-c", shell], env={}, capture_output=True, text=True, check=True)
    assert out.stdout == VALUES["FAIRQ_AGENT_KEYS"]


def test_export_comments_and_blank_lines_are_read() -> None:
    text = "# c\n\nexport A=1  # trailing\nB='two words'\n"
    assert envfile.parse(text, "f") == {"A": "1", "B": "two words"}


@pytest.mark.parametrize("line", ["A", "A=1 B=2", "1A=x", "A='unclosed", "echo hi", "-x=1"])
def test_a_line_that_is_not_one_assignment_is_named(line: str) -> None:
    with pytest.raises(ConfigError, match=r"^f:2: "):
        envfile.parse(f"OK=1\n{line}\n", "f")


def test_an_unreadable_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the environment file"):
        envfile.read(tmp_path / "missing.env")


def test_written_files_are_private_from_their_creation(tmp_path: Path) -> None:
    state = tmp_path / "a" / "state"
    envfile.private_dir(state)
    path = state / "secrets.env"
    old_umask = os.umask(0)  # a permissive umask does not widen the mode
    try:
        envfile.write_private(path, VALUES, "h")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert envfile.read(path) == VALUES
    envfile.check_private(path)
    assert [p.name for p in state.iterdir()] == ["secrets.env"]  # no temporary file left


def test_a_state_directory_made_open_is_tightened_and_said_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o755)
    with caplog.at_level("WARNING", logger="fairq.envfile"):
        envfile.private_dir(state)
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert f"{state} was mode 0755; made it 0700" in caplog.text


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o666])
def test_a_secrets_file_others_may_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "secrets.env"
    path.write_text("A=1\n")
    path.chmod(mode)
    with pytest.raises(
        ConfigError, match=f"other users may read it \\(mode {mode:04o}\\).*chmod 600"
    ):
        envfile.check_private(path)


def test_a_secrets_file_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("A=1\n")
    target.chmod(0o600)
    link = tmp_path / "secrets.env"
    link.symlink_to(target)
    with pytest.raises(ConfigError, match="not a regular file"):
        envfile.check_private(link)
