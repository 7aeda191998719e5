"""Recovery times after each fault of the fault suite, and what was answered meanwhile.

Runs the scenarios of ``tests/test_faults.py`` (the same harness, ``tests.faults``)
outside pytest, each on a fresh redis-server and Tansu broker of its own, and prints
for each: the answers during the fault and its recovery, the recovery time of each
kind of answer (from the fault's end: the resume, or the restarted process spawned;
to the first success of a request sent since the fault began), and every invariant
the storm broke. Run it from the repository's root (it imports ``tests``):

    python -m loadtest.bench_faults [--fault allocator_kill ...] [--rounds N] [--logs DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import uuid
from dataclasses import replace
from pathlib import Path

from fairq.config import Connections, Topics
from fairq.devservices import kafka_broker, redis_server
from fairq.topics import ensure_topics
from loadtest.bench_allocator_core import print_header
from tests.conftest import TEST_PARTITIONS
from tests.faults import FAULTS, RECOVERY_KINDS, Outcome, Servers, run_fault
from tests.storm import StormPlan


async def one_round(fault: str, plan: StormPlan, log_dir: Path) -> Outcome:
    with redis_server() as redis, kafka_broker() as kafka:
        prefix = f"bench{uuid.uuid4().hex[:8]}-"
        topics = Topics(commands=f"{prefix}booking-commands", events=f"{prefix}booking-events")
        await ensure_topics(kafka.url, topics, partitions=TEST_PARTITIONS)
        connections = Connections(redis_url=redis.url, kafka_bootstrap=kafka.url, topics=topics)
        return await run_fault(
            fault, connections, Servers(redis, kafka), log_dir, TEST_PARTITIONS, plan
        )


async def measure(faults: list[str], rounds: int, plan: StormPlan, logs: Path | None) -> None:
    with tempfile.TemporaryDirectory(prefix="fairq-bench-faults-") as tmp:
        for fault in faults:
            recoveries: dict[str, list[float | None]] = {k: [] for k in RECOVERY_KINDS}
            for i in range(rounds):
                outcome = await one_round(fault, plan, (logs or Path(tmp)) / f"{fault}-{i}")
                print(outcome.report(), flush=True)
                for kind, seconds in outcome.recovery_s().items():
                    recoveries[kind].append(seconds)
            if rounds > 1:
                print(f"{fault}, {rounds} rounds, recovery per kind (min-max):")
                for kind, values in recoveries.items():
                    got = [v for v in values if v is not None]
                    span = f"{min(got):.2f}-{max(got):.2f} s" if got else "none"
                    print(f"  {kind}: {span} ({len(got)} of {rounds} rounds)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fault", choices=list(FAULTS), action="append")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--visitors", type=int, default=StormPlan().visitors)
    parser.add_argument(
        "--logs", type=Path, help="keep the processes' logs here (default: a temporary directory)"
    )
    args = parser.parse_args()
    print_header("loadtest.bench_faults")
    plan = replace(StormPlan(), visitors=args.visitors)
    asyncio.run(measure(args.fault or list(FAULTS), args.rounds, plan, args.logs))


if __name__ == "__main__":
    main()
