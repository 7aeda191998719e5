"""What is left beside the msgspec types: the operators' names pattern, a number's
range (``Bound``: checked, worded and documented from one table, ``gateway.bounds``) and
a date in a query string. Bodies and messages are decoded by their msgspec types
(``gateway.contracts``, ``schemas.message``, ``schemas.campaign``)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from schemas.errors import SchemaError
from schemas.types import ID_PATTERN_TEXT

# the names an operator gives: campaigns, counties, centers, vaccines, rooms, groups
ID_PATTERN = re.compile(ID_PATTERN_TEXT)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True, slots=True)
class Bound:
    """The range a number must lie in: ``lo`` to ``hi``, and 0 as well when ``zero``
    says what 0 means below a ``lo`` above it (e.g. ``"admit nobody"``).

    One object is both the check and the text that quotes it (``describe``), so a
    range is written once and every message and document derived from it agree.
    """

    lo: float
    hi: float
    integer: bool = False
    zero: str | None = None

    def __post_init__(self) -> None:
        if self.lo > self.hi or (self.zero is not None and self.lo <= 0):
            raise ValueError(f"not a range (or 0 in it already): {self}")

    def describe(self) -> str:
        """The range in words, e.g. ``"0 (admit nobody) or a number from 0.01 to 1000000"``."""
        kind = "an integer" if self.integer else "a number"
        span = f"{kind} from {number_text(self.lo)} to {number_text(self.hi)}"
        return span if self.zero is None else f"0 ({self.zero}) or {span}"

    def holds(self, value: float) -> bool:
        return self.lo <= value <= self.hi or (value == 0 and self.zero is not None)

    def check(self, key: str, value: float) -> None:
        """SchemaError naming ``key`` and the range unless ``value`` lies in it."""
        if not self.holds(value):
            raise SchemaError(f"'{key}' must be {self.describe()}, got {number_text(value)}")

    def read_int(self, m: Mapping[str, Any], key: str) -> int:
        """``m[key]`` as an integer in range (an integer bound only)."""
        if not self.integer:
            raise TypeError(f"'{key}' is not an integer field")
        value = m.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise SchemaError(f"'{key}' must be {self.describe()}")
        self.check(key, value)
        return value

    def read_number(self, m: Mapping[str, Any], key: str) -> float:
        """``m[key]`` as a finite number in range (an integer bound takes integers only)."""
        if self.integer:
            return self.read_int(m, key)
        value = m.get(key)
        if not isinstance(value, int | float) or isinstance(value, bool) or value != value:
            raise SchemaError(f"'{key}' must be {self.describe()}")
        self.check(key, value)  # no infinity lies in a range
        return float(value)


def number_text(value: float) -> str:
    """A number as people write it: ``60``, ``0.01``, ``1000000``, ``3e-45``."""
    if isinstance(value, int) or (value == value and value.is_integer() and abs(value) < 1e16):
        return str(int(value))
    return repr(value)


def parse_date(value: Any, key: str) -> dt.date:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise SchemaError(f"'{key}' must be an ISO date (YYYY-MM-DD), got {value!r}")
    try:
        return dt.date.fromisoformat(value)
    except ValueError as e:
        raise SchemaError(f"'{key}' must be an ISO date (YYYY-MM-DD), got {value!r}") from e
