"""The gateway's readers of HTTP body fields: an untrusted mapping to typed values, or
SchemaError naming the field. The Kafka messages and the campaign document are msgspec
types (``schemas.message``, ``schemas.campaign``) and read nothing here."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from schemas.errors import SchemaError
from schemas.states import TIMES_OF_DAY as TIMES_OF_DAY  # re-exported for the gateway
from schemas.states import TimeOfDay
from schemas.types import ID_PATTERN_TEXT, MAX_ID_LEN

# the names an operator gives: campaigns, counties, centers, vaccines, rooms, groups
ID_PATTERN = re.compile(ID_PATTERN_TEXT)
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


def req_bool(m: Mapping[str, Any], key: str) -> bool:
    value = m.get(key)
    if not isinstance(value, bool):
        raise SchemaError(f"'{key}' must be a boolean")
    return value


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


def opt_time_of_day(m: Mapping[str, Any], key: str) -> TimeOfDay | None:
    """An optional time-of-day preference: absent or null, or one of ``TIMES_OF_DAY``."""
    value = m.get(key)
    if value is None:
        return None
    if value not in TIMES_OF_DAY:
        raise SchemaError(f"'{key}' must be one of {', '.join(TIMES_OF_DAY)}, got {value!r}")
    return TimeOfDay(value)
