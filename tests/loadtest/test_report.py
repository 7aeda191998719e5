"""The report's measures (the end-to-end run is tests/loadtest/test_rehearse.py)."""

from __future__ import annotations

from loadtest.report import in_baskets_first_minute, sold_out_notice_s


def test_sold_out_notice_counts_those_waiting_when_the_last_pair_went() -> None:
    held = [10.0, 20.0, 200.0]  # 200: an offer from the waitlist after a cancellation
    told = [(5.0, 21.0), (19.0, 24.5), (150.0, 150.5)]  # (joined, told); 150 came later
    assert sold_out_notice_s(held, told) == 4.5
    assert sold_out_notice_s(held, []) is None


def test_baskets_of_the_first_minute() -> None:
    assert in_baskets_first_minute([99.0, 100.0, 159.9, 160.0], opens_at=100.0) == 2
