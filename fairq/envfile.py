"""Environment files: ``NAME=value`` lines, read by ``fairq <component> --env-file`` and
written by ``fairq up`` for the processes an operator adds to a running stack.

The format is the common subset of a POSIX shell's (``set -a; . file``), systemd's
``EnvironmentFile=`` and this reader: one assignment a line, an optional ``export``,
values quoted the shell's way when they need it, ``#`` comments and blank lines.

Files written here hold secrets, so they are written readable by their owner only
(mode 0600, created with that mode: there is no moment when another user could open
one), and ``check_private`` refuses a secrets file that others may read.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import stat
from collections.abc import Mapping
from pathlib import Path

from fairq.config import ConfigError

logger = logging.getLogger(__name__)

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def parse(text: str, source: str) -> dict[str, str]:
    """The assignments of an environment file's ``text``; ``source`` names it in errors."""
    values: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        try:
            words = shlex.split(line, comments=True)
        except ValueError as e:
            raise ConfigError(f"{source}:{lineno}: {e}") from e
        if words[:1] == ["export"]:
            words = words[1:]
        if not words:
            continue
        name, sep, value = words[0].partition("=")
        if len(words) != 1 or not sep or not NAME.fullmatch(name):
            raise ConfigError(f"{source}:{lineno}: expected NAME=value, got {line.strip()!r}")
        values[name] = value
    return values


def read(path: Path) -> dict[str, str]:
    """The assignments of the environment file at ``path`` (clear errors if unreadable)."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read the environment file {path}: {e}") from e
    return parse(text, str(path))


def render(values: Mapping[str, str], header: str) -> str:
    """``values`` as an environment file, under ``header`` (``#`` comment lines)."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    lines += [f"{name}={shlex.quote(value)}" for name, value in values.items()]
    return "\n".join(lines) + "\n"


def private_dir(path: Path) -> None:
    """Make ``path`` (and its parents) a directory; ``path`` itself mode 0700.

    A state directory made by an earlier ``fairq up`` (mode 0755, logs only) is
    tightened: it now holds secrets.
    """
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode != PRIVATE_DIR:
        path.chmod(PRIVATE_DIR)
        logger.warning("%s was mode %04o; made it 0700, as it holds secrets", path, mode)


def write_private(path: Path, values: Mapping[str, str], header: str) -> None:
    """Write ``values`` to ``path`` readable by its owner only, replacing it atomically."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(render(values, header))
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def check_private(path: Path) -> None:
    """Refuse a secrets file that is not a regular file of this user's, mode 0600 or less."""
    info = path.lstat()
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{path} holds secrets but is not a regular file")
    if info.st_uid != os.getuid():
        raise ConfigError(f"{path} holds secrets but belongs to another user (uid {info.st_uid})")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"{path} holds secrets but other users may read it (mode {mode:04o});"
            f" make it private with: chmod 600 {shlex.quote(str(path))}"
        )
