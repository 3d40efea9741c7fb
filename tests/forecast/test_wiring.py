"""The oracle runs its forecast rounds: started with it, over the homes whose meters report,
on its /metrics."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from nishati_dev.open_meteo import OpenMeteoStub
from nishati_dev.sandbox import Harness
from nishati_oracle.core.settings import ForecastSettings
from nishati_oracle.forecast.pv import Source
from tests.harness.oracle import start_world


async def test_the_oracle_forecasts_every_home_with_a_meter(
    litesvm: Harness, tmp_path: Path
) -> None:
    with OpenMeteoStub(time.time) as weather:
        world = await start_world(
            litesvm,
            f"sqlite+aiosqlite:///{tmp_path / 'oracle.db'}",
            tmp_path,
            forecast=ForecastSettings(weather_url=weather.url),
        )
        async with world.app.router.lifespan_context(world.app), world.http:
            forecast = world.services.forecast
            assert forecast is not None
            # The round at startup, over no home yet: it asks for no weather.
            rounds = "nishati_forecast_rounds_total 1.0"
            while rounds not in (await world.http.get("/metrics")).text:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            assert weather.requests == 0
            member = await world.member()
            now = await world.market.now()
            assert (await world.post(member.meter.read(now, exported_wh=1_000))).status_code == 200
            report = await forecast.round()
            assert (report.homes, report.weather_requests) == (1, 1)
            outlook = await forecast.outlook(str(member.address))
            assert outlook is not None
            assert outlook.source is Source.weather
            assert len(outlook.steps) == 48 * 4
            metrics = (await world.http.get("/metrics")).text
            assert 'nishati_forecast_homes{source="weather"} 1.0' in metrics
            assert "nishati_forecast_weather_requests_total 1.0" in metrics
