"""``fairq gateway --workers N``: N gateway processes serving one port.

A gateway process is one event loop, so it uses one core. Rather than a port per
process (and a balancer entry per port), the parent starts N ordinary gateway
processes (``fairq gateway`` with ``FAIRQ_GATEWAY_WORKER=i``) that each listen on the
shared port with ``SO_REUSEPORT``: the kernel spreads new connections over the
listening workers. The parent binds nothing and serves nothing; it

- restarts a worker that exits by itself, after its backoff (``fairq.processes``);
- on SIGTERM or SIGINT, SIGTERMs every worker, which stops taking connections, drains
  for ``FAIRQ_SHUTDOWN_DRAIN_S`` and cancels the rest (``gateway.service.run``), and
  waits for them all;
- dies with its workers' ends: the kernel SIGTERMs them if the parent is killed.

Each worker has its own counters, so each also serves on a port of its own
(``FAIRQ_WORKER_PORTS_FROM`` + i - 1) where Prometheus scrapes it; a scrape of the
shared port reaches one worker, named by ``fairq_gateway_worker_info``
(docs/scale-out.md).
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from fairq.config import ConfigError, env_int
from fairq.processes import spawn, stop, supervise_until_signalled
from gateway.settings import GatewaySettings

logger = logging.getLogger(__name__)

STOP_MARGIN_S = 5.0  # beyond the drain, for a worker to close its connections and exit


def machine_cores() -> int:
    """The cores this process may run on (its CPU affinity, not the machine's count)."""
    count = getattr(os, "process_cpu_count", None)  # Python 3.13
    if count is not None:
        return int(count() or 1)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    workers: int

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WorkerSettings:
        return cls(workers=env_int(env, "FAIRQ_GATEWAY_WORKERS", machine_cores(), lo=1))


def check_port_free(host: str, port: int, *, shared: bool) -> None:
    """Refuse a port that another process holds (its gateway would crash in a loop, or
    another server would answer in its place); ``shared``: as workers will bind it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # as aiohttp binds: connections of an earlier server in TIME_WAIT do not count
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, int(shared))
        try:
            probe.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise ConfigError(f"{host}:{port} is in use by another process") from e
            raise ConfigError(f"cannot listen on {host}:{port}: {e}") from e


def run_workers(settings: GatewaySettings, workers: int, env: Mapping[str, str]) -> int:
    """Start ``workers`` gateway processes on ``settings.port``; supervise them until
    SIGTERM or SIGINT, then stop them all. Their output is this process's."""
    if settings.port == 0:
        raise ConfigError("FAIRQ_HTTP_PORT 0 (any free port) cannot be shared by workers")
    check_port_free(settings.host, settings.port, shared=True)
    components = [
        spawn(
            "gateway",
            f"gateway worker {i}",
            dict(env) | {"FAIRQ_GATEWAY_WORKERS": "1", "FAIRQ_GATEWAY_WORKER": str(i)},
            log_dir=None,
            with_parent=True,
        )
        for i in range(1, workers + 1)
    ]
    logger.info(
        "gateway: %d workers on %s:%d (pids %s)",
        workers,
        settings.host,
        settings.port,
        " ".join(str(c.process.pid) for c in components),
    )
    try:
        supervise_until_signalled(components)
        logger.info("gateway: stopping %d workers", workers)
    finally:
        stop(components, timeout_s=settings.shutdown_drain_s + STOP_MARGIN_S)
    return 0
