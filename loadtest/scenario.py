"""A launch scenario: the storm's shape, what the visitors do, what the launch offers,
and the service levels it must meet, read from a TOML file (``loadtest/scenarios``).

The file is declared once here as typed dataclasses; ``load`` reads it with
``tomllib`` and refuses a bad file with one sentence naming the table, the key and
what was wrong (an unknown key too: a misspelt service level must not pass
unjudged). Everything else (the locust load shape, the room and campaign the
rehearsal creates, the report's verdict) is derived from a ``Scenario``.

The storm, in click rates (requests per second of every visitor together):
``pre_opening_s`` before the opening the crowd gathers, growing linearly to
``pre_opening_clicks_per_s``; at the opening the rate jumps to
``opening_clicks_per_s``, ramps linearly to ``peak_clicks_per_s`` over ``ramp_s``,
stays there ``peak_s``, and falls to nothing over ``tail_s``. One simulated tab
clicks ``clicks_per_visitor_s`` times a second (the page polls its status every
``poll_s``), so the shape asks locust for rate / clicks_per_visitor_s users.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCENARIOS = Path(__file__).resolve().parent / "scenarios"


class ScenarioError(ValueError):
    """The scenario file cannot be used; the message says where and why."""


def _range(lo: float | None = None, hi: float | None = None) -> dict[str, float | None]:
    return {"lo": lo, "hi": hi}


SHARE = _range(0.0, 1.0)
POSITIVE = _range(lo=1e-9)
NON_NEGATIVE = _range(lo=0.0)


@dataclass(frozen=True, slots=True)
class Arrivals:
    pre_opening_s: float = field(metadata=NON_NEGATIVE)
    pre_opening_clicks_per_s: float = field(metadata=NON_NEGATIVE)
    opening_clicks_per_s: float = field(metadata=NON_NEGATIVE)
    ramp_s: float = field(metadata=NON_NEGATIVE)
    peak_clicks_per_s: float = field(metadata=POSITIVE)
    peak_s: float = field(metadata=NON_NEGATIVE)
    tail_s: float = field(metadata=NON_NEGATIVE)
    clicks_per_visitor_s: float = field(metadata=POSITIVE)

    @property
    def duration_s(self) -> float:
        return self.pre_opening_s + self.ramp_s + self.peak_s + self.tail_s

    def clicks_per_s(self, t_s: float) -> float | None:
        """The target click rate ``t_s`` after the start; None once the storm is over."""
        if t_s < self.pre_opening_s:
            return self.pre_opening_clicks_per_s * t_s / self.pre_opening_s
        t = t_s - self.pre_opening_s  # since the opening
        if t < self.ramp_s:
            rise = self.peak_clicks_per_s - self.opening_clicks_per_s
            return self.opening_clicks_per_s + rise * t / self.ramp_s
        t -= self.ramp_s
        if t < self.peak_s:
            return self.peak_clicks_per_s
        t -= self.peak_s
        if t < self.tail_s:
            return self.peak_clicks_per_s * (1.0 - t / self.tail_s)
        return None

    def users(self, t_s: float) -> int | None:
        """Locust users (tabs) for the click rate at ``t_s``; None once the storm is over."""
        rate = self.clicks_per_s(t_s)
        return None if rate is None else math.ceil(rate / self.clicks_per_visitor_s)


@dataclass(frozen=True, slots=True)
class Journey:
    """What the visitors do (shares of those who get that far)."""

    book_share: float = field(metadata=SHARE)  # admitted visitors who book (others leave)
    confirm_share: float = field(metadata=SHARE)  # of the holds
    cancel_share: float = field(metadata=SHARE)  # of the holds not confirmed (others expire)
    change_share: float = field(metadata=SHARE)  # of the confirmed pairs, moved to a new wish
    retry_share: float = field(metadata=SHARE)  # told sold out: retry on the waitlist
    code_share: float = field(metadata=SHARE)  # join with an access code
    poll_s: float = field(metadata=POSITIVE)  # the page's status poll
    booking_poll_s: float = field(metadata=POSITIVE)
    think_s: float = field(metadata=NON_NEGATIVE)  # mean time to fill in the form
    max_wait_s: float = field(metadata=POSITIVE)  # give up waiting in line after
    waitlist_wait_s: float = field(metadata=NON_NEGATIVE)


@dataclass(frozen=True, slots=True)
class Inventory:
    """The campaign the rehearsal loads: ``fairq.demo.small_campaign`` of this size."""

    counties: int = field(metadata=_range(1, 1000))
    centers_per_county: int = field(metadata=_range(1, 1000))
    places: int = field(metadata=_range(1, 10_000))  # per slot: pairs per center
    hold_s: int = field(metadata=_range(10, 86_400))

    @property
    def pairs(self) -> int:
        return self.counties * self.centers_per_county * self.places


@dataclass(frozen=True, slots=True)
class Room:
    rate_per_s: float = field(metadata=POSITIVE)
    max_active: int = field(metadata=_range(1))
    pow_difficulty: int = field(metadata=_range(0, 32))
    # the operator pauses admission this long after the opening, for pause_s (0: never)
    pause_after_opening_s: float = field(default=0.0, metadata=NON_NEGATIVE)
    pause_s: float = field(default=0.0, metadata=NON_NEGATIVE)
    # the operator lowers the cap on active bookers this long after the opening, for
    # cap_s (0: never), then sets max_active again: a stretch where the cap, not the
    # rate, holds admission back. Lowered to capped_max_active, or to capped_below_active
    # under the active bookers of that moment (at least 1): holding admission about where
    # it is, whoever stays long then (one of the two, not both)
    cap_after_opening_s: float = field(default=0.0, metadata=NON_NEGATIVE)
    cap_s: float = field(default=0.0, metadata=NON_NEGATIVE)
    capped_max_active: int = field(default=0, metadata=_range(0))
    capped_below_active: int = field(default=0, metadata=_range(0))

    def __post_init__(self) -> None:
        given = [n for n in ("capped_max_active", "capped_below_active") if getattr(self, n)]
        if self.cap_s and len(given) != 1:
            raise ScenarioError(
                "[room]: with cap_s, give one of capped_max_active and capped_below_active"
                + (", not both" if given else "")
            )

    def capped_to(self, active: int) -> int:
        """The cap the operator sets when ``active`` bookers are active."""
        if self.capped_below_active:
            return max(1, active - self.capped_below_active)
        return self.capped_max_active


@dataclass(frozen=True, slots=True)
class ServiceLevels:
    """What the launch must meet; the verdict judges each (the checks of the log and of
    the order of admission always count)."""

    max_failure_share: float = field(metadata=SHARE)  # failed requests of all
    p99_ms: dict[str, float]  # route (locust's request name) -> p99 over the run
    min_appointments_in_baskets_first_minute: int = field(metadata=NON_NEGATIVE)
    max_sold_out_notice_s: float = field(metadata=NON_NEGATIVE)
    max_estimate_error_p90: float = field(metadata=NON_NEGATIVE)  # relative
    max_click_to_held_p99_ms: float = field(metadata=POSITIVE)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    scale: float = field(metadata=_range(1e-6, 1.0))  # of the reference launch
    arrivals: Arrivals
    journey: Journey
    inventory: Inventory
    room: Room
    service_levels: ServiceLevels
    metrics: list[str] = field(default_factory=list)  # more /metrics URLs to scrape


def load(path: str | Path) -> Scenario:
    """The scenario in ``path`` (a name without a slash: ``loadtest/scenarios/NAME.toml``)."""
    p = Path(path)
    if p.suffix != ".toml" and "/" not in str(path):
        p = SCENARIOS / f"{path}.toml"
    try:
        table = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise ScenarioError(f"scenario {p}: cannot read it: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"scenario {p}: not valid TOML: {e}") from e
    try:
        scenario: Scenario = _build(Scenario, table, "")
        return scenario
    except ScenarioError as e:
        raise ScenarioError(f"scenario {p}: {e}") from e


def _build(cls: type[Any], table: Any, where: str) -> Any:
    """``cls`` from a TOML table, every value checked against its field's type and range."""
    label = f"[{where}]" if where else "the file"
    if not isinstance(table, dict):
        raise ScenarioError(f"{label} must be a table")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise ScenarioError(f"{label}: unknown key(s) {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in table:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ScenarioError(f"{label}: missing {name}")
            continue
        key = f"{where}.{name}" if where else name
        values[name] = _value(hints[name], table[name], key, f.metadata)
    return cls(**values)


def _value(kind: Any, value: Any, key: str, bounds: Any) -> Any:
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return _build(kind, value, key)
    origin = typing.get_origin(kind)
    if origin is dict:
        if not isinstance(value, dict):
            raise ScenarioError(f"{key} must be a table")
        return {str(k): _number(float, v, f"{key}.{k}", POSITIVE) for k, v in value.items()}
    if origin is list:
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise ScenarioError(f"{key} must be a list of strings")
        return list(value)
    if kind is str:
        if not isinstance(value, str):
            raise ScenarioError(f"{key} must be a string, got {value!r}")
        return value
    if kind in (int, float):
        return _number(kind, value, key, bounds)
    raise ScenarioError(f"{key}: unsupported type {kind}")


def _number(kind: type, value: Any, key: str, bounds: Any) -> float | int:
    ok = isinstance(value, int) if kind is int else isinstance(value, int | float)
    if isinstance(value, bool) or not ok:
        raise ScenarioError(f"{key} must be {'an integer' if kind is int else 'a number'}")
    lo, hi = bounds.get("lo"), bounds.get("hi")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        shown = f"{'' if lo is None else lo}..{'' if hi is None else hi}"
        raise ScenarioError(f"{key} must be in {shown}, got {value}")
    return int(value) if kind is int else float(value)
