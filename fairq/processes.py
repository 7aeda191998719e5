"""Starting and stopping fairq component processes (used by ``fairq up`` and the e2e tests)."""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

STOP_TIMEOUT_S = 10.0


class ProcessError(RuntimeError):
    """A component process died or never became ready."""


@dataclass(slots=True)
class Component:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def spawn(command: str, name: str, env: Mapping[str, str], log_dir: Path) -> Component:
    """Start ``fairq <command>`` as a child process logging to ``log_dir/<name>.log``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "fairq.cli", command],
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    logger.info("started %s (pid %d, log %s)", name, process.pid, log)
    return Component(name, process, log)


def wait_http_ready(component: Component, url: str, timeout_s: float = 60.0) -> None:
    """Poll ``url`` until it answers 200; fail early if the process exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if component.process.poll() is not None:
            raise ProcessError(
                f"{component.name} exited with {component.process.returncode}:\n" + component.tail()
            )
        if _answers_ok(url):
            return
        time.sleep(0.1)
    raise ProcessError(
        f"{component.name} did not answer {url} within {timeout_s}s:\n" + component.tail()
    )


def _answers_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def stop(components: list[Component], timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM every component, wait for them together, SIGKILL what is left."""
    for c in components:
        if c.process.poll() is None:
            c.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for c in components:
        try:
            c.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            logger.warning("%s did not stop in %.0fs; killing it", c.name, timeout_s)
            c.process.kill()
            c.process.wait()


@contextlib.contextmanager
def running(components: list[Component]) -> Iterator[list[Component]]:
    try:
        yield components
    finally:
        stop(components)
