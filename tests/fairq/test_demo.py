from __future__ import annotations

import datetime as dt
import itertools
import re
from collections import Counter

import pytest

from fairq.demo import demo_campaign, small_campaign
from schemas.campaign import MAX_CAPACITY, MAX_CENTERS, CampaignSpec, parse_campaign
from schemas.commands import AddInventory, SlotSpec, decode_command

MONDAY = dt.date(2027, 3, 1)  # the clocks change on 28 March, inside the 13 weeks


@pytest.fixture(scope="module")
def demo() -> CampaignSpec:
    return parse_campaign("demo", demo_campaign(MONDAY))


def test_demo_is_a_state_with_15_counties_and_28_centers(demo: CampaignSpec) -> None:
    assert len(demo.counties) == 15
    assert len(demo.centers) == 28
    per_county = Counter(c.county for c in demo.centers)
    assert set(per_county) == {c.id for c in demo.counties}
    assert set(per_county.values()) <= {1, 2, 3}
    assert all(re.fullmatch(r".+, [0-9]{5} .+", c.address) for c in demo.centers)
    assert any("ü" in c.name or "ö" in c.name for c in demo.counties)
    assert demo.timezone == "Europe/Berlin"


def test_demo_has_three_vaccines_each_center_one_or_two(demo: CampaignSpec) -> None:
    windows = {v.id: (v.min_days, v.max_days) for v in demo.vaccines}
    assert windows == {"comirnaty": (21, 42), "spikevax": (28, 42), "vaxzevria": (63, 84)}
    assert all(1 <= len(c.vaccines) <= 2 for c in demo.centers)
    assert {v for c in demo.centers for v in c.vaccines} == set(windows)


def test_demo_slots_are_mon_to_sat_08_to_18_for_13_weeks(demo: CampaignSpec) -> None:
    days = sorted({s.day for _, _, s in demo.slots})
    assert days[0] == "2027-03-01" and days[-1] == "2027-05-29"
    assert len(days) == 13 * 6
    assert all(dt.date.fromisoformat(d).weekday() != 6 for d in days)
    local_times = {s.start[11:16] for _, _, s in demo.slots}
    assert min(local_times) == "08:00" and max(local_times) == "17:45"
    assert {s.start[19:] for _, _, s in demo.slots} == {"+01:00", "+02:00"}


def test_demo_slot_lengths_and_capacities_vary_by_center(demo: CampaignSpec) -> None:
    gaps = set()
    for _, group in itertools.groupby(demo.slots, key=lambda t: (t[0], t[1], t[2].day)):
        starts = [s.start_s for _, _, s in group]
        gaps |= {b - a for a, b in itertools.pairwise(starts)}
    assert gaps == {15 * 60, 30 * 60}
    capacities = {s.capacity for _, _, s in demo.slots}
    assert min(capacities) == 2 and max(capacities) == 8
    places = sum(s.capacity for _, _, s in demo.slots)
    assert 100_000 <= places <= 250_000


def test_every_demo_center_and_vaccine_can_form_a_pair(demo: CampaignSpec) -> None:
    windows = {v.id: (v.min_days, v.max_days) for v in demo.vaccines}
    for (center, vaccine), group in itertools.groupby(demo.slots, key=lambda t: (t[0], t[1])):
        days = {dt.date.fromisoformat(s.day) for _, _, s in group}
        lo, hi = windows[vaccine]
        first = min(days)
        partners = [d for d in days if lo <= (d - first).days <= hi]
        assert partners, f"{center}/{vaccine} has no dose 2 day for its first dose 1 day"


def test_demo_is_deterministic_and_loads_in_few_commands(demo: CampaignSpec) -> None:
    assert demo_campaign(MONDAY) == demo_campaign(MONDAY)
    ids = (f"inv-{i}" for i in itertools.count())
    commands = demo.inventory_commands(lambda: next(ids))
    assert {(c.center, c.vaccine) for c in commands} == {
        (c.id, v) for c in demo.centers for v in c.vaccines
    }
    assert sum(len(c.slots) for c in commands) == len(demo.slots)
    assert all(0 < len(c.slots) <= 2000 for c in commands)
    for command in commands:
        assert decode_command(command.pack()) == command


def test_demo_starting_on_a_sunday_still_validates() -> None:
    spec = parse_campaign("demo", demo_campaign(dt.date(2026, 11, 29)))
    assert min(s.day for _, _, s in spec.slots) == "2026-11-30"


@pytest.mark.parametrize(("counties", "per_county", "places"), [(2, 1, 5), (4, 3, 1), (1, 2, 40)])
def test_small_campaign_has_exactly_the_pairs_asked_for(
    counties: int, per_county: int, places: int
) -> None:
    first = dt.date(2027, 2, 1)
    spec = parse_campaign("small", small_campaign(first, counties, per_county, places))
    assert [c.id for c in spec.counties] == [f"county-{k}" for k in range(1, counties + 1)]
    assert len(spec.centers) == counties * per_county
    assert Counter(c.county for c in spec.centers) == dict.fromkeys(
        (c.id for c in spec.counties), per_county
    )
    (vaccine,) = spec.vaccines
    for center in spec.centers:
        slots = [s for c, _, s in spec.slots if c == center.id]
        assert slots == [
            SlotSpec("2027-02-01", "2027-02-01T09:00:00+01:00", slots[0].start_s, places),
            SlotSpec(
                "2027-02-22", "2027-02-22T09:00:00+01:00", slots[0].start_s + 21 * 86400, places
            ),
        ]
        assert vaccine.min_days <= 21 <= vaccine.max_days
    commands = spec.inventory_commands(lambda: "x")
    assert all(isinstance(c, AddInventory) and len(c.slots) == 2 for c in commands)


def test_small_campaign_defaults_validate() -> None:
    spec = parse_campaign("small", small_campaign(dt.date(2027, 2, 1)))
    assert sum(s.capacity for _, _, s in spec.slots) == 2 * 1 * 5 * 2


@pytest.mark.parametrize(
    ("counties", "per_county", "places"),
    [(0, 1, 1), (1, 0, 1), (1, 1, 0), (MAX_CENTERS + 1, 1, 1), (1, 1, MAX_CAPACITY + 1)],
)
def test_small_campaign_refuses_sizes_parse_would_refuse(
    counties: int, per_county: int, places: int
) -> None:
    with pytest.raises(ValueError):
        small_campaign(dt.date(2027, 2, 1), counties, per_county, places)
