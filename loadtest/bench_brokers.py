"""How long each development broker takes to start and stop, and its memory.

Tansu (``fairq.devservices.kafka_broker``) and Apache Kafka in KRaft mode
(``fairq.devservices.kafka_cluster``, one node and three), each from nothing to
ready (Kafka: storage formatted, the JVMs started, every node logged that it
started) and back. Not a test; run it (Kafka needs ``make kafka-libs``):

    python -m loadtest.bench_brokers [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import psutil

from fairq.devservices import Server, kafka_broker, kafka_cluster
from loadtest.bench_allocator_core import print_header


@contextlib.contextmanager
def _tansu() -> Iterator[tuple[Server, ...]]:
    with kafka_broker() as server:
        yield (server,)


@contextlib.contextmanager
def _kafka(nodes: int) -> Iterator[tuple[Server, ...]]:
    with kafka_cluster(nodes=nodes) as cluster:
        yield cluster.nodes


def measure(name: str, start: Callable[[], AbstractContextManager[tuple[Server, ...]]]) -> None:
    began = time.perf_counter()
    with start() as servers:
        ready = time.perf_counter() - began
        rss = [psutil.Process(s.process.pid).memory_info().rss / 2**20 for s in servers]
        stopping = time.perf_counter()
    stopped = time.perf_counter() - stopping
    memory = ", ".join(f"{r:.0f}" for r in rss)
    print(f"{name:<16} ready {ready:5.2f} s   stopped {stopped:5.2f} s   RSS {memory} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print_header("loadtest.bench_brokers")
    for _ in range(args.rounds):
        measure("tansu", _tansu)
        measure("kafka, 1 node", lambda: _kafka(1))
        measure("kafka, 3 nodes", lambda: _kafka(3))


if __name__ == "__main__":
    main()
