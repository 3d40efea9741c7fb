"""The forecasts' side of the database: each home's latest outlook and what it has learned, the
forecasts waiting for their meter's report, and the skill scored so far. Tables in
``storage.schema``.

A round over 10,000 homes keeps one outlook row a home (192 steps packed in 3 KiB, replaced),
and of all it forecast only the steps the skill scores: one per home and horizon.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from sqlalchemy import and_, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from nishati_oracle.forecast.learning import Band
from nishati_oracle.forecast.pv import Source
from nishati_oracle.forecast.systems import PvSystem
from nishati_oracle.storage.database import dialect_insert
from nishati_oracle.storage.schema import (
    forecast_outlooks,
    forecast_pending,
    forecast_skill,
    meters,
    pv_systems,
    readings,
)

# The outlook's series, in ``series`` order, as little-endian int32.
SERIES = ("production_wh", "consumption_wh", "p10_wh", "p90_wh")
PACKED = np.dtype("<i4")
# Rows per statement: within SQLite's 32,766 bound parameters.
CHUNK_ROWS = 2_000

T = TypeVar("T")


@dataclass(frozen=True)
class OutlookStep:
    """One 15-minute step of a home's outlook, ending at ``end`` (Unix seconds), in Wh:
    expected production and consumption, the surplus (production minus consumption; negative
    is a deficit) and its p10/p90 band."""

    end: int
    production_wh: int
    consumption_wh: int
    surplus_wh: int
    p10_wh: int
    p90_wh: int


@dataclass(frozen=True)
class Outlook:
    """A home's latest forecast: what it was made from, when, the production ratio and
    clear-sky index it learned from its meter, and its steps."""

    household: str
    source: Source
    made_at: int
    ratio: float
    clear_sky_index: float
    steps: tuple[OutlookStep, ...]

    def bands(self) -> tuple[Band, ...]:
        """The surplus bands, as the advisor reads them (``advice.AdviceInput.bands``)."""
        return tuple(
            Band(step.end, step.surplus_wh, step.p10_wh, step.p90_wh) for step in self.steps
        )


@dataclass(frozen=True)
class HorizonSkill:
    """The skill at one horizon over the daylight steps scored so far: the forecast's mean
    absolute surplus error, smart persistence's, and the skill (1 minus their ratio: above 0
    beats smart persistence). ``None`` before any step is scored."""

    horizon_secs: int
    steps: int
    mae_wh: float | None
    reference_mae_wh: float | None
    skill: float | None


@dataclass(frozen=True)
class Skill:
    """A home's skill (``household`` set) or the market's (``None``: every home's steps
    together), per horizon; ``homes`` counts the homes with a scored step."""

    household: str | None
    homes: int
    horizons: tuple[HorizonSkill, ...]


@dataclass(frozen=True)
class Learned:
    """What a home learned, kept with its outlook for the next rounds."""

    ratio: float
    clear_sky_index: float
    recent_errors: npt.NDArray[np.int32]


@dataclass(frozen=True)
class Pending:
    """One step's forecast at one horizon, waiting for the meter (``forecast_pending``)."""

    household: str
    horizon_secs: int
    target_end: int
    made_at: float
    model_wh: int | None
    production_wh: int
    consumption_wh: int
    reference_wh: int
    daylight: bool

    @property
    def surplus_wh(self) -> int:
        return self.production_wh - self.consumption_wh


@dataclass(frozen=True)
class NewOutlook:
    """A round's outlook for a home, as stored."""

    household: str
    made_at: float
    source: Source
    first_end: int
    series: npt.NDArray[np.int32]  # (4, steps) of SERIES
    learned: Learned


@dataclass(frozen=True)
class Scored:
    """One home's newly scored daylight steps at one horizon: how many, and the sums of the
    forecast's and smart persistence's absolute errors (Wh)."""

    household: str
    horizon_secs: int
    steps: int
    abs_error_wh: int
    reference_abs_error_wh: int


def _chunks(rows: Sequence[T]) -> Iterable[Sequence[T]]:
    for start in range(0, len(rows), CHUNK_ROWS):
        yield rows[start : start + CHUNK_ROWS]


def _horizon(horizon_secs: int, steps: int, error: int, reference: int) -> HorizonSkill:
    if steps == 0:
        return HorizonSkill(horizon_secs, 0, None, None, None)
    mae, reference_mae = error / steps, reference / steps
    skill = 1 - mae / reference_mae if reference_mae > 0 else None
    return HorizonSkill(horizon_secs, steps, mae, reference_mae, skill)


def _rows(
    outlooks: Sequence[NewOutlook], pending: Sequence[Pending]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A round's rows, as stored."""
    outlook_rows = [
        {
            "household": o.household,
            "made_at": o.made_at,
            "source": o.source.value,
            "first_end": o.first_end,
            "steps": int(o.series.shape[1]),
            "ratio": o.learned.ratio,
            "clear_sky_index": o.learned.clear_sky_index,
            "series": np.ascontiguousarray(o.series, dtype=PACKED).tobytes(),
            "recent_errors": np.asarray(o.learned.recent_errors, dtype=PACKED).tobytes(),
        }
        for o in outlooks
    ]
    return outlook_rows, [dict(vars(p)) for p in pending]


class ForecastStore:
    """Async access to the forecasts' tables, and what a round reads of the others."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._insert = dialect_insert(engine)

    async def homes(self) -> dict[str, PvSystem | None]:
        """Every household with a meter, and its PV system if one was set."""
        names = list(PvSystem.model_fields)
        async with self.engine.connect() as conn:
            households = (await conn.execute(select(meters.c.household).distinct())).all()
            query = select(pv_systems.c.household, *(pv_systems.c[name] for name in names))
            systems = (await conn.execute(query)).all()

        def build() -> dict[str, PvSystem | None]:
            found: dict[str, PvSystem | None] = {str(row[0]): None for row in households}
            for row in systems:
                household, *values = row
                if household in found:
                    found[str(household)] = PvSystem.model_validate(
                        dict(zip(names, values, strict=True))
                    )
            return found

        # Thousands of validations: off the event loop.
        return await asyncio.to_thread(build)

    async def readings_after(
        self, after_id: int, since_timestamp: int, batch: int = 20_000
    ) -> list[tuple[int, str, str, int, int, int]]:
        """Up to ``batch`` readings stored after reading ``after_id`` and dated from
        ``since_timestamp``, in the order stored: (id, meter, household, timestamp, exported,
        imported)."""
        query = (
            select(
                readings.c.id,
                readings.c.meter,
                meters.c.household,
                readings.c.timestamp,
                readings.c.exported_wh,
                readings.c.imported_wh,
            )
            .join(meters, meters.c.meter == readings.c.meter)
            .where(and_(readings.c.id > after_id, readings.c.timestamp >= since_timestamp))
            .order_by(readings.c.id)
            .limit(batch)
        )
        async with self.engine.connect() as conn:
            return [tuple(row) for row in await conn.execute(query)]  # type: ignore[misc]

    async def learned(self) -> dict[str, Learned]:
        """What every home learned by its last outlook."""
        query = select(
            forecast_outlooks.c.household,
            forecast_outlooks.c.ratio,
            forecast_outlooks.c.clear_sky_index,
            forecast_outlooks.c.recent_errors,
        )
        async with self.engine.connect() as conn:
            return {
                row.household: Learned(
                    row.ratio,
                    row.clear_sky_index,
                    np.frombuffer(row.recent_errors, dtype=PACKED).astype(np.int32),
                )
                for row in await conn.execute(query)
            }

    async def save_round(self, outlooks: Sequence[NewOutlook], pending: Sequence[Pending]) -> None:
        """A round's outlooks (replacing each home's last) and the steps it left to score."""
        outlook_rows, pending_rows = await asyncio.to_thread(_rows, outlooks, pending)
        replace_outlook = self._insert(forecast_outlooks)
        replace_outlook = replace_outlook.on_conflict_do_update(
            index_elements=[forecast_outlooks.c.household],
            set_={
                c.name: replace_outlook.excluded[c.name]
                for c in forecast_outlooks.c
                if c.name != "household"
            },
        )
        keep_pending = self._insert(forecast_pending).on_conflict_do_nothing()
        async with self.engine.begin() as conn:
            for chunk in _chunks(outlook_rows):
                await conn.execute(replace_outlook, list(chunk))
            for chunk in _chunks(pending_rows):
                await conn.execute(keep_pending, list(chunk))

    async def due(self, up_to_end: int) -> list[Pending]:
        """Every forecast waiting whose step has ended by ``up_to_end``."""
        query = select(*(forecast_pending.c[f.name] for f in fields(Pending))).where(
            forecast_pending.c.target_end <= up_to_end
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return await asyncio.to_thread(lambda: [Pending(**row._asdict()) for row in rows])

    async def settle(self, done: Sequence[Pending], scored: Sequence[Scored], at: float) -> None:
        """Adds newly scored steps to the skill and forgets the forecasts ``done`` (scored, or
        waited for too long)."""
        add = self._insert(forecast_skill)
        add = add.on_conflict_do_update(
            index_elements=[forecast_skill.c.household, forecast_skill.c.horizon_secs],
            set_={
                "steps": forecast_skill.c.steps + add.excluded.steps,
                "abs_error_wh": forecast_skill.c.abs_error_wh + add.excluded.abs_error_wh,
                "reference_abs_error_wh": forecast_skill.c.reference_abs_error_wh
                + add.excluded.reference_abs_error_wh,
                "updated_at": add.excluded.updated_at,
            },
        )
        skill_rows = [{**vars(s), "updated_at": at} for s in scored]
        key = tuple_(
            forecast_pending.c.household,
            forecast_pending.c.horizon_secs,
            forecast_pending.c.target_end,
        )
        keys = [(p.household, p.horizon_secs, p.target_end) for p in done]
        async with self.engine.begin() as conn:
            for chunk in _chunks(skill_rows):
                await conn.execute(add, list(chunk))
            for key_chunk in _chunks(keys):
                await conn.execute(forecast_pending.delete().where(key.in_(list(key_chunk))))

    async def outlook(self, household: str) -> Outlook | None:
        query = select(forecast_outlooks).where(forecast_outlooks.c.household == household)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        series = np.frombuffer(row.series, dtype=PACKED).reshape(len(SERIES), row.steps)
        production, consumption, p10, p90 = (series[i].tolist() for i in range(len(SERIES)))
        steps = tuple(
            OutlookStep(
                end=row.first_end + i * 900,
                production_wh=production[i],
                consumption_wh=consumption[i],
                surplus_wh=production[i] - consumption[i],
                p10_wh=p10[i],
                p90_wh=p90[i],
            )
            for i in range(row.steps)
        )
        return Outlook(
            household=household,
            source=Source(row.source),
            made_at=int(row.made_at),
            ratio=row.ratio,
            clear_sky_index=row.clear_sky_index,
            steps=steps,
        )

    async def skill(self, household: str | None, horizons_secs: Sequence[int]) -> Skill:
        """A home's skill, or the market's (``household`` None)."""
        columns = (
            forecast_skill.c.horizon_secs,
            func.sum(forecast_skill.c.steps),
            func.sum(forecast_skill.c.abs_error_wh),
            func.sum(forecast_skill.c.reference_abs_error_wh),
        )
        query = select(*columns).group_by(forecast_skill.c.horizon_secs)
        if household is not None:
            query = query.where(forecast_skill.c.household == household)
        homes_query = select(func.count(forecast_skill.c.household.distinct())).where(
            forecast_skill.c.steps > 0
        )
        if household is not None:
            homes_query = homes_query.where(forecast_skill.c.household == household)
        async with self.engine.connect() as conn:
            sums = {
                int(row[0]): (int(row[1]), int(row[2]), int(row[3]))
                for row in await conn.execute(query)
            }
            homes = int((await conn.execute(homes_query)).scalar_one())
        return Skill(
            household=household,
            homes=homes,
            horizons=tuple(_horizon(h, *sums.get(h, (0, 0, 0))) for h in horizons_secs),
        )
