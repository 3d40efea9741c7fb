"""A local Open-Meteo: ``/v1/forecast`` answering in the documented JSON shape
(``timeformat=unixtime``, ``minutely_15`` and ``hourly``), for the demo, the forecast bench and
the tests; nothing leaves the machine.

Its sky is a plain clear sky at the asked location times a cloud factor that varies smoothly
with time and place, the same every run. ``status`` makes it fail (503: an outage, 429:
rate limited) and ``requests`` counts what it was asked.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np

from nishati_dev.processes import HOST

STEP_SECS = 900
HOUR_SECS = 3_600


def cloud_factor(times: np.ndarray, latitude: float, longitude: float) -> np.ndarray:
    """Share of clear sky reaching the ground: passing clouds, a different day at each place."""
    phase = 7.0 * latitude + 3.0 * longitude
    slow = np.sin(times / 21_600.0 + phase)
    fast = np.sin(times / 2_700.0 + 2.0 * phase)
    return np.asarray(np.clip(0.85 + 0.1 * slow + 0.05 * fast, 0.1, 1.0), dtype=np.float64)


def clear_sky(
    times: np.ndarray, latitude: float, longitude: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A plain clear sky (W/m²: GHI, DNI, DHI) at each step's middle: the sun's elevation from
    its declination and hour angle, and the beam through an air mass of a clear tropical day.
    A stub's sky, cheap to answer with; the oracle's own model is pvlib's."""
    middles = times - STEP_SECS / 2
    day = (middles / 86_400.0) % 365.25
    declination = np.radians(23.44) * np.sin(2 * np.pi * (day - 80.0) / 365.25)
    solar_hours = (middles / 3_600.0 + longitude / 15.0) % 24
    hour_angle = np.radians(15.0 * (solar_hours - 12.0))
    lat = np.radians(latitude)
    cos_zenith = np.sin(lat) * np.sin(declination) + np.cos(lat) * np.cos(declination) * np.cos(
        hour_angle
    )
    up = np.clip(cos_zenith, 0.0, None)
    dni = np.where(up > 0.01, 1_000.0 * 0.7 ** ((1.0 / np.maximum(up, 0.01)) ** 0.678), 0.0)
    dhi = 0.12 * 1_000.0 * up
    return dni * up + dhi, dni, dhi


def forecast_body(latitude: float, longitude: float, now: float, steps: int) -> dict[str, Any]:
    """What Open-Meteo answers for ``steps`` 15-minute steps from the current one."""
    first = math.ceil(now / STEP_SECS) * STEP_SECS
    times = first + STEP_SECS * np.arange(steps)
    sky_ghi, sky_dni, sky_dhi = clear_sky(times.astype(np.float64), latitude, longitude)
    factor = cloud_factor(times.astype(np.float64), latitude, longitude)
    ghi = sky_ghi * factor
    dni = sky_dni * factor**2
    # Clouds take the direct beam first and scatter part of it: more diffuse, never above GHI.
    dhi = np.minimum(sky_dhi * (2.0 - factor), ghi)
    hours = HOUR_SECS * (first // HOUR_SECS) + HOUR_SECS * np.arange(steps // 4 + 2)
    return {
        "latitude": latitude,
        "longitude": longitude,
        "generationtime_ms": 0.1,
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
            "time": times.tolist(),
            "shortwave_radiation": np.round(ghi, 1).tolist(),
            "direct_normal_irradiance": np.round(dni, 1).tolist(),
            "diffuse_radiation": np.round(dhi, 1).tolist(),
            "temperature_2m": np.round(18.0 + 6.0 * factor, 1).tolist(),
            "wind_speed_10m": [2.0] * steps,
        },
        "hourly_units": {"time": "unixtime", "cloud_cover": "%"},
        "hourly": {
            "time": hours.tolist(),
            "cloud_cover": np.round(
                100 * (1 - cloud_factor(hours.astype(np.float64), latitude, longitude))
            ).tolist(),
        },
    }


class OpenMeteoStub:
    """The local Open-Meteo on a free loopback port (``url``), its clock ``clock``."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.status = 200
        self.requests = 0
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = parse_qs(url.query)
                with stub._lock:
                    stub.requests += 1
                    status = stub.status
                if url.path != "/v1/forecast":
                    status = 404
                if status == 200:
                    body = forecast_body(
                        float(query["latitude"][0]),
                        float(query["longitude"][0]),
                        stub.clock(),
                        int(query.get("forecast_minutely_15", ["192"])[0]),
                    )
                else:
                    body = {"error": True, "reason": f"the local Open-Meteo answers {status}"}
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._server.server_address[1]}"

    def __enter__(self) -> OpenMeteoStub:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
