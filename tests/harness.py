"""fairq's whole path in processes, for the tests that need real processes.

``System`` runs the allocator, the admitter and N gateways as ``fairq <command>``
children (``fairq.processes``) on one test's Redis and topics, and lets a test do
to them what a failing machine would: SIGKILL or SIGTERM a process and start it
again (a server is paused with ``tests.conftest.paused``). The end-to-end test and
the fault suite start the system through it, and so does ``loadtest.bench_faults``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fairq.config import Connections
from fairq.devservices import free_port
from fairq.processes import Component, spawn, stop, wait_http_ready
from tests.conftest import TEST_SESSION_TIMEOUT_MS

OPERATOR_KEY = "e2e-operator-key-0123456789abcdef"
LOADTEST_KEY = "e2e-loadtest-key-0123456789abcdef"
SIGNING_KEYS = "k1:e2e-signing-secret-0123456789"
IDENTITY_SECRET = "e2e-identity-secret-0123456789"
HEALTH_PATH = "/readyz"  # serving once Redis, the broker and the booking views answer
# A first start on a loaded machine (a cluster of three JVM brokers on two cores) can
# take the allocator a minute to join its group and rebuild its partitions.
READY_TIMEOUT_S = 120.0


def fairq_env(connections: Connections, **extra: str) -> dict[str, str]:
    """The environment of every fairq process of one test: its Redis and topics, its own
    consumer groups, keys, the tests' short sessions, and load-test exemption for
    requests from this machine or with ``X-Fairq-Loadtest-Key: LOADTEST_KEY`` (the
    tests' visitors all come from 127.0.0.1)."""
    prefix = connections.topics.commands.removesuffix("booking-commands")
    return (
        dict(os.environ)
        | {
            "REDIS_URL": connections.redis_url,
            **connections.kafka_env(),
            "FAIRQ_TOPIC_PREFIX": prefix,
            "FAIRQ_OPERATOR_KEY": OPERATOR_KEY,
            "FAIRQ_SIGNING_KEYS": SIGNING_KEYS,
            "FAIRQ_IDENTITY_SECRET": IDENTITY_SECRET,
            "FAIRQ_LOADTEST_NETWORKS": "127.0.0.0/8",
            "FAIRQ_LOADTEST_KEY": LOADTEST_KEY,
            "FAIRQ_ALLOCATOR_GROUP": f"alloc-{uuid.uuid4().hex[:8]}",
            "FAIRQ_ADMITTER_GROUP": f"admit-{uuid.uuid4().hex[:8]}",
            "FAIRQ_TICK_INTERVAL_S": "0.2",
            "FAIRQ_ALLOCATOR_SESSION_TIMEOUT_MS": str(TEST_SESSION_TIMEOUT_MS),
            "FAIRQ_ADMITTER_SESSION_TIMEOUT_MS": str(TEST_SESSION_TIMEOUT_MS),
            "FAIRQ_REFRESH_S": "0.1",
            "FAIRQ_LOG_LEVEL": "INFO",
            # one process per gateway (the tests signal it, scrape it, count its limits)
            "FAIRQ_GATEWAY_WORKERS": "1",
        }
        | extra
    )


@dataclass(slots=True)
class Service:
    """One fairq process that can be killed and started again (a new log per start)."""

    command: str
    name: str
    env: Mapping[str, str]
    log_dir: Path
    url: str | None = None  # a gateway's base URL
    health: str | None = None  # where its /readyz is served (a gateway: its base URL)
    starts: int = 0
    component: Component = field(init=False)

    def start(self) -> None:
        self.starts += 1
        suffix = "" if self.starts == 1 else f"-{self.starts}"
        self.component = spawn(self.command, f"{self.name}{suffix}", self.env, self.log_dir)

    def wait_ready(self) -> None:
        """Block until the service answers its readiness check (one without a health
        server: at once). The allocator is ready once it has its partitions, the
        admitter once it has joined its group: a system started on a slow machine takes
        no request before every part of it can answer."""
        health = self.health or self.url
        if health is not None:
            wait_http_ready(self.component, f"{health}{HEALTH_PATH}", READY_TIMEOUT_S)

    async def signal_and_wait(self, signum: signal.Signals) -> int:
        """Send ``signum`` and wait until the process has exited; its exit code."""
        self.component.process.send_signal(signum)
        return await asyncio.to_thread(self.component.process.wait)

    async def restart(self) -> None:
        """Start it again (after it exited) and wait until it is ready."""
        self.start()
        await asyncio.to_thread(self.wait_ready)

    @property
    def alive(self) -> bool:
        return self.component.process.poll() is None


@dataclass(slots=True)
class System:
    allocator: Service
    admitter: Service
    gateway_services: list[Service]

    @property
    def gateways(self) -> list[str]:
        return [g.url for g in self.gateway_services if g.url is not None]

    @property
    def services(self) -> list[Service]:
        return [self.allocator, self.admitter, *self.gateway_services]

    @property
    def components(self) -> list[Component]:
        return [s.component for s in self.services]

    def dead(self) -> list[str]:
        """Services whose current process has exited, with their exit code and log tail."""
        return [
            f"{s.component.name} exited with {s.component.process.returncode}:\n"
            + s.component.tail(1500)
            for s in self.services
            if not s.alive
        ]


def _with_health(service: Service) -> Service:
    """``service`` serving its health checks on a port of its own."""
    port = free_port()
    service.env = {**service.env, "FAIRQ_HEALTH_PORT": str(port)}
    service.health = f"http://127.0.0.1:{port}"
    return service


@contextlib.contextmanager
def running_system(
    connections: Connections,
    log_dir: Path,
    gateways: int = 2,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[System]:
    """Allocator, admitter and ``gateways`` gateways, ready; stopped on exit."""
    env = fairq_env(connections, **(extra_env or {}))
    system = System(
        allocator=_with_health(Service("allocator", "allocator", env, log_dir)),
        admitter=_with_health(Service("admitter", "admitter", env, log_dir)),
        gateway_services=[
            Service(
                "gateway",
                f"gateway-{i}",
                env | {"FAIRQ_HTTP_PORT": str(port)},
                log_dir,
                url=f"http://127.0.0.1:{port}",
            )
            for i, port in enumerate(free_port() for _ in range(gateways))
        ],
    )
    try:
        for service in system.services:
            service.start()
        for service in system.services:
            service.wait_ready()
        yield system
    finally:
        stop([s.component for s in system.services if hasattr(s, "component")])
