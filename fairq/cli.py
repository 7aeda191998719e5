"""The ``fairq`` command: ``up`` for a local system, or one component per process."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

from fairq import eventloop
from fairq.config import ConfigError, env_str
from fairq.tasks import run_until_stopped

logger = logging.getLogger("fairq")

Runner = Callable[[Any, asyncio.Event], Coroutine[Any, Any, None]]


def log_level(env: Mapping[str, str]) -> str:
    return env_str(env, "FAIRQ_LOG_LEVEL", "INFO").upper()


def _configure_logging() -> None:
    logging.basicConfig(
        level=log_level(os.environ),
        format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


async def _serve(run: Runner, settings: Any) -> None:
    """Run a service until SIGINT or SIGTERM, then give it its drain time to end."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    logger.info("event loop: %s", eventloop.running())
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


# flag -> the environment variable it sets (flags win over the environment and
# --env-file; each setting is read, and checked, from the environment only)
FLAG_ENV = {
    "gateways": "FAIRQ_GATEWAYS",
    "admitters": "FAIRQ_ADMITTERS",
    "allocators": "FAIRQ_ALLOCATORS",
    "gateway_workers": "FAIRQ_GATEWAY_WORKERS",
    "workers": "FAIRQ_GATEWAY_WORKERS",
    "port": "FAIRQ_HTTP_PORT",
    "instance": "FAIRQ_ALLOCATOR_INSTANCE",
}


def _flag(parser: argparse.ArgumentParser, name: str, help: str, metavar: str = "N") -> None:
    dest = name.removeprefix("--").replace("-", "_")
    parser.add_argument(name, metavar=metavar, help=f"{help} (or {FLAG_ENV[dest]})")


def parser() -> argparse.ArgumentParser:
    """The command line (``tests/deploy`` parses the deployment files' commands with it)."""
    root = argparse.ArgumentParser(prog="fairq", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the whole system locally with a demo campaign")
    _flag(up, "--gateways", "gateway processes, on consecutive ports from FAIRQ_HTTP_PORT")
    _flag(up, "--admitters", "admitter processes")
    _flag(up, "--allocators", "allocator processes, sharing the partitions")
    _flag(up, "--gateway-workers", "worker processes of each gateway (default 1 here)")
    components = {}
    for name in ("gateway", "admitter", "allocator"):
        components[name] = sub.add_parser(
            name, help=f"run one {name} process (settings from the environment)"
        )
        components[name].add_argument(
            "--env-file",
            type=Path,
            metavar="FILE",
            help="read settings from this NAME=value file first (e.g. .fairq/stack.env)",
        )
    _flag(components["gateway"], "--port", "the HTTP port", "PORT")
    _flag(components["gateway"], "--workers", "processes sharing the port (default: the cores)")
    _flag(components["allocator"], "--instance", "its name in its group", "NAME")
    topics = sub.add_parser("topics", help="create the Kafka topics")
    topics.add_argument("--partitions", type=int, default=8)
    topics.add_argument("--replication-factor", type=int, default=1)
    return root


def _environment(args: argparse.Namespace) -> dict[str, str]:
    """The process's environment, then ``--env-file``'s settings, then the flags'."""
    from fairq import envfile

    env = dict(os.environ)
    if getattr(args, "env_file", None) is not None:
        env |= envfile.read(args.env_file)
    flags = {FLAG_ENV[dest]: value for dest, value in vars(args).items() if dest in FLAG_ENV}
    return env | {name: value for name, value in flags.items() if value is not None}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    _configure_logging()
    try:
        env = _environment(args)
        loop = eventloop.from_env(env)  # the children of `up` read it too
        if args.command == "up":
            from fairq.up import up

            return up(env)
        if args.command == "topics":
            _topics(env, args.partitions, args.replication_factor)
            return 0
        run, settings = _component(args.command, env)
        if args.command == "gateway" and settings.worker is None:
            from gateway.workers import WorkerSettings, run_workers

            workers = WorkerSettings.from_env(env).workers
            if workers > 1:
                return run_workers(settings, workers, env)
    except ConfigError as e:
        print(f"fairq {args.command}: configuration error: {e}", file=sys.stderr)
        return 2
    eventloop.run(_serve(run, settings), loop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
