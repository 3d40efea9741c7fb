"""The PV model's sanity on a Nairobi rooftop, its systems' validation and storage."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from nishati_oracle.forecast import pv
from nishati_oracle.forecast.systems import PvSystem, PvSystems
from nishati_oracle.forecast.weather import Cell, Weather
from nishati_oracle.readings.store import Store

# 2026-12-03 00:00 UTC (03:00 in Nairobi); a day of 96 steps.
MIDNIGHT = int(datetime(2026, 12, 3, tzinfo=UTC).timestamp())
DAY = pv.step_ends(MIDNIGHT, 24)
# Solar noon at 36.82 E in early December: 12:00 - 2 h 27 min - the equation of time's 10 min.
SOLAR_NOON = MIDNIGHT + 9 * 3600 + 23 * 60


def test_nothing_at_night_and_the_peak_near_solar_noon() -> None:
    forecast = pv.from_clear_sky(PvSystem(), DAY, 1.0)
    assert forecast.source is pv.Source.clear_sky
    by_end = {step.end: step.wh for step in forecast.steps}
    # Nairobi's night: before 03:00 and after 16:00 UTC.
    assert all(wh == 0 for end, wh in by_end.items() if end <= MIDNIGHT + 3 * 3600)
    assert all(wh == 0 for end, wh in by_end.items() if end >= MIDNIGHT + 16 * 3600)
    peak = max(forecast.steps, key=lambda step: step.wh)
    assert abs(peak.end - 450 - SOLAR_NOON) <= 30 * 60
    # 3 kWp under a clear sky makes between 3.5 and 6.5 kWh per kWp in a day.
    assert 10_500 <= forecast.total_wh <= 19_500


def test_the_inverter_clips() -> None:
    small = PvSystem(capacity_wp=3_000, inverter_limit_w=1_500)
    clipped = pv.from_clear_sky(small, DAY, 1.0)
    ceiling = round(1_500 * pv.WH_PER_W_STEP)
    assert max(step.wh for step in clipped.steps) == ceiling
    assert sum(step.wh == ceiling for step in clipped.steps) >= 8
    assert clipped.total_wh < pv.from_clear_sky(PvSystem(), DAY, 1.0).total_wh


def test_cloud_scales_the_clear_sky_fallback() -> None:
    clear = pv.from_clear_sky(PvSystem(), DAY, 1.0).total_wh
    cloudy = pv.from_clear_sky(PvSystem(), DAY, 0.5).total_wh
    assert 0.4 * clear < cloudy < 0.6 * clear


def test_weather_drives_the_forecast_and_missing_steps_say_so() -> None:
    system = PvSystem()
    ghi, dni, dhi = pv.clear_sky(system, DAY)
    size = len(DAY)
    weather = Weather(
        cell=Cell(system.latitude, system.longitude),
        times=tuple(DAY),
        ghi=tuple(None if i == 40 else float(v) * 0.8 for i, v in enumerate(ghi)),
        dni=tuple(float(v) * 0.8 for v in dni),
        dhi=tuple(float(v) * 0.8 for v in dhi),
        temp_air=(22.0,) * size,
        wind_speed=(None,) * size,
        cloud_cover=(30.0,) * size,
    )
    forecast = pv.from_weather(system, weather, 0.8)
    assert forecast.source is pv.Source.weather
    assert forecast.clear_sky_steps == 1
    clear = pv.from_clear_sky(system, DAY, 1.0).total_wh
    assert 0.7 * clear < forecast.total_wh < 0.85 * clear


def test_the_clear_sky_index_is_measured_over_clear_sky() -> None:
    system = PvSystem()
    half = [pv.Step(s.end, s.wh // 2) for s in pv.from_clear_sky(system, DAY, 1.0).steps]
    index = pv.clear_sky_index(system, half)
    assert index is not None
    assert index == pytest.approx(0.5, abs=0.01)
    night = [step for step in half if step.end <= MIDNIGHT + 3 * 3600]
    assert pv.clear_sky_index(system, night) is None


def test_a_nairobi_rooftop_by_default() -> None:
    system = PvSystem()
    assert (round(system.latitude, 1), round(system.longitude, 1)) == (-1.3, 36.8)
    assert system.capacity_wp == system.inverter_limit_w == 3_000


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"latitude": 91}, "latitude"),
        ({"longitude": -181}, "longitude"),
        ({"tilt_deg": 95}, "tilt_deg"),
        ({"azimuth_deg": 360}, "azimuth_deg"),
        ({"capacity_wp": 0}, "capacity_wp"),
        ({"capacity_wp": 5_000_000}, "capacity_wp"),
        ({"capacity_wp": 3_000, "inverter_limit_w": 100}, "inverter_limit_w"),
        ({"panels": 12}, "panels"),
    ],
)
def test_impossible_systems_are_refused(fields: dict[str, object], named: str) -> None:
    with pytest.raises(ValidationError, match=named):
        PvSystem.model_validate(fields)


async def test_a_system_is_kept_and_replaced(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        systems = PvSystems(store.engine)
        assert await systems.get("house-1") is None
        first = PvSystem(capacity_wp=4_200, inverter_limit_w=3_600, tilt_deg=12.5)
        await systems.put("house-1", first, now=1.0)
        assert await systems.get("house-1") == first
        second = first.model_copy(update={"azimuth_deg": 180.0})
        await systems.put("house-1", second, now=2.0)
        assert await systems.get("house-1") == second
        assert await systems.get("house-2") is None
    finally:
        await store.close()
