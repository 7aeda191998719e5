"""Bound: one range, its check and its words."""

from __future__ import annotations

from typing import Any

import pytest

from schemas import SchemaError
from schemas.fields import Bound, number_text

RATE = Bound(0.01, 1_000_000, zero="admit nobody")
HOLD = Bound(60, 86_400, integer=True)


def test_describe_says_the_range_and_what_zero_means() -> None:
    assert HOLD.describe() == "an integer from 60 to 86400"
    assert RATE.describe() == "0 (admit nobody) or a number from 0.01 to 1000000"


@pytest.mark.parametrize("value", [0, 0.01, 1, 1_000_000])
def test_a_number_in_range_is_read(value: float) -> None:
    assert RATE.read_number({"rate_per_s": value}, "rate_per_s") == value


@pytest.mark.parametrize(
    "value", [3e-45, 0.005, -0.0001, -1, 1_000_000.5, float("inf"), float("nan"), True, "1", None]
)
def test_a_number_out_of_range_or_not_a_number_is_refused_naming_field_and_range(
    value: Any,
) -> None:
    with pytest.raises(SchemaError) as refused:
        RATE.read_number({"rate_per_s": value}, "rate_per_s")
    assert refused.value.message.startswith(f"'rate_per_s' must be {RATE.describe()}")


@pytest.mark.parametrize("value", [59, 86_401, 60.0, 600.5, False, "600"])
def test_an_integer_field_takes_integers_in_range_only(value: Any) -> None:
    with pytest.raises(SchemaError, match=r"'hold_s' must be an integer from 60 to 86400"):
        HOLD.read_int({"hold_s": value}, "hold_s")
    assert HOLD.read_int({"hold_s": 60}, "hold_s") == 60
    assert HOLD.read_number({"hold_s": 86_400}, "hold_s") == 86_400


def test_the_message_quotes_the_value_as_written() -> None:
    with pytest.raises(SchemaError, match=r", got 3e-45$"):
        RATE.check("rate_per_s", 3e-45)
    assert [number_text(v) for v in (60, 60.0, 0.01, 2**31, 1e300)] == [
        "60",
        "60",
        "0.01",
        "2147483648",
        "1e+300",
    ]


def test_a_bound_is_a_range() -> None:
    with pytest.raises(ValueError):
        Bound(10, 1)
    with pytest.raises(ValueError):
        Bound(0, 1, zero="off")  # 0 is in the range already
