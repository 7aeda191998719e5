"""deploy/healthcheck.py, the image's HEALTHCHECK, against fairq's own health server.

One image runs every process: the check passes when either the HTTP port (a gateway)
or the health port (an admitter, an allocator) answers ``/livez``, and fails when
neither does. The server is ``fairq.health.serving``, as the admitter and the
allocator run it.
"""

from __future__ import annotations

import asyncio
import sys

from prometheus_client import CollectorRegistry

from fairq.devservices import free_port
from fairq.health import HealthSettings, serving
from tests.deploy.files import DEPLOY

HEALTHCHECK = DEPLOY / "healthcheck.py"


async def healthcheck(env: dict[str, str]) -> int:
    process = await asyncio.create_subprocess_exec(sys.executable, str(HEALTHCHECK), env=env)
    return await process.wait()


async def test_the_check_passes_on_whichever_port_serves_livez() -> None:
    closed = str(free_port())
    async with serving(HealthSettings(port=0), "test", {}, CollectorRegistry()) as port:
        as_allocator = {"FAIRQ_HTTP_PORT": closed, "FAIRQ_HEALTH_PORT": str(port)}
        as_gateway = {"FAIRQ_HTTP_PORT": str(port), "FAIRQ_HEALTH_PORT": closed}
        assert await healthcheck(as_allocator) == 0
        assert await healthcheck(as_gateway) == 0


async def test_the_check_fails_when_no_port_answers() -> None:
    env = {"FAIRQ_HTTP_PORT": str(free_port()), "FAIRQ_HEALTH_PORT": str(free_port())}
    assert await healthcheck(env) == 1
