"""The report's measures (the end-to-end run is tests/loadtest/test_rehearse.py)."""

from __future__ import annotations

import dataclasses
import html

from loadtest.report import (
    Cursor,
    Run,
    admission_time,
    in_baskets_first_minute,
    judge,
    render,
    sold_out_notice_s,
)
from loadtest.scenario import load
from loadtest.timeline import Timeline
from tests.loadtest.test_timeline import Seen


def test_sold_out_notice_counts_those_waiting_when_the_last_pair_went() -> None:
    held = [10.0, 20.0, 200.0]  # 200: an offer from the waitlist after a cancellation
    told = [(5.0, 21.0), (19.0, 24.5), (150.0, 150.5)]  # (joined, told); 150 came later
    assert sold_out_notice_s(held, told) == 4.5
    assert sold_out_notice_s(held, []) is None


def test_baskets_of_the_first_minute() -> None:
    assert in_baskets_first_minute([99.0, 100.0, 159.9, 160.0], opens_at=100.0) == 2


def test_a_place_is_reached_in_proportion_between_the_scrapes_around_it() -> None:
    # a gap (no gateway answered at 12) is stepped over; 6 then 5 at 13-14 is a gateway
    # behind the others answering alone: the cursor never goes back
    cursor = Cursor.scraped([10.0, 11.0, 12.0, 13.0, 14.0, 15.0], [0, 4, None, 12, 11, 16])
    assert cursor.reached(2) == 10.5
    assert cursor.reached(4) == 11.0  # exactly at a scrape: then
    assert cursor.reached(8) == 12.0  # across the gap: 11 to 13
    assert cursor.reached(14) == 14.5  # from 12 (not 11) at 14
    assert cursor.reached(17) is None  # never reached while scraped
    assert cursor.reached(0) is None  # reached before the first scrape: when, unknown
    assert Cursor.scraped([], []).reached(1) is None


def test_the_admission_is_the_cursors_but_never_after_the_visitor_saw_it() -> None:
    cursor = Cursor.scraped([10.0, 11.0], [0, 10])
    # the cursor reached place 5 at 10.5; the visitor, polling, saw it at 12.9
    assert admission_time(cursor, place=5, seen_at=12.9, last_waiting=9.0) == (10.5, True)
    # the scrapes a second apart cannot beat what the visitor was told
    assert admission_time(cursor, place=5, seen_at=10.2, last_waiting=9.0) == (10.2, True)
    assert admission_time(cursor, place=5, seen_at=12.9, last_waiting=10.8) == (10.8, True)
    # no place, or a place never reached while scraped: the moment seen (and said so)
    assert admission_time(cursor, place=None, seen_at=12.9, last_waiting=9.0) == (12.9, False)
    assert admission_time(cursor, place=11, seen_at=12.9, last_waiting=9.0) == (12.9, False)


def run_of(*visits: Seen, capped: tuple[float, float] | None = None) -> Run:
    """A run of the ci scenario opened at 1000.0 whose visits are ``visits``, its cursor
    scraped every second from then on, 5 places a second (place 5k reached at 1000 + k)."""
    timeline = Timeline()
    timeline.visits(visits)
    return Run(
        scenario=load("ci"),
        host="http://gateway",
        started_at=996.0,
        opens_at=1000.0,
        timeline=timeline.summary(),
        outcomes={},
        scrape={
            "t": [1000.0 + k for k in range(16)],
            "series": {"admissions": [5.0 * k for k in range(16)]},
        },
        log_findings=None,
        log_note="",
        capped=capped,
    )


def test_an_estimate_right_to_the_second_scores_no_error_though_seen_late() -> None:
    """The visitor polled and saw its admission 2.9 s after the cursor reached its place:
    its estimates, right about that moment, are judged right; the visit without a place is
    judged against its poll, and the report says for how many that was."""
    run = run_of(  # the cursor reaches place 30 at 1006.0; the visitor saw it at 1008.9
        Seen(990.0, admitted_at=1008.9, place=30, estimates=[(1002.0, 4.0), (1004.0, 2.0)]),
        Seen(1000.0, admitted_at=1013.0, estimates=[(1010.0, 3.0)]),  # no place: its poll
    )
    report = judge(run)
    [level] = [lv for lv in report.levels if lv.name.startswith("estimated wait")]
    told = "admission time from the room's cursor for 2 of 3 estimates"
    assert level.measured.startswith("0% (median 0%;") and told in level.measured, level
    assert level.met
    assert [j.error for j in report.estimates] == [0.0, 0.0, 0.0]
    assert [j.by_cursor for j in report.estimates] == [True, True, False]
    page = render(report)
    assert html.escape(f"{told}; the rest from the visitor's own poll") in page


def test_estimates_an_operators_change_of_the_cap_overtook_are_shown_apart() -> None:
    """An estimate shown before the operator raised the cap again, for a wait that ended
    after it, cannot have foreseen it: it is shown in its own phase and the level judges
    the others; one shown under the cap for a wait that ended before is judged."""
    run = run_of(  # the cursor reaches place 30 at 1006.0, place 60 at 1012.0
        Seen(990.0, admitted_at=1006.0, place=30, estimates=[(1002.0, 4.0)]),  # right
        Seen(990.0, admitted_at=1012.0, place=60, estimates=[(1004.0, 40.0)]),  # 400 %
        capped=(990.0, 1008.0),  # lowered before both were shown, raised during the second
    )
    report = judge(run)
    [level] = [lv for lv in report.levels if lv.name.startswith("estimated wait")]
    assert level.met and level.measured.startswith("0% (median 0%; the 1 of 2 estimates"), level
    phases = [j.phase for j in report.estimates]
    assert phases[1] == "the wait crossed the operator's change of the cap"
    assert phases[0] != phases[1]
    page = render(report)
    assert "the wait crossed the operator&#x27;s change of the cap" in page


def test_a_level_without_estimates_says_why() -> None:
    crossed = run_of(
        Seen(990.0, admitted_at=1012.0, place=60, estimates=[(1004.0, 8.0)]),
        capped=(1005.0, 1030.0),  # lowered while it waited
    )
    old = dataclasses.replace(crossed, timeline={"estimate_errors": [[1004.0, 0.1, 1012.0]]})
    for run, why in (
        (crossed, "none of the 1 estimates: an operator's decision crossed every wait"),
        (old, "recorded in an older form (timeline.estimate_errors): not judged again"),
    ):
        [level] = [lv for lv in judge(run).levels if lv.name.startswith("estimated wait")]
        assert (level.measured, level.met) == (why, False)
