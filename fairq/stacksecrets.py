"""The secrets of a ``fairq up`` stack, kept in its state directory across restarts.

Every gateway must sign and verify with the same keys, and hash identity keys with
the same secret: a gateway added by hand, or the stack started again, must accept
the tickets, booking tokens and console sessions issued before. So the secrets
``fairq up`` generates are written once, to ``<state dir>/secrets.env`` (mode 0600
in a 0700 directory), and read back on every later start. A variable set in the
environment still wins over the file (an operator's own secret).

A file that others may read, or that does not hold exactly the expected secrets,
is refused rather than replaced: new secrets would silently invalidate every token
already handed out.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from pathlib import Path

from fairq import envfile
from fairq.config import ConfigError
from gateway.settings import (
    MIN_SECRET_BYTES,
    parse_identity_secret,
    parse_signing_keys,
)

SECRETS_FILE = "secrets.env"
HEADER = """fairq up's secrets, generated once and reused at every start (mode 0600).
Removing this file makes every ticket, booking token and console session issued
with them unverifiable."""


def _check_operator_key(value: str) -> None:
    if len(value) < MIN_SECRET_BYTES:
        raise ConfigError(f"FAIRQ_OPERATOR_KEY must be at least {MIN_SECRET_BYTES} characters")


# name -> (generate a new value, raise ConfigError on a malformed one)
SECRETS: dict[str, tuple[Callable[[], str], Callable[[str], object]]] = {
    "FAIRQ_OPERATOR_KEY": (lambda: secrets.token_urlsafe(24), _check_operator_key),
    "FAIRQ_SIGNING_KEYS": (lambda: f"k1:{secrets.token_urlsafe(32)}", parse_signing_keys),
    "FAIRQ_IDENTITY_SECRET": (lambda: secrets.token_urlsafe(32), parse_identity_secret),
}


def load(path: Path) -> dict[str, str]:
    """The secrets stored at ``path``; refused if others may read it or it is malformed."""
    envfile.check_private(path)
    try:
        values = envfile.read(path)
        if set(values) != set(SECRETS):
            found = ", ".join(sorted(values)) or "nothing"
            raise ConfigError(f"expected {', '.join(SECRETS)}, found {found}")
        for name, (_, check) in SECRETS.items():
            check(values[name])
    except ConfigError as e:
        raise ConfigError(
            f"{path} is corrupt ({e}); restore it, or remove it to generate new secrets"
            " (what was issued with the old ones then stops verifying)"
        ) from e
    return values


def stack_secrets(state_dir: Path, env: Mapping[str, str]) -> dict[str, str]:
    """The stack's secrets: each from ``env`` when set there, else from the state
    directory's secrets file, which is created (generated) on the first start."""
    envfile.private_dir(state_dir)
    path = state_dir / SECRETS_FILE
    if path.exists() or path.is_symlink():
        stored = load(path)
    else:
        stored = {name: generate() for name, (generate, _) in SECRETS.items()}
        envfile.write_private(path, stored, HEADER)
    return {name: env.get(name) or stored[name] for name in SECRETS}
