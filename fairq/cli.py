"""The ``fairq`` command: ``up`` for a local system, or one component per process."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from fairq.config import ConfigError
from fairq.tasks import run_until_stopped

logger = logging.getLogger("fairq")

Runner = Callable[[Any, asyncio.Event], Coroutine[Any, Any, None]]


def _configure_logging() -> None:
    level = os.environ.get("FAIRQ_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


async def _serve(run: Runner, settings: Any) -> None:
    """Run a service until SIGINT or SIGTERM, then give it its drain time to end."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run_until_stopped(run(settings, stop), stop, settings.shutdown_drain_s)


def _component(name: str, env: Mapping[str, str]) -> tuple[Runner, Any]:
    if name == "gateway":
        from gateway.service import run as run_gateway
        from gateway.settings import GatewaySettings

        return run_gateway, GatewaySettings.from_env(env)
    if name == "admitter":
        from waitingroom.admitter import run as run_admitter
        from waitingroom.settings import AdmitterSettings

        return run_admitter, AdmitterSettings.from_env(env)
    from allocator.service import run as run_allocator
    from allocator.settings import AllocatorSettings

    return run_allocator, AllocatorSettings.from_env(env)


def _topics(env: Mapping[str, str], partitions: int, replication: int) -> None:
    from allocator.settings import snapshot_topic
    from fairq.config import Connections
    from fairq.topics import ensure_topics

    conn = Connections.from_env(env)
    snapshots = snapshot_topic(conn.topics.commands)
    asyncio.run(ensure_topics(conn.kafka, conn.topics, partitions, replication, snapshots))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fairq", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="run the whole system locally with a demo campaign")
    for name in ("gateway", "admitter", "allocator"):
        sub.add_parser(name, help=f"run one {name} process (settings from the environment)")
    topics = sub.add_parser("topics", help="create the Kafka topics")
    topics.add_argument("--partitions", type=int, default=8)
    topics.add_argument("--replication-factor", type=int, default=1)
    args = parser.parse_args(argv)
    _configure_logging()
    try:
        if args.command == "up":
            from fairq.up import up

            return up(os.environ)
        if args.command == "topics":
            _topics(os.environ, args.partitions, args.replication_factor)
            return 0
        run, settings = _component(args.command, os.environ)
    except ConfigError as e:
        print(f"fairq {args.command}: configuration error: {e}", file=sys.stderr)
        return 2
    asyncio.run(_serve(run, settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
