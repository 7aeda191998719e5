"""Supervision: the restart delay backs off, and a crashed child is started again."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from fairq.processes import (
    Backoff,
    Component,
    ProcessError,
    exit_reason,
    stop,
    supervise,
    wait_http_ready,
)


def test_the_restart_delay_doubles_up_to_its_cap_and_starts_over_after_a_stable_run() -> None:
    backoff = Backoff(first_s=0.5, cap_s=4.0, stable_s=30.0)
    delays = [backoff.delay_s(ran_s=1.0) for _ in range(6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff.delay_s(ran_s=30.0) == 0.5  # it had run long enough: a new series
    assert backoff.delay_s(ran_s=0.1) == 1.0


def test_an_exit_is_told_by_code_or_signal() -> None:
    assert exit_reason(3) == "exit code 3"
    assert exit_reason(-signal.SIGKILL) == "signal SIGKILL"


@pytest.mark.timeout(60)
def test_a_crashed_child_is_started_again_and_its_log_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``fairq --help`` stands in for a component that exits at once (code 0): supervise
    starts it again, after its backoff, until told to stop."""
    log = tmp_path / "crasher.log"
    component = Component(
        "crasher",
        subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"]),
        log,
        command="--help",
        backoff=Backoff(first_s=0.01, cap_s=0.02),
    )
    log.write_text("")
    first_pid = component.process.pid
    done = threading.Event()

    def restarted_twice() -> bool:
        if component.process.pid != first_pid and component.backoff.crashes >= 2:
            done.set()
        return done.is_set()

    with caplog.at_level("ERROR", logger="fairq.processes"):
        supervise([component], stopping=restarted_twice, poll_s=0.01)
    stop([component])
    assert f"crasher (pid {first_pid}) exited with exit code 3" in caplog.text
    assert "restarting it in 0.0s" in caplog.text
    assert "usage: fairq" in log.read_text()  # the restarted command, appended to its log


def test_a_port_answering_what_is_not_http_is_not_ready() -> None:
    """Polled before its server listens, a port can connect to itself and read the
    request back as the answer: that is "not ready yet", not an error of the poll."""
    echo = socket.create_server(("127.0.0.1", 0))
    port = echo.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = echo.accept()
            except OSError:  # closed
                return
            with conn:
                conn.sendall(conn.recv(4096))

    threading.Thread(target=serve, daemon=True).start()
    waiting = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        component = Component("echo", waiting, log=None)
        with pytest.raises(ProcessError, match="did not answer"):
            wait_http_ready(component, f"http://127.0.0.1:{port}/readyz", timeout_s=0.5)
    finally:
        echo.close()
        waiting.kill()
        waiting.wait()
