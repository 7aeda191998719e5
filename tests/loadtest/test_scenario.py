"""Scenario files: the shipped ones load, the storm's shape follows them, and a bad
file is refused with a sentence naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.scenario import SCENARIOS, ScenarioError, load


def test_the_shipped_scenarios_load_with_the_reference_figures() -> None:
    reference = load("reference")
    assert reference.arrivals.peak_clicks_per_s == 3225
    assert reference.service_levels.min_appointments_in_baskets_first_minute >= 4000
    assert reference.inventory.pairs == 10_000
    small = load("reference-small")
    assert small.arrivals.peak_clicks_per_s == pytest.approx(3225 * small.scale, abs=1)
    assert small.inventory.pairs == reference.inventory.pairs * small.scale
    assert load(SCENARIOS / "ci.toml").name == "ci"


def test_the_shape_gathers_opens_ramps_peaks_and_ends() -> None:
    a = load("reference").arrivals
    assert a.clicks_per_s(0) == 0
    assert a.clicks_per_s(a.pre_opening_s / 2) == pytest.approx(a.pre_opening_clicks_per_s / 2)
    assert a.clicks_per_s(a.pre_opening_s) == a.opening_clicks_per_s
    assert a.clicks_per_s(a.pre_opening_s + a.ramp_s) == a.peak_clicks_per_s
    assert a.users(a.pre_opening_s + a.ramp_s) == 9685  # 3225 clicks/s, 0.333 a tab
    assert a.clicks_per_s(a.duration_s) is None and a.users(a.duration_s) is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("peak_clicks_per_s = 3225", "peak_clicks_per_s = -1"),
            "arrivals.peak_clicks_per_s must be in",
        ),
        (
            ("confirm_share = 0.8", "confirm_share = 1.5"),
            "journey.confirm_share must be in 0.0..1.0",
        ),
        (("places = 50", 'places = "many"'), "inventory.places must be an integer"),
        (
            ("max_failure_share = 0.001", "max_failure_shar = 0.001"),
            "unknown key(s) max_failure_shar",
        ),
        (("rate_per_s = 125.0", ""), "[room]: missing rate_per_s"),
        (("[journey]", "[journey"), "not valid TOML"),
        (
            ("capped_below_active = 120", "capped_below_active = 120\ncapped_max_active = 9"),
            "[room]: with cap_s, give one of capped_max_active and capped_below_active, not both",
        ),
        (
            ("capped_below_active = 120", ""),
            "[room]: with cap_s, give one of capped_max_active and capped_below_active",
        ),
    ],
)
def test_a_bad_file_is_refused_naming_what_is_wrong(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    text = (SCENARIOS / "reference.toml").read_text()
    assert change[0] in text
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace(change[0], change[1], 1))
    with pytest.raises(ScenarioError) as refused:
        load(bad)
    assert message in str(refused.value)
    assert str(bad) in str(refused.value)


def test_the_cap_goes_below_the_active_bookers_of_the_moment_or_to_a_number() -> None:
    below = load("reference-small").room
    assert (below.capped_to(47), below.capped_to(2)) == (44, 1)  # never 0: nobody admitted
    assert load("ci").room.capped_to(47) == 1


def test_a_missing_file_is_refused() -> None:
    with pytest.raises(ScenarioError, match="cannot read it"):
        load("no-such-scenario")
