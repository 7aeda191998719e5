"""The fault suite: every promise holds through a crash, a pause or a restart.

Each scenario (``tests.faults``) storms the whole path in processes with a few
hundred visitors and injects one fault mid-storm: the allocator SIGKILLed and
restarted, Redis paused 10 s, the broker paused 15 s, a gateway SIGKILLed and
restarted. Afterwards, read from the log itself: every accepted booking has one
history ending in one final state, the visitors were told that state, no booking
is in the log that nobody was told of, no slot is over capacity, nobody holds two
pairs, every pair is whole, no Book was refused while a pair was free; and every
HTTP answer was a success, a 4xx with a JSON error, or a 503 with ``Retry-After``
(never a 500). ``-s`` prints the answers during the fault and the recovery times.

Each scenario runs on a Redis and a broker of its own (the fixtures below override
the session's), so pausing them disturbs no other test; each runs on Tansu and on
Apache Kafka. Durability under a lost broker: on a cluster of three Apache Kafka
brokers (topics with three replicas, two in sync), the broker leading the commands
topic's partition 0 is SIGKILLed, or stopped for 30 s, mid-storm: the same checks
hold, and the report says how long answers paused (the goal: under 10 s).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fairq.config import Connections
from fairq.devservices import KafkaCluster, Server, kafka_cluster, redis_server
from tests.conftest import TEST_PARTITIONS, Broker, own_broker
from tests.faults import CLUSTER_FAULTS, FAULTS, Outcome, Servers, run_cluster_fault, run_fault

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


@pytest.fixture
def redis_srv() -> Iterator[Server]:
    with redis_server() as server:
        yield server


@pytest.fixture
def kafka_srv(broker: Broker) -> Iterator[Server]:
    with own_broker(broker) as server:
        yield server


@pytest.fixture
def cluster() -> Iterator[KafkaCluster]:
    with kafka_cluster(nodes=3) as c:
        yield c


def judge(outcome: Outcome) -> None:
    report = outcome.report()
    print(report)
    assert outcome.sold_out(), f"the storm did not sell the campaign out:\n{report}"
    broken = {check: items for check, items in outcome.violations().items() if items}
    assert not broken, report


@pytest.mark.both_brokers
@pytest.mark.parametrize("fault", list(FAULTS))
async def test_every_promise_holds_through(
    fault: str,
    connections: Connections,
    redis_srv: Server,
    kafka_srv: Server,
    tmp_path: Path,
) -> None:
    outcome = await run_fault(
        fault, connections, Servers(redis_srv, kafka_srv), tmp_path, TEST_PARTITIONS
    )
    judge(outcome)


@pytest.mark.kafka
@pytest.mark.timeout(300)
@pytest.mark.parametrize("fault", list(CLUSTER_FAULTS))
async def test_every_promise_holds_when_one_broker_of_three_is_lost(
    fault: str, redis_srv: Server, cluster: KafkaCluster, tmp_path: Path
) -> None:
    judge(await run_cluster_fault(fault, redis_srv, cluster, tmp_path, TEST_PARTITIONS))
