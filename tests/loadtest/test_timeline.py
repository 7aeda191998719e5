"""The client side's timeline: per-second percentiles, merged reports, estimate errors."""

from __future__ import annotations

from dataclasses import dataclass, field

from loadtest.timeline import Timeline, percentile


@dataclass
class Seen:
    joined_at: float
    admitted_at: float | None = None
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


def test_an_estimate_is_judged_against_the_wait_it_then_had() -> None:
    t = Timeline()
    t.visits(
        [
            Seen(0.0, admitted_at=100.0, estimates=[(0.0, 50.0), (60.0, 40.0)]),
            Seen(0.0, sold_out_at=30.0, estimates=[(0.0, 10.0)]),  # never admitted: no wait had
        ]
    )
    assert t.estimate_errors == [(0.0, 0.5, 100.0), (60.0, 0.0, 100.0)]
    assert t.sold_out_at == [(0.0, 30.0)]
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
