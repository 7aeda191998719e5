"""Running one gateway process until told to stop."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from gateway.app import SERVER_LIMITS, create_app
from gateway.settings import GatewaySettings

logger = logging.getLogger(__name__)


async def run(settings: GatewaySettings, stop: asyncio.Event) -> None:
    """Serve until ``stop`` is set; then stop intake, drain for a while, cancel the rest."""
    if not settings.identity_secret:
        logger.warning(
            "FAIRQ_IDENTITY_SECRET is not set: identity keys are refused, and access codes"
            " issued now are stored under plain SHA-256 hashes (a copy of Redis then gives"
            " some of them away to brute force)"
        )
    runner = web.AppRunner(
        create_app(settings),
        shutdown_timeout=settings.shutdown_drain_s,
        access_log=None,
        **SERVER_LIMITS,
    )
    await runner.setup()
    try:
        shared = settings.worker is not None  # with its sibling workers (gateway.workers)
        site = web.TCPSite(runner, settings.host, settings.port, reuse_port=shared)
        await site.start()
        if shared:
            await web.TCPSite(runner, settings.host, settings.worker_port).start()
            logger.info(
                "gateway worker %d listening on %s (the first shared with the other workers)",
                settings.worker,
                ", ".join(map(str, runner.addresses)),
            )
        else:
            logger.info("gateway listening on %s", ", ".join(map(str, runner.addresses)))
        await stop.wait()
        logger.info("gateway stopping: draining for up to %.1fs", settings.shutdown_drain_s)
    finally:
        await runner.cleanup()
