"""Each home's PV system, kept off-chain: where it is, how big, which way it faces, and what its
inverter can deliver. Unset fields take a typical Nairobi rooftop's values; impossible ones are
refused by the model's validation (a 422 at the API)."""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from nishati_oracle.storage.database import dialect_insert
from nishati_oracle.storage.schema import pv_systems

# Nairobi's centre, at its altitude.
NAIROBI_LATITUDE = -1.2921
NAIROBI_LONGITUDE = 36.8219
NAIROBI_ALTITUDE_M = 1_795
# A household rooftop array; a string of 3 kWp behind an inverter of the same size.
DEFAULT_CAPACITY_WP = 3_000
# On the equator a low tilt (for rain to wash the panels) facing the equator loses little; at
# 1.3 degrees south the sun stands mostly north, so north (pvlib's 0) is the default.
DEFAULT_TILT_DEG = 10.0
DEFAULT_AZIMUTH_DEG = 0.0
# The largest system one household's meter plausibly serves.
MAX_CAPACITY_WP = 100_000
# An inverter far larger than its array is a typo; one far smaller, clipping nearly everything.
INVERTER_RATIO_BOUNDS = (0.2, 5.0)


class PvSystem(BaseModel):
    """A home's PV system. Angles in degrees: tilt from horizontal, azimuth clockwise from north
    (pvlib's convention: 180 faces south)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    latitude: float = Field(default=NAIROBI_LATITUDE, ge=-90, le=90)
    longitude: float = Field(default=NAIROBI_LONGITUDE, ge=-180, le=180)
    altitude_m: int = Field(default=NAIROBI_ALTITUDE_M, ge=-500, le=9_000)
    capacity_wp: int = Field(default=DEFAULT_CAPACITY_WP, gt=0, le=MAX_CAPACITY_WP)
    tilt_deg: float = Field(default=DEFAULT_TILT_DEG, ge=0, le=90)
    azimuth_deg: float = Field(default=DEFAULT_AZIMUTH_DEG, ge=0, lt=360)
    inverter_limit_w: int = Field(default=DEFAULT_CAPACITY_WP, gt=0, le=MAX_CAPACITY_WP)

    @model_validator(mode="after")
    def _inverter_fits_the_array(self) -> PvSystem:
        low, high = INVERTER_RATIO_BOUNDS
        ratio = self.inverter_limit_w / self.capacity_wp
        if not low <= ratio <= high:
            raise ValueError(
                f"inverter_limit_w {self.inverter_limit_w} is {ratio:.2f} times capacity_wp "
                f"{self.capacity_wp}; it must be between {low} and {high} times"
            )
        return self


class PvSystems:
    """The PV systems of the market's homes, by household."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def get(self, household: str) -> PvSystem | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(pv_systems).where(pv_systems.c.household == household))
            ).first()
        if row is None:
            return None
        return PvSystem.model_validate(
            {name: value for name, value in row._mapping.items() if name in PvSystem.model_fields}
        )

    async def put(self, household: str, system: PvSystem, now: float | None = None) -> None:
        """Sets the household's system, replacing the one it had."""
        values = {
            "household": household,
            **system.model_dump(),
            "updated_at": time.time() if now is None else now,
        }
        statement = dialect_insert(self.engine)(pv_systems).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=[pv_systems.c.household],
            set_={name: statement.excluded[name] for name in values if name != "household"},
        )
        async with self.engine.begin() as conn:
            await conn.execute(statement)
