"""What a home's meter teaches its forecast."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from nishati_oracle.forecast import learning, pv
from nishati_oracle.forecast.systems import PvSystem

NAIROBI = ZoneInfo("Africa/Nairobi")
# Monday 2026-11-30 00:00 UTC; and 00:00 in Nairobi (UTC+3).
MONDAY = int(datetime(2026, 11, 30, tzinfo=UTC).timestamp())
MONDAY_NAIROBI = int(datetime(2026, 11, 30, tzinfo=NAIROBI).timestamp())


def test_a_shaded_home_learns_its_steady_ratio() -> None:
    day = pv.step_ends(MONDAY, 24)
    forecast = pv.from_clear_sky(PvSystem(), day, 1.0).steps
    shaded = [pv.Step(step.end, round(step.wh * 0.7)) for step in forecast]
    ratio = learning.production_ratio(forecast, shaded)
    assert ratio is not None
    assert abs(ratio - 0.7) < 0.01
    assert learning.corrected(forecast, ratio)[40].wh == round(forecast[40].wh * ratio)


def test_too_little_production_teaches_nothing_and_wild_ratios_are_clamped() -> None:
    night = [pv.Step(MONDAY + 900, 10)]
    assert learning.production_ratio(night, night) is None
    forecast = [pv.Step(MONDAY + 900 * i, 500) for i in range(1, 5)]
    broken = [pv.Step(step.end, 5_000) for step in forecast]
    assert learning.production_ratio(forecast, broken) == learning.RATIO_BOUNDS[1]


def test_consumption_by_hour_and_weekday_smoothed_toward_the_hour() -> None:
    # Four weeks: 100 Wh per step at 18:00 in Nairobi every day, 300 on Saturdays.
    imports = []
    for day in range(28):
        end = MONDAY_NAIROBI + day * 86_400 + 18 * 3_600 + 900
        imports.append(pv.Step(end, 300 if day % 7 == 5 else 100))
    profile = learning.ConsumptionProfile.learn(imports, NAIROBI)
    hour_mean = (24 * 100 + 4 * 300) / 28
    saturday, tuesday = MONDAY_NAIROBI + 5 * 86_400, MONDAY_NAIROBI + 86_400
    forecast_saturday = profile.forecast([saturday + 18 * 3_600 + 900])[0].wh
    forecast_tuesday = profile.forecast([tuesday + 18 * 3_600 + 900])[0].wh
    assert forecast_saturday == round((4 * 300 + 3 * hour_mean) / 7)
    assert hour_mean < forecast_saturday < 300
    assert 100 < forecast_tuesday < hour_mean
    # An hour never seen forecasts nothing; 18:00 UTC is 21:00 in Nairobi, another hour.
    assert profile.forecast([MONDAY_NAIROBI + 3 * 3_600 + 900])[0].wh == 0
    assert profile.forecast([MONDAY + 18 * 3_600 + 900])[0].wh == 0


def test_the_slots_are_the_market_s_local_hours() -> None:
    # The step from 21:00 to 21:15 UTC on a Sunday is Monday 00:00 to 00:15 in Nairobi.
    sunday_21_15 = MONDAY + 6 * 86_400 + 21 * 3_600 + 900
    assert learning.local_slots([sunday_21_15], NAIROBI).tolist() == [0]
    assert learning.local_slots([sunday_21_15], ZoneInfo("UTC")).tolist() == [6 * 24 + 21]


def test_the_band_is_the_recent_errors_p10_and_p90() -> None:
    errors = list(range(-50, 51))
    expected = [pv.Step(MONDAY + 900, 400)]
    (band,) = learning.bands(expected, errors)
    assert (band.expected_wh, band.p10_wh, band.p90_wh) == (400, 360, 440)
    (narrow,) = learning.bands(expected, [])
    assert narrow.p10_wh == narrow.p90_wh == 400
