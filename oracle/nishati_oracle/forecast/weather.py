"""Weather over each home from Open-Meteo's forecast API (its JSON endpoint), in 15-minute steps.

Homes are grouped on a grid (``grid_degrees``): one request serves every home in a cell, and its
answer is kept ``cache_secs``; homes asking at once for the same cell share the one request in
flight. A 429 is waited out (its Retry-After, or a doubling backoff) a few times before the cell
counts as unavailable, as does an outage; the forecast then falls back to clear sky.

Values are cleaned, not trusted: negative irradiance is zero, irradiance above what reaches the
ground is capped, and a missing value stays missing (``None``) for the model to fill.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

from nishati_oracle.core.settings import ForecastSettings

log = structlog.get_logger(__name__)

STEP_SECS = 900
HOUR_SECS = 3_600
# Open-Meteo's 15-minute variables (each the mean of the 15 minutes ending at its time) and the
# hourly cloud cover, which its 15-minute set lacks.
MINUTELY_15 = (
    "shortwave_radiation",
    "direct_normal_irradiance",
    "diffuse_radiation",
    "temperature_2m",
    "wind_speed_10m",
)
HOURLY = ("cloud_cover",)
# Above the solar constant no irradiance reaches the ground.
MAX_IRRADIANCE_W_M2 = 1_400.0
# The longest wait a 429's Retry-After is honoured for: longer, and the round moves on.
MAX_RETRY_AFTER_SECS = 60.0


class WeatherUnavailable(Exception):
    """No weather for a cell: the service is unreachable, failing, or answered nonsense."""


class WeatherRateLimited(WeatherUnavailable):
    """Open-Meteo kept answering 429 after every retry."""


@dataclass(frozen=True)
class Cell:
    """A grid cell's centre, where its homes' weather is asked for."""

    latitude: float
    longitude: float


@dataclass(frozen=True)
class Weather:
    """A cell's forecast: ``times`` are each step's end (Unix seconds); irradiance in W/m²
    (global horizontal, direct normal, diffuse horizontal), temperature in °C, wind in m/s,
    cloud cover in %; ``None`` where the service gave nothing usable."""

    cell: Cell
    times: tuple[int, ...]
    ghi: tuple[float | None, ...]
    dni: tuple[float | None, ...]
    dhi: tuple[float | None, ...]
    temp_air: tuple[float | None, ...]
    wind_speed: tuple[float | None, ...]
    cloud_cover: tuple[float | None, ...]


def cell_of(latitude: float, longitude: float, grid_degrees: float) -> Cell:
    """The centre of the grid cell holding a location."""

    def centre(value: float) -> float:
        return round((math.floor(value / grid_degrees) + 0.5) * grid_degrees, 6)

    return Cell(centre(latitude), centre(longitude))


def clean_irradiance(value: object) -> float | None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return None
    return min(max(float(value), 0.0), MAX_IRRADIANCE_W_M2)


def clean_reading(value: object, low: float, high: float) -> float | None:
    """A temperature, wind speed or cloud cover, ``None`` outside what is physically there."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return None
    return float(value) if low <= value <= high else None


def parse_forecast(cell: Cell, body: Any) -> Weather:
    """A forecast answer in Open-Meteo's JSON shape (``timeformat=unixtime``), cleaned."""
    try:
        steps = body["minutely_15"]
        times = tuple(int(t) for t in steps["time"])
        columns = {name: list(steps[name]) for name in MINUTELY_15}
        hourly = body.get("hourly") or {}
        cover_by_hour = dict(
            zip(hourly.get("time", []), hourly.get("cloud_cover", []), strict=False)
        )
    except (KeyError, TypeError, ValueError) as error:
        raise WeatherUnavailable(f"Open-Meteo answered an unexpected shape: {error!r}") from None
    if any(len(column) != len(times) for column in columns.values()):
        raise WeatherUnavailable("Open-Meteo's 15-minute columns differ in length")
    # Cloud cover is an instant's, on the hour: each step takes the hour nearest its middle.
    nearest_hours = [HOUR_SECS * round((t - STEP_SECS / 2) / HOUR_SECS) for t in times]
    return Weather(
        cell=cell,
        times=times,
        ghi=tuple(clean_irradiance(v) for v in columns["shortwave_radiation"]),
        dni=tuple(clean_irradiance(v) for v in columns["direct_normal_irradiance"]),
        dhi=tuple(clean_irradiance(v) for v in columns["diffuse_radiation"]),
        temp_air=tuple(clean_reading(v, -60, 60) for v in columns["temperature_2m"]),
        wind_speed=tuple(clean_reading(v, 0, 100) for v in columns["wind_speed_10m"]),
        cloud_cover=tuple(clean_reading(cover_by_hour.get(end), 0, 100) for end in nearest_hours),
    )


class OpenMeteo:
    """Open-Meteo's forecasts, one request per grid cell and cache period."""

    def __init__(
        self,
        settings: ForecastSettings,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.http = http or httpx.AsyncClient(timeout=settings.timeout_secs)
        self.clock = clock
        self.sleep = sleep
        self.requests = 0
        self._cache: dict[Cell, tuple[float, Weather]] = {}
        self._in_flight: dict[Cell, asyncio.Task[Weather]] = {}

    async def close(self) -> None:
        await self.http.aclose()

    async def weather(self, latitude: float, longitude: float) -> Weather:
        """The forecast over a location: its cell's, cached or asked for."""
        cell = cell_of(latitude, longitude, self.settings.grid_degrees)
        cached = self._cache.get(cell)
        if cached is not None and self.clock() - cached[0] < self.settings.cache_secs:
            return cached[1]
        task = self._in_flight.get(cell)
        if task is None:
            task = asyncio.ensure_future(self._fetch(cell))
            self._in_flight[cell] = task
            task.add_done_callback(lambda _: self._in_flight.pop(cell, None))
        return await asyncio.shield(task)

    async def _fetch(self, cell: Cell) -> Weather:
        settings = self.settings
        params: dict[str, str | int | float] = {
            "latitude": cell.latitude,
            "longitude": cell.longitude,
            "minutely_15": ",".join(MINUTELY_15),
            "hourly": ",".join(HOURLY),
            "forecast_minutely_15": settings.horizon_hours * 4,
            "forecast_hours": settings.horizon_hours + 1,
            "timeformat": "unixtime",
            "timezone": "GMT",
            "wind_speed_unit": "ms",
        }
        if settings.weather_api_key is not None:
            params["apikey"] = settings.weather_api_key.get_secret_value()
        url = f"{settings.weather_base_url.rstrip('/')}/v1/forecast"
        bound = log.bind(latitude=cell.latitude, longitude=cell.longitude)
        backoff = settings.rate_limit_backoff_secs
        for attempt in range(settings.rate_limit_retries + 1):
            self.requests += 1
            try:
                response = await self.http.get(url, params=params)
            except httpx.HTTPError as error:
                bound.warning("weather_unreachable", error=type(error).__name__)
                raise WeatherUnavailable(
                    f"Open-Meteo unreachable: {type(error).__name__}"
                ) from None
            if response.status_code == 429:
                wait = _retry_after(response) or backoff
                bound.warning("weather_rate_limited", attempt=attempt, wait_secs=wait)
                if attempt == settings.rate_limit_retries or wait > MAX_RETRY_AFTER_SECS:
                    break
                await self.sleep(wait)
                backoff *= 2
                continue
            if response.status_code != 200:
                reason = _reason(response)
                bound.warning("weather_refused", status=response.status_code, reason=reason)
                raise WeatherUnavailable(f"Open-Meteo answered {response.status_code}: {reason}")
            try:
                body = response.json()
            except ValueError:
                raise WeatherUnavailable("Open-Meteo answered something not JSON") from None
            weather = parse_forecast(cell, body)
            self._cache[cell] = (self.clock(), weather)
            return weather
        raise WeatherRateLimited("Open-Meteo kept answering 429 (rate limited)")


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(float(response.headers["retry-after"]), 0.0)
    except (KeyError, ValueError):
        return None


def _reason(response: httpx.Response) -> str:
    """Open-Meteo's own reason (``{"error": true, "reason": ...}``), cut short."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    reason = body.get("reason") if isinstance(body, dict) else None
    return str(reason)[:200] if reason is not None else response.text[:200]
