"""Starting, supervising and stopping fairq component processes (``fairq up``, the e2e tests).

``supervise`` restarts a component that exits by itself, after a delay that doubles
with each crash in a row (``Backoff``), while the others go on serving: one crashed
allocator must not take the gateways and the admitter down with it.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

STOP_TIMEOUT_S = 10.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class ProcessError(RuntimeError):
    """A component process died or never became ready."""


@dataclass(slots=True)
class Backoff:
    """How long to wait before restarting a component that exited by itself.

    The first restart waits ``first_s``, each crash in a row doubles it up to ``cap_s``
    (a component that cannot start is not restarted in a tight loop), and a component
    that ran ``stable_s`` or more before it crashed starts again from ``first_s``.
    """

    first_s: float = 0.5
    cap_s: float = 30.0
    stable_s: float = 30.0
    crashes: int = 0  # in a row, each after less than ``stable_s`` of running

    def delay_s(self, ran_s: float) -> float:
        """The wait before the next start of a component that ran ``ran_s``, then crashed."""
        self.crashes = 1 if ran_s >= self.stable_s else self.crashes + 1
        return float(min(self.cap_s, self.first_s * 2 ** (self.crashes - 1)))


@dataclass(slots=True)
class Component:
    name: str
    process: subprocess.Popen[bytes]
    log: Path | None  # None: the output goes to this process's own
    command: str = ""
    env: Mapping[str, str] = field(default_factory=dict)
    with_parent: bool = False  # ended (SIGTERM) by the kernel if this process dies
    started_s: float = field(default_factory=time.monotonic)
    backoff: Backoff = field(default_factory=Backoff)
    restart_at_s: float | None = None  # exited: when it is started again

    def tail(self, chars: int = 3000) -> str:
        if self.log is None:
            return "(its output is this process's)"
        return self.log.read_text(errors="replace")[-chars:]

    def respawn(self) -> None:
        """Start the component again, its output appended to the same log."""
        self.process = _popen(self.command, self.env, self.log, "ab", self.with_parent)
        self.started_s, self.restart_at_s = time.monotonic(), None
        logger.info("restarted %s (pid %d, log %s)", self.name, self.process.pid, self.log)


def _ended_with(parent: int) -> Callable[[], None]:
    """For the child, before exec: have the kernel SIGTERM it when ``parent`` dies
    (Linux), so that a killed supervisor does not leave its children holding their
    ports; a parent already gone by then ends the child at once."""

    def preexec() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def _popen(
    command: str, env: Mapping[str, str], log: Path | None, mode: str, with_parent: bool
) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "fairq.cli", command]
    preexec = _ended_with(os.getpid()) if with_parent else None
    if log is None:
        return subprocess.Popen(argv, env=dict(env), preexec_fn=preexec)
    with log.open(mode) as out:
        return subprocess.Popen(
            argv, env=dict(env), stdout=out, stderr=subprocess.STDOUT, preexec_fn=preexec
        )


def spawn(
    command: str,
    name: str,
    env: Mapping[str, str],
    log_dir: Path | None,
    *,
    with_parent: bool = False,
) -> Component:
    """Start ``fairq <command>`` as a child process logging to ``log_dir/<name>.log``
    (``log_dir`` None: to this process's output).

    ``with_parent``: the child is SIGTERMed when this process dies. Only for a process
    that spawns from its main thread (the signal follows the thread that forked).
    """
    log = None
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        log = log_dir / f"{name}.log"
    process = _popen(command, env, log, "wb", with_parent)
    logger.info("started %s (pid %d, log %s)", name, process.pid, log)
    return Component(name, process, log, command, dict(env), with_parent=with_parent)


def exit_reason(returncode: int) -> str:
    """``exit code 3`` or ``signal SIGKILL``, from a ``Popen.returncode``."""
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


def supervise(
    components: list[Component], stopping: Callable[[], bool], poll_s: float = 0.2
) -> None:
    """Until ``stopping()``, restart each component that exits, after its backoff.

    Only the caller stops the components (``stop``): whatever one of them does, the
    others are left serving.
    """
    while not stopping():
        now = time.monotonic()
        for c in components:
            returncode = c.process.poll()
            if returncode is None:
                continue
            if c.restart_at_s is None:
                delay = c.backoff.delay_s(ran_s=now - c.started_s)
                c.restart_at_s = now + delay
                logger.error(
                    "%s (pid %d) exited with %s after %.1fs; restarting it in %.1fs; its log:\n%s",
                    c.name,
                    c.process.pid,
                    exit_reason(returncode),
                    now - c.started_s,
                    delay,
                    c.tail(),
                )
            elif now >= c.restart_at_s:
                c.respawn()
        time.sleep(poll_s)


def supervise_until_signalled(components: list[Component]) -> None:
    """``supervise`` until this process gets SIGINT or SIGTERM (the caller then stops
    the components)."""
    stopping: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: stopping.append(signum))
    supervise(components, stopping=lambda: bool(stopping))


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
    """Whether ``url`` answers 200. An answer that is not HTTP is no: polling a port in
    the ephemeral range that nothing listens on yet can connect the socket to itself,
    and the request comes back as the answer (``BadStatusLine: GET /readyz``)."""
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, http.client.HTTPException):
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
