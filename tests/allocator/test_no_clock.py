"""The allocator's core reads no clock: its time is the log's (``allocator.core``).

Most allocator tests run at log times in 2030, later than the wall clock: a core that
took ``max(log time, wall clock)`` would pass them all. So here the core runs with
every clock of ``time`` and ``datetime`` refusing to be read, at log times in the
past (as on a live partition, whose records were written moments ago), and the
modules it imports are checked for clock reads it might make on paths no test takes.
"""

from __future__ import annotations

import ast
import contextlib
import datetime as dt
import importlib.util
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocator.core import Allocator
from schemas.commands import Tick
from schemas.events import Confirmed, Expired, Held
from tests.allocator import Log, add, book, confirm, daily, slot_ids
from tests.allocator.test_core_properties import (
    Record,
    busy_logs,
    logs,
    reserve_logs,
    shared_day_logs,
)
from tests.allocator.test_move_across_counties import actions, play

# clocks of the time module (a process clock measures no date: not among them)
TIME_CLOCKS = (
    "time",
    "time_ns",
    "monotonic",
    "monotonic_ns",
    "perf_counter",
    "perf_counter_ns",
    "localtime",
    "gmtime",
    "ctime",
)
DATETIME_CLOCKS = ("now", "utcnow", "today")  # of datetime.datetime and datetime.date
CORE = "allocator.core"
OWN_PACKAGES = ("allocator", "schemas")


class ClockRead(AssertionError):
    """The allocator's core read a clock."""


@contextlib.contextmanager
def clocks_refused() -> Iterator[list[str]]:
    """Every clock of ``time`` and ``datetime`` raises ClockRead while inside; the
    clocks read are listed too (in case a caller swallowed the exception)."""
    read: list[str] = []

    def refuse(name: str) -> Callable[..., Any]:
        def clock(*args: Any, **kwargs: Any) -> Any:
            read.append(name)
            raise ClockRead(f"the allocator's core read the clock {name}")

        return clock

    class Date(dt.date):
        today = classmethod(refuse("date.today"))

    class DateTime(dt.datetime):
        now = classmethod(refuse("datetime.now"))
        utcnow = classmethod(refuse("datetime.utcnow"))
        today = classmethod(refuse("datetime.today"))

    patched: list[tuple[Any, str, Any]] = [
        *((time, name, refuse(f"time.{name}")) for name in TIME_CLOCKS),
        (dt, "date", Date),
        (dt, "datetime", DateTime),
    ]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patched]
    for owner, name, value in patched:
        setattr(owner, name, value)
    try:
        yield read
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


def test_the_clocks_are_refused_inside_and_back_after() -> None:
    """The check itself: a clock read inside fails, outside it works."""
    with clocks_refused() as read:
        for clock in (time.time, time.monotonic, dt.datetime.now, dt.date.today):
            with contextlib.suppress(ClockRead):
                clock()
    assert read == ["time.time", "time.monotonic", "datetime.now", "date.today"]
    assert time.time() > 0 and dt.datetime.now().year > 2000


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    records=st.one_of(logs(), busy_logs(), reserve_logs(), shared_day_logs()),
    split=st.integers(0, 60),
)
def test_the_core_reads_no_clock_on_any_log(records: list[Record], split: int) -> None:
    """Books, confirms, cancels, moves, waitlists, reserves, removals, ticks, a snapshot
    and its restore: none reads a clock."""
    with clocks_refused() as read:
        core = Allocator()
        for record in records[:split]:
            core.apply(*record)
        core = Allocator.restore(core.snapshot())
        for record in records[split:]:
            core.apply(*record)
        list(core.summaries())
    assert read == []


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions=actions, capacity=st.integers(1, 2))
def test_moves_across_partitions_read_no_clock(
    actions: list[tuple[Any, ...]], capacity: int
) -> None:
    with clocks_refused() as read:
        play(actions, capacity)
    assert read == []


def test_holds_run_by_the_log_time_also_when_it_is_the_past() -> None:
    """At log times an hour before now (records written a while ago, replayed after a
    restart): the hold is the log's 600 s, neither the wall clock's nor cut short by it."""
    start_ms = int(time.time() * 1000) - 3_600_000
    log = Log(now_ms=start_ms)
    log(add("a1", "north", "c1", daily(range(30))))
    first = log.held(book("b1", "k1", "ann", "north", hold_s=600))
    assert (first.at_ms, first.hold_expires_at_ms) == (start_ms, start_ms + 600_000)
    expiry = first.hold_expires_at_ms
    confirmed = log.one(confirm("f1", "k1"), at_ms=expiry - 1)  # long past on the wall clock
    assert isinstance(confirmed, Confirmed) and confirmed.at_ms == expiry - 1
    second = log.held(book("b2", "k2", "bob", "north", hold_s=600))
    assert second.hold_expires_at_ms == expiry - 1 + 600_000
    assert [e for e in log(Tick("t1"), at_ms=expiry + 599_998) if isinstance(e, Expired)] == []
    (expired,) = [e for e in log(Tick("t2"), at_ms=expiry + 599_999) if isinstance(e, Expired)]
    assert (expired.booking_id, expired.at_ms) == ("k2", expiry + 599_999)
    third = log.held(book("b3", "k3", "cid", "north"))
    assert slot_ids(third) == slot_ids(second)  # k2's pair came back
    assert isinstance(third, Held)


# -- the modules, read ---------------------------------------------------------------------


def module_path(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.origin is not None, name
    return Path(spec.origin)


def own_imports(tree: ast.Module) -> set[str]:
    """The project modules (of OWN_PACKAGES) a module imports, also inside functions."""
    found: set[str] = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        found |= {n for n in names if n.split(".")[0] in OWN_PACKAGES}
    return found


def core_modules() -> dict[str, ast.Module]:
    """``allocator.core`` and every project module it imports, directly or not."""
    trees: dict[str, ast.Module] = {}
    todo = [CORE]
    while todo:
        name = todo.pop()
        if name in trees:
            continue
        trees[name] = ast.parse(module_path(name).read_text(), filename=name)
        todo += own_imports(trees[name])
    return trees


def clock_reads(tree: ast.Module) -> list[str]:
    """What in a module could read a clock: importing ``time`` (or anything from it), or
    calling a ``now``/``utcnow``/``today`` of anything (``datetime.now()``, ``date.today()``)."""
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] == "time"]
        elif isinstance(node, ast.ImportFrom) and node.module == "time":
            found.append(f"from time import ... (line {node.lineno})")
        elif isinstance(node, ast.ImportFrom) and node.module == "datetime":
            found += [
                f"from datetime import {a.name} (line {node.lineno})"  # then called bare
                for a in node.names
            ]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in DATETIME_CLOCKS
        ):
            found.append(f".{node.func.attr}() (line {node.lineno})")
    return found


def test_the_core_and_what_it_imports_read_no_clock() -> None:
    modules = core_modules()
    assert {"allocator.core", "allocator.inventory", "allocator.snapshot"} <= set(modules)
    reads = {name: found for name, tree in modules.items() if (found := clock_reads(tree))}
    assert reads == {}


def test_the_reading_finds_a_clock_read() -> None:
    """The check itself, on code that reads clocks in each way it looks for."""
    code = "import time\nfrom datetime import date\nx = dt.datetime.now()\ny = date.today()\n"
    assert clock_reads(ast.parse(code)) == [
        "import time",
        "from datetime import date (line 2)",
        ".now() (line 3)",
        ".today() (line 4)",
    ]
