"""Forecast rounds on a real database: readings bucketed into steps, rounds against a local
Open-Meteo and through its outage, and skill scored exactly on constructed forecasts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from prometheus_client import generate_latest

from nishati_dev.open_meteo import OpenMeteoStub
from nishati_oracle.core.metrics import Metrics
from nishati_oracle.core.settings import ForecastSettings
from nishati_oracle.forecast import pv
from nishati_oracle.forecast.measured import MeasuredSteps, spread
from nishati_oracle.forecast.service import ForecastService
from nishati_oracle.forecast.store import ForecastStore, Pending
from nishati_oracle.forecast.systems import PvSystem, PvSystems
from nishati_oracle.forecast.weather import OpenMeteo
from nishati_oracle.readings.store import Store
from nishati_oracle.storage.schema import meters, readings

# Thursday 2026-12-03 09:00 UTC: noon in Nairobi.
NOON = int(datetime(2026, 12, 3, 9, tzinfo=UTC).timestamp())
NAIROBI = PvSystem()
# Two homes in Nairobi's cell, one in Kisumu's.
KISUMU = PvSystem(
    latitude=-0.0917, longitude=34.768, altitude_m=1_131, capacity_wp=5_000, inverter_limit_w=5_000
)


def test_an_interval_is_spread_over_the_steps_it_covers() -> None:
    def parts(start: int, end: int, wh: int) -> list[tuple[int, int, int]]:
        ends, shares, secs = spread(np.array([start]), np.array([end]), np.array([wh]))
        return [
            (e, share, s)
            for e, share, s in zip(
                ends[0].tolist(), shares[0].tolist(), secs[0].tolist(), strict=True
            )
            if s
        ]

    # From 10 to 20 minutes after a step boundary: 5 minutes in each step.
    assert parts(600, 1_200, 101) == [(900, 50, 300), (1_800, 51, 300)]
    # The shares always sum to the difference, in proportion to the time.
    assert parts(100, 2_000, 7) == [(900, 2, 800), (1_800, 4, 900), (2_700, 1, 200)]
    assert parts(0, 3_600, 4_000) == [(900 * k, 1_000, 900) for k in range(1, 5)]


def test_readings_are_bucketed_and_a_step_is_reported_once_covered() -> None:
    steps = MeasuredSteps(history_steps=96)
    now = 20 * 900.0

    def read(*rows: tuple[str, int, int, int]) -> None:
        meters = [meter for meter, *_ in rows]
        timestamps, exported, imported = (
            np.array([row[i] for row in rows], dtype=np.int64) for i in (1, 2, 3)
        )
        households = ["h" if m == "m" else "g" for m in meters]
        steps.readings(meters, households, timestamps, exported, imported, now)

    # Two meters in one batch, interleaved as stored.
    read(
        ("m", 0, 0, 0),
        ("n", 0, 100, 0),
        ("m", 450, 30, 5),
        ("n", 900, 190, 0),
        ("m", 900, 60, 5),
        ("m", 1_350, 90, 20),
    )
    assert steps.step("h", 900) == (60, 5)
    assert steps.step("g", 900) == (90, 0)
    # The second step is half covered: not reported yet.
    assert steps.step("h", 1_800) is None
    read(("m", 1_800, 100, 20))
    assert steps.step("h", 1_800) == (40, 15)
    # A meter away for two hours: its energy is not spread, those steps stay unreported.
    read(("m", 1_800 + 7_200, 5_000, 20))
    assert steps.step("h", 2_700) is None
    window = steps.window(900, 3)
    assert window.reported.tolist() == [[True, True, False], [True, False, False]]
    assert window.exported.tolist() == [[60, 40, 0], [90, 0, 0]]


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(database_url)
    try:
        yield opened
    finally:
        await opened.close()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def open_meteo() -> Iterator[tuple[OpenMeteoStub, Clock]]:
    clock = Clock(NOON)
    with OpenMeteoStub(clock) as stub:
        yield stub, clock


async def add_meter(store: Store, meter: str, household: str) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(
            meters.insert().values(
                meter=meter,
                household=household,
                has_last=False,
                last_counter=0,
                last_timestamp=0,
                last_exported_wh=0,
                last_imported_wh=0,
            )
        )


async def add_readings(store: Store, meter: str, rows: list[tuple[int, int, int]]) -> None:
    """Readings of a meter: (timestamp, cumulative export, cumulative import)."""
    async with store.engine.begin() as conn:
        base = len((await conn.execute(readings.select().where(readings.c.meter == meter))).all())
        await conn.execute(
            readings.insert(),
            [
                {
                    "meter": meter,
                    "counter": base + i + 1,
                    "timestamp": t,
                    "exported_wh": e,
                    "imported_wh": m,
                    "message": b"",
                    "signature": b"",
                    "received_at": float(t),
                }
                for i, (t, e, m) in enumerate(rows)
            ],
        )


def service(store: Store, url: str, clock: Clock, **settings: Any) -> ForecastService:
    forecast_settings = ForecastSettings(weather_url=url, **settings)
    return ForecastService(
        forecast_settings,
        ForecastStore(store.engine),
        OpenMeteo(forecast_settings, clock=clock),
        Metrics(),
        clock=clock,
    )


async def test_a_round_asks_once_per_cell_and_forecasts_every_home(
    store: Store, open_meteo: tuple[OpenMeteoStub, Clock]
) -> None:
    stub, clock = open_meteo
    for n in range(3):
        await add_meter(store, f"meter-{n}", f"home-{n}")
    await PvSystems(store.engine).put("home-2", KISUMU)
    forecasts = service(store, stub.url, clock)
    try:
        report = await forecasts.round(NOON)
        again = await forecasts.round(NOON + 60)
    finally:
        await forecasts.weather.close()
    assert (report.homes, report.cells, report.weather_requests) == (3, 2, 2)
    assert stub.requests == 2
    assert report.by_source == {pv.Source.weather: 3, pv.Source.clear_sky: 0}
    # Within the cache period the cells are not asked again.
    assert again.weather_requests == 0
    outlook = await forecasts.outlook("home-0")
    assert outlook is not None
    assert outlook.source is pv.Source.weather
    assert len(outlook.steps) == 192
    # Made at 09:01, it starts after the step under way: from 09:15 to 09:30.
    assert outlook.steps[0].end == NOON + 1_800
    noon = outlook.steps[0]
    # At noon, under the local Open-Meteo's clouds: below clear sky, well above nothing; no
    # imports seen yet, so nothing consumed.
    clear = pv.from_clear_sky(NAIROBI, [NOON + 1_800], 1.0).steps[0].wh
    assert 0.1 * clear < noon.production_wh < clear
    assert noon.consumption_wh == 0
    assert noon.surplus_wh == noon.production_wh - noon.consumption_wh
    midnight = outlook.steps[(12 * 4) - 1]
    assert midnight.production_wh == 0
    kisumu = await forecasts.outlook("home-2")
    assert kisumu is not None
    # Kisumu's home is larger and under another sky.
    assert kisumu.steps[0].production_wh != noon.production_wh
    assert await forecasts.outlook("home-unknown") is None


async def test_an_outage_falls_back_to_clear_sky_and_says_so(
    store: Store, open_meteo: tuple[OpenMeteoStub, Clock]
) -> None:
    stub, clock = open_meteo
    stub.status = 503
    await add_meter(store, "meter-0", "home-0")
    await add_meter(store, "meter-1", "home-1")
    await PvSystems(store.engine).put("home-1", KISUMU)
    forecasts = service(store, stub.url, clock, default_clear_sky_index=0.5)
    try:
        report = await forecasts.round(NOON)
    finally:
        await forecasts.weather.close()
    # The first cell's failure is the outage: the second is not asked.
    assert report.weather_requests == stub.requests == 1
    assert report.by_source == {pv.Source.weather: 0, pv.Source.clear_sky: 2}
    outlook = await forecasts.outlook("home-0")
    assert outlook is not None
    assert outlook.source is pv.Source.clear_sky
    assert outlook.clear_sky_index == 0.5
    ends = [step.end for step in outlook.steps]
    clear = pv.from_clear_sky(NAIROBI, ends, 1.0).steps
    # Half of clear sky's power (the index is learned as a share of power): the same up to the
    # sun taken at the cell's centre.
    assert sum(step.production_wh for step in outlook.steps) > 0
    for step, full in zip(outlook.steps, clear, strict=True):
        assert abs(step.production_wh - 0.5 * full.wh) <= 0.01 * full.wh + 1
    text = generate_latest(forecasts.metrics.registry).decode()
    assert 'nishati_forecast_homes{source="clear_sky"} 2.0' in text
    assert "nishati_forecast_weather_requests_total 1.0" in text


async def test_skill_is_scored_exactly_once_the_meter_reports(
    store: Store, open_meteo: tuple[OpenMeteoStub, Clock]
) -> None:
    stub, clock = open_meteo
    await add_meter(store, "meter-a", "home-a")
    await add_meter(store, "meter-b", "home-b")
    forecasts = service(store, stub.url, clock)
    target = NOON - 900
    # Constructed forecasts of the step ending at ``target``, made an hour and a day before.
    waiting = [
        Pending("home-a", 3_600, target, NOON - 4_500, 600, 500, 100, 300, True),
        Pending("home-a", 86_400, target, NOON - 87_300, None, 700, 100, 200, True),
        Pending("home-b", 3_600, target, NOON - 4_500, 600, 200, 0, 150, True),
        # A night step the meter has not reported yet: it keeps waiting.
        Pending("home-b", 3_600, target - 12 * 3_600, NOON - 12 * 3_600, None, 0, 50, -50, False),
    ]
    await forecasts.store.save_round([], waiting)
    # home-a exported 700 Wh and imported 50 in the step; home-b exported 300, imported 0.
    start = target - 900
    await add_readings(
        store, "meter-a", [(start, 1_000, 20), (start + 450, 1_300, 40), (target, 1_700, 70)]
    )
    await add_readings(store, "meter-b", [(start, 0, 0), (target, 300, 0)])
    try:
        report = await forecasts.round(NOON)
    finally:
        await forecasts.weather.close()
    assert report.scored == 3
    home_a = await forecasts.skill("home-a")
    hour, day = home_a.horizons
    # Measured net 650: the hour-ahead surplus (400) was 250 off, smart persistence (300) 350.
    assert (hour.steps, hour.mae_wh, hour.reference_mae_wh) == (1, 250.0, 350.0)
    assert hour.skill == pytest.approx(1 - 250 / 350)
    assert (day.steps, day.mae_wh, day.reference_mae_wh) == (1, 50.0, 450.0)
    market = await forecasts.skill()
    assert market.household is None
    assert market.homes == 2
    # home-b: net 300 against a surplus of 200 (100 off) and persistence's 150 (150 off).
    assert market.horizons[0].steps == 2
    assert market.horizons[0].mae_wh == (250 + 100) / 2
    assert market.horizons[0].reference_mae_wh == (350 + 150) / 2
    # What the meter showed of production (net plus expected consumption) beside the model's.
    assert forecasts.homes["home-a"].pairs.values().tolist() == [[600, 750]]
    # Scored forecasts are gone; the night step with no report yet keeps waiting.
    left = await forecasts.store.due(NOON)
    assert [(p.household, p.target_end) for p in left] == [("home-b", target - 12 * 3_600)]
    text = generate_latest(forecasts.metrics.registry).decode()
    assert 'nishati_forecast_mae_wh{horizon="1h"} 175.0' in text
    assert 'nishati_forecast_scored_steps_total{horizon="1h"} 2.0' in text


async def test_the_ratio_is_learned_from_the_hour_ahead_steps(
    store: Store, open_meteo: tuple[OpenMeteoStub, Clock]
) -> None:
    stub, clock = open_meteo
    await add_meter(store, "meter-a", "home-a")
    forecasts = service(store, stub.url, clock)
    first, second = NOON - 1_800, NOON - 900
    await forecasts.store.save_round(
        [],
        [
            Pending("home-a", 3_600, first, NOON - 5_400, 600, 600, 100, 500, True),
            Pending("home-a", 3_600, second, NOON - 4_500, 600, 600, 100, 500, True),
        ],
    )
    # Each step: 450 exported, 0 imported: 550 made against 600 modelled.
    start = first - 900
    await add_readings(store, "meter-a", [(start, 0, 0), (first, 450, 0), (second, 900, 0)])
    try:
        await forecasts.round(NOON)
    finally:
        await forecasts.weather.close()
    assert forecasts.homes["home-a"].ratio == pytest.approx(1_100 / 1_200)
    outlook = await forecasts.outlook("home-a")
    assert outlook is not None
    assert outlook.ratio == pytest.approx(1_100 / 1_200)
