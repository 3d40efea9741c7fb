"""The PV model: a home's AC production, in Wh per 15-minute step, from the weather over it.

Built on pvlib: the sun's position (NREL SPA) at each step's middle, the irradiance transposed
to the panel's plane (Hay-Davies), the reflection loss at the panel's surface (physical IAM),
the cell temperature (SAPM, glass-glass close to the roof), PVWatts DC with its default system
losses, and PVWatts AC, which clips at the inverter's limit. Without weather, clear sky
(Ineichen) times the home's clear-sky index stands in, and the forecast says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt
import pandas as pd
import pvlib

from nishati_oracle.forecast.systems import PvSystem
from nishati_oracle.forecast.weather import STEP_SECS, Weather

FloatArray = npt.NDArray[np.float64]

# Crystalline silicon's power loss per degree above 25 °C (PVWatts' standard module).
GAMMA_PDC = -0.004
INVERTER_EFFICIENCY = 0.96
# PVWatts' default losses (soiling, shading, mismatch, wiring, ...): 14.08 %.
SYSTEM_LOSS = float(pvlib.pvsystem.pvwatts_losses()) / 100
CELL_TEMPERATURE = pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"]["close_mount_glass_glass"]
# Where the weather gives no temperature or wind: a mild Nairobi day, a light breeze.
FALLBACK_TEMPERATURE_C = 20.0
FALLBACK_WIND_M_S = 1.0
WH_PER_W_STEP = STEP_SECS / 3_600
# A home's clear-sky index stays within these: a meter off for a day is not a sky at 0.
CLEAR_SKY_INDEX_BOUNDS = (0.05, 1.2)


class Source(StrEnum):
    """What a forecast was made from."""

    weather = "weather"
    clear_sky = "clear_sky"


@dataclass(frozen=True)
class Step:
    """A 15-minute step, ending at ``end`` (Unix seconds), and the Wh the home makes in it."""

    end: int
    wh: int


@dataclass(frozen=True)
class ProductionForecast:
    """A home's production forecast. ``clear_sky_steps`` counts the steps clear sky times
    ``clear_sky_index`` filled (every step when ``source`` is clear sky; with weather, the steps
    whose irradiance the service left missing)."""

    source: Source
    steps: tuple[Step, ...]
    clear_sky_index: float
    clear_sky_steps: int

    @property
    def total_wh(self) -> int:
        return sum(step.wh for step in self.steps)


def _middles(ends: Sequence[int]) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(np.asarray(ends) - STEP_SECS // 2, unit="s", utc=True))


def _location(system: PvSystem) -> pvlib.location.Location:
    return pvlib.location.Location(
        system.latitude, system.longitude, tz="UTC", altitude=system.altitude_m
    )


def clear_sky(
    system: PvSystem, ends: Sequence[int], sun: Sun | None = None
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Clear-sky GHI, DNI and DHI (W/m²) over the system at each step's middle (``sun`` over
    it at ``ends``, when already known)."""
    times = _middles(ends)
    position = None
    if sun is not None:
        position = pd.DataFrame(
            {"apparent_zenith": sun.zenith, "apparent_elevation": 90.0 - sun.zenith}, index=times
        )
    sky = _location(system).get_clearsky(
        times,
        model="ineichen",
        solar_position=position,
        dni_extra=None if sun is None else pd.Series(sun.dni_extra, index=times),
    )
    return (
        sky["ghi"].to_numpy(dtype=np.float64),
        sky["dni"].to_numpy(dtype=np.float64),
        sky["dhi"].to_numpy(dtype=np.float64),
    )


@dataclass(frozen=True)
class Sun:
    """The sun over a place at each step's middle: what every system there shares."""

    zenith: FloatArray
    azimuth: FloatArray
    dni_extra: FloatArray


def sun_over(system: PvSystem, ends: Sequence[int]) -> Sun:
    """The sun's apparent zenith and azimuth (NREL SPA) and the extraterrestrial irradiance."""
    times = _middles(ends)
    position = pvlib.solarposition.get_solarposition(
        times, system.latitude, system.longitude, altitude=system.altitude_m
    )
    return Sun(
        zenith=position["apparent_zenith"].to_numpy(dtype=np.float64),
        azimuth=position["azimuth"].to_numpy(dtype=np.float64),
        dni_extra=pvlib.irradiance.get_extra_radiation(times).to_numpy(dtype=np.float64),
    )


@dataclass(frozen=True)
class Arrays:
    """Systems side by side in one place: tilt, azimuth, array size (Wp) and inverter limit (W),
    each a column (systems, 1) that broadcasts against the steps."""

    tilt_deg: FloatArray
    azimuth_deg: FloatArray
    capacity_wp: FloatArray
    inverter_limit_w: FloatArray

    @classmethod
    def of(cls, systems: Sequence[PvSystem]) -> Arrays:
        def column(name: str) -> FloatArray:
            return np.array([[float(getattr(s, name))] for s in systems], dtype=np.float64)

        return cls(
            column("tilt_deg"),
            column("azimuth_deg"),
            column("capacity_wp"),
            column("inverter_limit_w"),
        )


def ac_power_of(
    systems: Arrays,
    sun: Sun,
    ghi: FloatArray,
    dni: FloatArray,
    dhi: FloatArray,
    temp_air: FloatArray,
    wind_speed: FloatArray,
) -> FloatArray:
    """Each system's mean AC power (W) in each step, (systems, steps), under the same sky."""
    zenith, azimuth = sun.zenith[np.newaxis, :], sun.azimuth[np.newaxis, :]
    poa = pvlib.irradiance.get_total_irradiance(
        systems.tilt_deg,
        systems.azimuth_deg,
        zenith,
        azimuth,
        dni,
        ghi,
        dhi,
        dni_extra=sun.dni_extra,
        model="haydavies",
    )
    aoi = pvlib.irradiance.aoi(systems.tilt_deg, systems.azimuth_deg, zenith, azimuth)
    beam = np.nan_to_num(np.asarray(poa["poa_direct"], dtype=np.float64))
    diffuse = np.nan_to_num(np.asarray(poa["poa_diffuse"], dtype=np.float64))
    effective = beam * np.asarray(pvlib.iam.physical(aoi), dtype=np.float64) + diffuse
    effective = np.where(zenith < 90, np.clip(effective, 0, None), 0.0)
    temp_cell = pvlib.temperature.sapm_cell(
        beam + diffuse, temp_air, wind_speed, **CELL_TEMPERATURE
    )
    pdc = pvlib.pvsystem.pvwatts_dc(effective, temp_cell, systems.capacity_wp, GAMMA_PDC)
    pdc = np.asarray(pdc, dtype=np.float64) * (1 - SYSTEM_LOSS)
    pac = pvlib.inverter.pvwatts(
        pdc, systems.inverter_limit_w / INVERTER_EFFICIENCY, eta_inv_nom=INVERTER_EFFICIENCY
    )
    clipped: FloatArray = np.clip(
        np.nan_to_num(np.asarray(pac, dtype=np.float64)), 0, systems.inverter_limit_w
    )
    return clipped


def ac_power(
    system: PvSystem,
    ends: Sequence[int],
    ghi: FloatArray,
    dni: FloatArray,
    dhi: FloatArray,
    temp_air: FloatArray,
    wind_speed: FloatArray,
) -> FloatArray:
    """The system's mean AC power (W) in each step."""
    watts = ac_power_of(
        Arrays.of([system]), sun_over(system, ends), ghi, dni, dhi, temp_air, wind_speed
    )
    one: FloatArray = watts[0]
    return one


def _to_steps(ends: Sequence[int], watts: FloatArray) -> tuple[Step, ...]:
    return tuple(
        Step(end=int(end), wh=round(float(w) * WH_PER_W_STEP))
        for end, w in zip(ends, watts, strict=True)
    )


def filled(values: Sequence[float | None], fallback: FloatArray | float) -> FloatArray:
    present = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    filled: FloatArray = np.where(np.isnan(present), fallback, present)
    return filled


def from_weather(system: PvSystem, weather: Weather, clear_sky_index: float) -> ProductionForecast:
    """The forecast from the weather; a step whose irradiance is missing takes clear sky times
    the clear-sky index instead."""
    ends = weather.times
    sky_ghi, sky_dni, sky_dhi = clear_sky(system, ends)
    missing = np.array(
        [
            None in (ghi, dni, dhi)
            for ghi, dni, dhi in zip(weather.ghi, weather.dni, weather.dhi, strict=True)
        ],
        dtype=bool,
    )
    ghi = np.where(missing, sky_ghi * clear_sky_index, filled(weather.ghi, 0.0))
    dni = np.where(missing, sky_dni * clear_sky_index, filled(weather.dni, 0.0))
    dhi = np.where(missing, sky_dhi * clear_sky_index, filled(weather.dhi, 0.0))
    watts = ac_power(
        system,
        ends,
        ghi,
        dni,
        dhi,
        filled(weather.temp_air, FALLBACK_TEMPERATURE_C),
        filled(weather.wind_speed, FALLBACK_WIND_M_S),
    )
    return ProductionForecast(
        source=Source.weather,
        steps=_to_steps(ends, watts),
        clear_sky_index=clear_sky_index,
        clear_sky_steps=int(missing.sum()),
    )


def from_clear_sky(
    system: PvSystem, ends: Sequence[int], clear_sky_index: float
) -> ProductionForecast:
    """The forecast without weather: clear sky's irradiance times the home's clear-sky index."""
    sky_ghi, sky_dni, sky_dhi = clear_sky(system, ends)
    size = len(ends)
    watts = ac_power(
        system,
        ends,
        sky_ghi * clear_sky_index,
        sky_dni * clear_sky_index,
        sky_dhi * clear_sky_index,
        np.full(size, FALLBACK_TEMPERATURE_C),
        np.full(size, FALLBACK_WIND_M_S),
    )
    return ProductionForecast(
        source=Source.clear_sky,
        steps=_to_steps(ends, watts),
        clear_sky_index=clear_sky_index,
        clear_sky_steps=size,
    )


def step_ends(start: int, hours: int) -> list[int]:
    """The ends of the 15-minute steps of ``hours`` from ``start`` (rounded up to a step)."""
    first = -(-start // STEP_SECS) * STEP_SECS + STEP_SECS
    return [first + i * STEP_SECS for i in range(hours * 3_600 // STEP_SECS)]


def clear_sky_index(
    system: PvSystem,
    measured: Sequence[Step],
    low: float = CLEAR_SKY_INDEX_BOUNDS[0],
    high: float = CLEAR_SKY_INDEX_BOUNDS[1],
) -> float | None:
    """The home's recent clear-sky index: what it made over what it would have under clear sky
    (``None`` with no daylight measured), within ``low`` and ``high``."""
    if not measured:
        return None
    ends = [step.end for step in measured]
    expected = from_clear_sky(system, ends, 1.0).total_wh
    if expected <= 0:
        return None
    made = sum(step.wh for step in measured)
    return min(max(made / expected, low), high)
