"""Field readers that turn an untrusted mapping into typed values or raise SchemaError."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from schemas.errors import SchemaError

MAX_ID_LEN = 128
# the names an operator gives: campaigns, counties, centers, vaccines, rooms, groups
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def req_str(m: Mapping[str, Any], key: str, *, max_len: int = MAX_ID_LEN) -> str:
    value = m.get(key)
    if not isinstance(value, str) or not value:
        raise SchemaError(f"'{key}' must be a non-empty string")
    if len(value) > max_len:
        raise SchemaError(f"'{key}' is longer than {max_len} characters")
    return value


def req_ident(m: Mapping[str, Any], key: str) -> str:
    """A name an operator gives (``ID_PATTERN``): safe in keys, file names and headers."""
    value = m.get(key)
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise SchemaError(f"'{key}' must be a name matching {ID_PATTERN.pattern}")
    return value


def opt_ident(m: Mapping[str, Any], key: str) -> str | None:
    return None if m.get(key) is None else req_ident(m, key)


def opt_str(m: Mapping[str, Any], key: str, *, max_len: int = MAX_ID_LEN) -> str | None:
    if m.get(key) is None:
        return None
    return req_str(m, key, max_len=max_len)


def req_int(m: Mapping[str, Any], key: str, *, lo: int | None = None, hi: int | None = None) -> int:
    value = m.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise SchemaError(f"'{key}' must be an integer")
    if lo is not None and value < lo:
        raise SchemaError(f"'{key}' must be at least {lo}")
    if hi is not None and value > hi:
        raise SchemaError(f"'{key}' must be at most {hi}")
    return value


def opt_int(m: Mapping[str, Any], key: str) -> int | None:
    """An integer, or None when absent or null."""
    return None if m.get(key) is None else req_int(m, key)


def req_bool(m: Mapping[str, Any], key: str) -> bool:
    value = m.get(key)
    if not isinstance(value, bool):
        raise SchemaError(f"'{key}' must be a boolean")
    return value


def req_number(
    m: Mapping[str, Any], key: str, *, lo: float | None = None, hi: float | None = None
) -> float:
    value = m.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise SchemaError(f"'{key}' must be a number")
    if value != value or value in (float("inf"), float("-inf")):
        raise SchemaError(f"'{key}' must be a finite number")
    if lo is not None and value < lo:
        raise SchemaError(f"'{key}' must be at least {lo}")
    if hi is not None and value > hi:
        raise SchemaError(f"'{key}' must be at most {hi}")
    return float(value)


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


def req_list(m: Mapping[str, Any], key: str, *, max_len: int = 100_000) -> list[Any]:
    value = m.get(key)
    if not isinstance(value, list | tuple):
        raise SchemaError(f"'{key}' must be a list")
    if len(value) > max_len:
        raise SchemaError(f"'{key}' has more than {max_len} items")
    return list(value)


def req_map(m: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = m.get(key)
    if not isinstance(value, Mapping):
        raise SchemaError(f"'{key}' must be an object")
    if not all(isinstance(k, str) for k in value):
        raise SchemaError(f"'{key}' must have string keys")
    return value


def parse_date(value: Any, key: str) -> dt.date:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise SchemaError(f"'{key}' must be an ISO date (YYYY-MM-DD), got {value!r}")
    try:
        return dt.date.fromisoformat(value)
    except ValueError as e:
        raise SchemaError(f"'{key}' must be an ISO date (YYYY-MM-DD), got {value!r}") from e


def parse_datetime(value: Any, key: str) -> dt.datetime:
    """An ISO datetime with a UTC offset (``Z`` allowed), e.g. ``2026-12-01T08:00:00+01:00``."""
    if not isinstance(value, str) or len(value) > 64:
        raise SchemaError(f"'{key}' must be an ISO datetime with a UTC offset")
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise SchemaError(f"'{key}' is not an ISO datetime: {value!r}") from e
    if when.tzinfo is None:
        raise SchemaError(f"'{key}' needs a UTC offset, e.g. 'Z' or '+01:00'")
    return when


def opt_date(m: Mapping[str, Any], key: str) -> dt.date | None:
    if m.get(key) is None:
        return None
    return parse_date(m[key], key)


def only_keys(m: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = set(m) - allowed
    if unknown:
        names = ", ".join(sorted(str(k) for k in unknown))
        raise SchemaError(f"unknown field(s) in {where}: {names}")


# A time-of-day preference names a part of the local day a slot starts in.
TIMES_OF_DAY = ("morning", "afternoon", "evening")  # before 12:00, 12:00-16:59, from 17:00


def time_of_day_index(local_hour: int) -> int:
    """The index in ``TIMES_OF_DAY`` of a slot starting at ``local_hour`` (0..23)."""
    return 0 if local_hour < 12 else 1 if local_hour < 17 else 2


def opt_time_of_day(m: Mapping[str, Any], key: str) -> str | None:
    """An optional time-of-day preference: absent or null, or one of ``TIMES_OF_DAY``."""
    value = m.get(key)
    if value is None:
        return None
    if value not in TIMES_OF_DAY:
        raise SchemaError(f"'{key}' must be one of {', '.join(TIMES_OF_DAY)}, got {value!r}")
    return str(value)
