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
the session's), so pausing them disturbs no other test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fairq.config import Connections
from fairq.devservices import Server, kafka_broker, redis_server
from tests.conftest import TEST_PARTITIONS
from tests.faults import FAULTS, Servers, run_fault

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


@pytest.fixture
def redis_srv() -> Iterator[Server]:
    with redis_server() as server:
        yield server


@pytest.fixture
def kafka_srv() -> Iterator[Server]:
    with kafka_broker() as server:
        yield server


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
    report = outcome.report()
    print(report)
    assert outcome.sold_out(), f"the storm did not sell the campaign out:\n{report}"
    broken = {check: items for check, items in outcome.violations().items() if items}
    assert not broken, report
