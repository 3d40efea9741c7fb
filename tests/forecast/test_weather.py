"""The Open-Meteo client against a local server answering in Open-Meteo's documented JSON shape
(``timeformat=unixtime``): cleaning, grid sharing, caching, an outage and rate limiting."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from pydantic import SecretStr

from nishati_oracle.core.settings import ForecastSettings
from nishati_oracle.forecast.weather import (
    OpenMeteo,
    WeatherRateLimited,
    WeatherUnavailable,
    cell_of,
)

# 2026-12-03 06:00 UTC, and the 15-minute steps after it.
START = 1_796_277_600
TIMES = [START + 900 * i for i in range(1, 9)]


def forecast_body(latitude: float, longitude: float) -> dict[str, Any]:
    """An answer as Open-Meteo's /v1/forecast gives it, with the faults it can carry: a
    negative irradiance, a null one, a temperature out of this world."""
    return {
        "latitude": latitude,
        "longitude": longitude,
        "generationtime_ms": 0.2,
        "utc_offset_seconds": 0,
        "timezone": "GMT",
        "timezone_abbreviation": "GMT",
        "elevation": 1795.0,
        "minutely_15_units": {
            "time": "unixtime",
            "shortwave_radiation": "W/m²",
            "direct_normal_irradiance": "W/m²",
            "diffuse_radiation": "W/m²",
            "temperature_2m": "°C",
            "wind_speed_10m": "m/s",
        },
        "minutely_15": {
            "time": TIMES,
            "shortwave_radiation": [-2.0, 40.0, None, 180.0, 260.0, 340.0, 420.0, 2500.0],
            "direct_normal_irradiance": [0.0, 60.0, 90.0, 200.0, 300.0, 380.0, 450.0, 500.0],
            "diffuse_radiation": [0.0, 30.0, 50.0, 70.0, 90.0, 100.0, 110.0, 120.0],
            "temperature_2m": [15.1, 15.4, 16.0, 16.8, 17.5, 900.0, 19.0, 19.6],
            "wind_speed_10m": [1.2, 1.4, 1.5, 1.9, 2.0, 2.2, 2.1, 2.4],
        },
        "hourly_units": {"time": "unixtime", "cloud_cover": "%"},
        "hourly": {
            "time": [START, START + 3600, START + 7200],
            "cloud_cover": [80, 40, 20],
        },
    }


@dataclass
class FakeOpenMeteo:
    """What the local server answers next (a status per request, 200 once the list is
    spent) and every query it was sent."""

    statuses: list[int] = field(default_factory=list)
    retry_after: str | None = None
    queries: list[dict[str, list[str]]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)


@pytest.fixture
def open_meteo() -> Iterator[tuple[str, FakeOpenMeteo]]:
    fake = FakeOpenMeteo()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = parse_qs(url.query)
            fake.paths.append(url.path)
            fake.queries.append(query)
            status = fake.statuses.pop(0) if fake.statuses else 200
            if status == 200:
                body = forecast_body(float(query["latitude"][0]), float(query["longitude"][0]))
            else:
                body = {"error": True, "reason": f"status {status}"}
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            if status == 429 and fake.retry_after is not None:
                self.send_header("Retry-After", fake.retry_after)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class Sleeps:
    """Records the client's waits instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, secs: float) -> None:
        self.waits.append(secs)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def client(url: str, **settings: Any) -> tuple[OpenMeteo, Sleeps, Clock]:
    sleeps, clock = Sleeps(), Clock()
    return (
        OpenMeteo(ForecastSettings(weather_url=url, **settings), clock=clock, sleep=sleeps),
        sleeps,
        clock,
    )


async def test_the_answer_is_parsed_and_cleaned(open_meteo: tuple[str, FakeOpenMeteo]) -> None:
    url, fake = open_meteo
    weather_client, _, _ = client(url)
    try:
        weather = await weather_client.weather(-1.2921, 36.8219)
    finally:
        await weather_client.close()
    assert fake.paths == ["/v1/forecast"]
    query = fake.queries[0]
    assert query["timeformat"] == ["unixtime"]
    assert query["forecast_minutely_15"] == ["192"]
    assert "apikey" not in query
    assert weather.times == tuple(TIMES)
    # Negative is zero, null stays missing, above the solar constant is capped.
    assert weather.ghi == (0.0, 40.0, None, 180.0, 260.0, 340.0, 420.0, 1400.0)
    assert weather.temp_air[5] is None
    # Each step takes the cloud cover of the hour nearest its middle.
    assert weather.cloud_cover == (80.0, 80.0, 40.0, 40.0, 40.0, 40.0, 20.0, 20.0)


async def test_nearby_homes_share_one_request_kept_for_the_cache_period(
    open_meteo: tuple[str, FakeOpenMeteo],
) -> None:
    url, fake = open_meteo
    weather_client, _, clock = client(url, grid_degrees=0.05, cache_secs=900)
    try:
        # Three homes a few hundred metres apart in one cell, asking at once, and one far off.
        near = await asyncio.gather(
            weather_client.weather(-1.2921, 36.8219),
            weather_client.weather(-1.2930, 36.8230),
            weather_client.weather(-1.2905, 36.8201),
        )
        await weather_client.weather(-0.0917, 34.7680)
        assert len(fake.queries) == 2
        assert near[0] is near[1] is near[2]
        cell = cell_of(-1.2921, 36.8219, 0.05)
        assert fake.queries[0]["latitude"] == [str(cell.latitude)]
        clock.now += 899
        await weather_client.weather(-1.2921, 36.8219)
        assert len(fake.queries) == 2
        clock.now += 2
        await weather_client.weather(-1.2921, 36.8219)
        assert len(fake.queries) == 3
        assert weather_client.requests == 3
    finally:
        await weather_client.close()


async def test_the_api_key_is_sent_as_apikey(open_meteo: tuple[str, FakeOpenMeteo]) -> None:
    url, fake = open_meteo
    weather_client, _, _ = client(url, weather_api_key=SecretStr("k-123"))
    try:
        await weather_client.weather(-1.29, 36.82)
    finally:
        await weather_client.close()
    assert fake.queries[0]["apikey"] == ["k-123"]


def test_a_key_selects_the_commercial_host() -> None:
    assert ForecastSettings(weather_url=None).weather_base_url == "https://api.open-meteo.com"
    keyed = ForecastSettings(weather_url=None, weather_api_key=SecretStr("k"))
    assert keyed.weather_base_url == "https://customer-api.open-meteo.com"


async def test_an_outage_is_weather_unavailable(open_meteo: tuple[str, FakeOpenMeteo]) -> None:
    url, fake = open_meteo
    fake.statuses = [503]
    weather_client, _, _ = client(url)
    try:
        with pytest.raises(WeatherUnavailable, match="503"):
            await weather_client.weather(-1.29, 36.82)
    finally:
        await weather_client.close()


async def test_an_unreachable_service_is_weather_unavailable() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
    weather_client, _, _ = client(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(WeatherUnavailable, match="unreachable"):
            await weather_client.weather(-1.29, 36.82)
    finally:
        await weather_client.close()


async def test_a_429_is_waited_out_as_retry_after_says(
    open_meteo: tuple[str, FakeOpenMeteo],
) -> None:
    url, fake = open_meteo
    fake.statuses, fake.retry_after = [429, 429], "7"
    weather_client, sleeps, _ = client(url, rate_limit_retries=3)
    try:
        weather = await weather_client.weather(-1.29, 36.82)
    finally:
        await weather_client.close()
    assert len(weather.times) == len(TIMES)
    assert sleeps.waits == [7.0, 7.0]
    assert len(fake.queries) == 3


async def test_a_429_without_retry_after_backs_off_then_gives_up(
    open_meteo: tuple[str, FakeOpenMeteo],
) -> None:
    url, fake = open_meteo
    fake.statuses = [429] * 10
    weather_client, sleeps, _ = client(url, rate_limit_retries=2, rate_limit_backoff_secs=1.5)
    try:
        with pytest.raises(WeatherRateLimited):
            await weather_client.weather(-1.29, 36.82)
    finally:
        await weather_client.close()
    assert sleeps.waits == [1.5, 3.0]
    assert len(fake.queries) == 3
