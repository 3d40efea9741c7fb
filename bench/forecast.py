"""Backtest of the production forecast on real measured PV data no one in this project made.

Inputs, exactly: ``pvanalytics`` 0.2.2's ``data/serf_east_15min_ac_power.csv`` (AC power in W
every 15 minutes, 2016-07-01 to 2016-10-13, of the SERF East array on NREL's campus in Golden,
Colorado, 39.742 N 105.1727 W) and ``data/serf_east_psm3_data.csv`` (NSRDB PSM3
satellite-derived GHI and air temperature for the same site and steps). The array's capacity
is fitted on the first 14 days (the ratio correction the oracle learns from a meter), its tilt
and azimuth chosen on the same days from a small grid; the rest is scored, daylight steps only.

No archived weather forecasts are reachable here, so PSM3's satellite-derived GHI (what the sky
actually did, split into DNI and DHI by Erbs) stands in for the forecast: the "model" rows are
the PV model's error given perfect weather, a floor under what a real forecast reaches, the same
at every horizon. The "clear sky x index" rows (the oracle's fallback without weather) use
nothing but the meter's own past and are a true forecast at each horizon.

Run: ``python -m bench.forecast``.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pvlib
from rich.console import Console
from rich.table import Table

from nishati_oracle.forecast import pv
from nishati_oracle.forecast.systems import PvSystem
from nishati_oracle.forecast.weather import STEP_SECS

FloatArray = npt.NDArray[np.float64]
# The site at 1 kWp, unclipped: the fit scales it.
UNIT = PvSystem(
    latitude=39.742,
    longitude=-105.1727,
    altitude_m=1_829,
    capacity_wp=1_000,
    inverter_limit_w=5_000,
)
CALIBRATION_DAYS = 14
STEPS_PER_HOUR = 4
HORIZONS_HOURS = (1, 24)
TILTS = (10.0, 20.0, 30.0, 40.0)
AZIMUTHS = (90.0, 135.0, 180.0, 225.0)
# A step counts as daylight when clear sky would give this share of the capacity.
DAYLIGHT_SHARE = 0.02


def data_dir() -> Path:
    # find_spec locates the package without importing it (its modules need statsmodels).
    spec = importlib.util.find_spec("pvanalytics")
    if spec is None or spec.submodule_search_locations is None:
        raise SystemExit("pip install --no-deps pvanalytics==0.2.2 (for its data folder)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@dataclass(frozen=True)
class Site:
    ends: list[int]
    measured: FloatArray
    ghi: FloatArray
    temp_air: FloatArray


def load() -> Site:
    folder = data_dir()
    power = pd.read_csv(folder / "serf_east_15min_ac_power.csv", index_col=0, parse_dates=True)
    weather = pd.read_csv(folder / "serf_east_psm3_data.csv", index_col=0, parse_dates=True)
    joined = power.join(weather, how="inner")
    stamps = pd.DatetimeIndex(joined.index).tz_convert("UTC")
    # Each row is the step's instant; the model takes the end of a step centred on it.
    ends = [int(t.timestamp()) + STEP_SECS // 2 for t in stamps]
    return Site(
        ends=ends,
        measured=np.clip(joined["ac_power"].to_numpy(dtype=np.float64), 0, None),
        ghi=joined["ghi"].to_numpy(dtype=np.float64),
        temp_air=joined["temp_air"].to_numpy(dtype=np.float64),
    )


def modelled(system: PvSystem, site: Site) -> FloatArray:
    """AC power (W) from the stand-in weather."""
    middles = pd.DatetimeIndex(
        pd.to_datetime(np.asarray(site.ends) - STEP_SECS // 2, unit="s", utc=True)
    )
    zenith = pvlib.solarposition.get_solarposition(
        middles, system.latitude, system.longitude, altitude=system.altitude_m
    )["apparent_zenith"].to_numpy(dtype=np.float64)
    split = pvlib.irradiance.erbs(site.ghi, zenith, middles)
    return pv.ac_power(
        system,
        site.ends,
        site.ghi,
        np.nan_to_num(np.asarray(split["dni"], dtype=np.float64)),
        np.nan_to_num(np.asarray(split["dhi"], dtype=np.float64)),
        site.temp_air,
        np.full(len(site.ends), pv.FALLBACK_WIND_M_S),
    )


def clear(system: PvSystem, site: Site) -> FloatArray:
    ghi, dni, dhi = pv.clear_sky(system, site.ends)
    size = len(site.ends)
    return pv.ac_power(
        system,
        site.ends,
        ghi,
        dni,
        dhi,
        np.full(size, pv.FALLBACK_TEMPERATURE_C),
        np.full(size, pv.FALLBACK_WIND_M_S),
    )


def fit(site: Site, calibration: slice) -> tuple[PvSystem, float]:
    """The orientation whose shape fits the calibration days best, and its capacity from the
    measured-over-modelled ratio; the calibration MAE (W) of the fit."""
    best: tuple[float, PvSystem] | None = None
    for tilt in TILTS:
        for azimuth in AZIMUTHS:
            unit = UNIT.model_copy(update={"tilt_deg": tilt, "azimuth_deg": azimuth})
            power = modelled(unit, site)[calibration]
            ratio = site.measured[calibration].sum() / max(power.sum(), 1.0)
            error = float(np.abs(power * ratio - site.measured[calibration]).mean())
            capacity = round(1_000 * ratio)
            system = unit.model_copy(
                update={
                    "capacity_wp": capacity,
                    "inverter_limit_w": max(capacity, round(float(site.measured.max()))),
                }
            )
            if best is None or error < best[0]:
                best = (error, system)
    assert best is not None
    return best[1], best[0]


def trailing_index(measured: FloatArray, sky: FloatArray, steps: int) -> FloatArray:
    """At each step, the measured-over-clear-sky ratio of the ``steps`` before it (NaN where
    clear sky gave nearly nothing)."""
    made = pd.Series(measured).rolling(steps, min_periods=steps).sum().to_numpy()
    could = pd.Series(sky).rolling(steps, min_periods=steps).sum().to_numpy()
    index: FloatArray = np.where(could > 1e-6 * steps, made / np.maximum(could, 1e-9), np.nan)
    return np.clip(index, 0.0, 1.2)


def main() -> None:
    site = load()
    start = site.ends[0]
    calibration = slice(0, CALIBRATION_DAYS * 96)
    system, calibration_mae = fit(site, calibration)
    model = modelled(system, site)
    sky = clear(system, site)
    daylight = sky > DAYLIGHT_SHARE * system.capacity_wp
    hour_index = trailing_index(site.measured, sky, STEPS_PER_HOUR)
    day_index = trailing_index(site.measured, sky, 96)
    # Where the last hour was dark, the last day's index stands in.
    issue_index = np.where(np.isnan(hour_index), day_index, hour_index)
    scored = np.zeros(len(site.ends), dtype=bool)
    scored[calibration.stop :] = True
    console = Console()
    console.print(
        f"SERF East (pvanalytics 0.2.2), {len(site.ends)} steps of 15 min from "
        f"{pd.Timestamp(start, unit='s', tz='UTC'):%Y-%m-%d}; fitted on {CALIBRATION_DAYS} days: "
        f"{system.capacity_wp} Wp, tilt {system.tilt_deg:g}, azimuth {system.azimuth_deg:g}, "
        f"inverter {system.inverter_limit_w} W (calibration MAE {calibration_mae:.0f} W)"
    )
    table = Table(title="Daylight MAE (W) and skill against smart persistence")
    for column in ("horizon", "forecast", "MAE W", "MAE % of Wp", "skill"):
        table.add_column(column, justify="right" if column != "forecast" else "left")
    for hours in HORIZONS_HOURS:
        lag = hours * STEPS_PER_HOUR
        target = np.arange(len(site.ends))
        valid = scored & daylight & (target >= lag + 96)
        issued = target - lag
        forecasts = {
            "persistence": site.measured[np.maximum(issued, 0)],
            "smart persistence": issue_index[np.maximum(issued, 0)] * sky,
            "clear sky x index (fallback)": day_index[np.maximum(issued, 0)] * sky,
            "model, weather stand-in": model,
        }
        valid &= ~np.isnan(forecasts["smart persistence"])
        valid &= ~np.isnan(forecasts["clear sky x index (fallback)"])
        truth = site.measured[valid]
        maes = {name: float(np.abs(f[valid] - truth).mean()) for name, f in forecasts.items()}
        reference = maes["smart persistence"]
        for name, mae in maes.items():
            table.add_row(
                f"{hours} h",
                name,
                f"{mae:.0f}",
                f"{100 * mae / system.capacity_wp:.1f}",
                f"{1 - mae / reference:+.2f}",
            )
        table.add_section()
    console.print(table)
    console.print(
        f"scored: {int((scored & daylight).sum())} daylight steps; the model's weather is "
        "PSM3's satellite-derived GHI (what happened), not a forecast: its rows bound a real "
        "forecast's error from below"
    )


if __name__ == "__main__":
    main()
