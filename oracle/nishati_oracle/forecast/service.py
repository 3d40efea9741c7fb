"""Forecast rounds: every ``round_secs``, each home with a meter gets a fresh outlook (15-minute
steps, ``horizon_hours`` ahead), and every forecast step its meter has since reported is scored.

A round, in order:

1. The readings stored since the last round are bucketed into each home's 15-minute steps
   (``forecast.measured``): what it exported and imported.
2. Forecasts waiting for a step the meter has now reported are scored against it (below), and
   teach the home its production ratio and the spread of its errors.
3. One weather request per grid cell (``forecast.weather``: homes in a cell share it). When
   Open-Meteo is unreachable or failing, the round stops asking (an outage is every cell's)
   and those homes fall back to clear sky.
4. The PV model (``forecast.pv``) runs once per cell and kind of system (tilt, azimuth, the
   inverter's size over the array's, altitude to 100 m) at 1 kWp, and each home takes it at its
   own capacity: PVWatts is proportional to the array's size when the inverter scales with it,
   so this is the home's own model, its inverter limit rounded to 1 % of its capacity and the
   sun taken at its cell's centre (at most 0.025 degrees away: seconds of solar time).
5. Each home's outlook: with weather, the model's production times the home's learned ratio
   (a step the weather left without irradiance takes clear sky times the home's clear-sky
   index); without, clear sky times its clear-sky index, which already holds its shading, so
   the ratio is not applied again. The index is a share of clear-sky power (what the home
   made over what the model gives under clear sky), so it scales the clear-sky power, not the
   irradiance: scaling the irradiance would give a cooler panel's higher yield (about 10 %
   more at an index of 0.5) than the home was seen to make, and a model run per home.
   Consumption comes from the home's imports by weekday and hour in the market's time zone
   (``learning.ConsumptionProfile``); the surplus is production minus consumption, its p10/p90
   the surplus plus the 10th and 90th percentiles of the home's recent errors.

**What the meter measures, and what is estimated.** The meter sits at the grid connection, so
over a step export minus import is exactly production minus consumption: the surplus the
forecast predicts, and what it is scored against. Neither production nor consumption is seen
alone. Consumption is learned from imports, which is the home's consumption at night and, in
daylight, what its own panels did not cover. Production is estimated as ``max(0, export -
import + expected consumption)``, and the production ratio is learned from that over the
model's uncorrected production (``learning.production_ratio``) on daylight steps forecast an
hour ahead with weather. What the home consumes of its own production in daylight beyond its
expected imports is invisible to the meter, so the ratio learned is the share of the model's
production that shows at the meter, not the panels' true ratio; that is the share that
predicts the surplus. The clear-sky index is learned the same way, over the last day's
reported daylight steps.

**Skill.** Of each round's forecast, the step one hour ahead and the step a day ahead (the
horizons) are kept until the meter reports them (``forecast_pending``). A reported daylight
step adds its absolute surplus error to the home's skill, beside smart persistence's for the
same step: clear-sky production times the clear-sky index of the hour before the forecast was
made (the last day's, at night), minus the same consumption forecast, so the skill measures
what the production forecast adds. Night steps only widen the band (both forecasts share their
error). A step not reported within a day of its end is dropped unscored.

What a home learned (its ratio, clear-sky index and recent errors) is kept with its outlook and
taken back after a restart; the readings of the last ``history_days`` are bucketed again. The
pairs its ratio is learned from are not kept: after a restart the ratio stays as kept until the
new pairs forecast at least ``learning.MIN_RATIO_WH``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
import numpy.typing as npt
import structlog

from nishati_oracle.core.metrics import Metrics
from nishati_oracle.core.settings import ForecastSettings
from nishati_oracle.forecast import learning, pv
from nishati_oracle.forecast.measured import MAX_SPREAD_SECS, MeasuredSteps
from nishati_oracle.forecast.pv import FloatArray, Source, Sun
from nishati_oracle.forecast.store import (
    ForecastStore,
    Learned,
    NewOutlook,
    Outlook,
    Pending,
    Scored,
    Skill,
)
from nishati_oracle.forecast.systems import PvSystem
from nishati_oracle.forecast.weather import (
    STEP_SECS,
    Cell,
    OpenMeteo,
    Weather,
    WeatherRateLimited,
    WeatherUnavailable,
    cell_of,
)

log = structlog.get_logger(__name__)

# The horizons scored: a horizon's step is the one ending that long after the outlook starts.
HORIZONS_SECS = (3_600, 86_400)
HORIZON_LABELS = {3_600: "1h", 86_400: "24h"}
# The production ratio is learned at the shortest horizon, where the weather is best.
RATIO_HORIZON_SECS = 3_600
# The steps before a round its clear-sky indices are learned from: a day.
PAST_STEPS = 96
# Steps of clear-sky production below this (Wh, at the home's size) are night.
DAYLIGHT_WH = 1.0
# Clear-sky Wh a home's last hour must have held for its index to be the hour's own.
MIN_HOUR_INDEX_WH = 100.0
# Recent errors the band is drawn from: two days of steps at each horizon.
ERRORS_KEPT = 2 * 96 * len(HORIZONS_SECS)
# Recent pairs the ratio is learned from: a week of daylight steps an hour ahead.
PAIRS_KEPT = 7 * 48
# A step not reported this long after it ended is dropped unscored.
SCORE_WAIT_SECS = 86_400
# Weather requests in flight at once.
WEATHER_CONCURRENCY = 8
# The PV model runs at this size; each home takes it at its own.
UNIT_WP = 1_000
ALTITUDE_STEP_M = 100
# A round's phases, in order, as its log line times them.
ROUND_PHASES = ("readings", "scoring", "weather", "model", "storing")
# Homes whose consumption profiles are learned at a time.
PROFILE_ROWS = 1_024
# Readings read and bucketed at a time.
READINGS_BATCH = 50_000


@dataclass(frozen=True)
class RoundReport:
    """What a round did: homes forecast by source, weather requests sent and cells asked for,
    steps scored and dropped, and its duration."""

    made_at: float
    homes: int
    cells: int
    weather_requests: int
    by_source: dict[Source, int]
    scored: int
    dropped: int
    seconds: float


@dataclass(frozen=True)
class ModelKey:
    """What the PV model's answer depends on, once a home's size is taken out."""

    cell: Cell
    altitude_m: int
    tilt_deg: float
    azimuth_deg: float
    inverter_ratio: float

    @classmethod
    def of(cls, system: PvSystem, grid_degrees: float) -> ModelKey:
        return cls(
            cell=cell_of(system.latitude, system.longitude, grid_degrees),
            altitude_m=round(system.altitude_m / ALTITUDE_STEP_M) * ALTITUDE_STEP_M,
            tilt_deg=system.tilt_deg,
            azimuth_deg=system.azimuth_deg,
            inverter_ratio=round(system.inverter_limit_w / system.capacity_wp, 2),
        )

    def unit(self) -> PvSystem:
        return PvSystem(
            latitude=self.cell.latitude,
            longitude=self.cell.longitude,
            altitude_m=self.altitude_m,
            capacity_wp=UNIT_WP,
            tilt_deg=self.tilt_deg,
            azimuth_deg=self.azimuth_deg,
            inverter_limit_w=round(self.inverter_ratio * UNIT_WP),
        )


@dataclass(frozen=True)
class UnitPower:
    """The model's AC Wh per step at 1 kWp: under clear sky over the round's whole span, and
    from the weather over the outlook (``None`` without weather; ``missing`` the steps the
    weather left without irradiance)."""

    clear: FloatArray
    weather: FloatArray | None
    missing: np.ndarray | None


class Ring:
    """The last ``size`` rows of ``width`` int32 values, oldest dropped first."""

    def __init__(self, size: int, width: int = 1) -> None:
        self._rows = np.zeros((size, width), dtype=np.int32)
        self._count = 0

    def add(self, *values: int) -> None:
        self._rows[self._count % len(self._rows)] = values
        self._count += 1

    def values(self) -> npt.NDArray[np.int32]:
        """The rows kept, oldest first, (rows, width)."""
        size = len(self._rows)
        if self._count <= size:
            return self._rows[: self._count].copy()
        return np.roll(self._rows, -(self._count % size), axis=0)


@dataclass
class HomeState:
    """What the service has learned of a home, in memory between rounds: its ratio, its
    clear-sky index, its recent errors, and its recent pairs of the model's uncorrected Wh
    and the production estimated from its meter."""

    ratio: float = 1.0
    clear_sky_index: float | None = None
    errors: Ring = field(default_factory=lambda: Ring(ERRORS_KEPT))
    pairs: Ring = field(default_factory=lambda: Ring(PAIRS_KEPT, 2))


def _clamp_index(value: float) -> float:
    low, high = pv.CLEAR_SKY_INDEX_BOUNDS
    return min(max(value, low), high)


def _aligned(weather: Weather, ends: Sequence[int]) -> Weather:
    """The weather at exactly ``ends``: a step it did not give is missing."""
    at = {end: i for i, end in enumerate(weather.times)}

    def column(values: tuple[float | None, ...]) -> tuple[float | None, ...]:
        return tuple(values[at[end]] if end in at else None for end in ends)

    return Weather(
        cell=weather.cell,
        times=tuple(ends),
        ghi=column(weather.ghi),
        dni=column(weather.dni),
        dhi=column(weather.dhi),
        temp_air=column(weather.temp_air),
        wind_speed=column(weather.wind_speed),
        cloud_cover=column(weather.cloud_cover),
    )


def cell_power(
    keys: Sequence[ModelKey],
    span: Sequence[int],
    outlook_from: int,
    weather: Weather | None,
) -> dict[ModelKey, UnitPower]:
    """The model at 1 kWp for each kind of system in one cell (``keys``, all of one cell and
    altitude), side by side. ``span`` holds every step the round looks at, the outlook's from
    index ``outlook_from``."""
    place = keys[0].unit()
    sun = pv.sun_over(place, span)
    sky = pv.clear_sky(place, span, sun)
    units = pv.Arrays.of([key.unit() for key in keys])
    size = len(span)
    clear = pv.WH_PER_W_STEP * pv.ac_power_of(
        units,
        sun,
        *sky,
        np.full(size, pv.FALLBACK_TEMPERATURE_C),
        np.full(size, pv.FALLBACK_WIND_M_S),
    )
    if weather is None:
        return {key: UnitPower(clear[i], None, None) for i, key in enumerate(keys)}
    aligned = _aligned(weather, span[outlook_from:])
    missing = np.array(
        [None in values for values in zip(aligned.ghi, aligned.dni, aligned.dhi, strict=True)]
    )
    ahead = Sun(sun.zenith[outlook_from:], sun.azimuth[outlook_from:], sun.dni_extra[outlook_from:])
    from_weather = pv.WH_PER_W_STEP * pv.ac_power_of(
        units,
        ahead,
        pv.filled(aligned.ghi, 0.0),
        pv.filled(aligned.dni, 0.0),
        pv.filled(aligned.dhi, 0.0),
        pv.filled(aligned.temp_air, pv.FALLBACK_TEMPERATURE_C),
        pv.filled(aligned.wind_speed, pv.FALLBACK_WIND_M_S),
    )
    return {key: UnitPower(clear[i], from_weather[i], missing) for i, key in enumerate(keys)}


class ForecastService:
    """Forecast rounds over every home with a meter, and what they found."""

    def __init__(
        self,
        settings: ForecastSettings,
        store: ForecastStore,
        weather: OpenMeteo,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.weather = weather
        self.metrics = metrics
        self.clock = clock
        self.history_steps = settings.history_days * 96
        self.measured = MeasuredSteps(self.history_steps)
        self.homes: dict[str, HomeState] = {}
        self._last_reading_id = 0
        self._restored = False

    async def outlook(self, household: str) -> Outlook | None:
        """The home's latest outlook, ``None`` before its first round."""
        return await self.store.outlook(household)

    async def skill(self, household: str | None = None) -> Skill:
        """The home's skill so far per horizon, or the market's (``household`` None)."""
        return await self.store.skill(household, HORIZONS_SECS)

    async def run(self, stop: asyncio.Event) -> None:
        """A round now and every ``round_secs`` until ``stop``; a failed round is logged and
        the next one tries again."""
        while not stop.is_set():
            try:
                await self.round()
            except Exception:
                log.exception("forecast round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.round_secs)

    async def round(self, now: float | None = None) -> RoundReport:
        """One round at ``now`` (by default, the clock's); see the module."""
        started = time.perf_counter()
        marks = [started]
        now = self.clock() if now is None else now
        await self._read_new(now)
        systems = await self.store.homes()
        await self._restore()
        for household in systems:
            self.measured.row(household)
            self.homes.setdefault(household, HomeState())
        marks.append(time.perf_counter())
        scored, dropped = await self._score(now)
        marks.append(time.perf_counter())
        requests = self.weather.requests
        weather = await self._weather(systems, now)
        marks.append(time.perf_counter())
        outlooks, pending = await asyncio.to_thread(self._forecast, systems, weather, now)
        marks.append(time.perf_counter())
        await self.store.save_round(outlooks, pending)
        marks.append(time.perf_counter())
        by_source = Counter(o.source for o in outlooks)
        report = RoundReport(
            made_at=now,
            homes=len(outlooks),
            cells=len(weather),
            weather_requests=self.weather.requests - requests,
            by_source={source: by_source.get(source, 0) for source in Source},
            scored=scored,
            dropped=dropped,
            seconds=marks[-1] - started,
        )
        await self._observe(report)
        log.info(
            "forecast round",
            homes=report.homes,
            cells=report.cells,
            weather_requests=report.weather_requests,
            weather=report.by_source[Source.weather],
            clear_sky=report.by_source[Source.clear_sky],
            scored=scored,
            dropped=dropped,
            secs=round(report.seconds, 2),
            **{
                f"{phase}_secs": round(after - before, 2)
                for phase, (before, after) in zip(ROUND_PHASES, pairwise(marks), strict=True)
            },
        )
        return report

    async def _read_new(self, now: float) -> None:
        """Buckets the readings stored since the last round (at first, the window's), off the
        event loop."""
        since = int(now) - self.history_steps * STEP_SECS - MAX_SPREAD_SECS
        while True:
            rows = await self.store.readings_after(self._last_reading_id, since, READINGS_BATCH)
            if not rows:
                return
            _, meter, household, timestamp, exported, imported = zip(*rows, strict=True)
            await asyncio.to_thread(
                self.measured.readings,
                meter,
                household,
                np.array(timestamp, dtype=np.int64),
                np.array(exported, dtype=np.int64),
                np.array(imported, dtype=np.int64),
                now,
            )
            self._last_reading_id = rows[-1][0]
            if len(rows) < READINGS_BATCH:
                return

    async def _restore(self) -> None:
        """What the homes learned before the oracle last stopped, once."""
        if self._restored:
            return
        self._restored = True
        for household, learned in (await self.store.learned()).items():
            state = self.homes.setdefault(household, HomeState())
            state.ratio = learned.ratio
            state.clear_sky_index = learned.clear_sky_index
            for error in learned.recent_errors.tolist():
                state.errors.add(error)

    async def _score(self, now: float) -> tuple[int, int]:
        """Scores the waiting forecasts whose step the meter has reported; drops those it has
        not reported a day after they ended."""
        due = await self.store.due(int(now) // STEP_SECS * STEP_SECS)
        done, scored, dropped = await asyncio.to_thread(self._scored, due, now)
        await self.store.settle(done, scored, now)
        for horizon in HORIZONS_SECS:
            steps = sum(s.steps for s in scored if s.horizon_secs == horizon)
            self.metrics.forecast_scored.labels(HORIZON_LABELS[horizon]).inc(steps)
            self.metrics.forecast_dropped.labels(HORIZON_LABELS[horizon]).inc(dropped[horizon])
        return sum(s.steps for s in scored), sum(dropped.values())

    def _scored(
        self, due: Sequence[Pending], now: float
    ) -> tuple[list[Pending], list[Scored], Counter[int]]:
        """The forecasts done with (scored or dropped), the skill they add, and how many were
        dropped per horizon; each home learns from its scored steps."""
        done: list[Pending] = []
        sums: dict[tuple[str, int], list[int]] = {}
        learned_from: set[str] = set()
        dropped = Counter[int]()
        for waiting in due:
            step = self.measured.step(waiting.household, waiting.target_end)
            if step is None:
                if waiting.target_end < now - SCORE_WAIT_SECS:
                    done.append(waiting)
                    dropped[waiting.horizon_secs] += 1
                continue
            done.append(waiting)
            net = step[0] - step[1]
            error = net - waiting.surplus_wh
            state = self.homes.setdefault(waiting.household, HomeState())
            state.errors.add(error)
            if not waiting.daylight:
                continue
            total = sums.setdefault((waiting.household, waiting.horizon_secs), [0, 0, 0])
            total[0] += 1
            total[1] += abs(error)
            total[2] += abs(net - waiting.reference_wh)
            if waiting.model_wh is not None and waiting.horizon_secs == RATIO_HORIZON_SECS:
                made = max(net + waiting.consumption_wh, 0)
                state.pairs.add(waiting.model_wh, made)
                learned_from.add(waiting.household)
        for household in learned_from:
            state = self.homes[household]
            model_wh, made_wh = state.pairs.values().sum(axis=0, dtype=np.int64).tolist()
            ratio = learning.ratio_of(model_wh, made_wh)
            if ratio is not None:
                state.ratio = ratio
        scored = [Scored(h, horizon, *totals) for (h, horizon), totals in sums.items()]
        return done, scored, dropped

    async def _weather(
        self, systems: dict[str, PvSystem | None], now: float
    ) -> dict[Cell, Weather | None]:
        """Each cell's weather, one request a cell; none once Open-Meteo is found away (the
        first cell is asked alone, the rest ``WEATHER_CONCURRENCY`` at a time)."""
        grid = self.settings.grid_degrees
        cells = {
            cell_of(s.latitude, s.longitude, grid)
            for s in (v or PvSystem() for v in systems.values())
        }
        gate = asyncio.Semaphore(WEATHER_CONCURRENCY)
        outage = False

        async def ask(cell: Cell) -> Weather | None:
            nonlocal outage
            async with gate:
                if outage:
                    return None
                try:
                    return await self.weather.weather(cell.latitude, cell.longitude)
                except WeatherRateLimited:
                    return None
                except WeatherUnavailable:
                    outage = True
                    return None

        ordered = sorted(cells, key=lambda c: (c.latitude, c.longitude))
        if not ordered:
            return {}
        # The first cell alone: when Open-Meteo is away, the round knows after one request.
        first = await ask(ordered[0])
        rest = await asyncio.gather(*(ask(cell) for cell in ordered[1:]))
        return dict(zip(ordered, [first, *rest], strict=True))

    def _forecast(
        self,
        systems: dict[str, PvSystem | None],
        weather: dict[Cell, Weather | None],
        now: float,
    ) -> tuple[list[NewOutlook], list[Pending]]:
        """Every home's outlook and the steps to score (CPU work, run off the event loop)."""
        settings = self.settings
        last_end = int(now) // STEP_SECS * STEP_SECS
        outlook_ends = pv.step_ends(int(now), settings.horizon_hours)
        past_first = last_end - (PAST_STEPS - 1) * STEP_SECS
        span = list(range(past_first, outlook_ends[-1] + 1, STEP_SECS))
        outlook_from = len(span) - len(outlook_ends)
        rows = self.measured.rows
        past = self.measured.window(past_first, PAST_STEPS)
        zone = settings.zone
        history_first = last_end - (self.history_steps - 1) * STEP_SECS
        history_slots = learning.local_slots(
            history_first + STEP_SECS * np.arange(self.history_steps), zone
        )
        # The consumption profiles, a chunk of homes at a time (the window's copies stay small).
        profile = np.zeros((len(rows), learning.SLOTS))
        for start in range(0, len(rows), PROFILE_ROWS):
            chunk = slice(start, start + PROFILE_ROWS)
            history = self.measured.window(history_first, self.history_steps, chunk)
            profile[chunk] = learning.slot_means(
                history.imported.astype(np.float64), history.reported, history_slots
            )
        span_slots = learning.local_slots(span, zone)
        keys: dict[str, ModelKey] = {}
        by_cell: dict[tuple[Cell, int], set[ModelKey]] = {}
        for household, system in systems.items():
            key = ModelKey.of(system or PvSystem(), settings.grid_degrees)
            keys[household] = key
            by_cell.setdefault((key.cell, key.altitude_m), set()).add(key)
        power: dict[ModelKey, UnitPower] = {}
        for (cell, _), cell_keys in by_cell.items():
            ordered = sorted(cell_keys, key=lambda k: (k.tilt_deg, k.azimuth_deg, k.inverter_ratio))
            power.update(cell_power(ordered, span, outlook_from, weather.get(cell)))
        outlooks: list[NewOutlook] = []
        pending: list[Pending] = []
        steps_ahead = {h: h // STEP_SECS - 1 for h in HORIZONS_SECS}
        for household, system in systems.items():
            row = rows[household]
            state = self.homes[household]
            unit = power[keys[household]]
            scale = (system or PvSystem()).capacity_wp / UNIT_WP
            clear = unit.clear * scale
            consumption = profile[row, span_slots]
            made = np.maximum(
                past.exported[row] - past.imported[row] + consumption[:PAST_STEPS], 0.0
            )
            use = past.reported[row] & (clear[:PAST_STEPS] >= DAYLIGHT_WH)
            sky_wh = float(clear[:PAST_STEPS][use].sum())
            if sky_wh >= learning.MIN_RATIO_WH:
                state.clear_sky_index = _clamp_index(float(made[use].sum()) / sky_wh)
            day_index = (
                settings.default_clear_sky_index
                if state.clear_sky_index is None
                else state.clear_sky_index
            )
            hour = slice(PAST_STEPS - 4, PAST_STEPS)
            hour_sky = float(clear[hour][use[hour]].sum())
            hour_index = (
                _clamp_index(float(made[hour][use[hour]].sum()) / hour_sky)
                if hour_sky >= MIN_HOUR_INDEX_WH
                else day_index
            )
            clear_ahead = clear[outlook_from:]
            fallback = clear_ahead * day_index
            model: FloatArray | None = None
            if unit.weather is not None and unit.missing is not None:
                model = unit.weather * scale
                production = np.where(unit.missing, fallback, model * state.ratio)
                source = Source.weather
            else:
                production = fallback
                source = Source.clear_sky
            production_wh = np.rint(production).astype(np.int64)
            consumption_wh = np.rint(consumption[outlook_from:]).astype(np.int64)
            surplus = production_wh - consumption_wh
            errors = state.errors.values()[:, 0]
            low, high = learning.band_offsets(errors)
            series = np.stack(
                [
                    production_wh,
                    consumption_wh,
                    np.rint(surplus + low),
                    np.rint(surplus + high),
                ]
            ).astype(np.int32)
            learned = Learned(state.ratio, day_index, errors)
            outlooks.append(NewOutlook(household, now, source, outlook_ends[0], series, learned))
            for horizon, i in steps_ahead.items():
                if i >= len(outlook_ends):
                    continue
                weather_model = (
                    model is not None and unit.missing is not None and not unit.missing[i]
                )
                pending.append(
                    Pending(
                        household=household,
                        horizon_secs=horizon,
                        target_end=outlook_ends[i],
                        made_at=now,
                        model_wh=round(float(model[i]))
                        if model is not None and weather_model
                        else None,
                        production_wh=int(production_wh[i]),
                        consumption_wh=int(consumption_wh[i]),
                        reference_wh=round(float(clear_ahead[i]) * hour_index)
                        - int(consumption_wh[i]),
                        daylight=bool(clear_ahead[i] >= DAYLIGHT_WH),
                    )
                )
        return outlooks, pending

    async def _observe(self, report: RoundReport) -> None:
        metrics = self.metrics
        metrics.forecast_rounds.inc()
        metrics.forecast_round_seconds.observe(report.seconds)
        metrics.forecast_weather_requests.inc(report.weather_requests)
        for source, homes in report.by_source.items():
            metrics.forecast_homes.labels(source.value).set(homes)
        market = await self.skill(None)
        for horizon in market.horizons:
            label = HORIZON_LABELS[horizon.horizon_secs]
            if horizon.mae_wh is not None:
                metrics.forecast_mae.labels(label).set(horizon.mae_wh)
            if horizon.skill is not None:
                metrics.forecast_skill.labels(label).set(horizon.skill)
