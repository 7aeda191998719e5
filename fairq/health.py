"""Liveness, readiness and metrics over HTTP, for every fairq service.

A load balancer or an orchestrator asks two different questions: is the process
alive (restart it if not) and may it take traffic now (route around it if not).
``/livez`` answers the first from the event loop alone, so a Redis or broker blip
never gets a healthy process restarted; ``/readyz`` answers the second by probing
each dependency with a short timeout (a paused server answers nothing at all) and
looking at the state the service has loaded.

The gateway serves these routes on its own port (``gateway.app``); the admitter and
the allocator have no HTTP API, so ``serving`` gives them a small server of their own
that also serves their Prometheus metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web
from aiokafka import AIOKafkaClient
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from fairq import looplag
from fairq.config import env_int, env_str
from fairq.eventloop import LOOP_REGISTRY
from fairq.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 2.0  # a dependency that has not answered by then counts as down

# A readiness check: raises (or times out) when its dependency or state is not ready.
Check = Callable[[], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class HealthSettings:
    """Where a service without an HTTP API serves ``/livez``, ``/readyz`` and ``/metrics``."""

    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port, logged at start

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> HealthSettings:
        return cls(
            host=env_str(env, "FAIRQ_HEALTH_HOST", "127.0.0.1"),
            port=env_int(env, "FAIRQ_HEALTH_PORT", 0),
        )


class NotReady(RuntimeError):
    """A readiness check's dependency or state is not ready; the message says why."""


async def probe(checks: Mapping[str, Check], timeout_s: float = PROBE_TIMEOUT_S) -> dict[str, str]:
    """Run every check at once, each bounded by ``timeout_s``: ``"ok"`` or why not, by name."""

    async def one(check: Check) -> str:
        task = asyncio.ensure_future(check())
        try:
            done, _ = await asyncio.wait({task}, timeout=timeout_s)
        finally:
            # A paused server never answers: end the call rather than let them pile up.
            await cancel_and_wait([task])
        if not done:
            return f"no answer within {timeout_s:g}s"
        error = task.exception()
        return "ok" if error is None else f"{type(error).__name__}: {error}"

    results = await asyncio.gather(*(one(check) for check in checks.values()))
    return dict(zip(checks, results, strict=True))


async def readiness_response(checks: Mapping[str, Check]) -> web.Response:
    """200 with every check ``"ok"``, else 503 with a JSON error naming the failing ones."""
    results = await probe(checks)
    failing = {name: why for name, why in results.items() if why != "ok"}
    if not failing:
        return web.json_response({"status": "ready", "checks": results})
    message = "; ".join(f"{name}: {why}" for name, why in failing.items())
    body = {"error": {"code": "not_ready", "message": message}, "checks": results}
    return web.json_response(body, status=503)


def liveness_response() -> web.Response:
    """The process's event loop runs and serves: nothing else is asked."""
    return web.json_response({"status": "live"})


def metrics_response(registry: CollectorRegistry) -> web.Response:
    """A service's metrics, and the process's event loop (``fairq.eventloop``)."""
    body = generate_latest(registry) + generate_latest(LOOP_REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def broker_reachable(client: AIOKafkaClient) -> None:
    """The broker answers a metadata request (raises otherwise)."""
    await client.fetch_all_metadata()


def health_app(checks: Mapping[str, Check], registry: CollectorRegistry) -> web.Application:
    async def livez(request: web.Request) -> web.Response:
        return liveness_response()

    async def readyz(request: web.Request) -> web.Response:
        return await readiness_response(checks)

    async def metrics(request: web.Request) -> web.Response:
        return metrics_response(registry)

    app = web.Application()
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


@contextlib.asynccontextmanager
async def serving(
    settings: HealthSettings, service: str, checks: Mapping[str, Check], registry: CollectorRegistry
) -> AsyncIterator[int]:
    """Serve ``/livez``, ``/readyz`` (``checks``) and ``/metrics`` (``registry``) while
    the block runs, with the event loop's lag (``fairq.looplag``) in ``registry``; yields
    the port (logged, as ``port 0`` picks a free one)."""
    runner = web.AppRunner(health_app(checks, registry), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        port = int(runner.addresses[0][1])
        logger.info(
            "%s health on http://%s:%d (/livez /readyz /metrics)", service, settings.host, port
        )
        async with looplag.watching(registry):
            yield port
    finally:
        await runner.cleanup()
