"""Recovery times after each fault of the fault suite, and what was answered meanwhile.

Runs the scenarios of ``tests/test_faults.py`` (the same harness, ``tests.faults``)
outside pytest, each on a fresh redis-server and Tansu broker of its own, and prints
for each: the answers during the fault and its recovery, the recovery time of each
kind of answer (from the fault's end: the resume, or the restarted process spawned;
to the first success of a request sent since the fault began), and every invariant
the storm broke. The cluster faults (``broker_node_kill``, ``broker_node_pause``) run
on three Apache Kafka brokers (replication 3, ``min.insync.replicas`` 2), as in
``test_every_promise_holds_when_one_broker_of_three_is_lost``; over several rounds
the median of how long answers paused is printed (the goal: under 10 s). Run it
from the repository's root (it imports ``tests``):

    python -m loadtest.bench_faults [--fault allocator_kill ...] [--rounds N] [--logs DIR]
    python -m loadtest.bench_faults --fault broker_node_kill --fault broker_node_pause --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import uuid
from dataclasses import replace
from pathlib import Path

from fairq.config import Connections, Kafka, KafkaTimeouts, Topics
from fairq.devservices import kafka_broker, kafka_cluster, redis_server
from fairq.topics import ensure_topics
from loadtest.bench_allocator_core import print_header
from tests.conftest import TEST_PARTITIONS
from tests.faults import (
    CLUSTER_FAULTS,
    FAULTS,
    RECOVERY_KINDS,
    Outcome,
    Servers,
    run_cluster_fault,
    run_fault,
)
from tests.storm import StormPlan

# How long answers paused, per kind of wait (``Outcome.longest_wait_s``).
PAUSED_KINDS = {"answer": "booking to the allocator's answer", "book": "book request"}


async def one_round(fault: str, plan: StormPlan, log_dir: Path, timeouts: KafkaTimeouts) -> Outcome:
    if fault in CLUSTER_FAULTS:
        return await cluster_round(fault, plan, log_dir, timeouts)
    with redis_server() as redis, kafka_broker() as kafka:
        prefix = f"bench{uuid.uuid4().hex[:8]}-"
        topics = Topics(commands=f"{prefix}booking-commands", events=f"{prefix}booking-events")
        await ensure_topics(Kafka(kafka.url), topics, partitions=TEST_PARTITIONS)
        connections = Connections(redis.url, kafka.url, topics, kafka_timeouts=timeouts)
        return await run_fault(
            fault, connections, Servers(redis, kafka), log_dir, TEST_PARTITIONS, plan
        )


async def cluster_round(
    fault: str, plan: StormPlan, log_dir: Path, timeouts: KafkaTimeouts
) -> Outcome:
    with redis_server() as redis, kafka_cluster(nodes=3) as cluster:
        return await run_cluster_fault(
            fault, redis, cluster, log_dir, TEST_PARTITIONS, plan, timeouts
        )


async def measure(
    faults: list[str], rounds: int, plan: StormPlan, logs: Path | None, timeouts: KafkaTimeouts
) -> None:
    with tempfile.TemporaryDirectory(prefix="fairq-bench-faults-") as tmp:
        for fault in faults:
            recoveries: dict[str, list[float | None]] = {k: [] for k in RECOVERY_KINDS}
            paused: dict[str, list[float]] = {k: [] for k in PAUSED_KINDS}
            for i in range(rounds):
                outcome = await one_round(
                    fault, plan, (logs or Path(tmp)) / f"{fault}-{i}", timeouts
                )
                print(outcome.report(), flush=True)
                for kind, seconds in outcome.recovery_s().items():
                    recoveries[kind].append(seconds)
                for kind in PAUSED_KINDS:
                    paused[kind].append(outcome.longest_wait_s(kind))
            if rounds > 1:
                print(f"{fault}, {rounds} rounds, recovery per kind (min-max):")
                for kind, values in recoveries.items():
                    got = [v for v in values if v is not None]
                    span = f"{min(got):.2f}-{max(got):.2f} s" if got else "none"
                    print(f"  {kind}: {span} ({len(got)} of {rounds} rounds)")
            print(
                f"{fault}, {rounds} round(s), answers paused (median, min-max): "
                + "; ".join(
                    f"{PAUSED_KINDS[k]} {statistics.median(v):.2f} s ({min(v):.2f}-{max(v):.2f})"
                    for k, v in paused.items()
                ),
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fault", choices=[*FAULTS, *CLUSTER_FAULTS], action="append")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--visitors", type=int, default=StormPlan().visitors)
    parser.add_argument(
        "--logs", type=Path, help="keep the processes' logs here (default: a temporary directory)"
    )
    parser.add_argument(
        "--request-timeout-ms",
        type=int,
        default=KafkaTimeouts().request_timeout_ms,
        help="every Kafka client's (FAIRQ_KAFKA_REQUEST_TIMEOUT_MS; aiokafka's own: 40000)",
    )
    parser.add_argument(
        "--metadata-max-age-ms",
        type=int,
        default=KafkaTimeouts().metadata_max_age_ms,
        help="every Kafka client's (FAIRQ_KAFKA_METADATA_MAX_AGE_MS; aiokafka's own: 300000)",
    )
    args = parser.parse_args()
    print_header("loadtest.bench_faults")
    timeouts = replace(
        KafkaTimeouts(),
        request_timeout_ms=args.request_timeout_ms,
        metadata_max_age_ms=args.metadata_max_age_ms,
    )
    print(f"Kafka clients: {timeouts}")
    plan = replace(StormPlan(), visitors=args.visitors)
    asyncio.run(measure(args.fault or list(FAULTS), args.rounds, plan, args.logs, timeouts))


if __name__ == "__main__":
    main()
