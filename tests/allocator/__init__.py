"""Tests of the allocator; the helpers below build commands over a fixed calendar.

Day ``n`` is ``BASE_DAY + n days``; slots start on the hour in UTC, so a slot's
``start_s`` follows from its day and hour. ``T0_MS`` is a log time before every slot.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from allocator.core import Allocator
from schemas.commands import (
    AddInventory,
    Book,
    Cancel,
    Command,
    Confirm,
    Move,
    RemoveInventory,
    SetReserve,
    SlotSpec,
)
from schemas.events import Confirmed, Event, Failed, Held, Moved, Offered, Rejected, Summary
from schemas.states import ReserveMode, TimeOfDay

BASE_DAY = dt.date(2030, 3, 1)
T0_MS = int(dt.datetime(2030, 2, 28, tzinfo=dt.UTC).timestamp()) * 1000
CAMPAIGN = "spring"


def slot(day: int, hour: int = 9, capacity: int = 1) -> SlotSpec:
    date = BASE_DAY + dt.timedelta(days=day)
    start = dt.datetime(date.year, date.month, date.day, hour, tzinfo=dt.UTC)
    return SlotSpec(date.isoformat(), start.isoformat(), int(start.timestamp()), capacity)


def start_ms(day: int, hour: int = 9) -> int:
    return slot(day, hour).start_s * 1000


def day_iso(day: int) -> str:
    return (BASE_DAY + dt.timedelta(days=day)).isoformat()


def slot_id(center: str, vaccine: str, day: int, hour: int = 9) -> str:
    return f"{center}/{vaccine}/{slot(day, hour).start}"


def add(
    command_id: str,
    county: str,
    center: str,
    slots: Iterable[SlotSpec],
    *,
    vaccine: str = "vx",
    min_days: int = 21,
    max_days: int = 28,
    campaign: str = CAMPAIGN,
) -> AddInventory:
    return AddInventory(
        command_id=command_id,
        campaign=campaign,
        county=county,
        center=center,
        center_name=f"Center {center}",
        vaccine=vaccine,
        min_days=min_days,
        max_days=max_days,
        slots=tuple(slots),
    )


def book(
    command_id: str,
    booking_id: str,
    identity: str,
    county: str,
    *,
    center: str | None = None,
    earliest: str | None = None,
    hold_s: int = 600,
    campaign: str = CAMPAIGN,
    group: str | None = None,
    waitlist: bool = False,
    time_of_day: str | None = None,
) -> Book:
    return Book(
        command_id=command_id,
        booking_id=booking_id,
        campaign=campaign,
        identity=identity,
        county=county,
        center=center,
        earliest=earliest,
        hold_s=hold_s,
        group=group,
        waitlist=waitlist,
        time_of_day=TimeOfDay(time_of_day) if time_of_day else None,
    )


def confirm(command_id: str, booking_id: str, campaign: str = CAMPAIGN) -> Confirm:
    return Confirm(command_id, booking_id, campaign)


def cancel(command_id: str, booking_id: str, campaign: str = CAMPAIGN) -> Cancel:
    return Cancel(command_id, booking_id, campaign)


def move(
    command_id: str,
    booking_id: str,
    *,
    center: str | None = None,
    earliest: str | None = None,
    campaign: str = CAMPAIGN,
    time_of_day: str | None = None,
    county: str | None = None,
) -> Move:
    return Move(
        command_id,
        booking_id,
        campaign,
        center=center,
        earliest=earliest,
        time_of_day=TimeOfDay(time_of_day) if time_of_day else None,
        county=county,
    )


def remove(
    command_id: str,
    county: str,
    center: str,
    starts: Iterable[SlotSpec],
    *,
    vaccine: str = "vx",
    campaign: str = CAMPAIGN,
) -> RemoveInventory:
    """RemoveInventory of the slots that ``starts`` describe (by their start_s)."""
    return RemoveInventory(
        command_id, campaign, county, center, vaccine, tuple(s.start_s for s in starts)
    )


def reserve(
    command_id: str,
    county: str,
    center: str,
    day: int,
    group: str,
    share_pct: int,
    *,
    mode: str = "over_and_above",
    release_at_ms: int = T0_MS + 3_600_000,
    campaign: str = CAMPAIGN,
) -> SetReserve:
    """SetReserve of ``share_pct`` percent of ``center``'s slots on day ``day`` for ``group``."""
    return SetReserve(
        command_id,
        campaign,
        county,
        center,
        day_iso(day),
        group,
        share_pct,
        ReserveMode(mode),
        release_at_ms,
    )


# For ``add``'s dose-2 window [21, 28]: the only dose-1 day of each center of
# ``window_edges`` is day 0, its dose 2 may be on the window's first day only (c1), on its
# last day only (c2), or one day outside it either way only (c3).
WINDOW_EDGE_DAYS = {"c1": (0, 21), "c2": (0, 28), "c3": (0, 20, 29)}


def window_edges(hour: int = 9, capacity: int = 1) -> list[AddInventory]:
    """The AddInventory of ``WINDOW_EDGE_DAYS`` in ``north``, every slot at ``hour``."""
    return [
        add(f"a-{center}", "north", center, [slot(d, hour, capacity) for d in days])
        for center, days in WINDOW_EDGE_DAYS.items()
    ]


class Log:
    """Feeds an Allocator with consecutive offsets; time moves only when told."""

    def __init__(self, now_ms: int = T0_MS) -> None:
        self.core = Allocator()
        self.offset = 0
        self.now_ms = now_ms

    def __call__(self, command: Command, at_ms: int | None = None) -> list[Event]:
        if at_ms is not None:
            self.now_ms = at_ms
        events = self.core.apply(self.offset, self.now_ms, command)
        self.offset += 1
        return events

    def one(self, command: Command, at_ms: int | None = None) -> Event:
        events = self(command, at_ms)
        assert len(events) == 1, events
        return events[0]

    def held(self, command: Command, at_ms: int | None = None) -> Held:
        event = self.one(command, at_ms)
        assert isinstance(event, Held), event
        return event

    def reason(self, command: Command, at_ms: int | None = None) -> str:
        event = self.one(command, at_ms)
        assert isinstance(event, Rejected | Failed), event
        return event.reason

    def usage(self) -> dict[str, tuple[int, int]]:
        return {u.slot: (u.capacity, u.used) for u in self.core.slot_usage()}


def not_summaries(events: list[Event]) -> list[Event]:
    return [e for e in events if not isinstance(e, Summary)]


def slot_ids(event: Held | Confirmed | Moved | Offered) -> list[str]:
    return [a.slot for a in event.appointments]


def daily(days: range, hours: tuple[int, ...] = (9,)) -> list[SlotSpec]:
    return [slot(d, h) for d in days for h in hours]
