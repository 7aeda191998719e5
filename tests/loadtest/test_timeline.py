"""The client side's timeline: per-second percentiles, merged reports, the estimates."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from loadtest.timeline import Timeline, percentile


@dataclass
class Seen:
    joined_at: float
    admitted_at: float | None = None
    place: int | None = None
    sold_out_at: float | None = None
    estimates: list[tuple[float, float]] = field(default_factory=list)


def test_each_second_has_its_percentiles_and_workers_merge() -> None:
    worker = Timeline()
    for ms in range(1, 101):
        worker.request(1000.2, "status", float(ms), failed=ms > 98)
    worker.request(1001.9, "status", 5.0, failed=False)
    master = Timeline()
    master.add(worker.take())
    assert worker.latencies == {}
    rows = master.summary()["routes"]["status"]
    assert [r["t"] for r in rows] == [1000.0, 1001.0]
    assert (rows[0]["n"], rows[0]["failures"], rows[0]["p50"], rows[0]["p99"]) == (100, 2, 50, 99)
    assert master.summary()["totals"]["status"]["n"] == 101


def test_the_estimates_of_admitted_visits_go_to_the_master_with_their_place() -> None:
    """What the report needs to judge an estimate (it has the room's cursor): when it was
    shown, the wait, the visitor's place (None: not known) and when it saw itself admitted."""
    worker = Timeline()
    worker.visits(
        [
            Seen(0.0, admitted_at=100.0, place=7, estimates=[(0.0, 50.0), (60.0, 40.0)]),
            Seen(0.0, admitted_at=90.0, estimates=[(60.0, 30.0)]),  # no place known
            Seen(0.0, sold_out_at=30.0, estimates=[(0.0, 10.0)]),  # never admitted: no wait had
        ]
    )
    shipped = [(0.0, 50.0, 7, 100.0), (60.0, 40.0, 7, 100.0), (60.0, 30.0, None, 90.0)]
    assert worker.estimates == shipped
    master = Timeline()
    master.add(json.loads(json.dumps(worker.take())))  # lists on the way, as in msgpack
    assert worker.estimates == [] and master.estimates == shipped
    assert master.summary()["estimates"] == [shipped[0], shipped[2], shipped[1]]
    assert master.sold_out_at == [(0.0, 30.0)]
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
