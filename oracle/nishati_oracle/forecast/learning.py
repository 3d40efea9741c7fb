"""What a home's own meter teaches its forecast: a steady ratio between what it makes and what
the model says (shading, soiling, a wrong tilt), its consumption by hour and weekday, and the
spread of its recent errors (the p10/p90 band)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pandas as pd

from nishati_oracle.forecast.pv import FloatArray, Step

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# A ratio outside these is a broken meter or a wrong system, not shading: clamped.
RATIO_BOUNDS = (0.2, 1.5)
# Less daylight production than this forecast in the window teaches nothing.
MIN_RATIO_WH = 1_000
# How much a (weekday, hour) slot's own mean counts against the same hour on every day, per
# observation it has (a slot seen once leans on the hour's mean; one seen often, on itself).
SLOT_PRIOR_OBSERVATIONS = 3


def production_ratio(forecast: Sequence[Step], measured: Sequence[Step]) -> float | None:
    """Measured over forecast production on the steps both have, clamped; ``None`` when the
    forecast gave too little to learn from."""
    made = {step.end: step.wh for step in measured}
    pairs = [(step.wh, made[step.end]) for step in forecast if step.end in made]
    return ratio_of(sum(wh for wh, _ in pairs), sum(wh for _, wh in pairs))


def ratio_of(expected_wh: float, made_wh: float) -> float | None:
    """What was made over what was forecast, clamped; ``None`` when the forecast gave too
    little to learn from."""
    if expected_wh < MIN_RATIO_WH:
        return None
    low, high = RATIO_BOUNDS
    return min(max(made_wh / expected_wh, low), high)


def corrected(forecast: Sequence[Step], ratio: float) -> tuple[Step, ...]:
    return tuple(Step(step.end, round(step.wh * ratio)) for step in forecast)


# A week's hours: the consumption profile's slots, weekday * 24 + hour.
SLOTS = 7 * 24


def local_slots(ends: Sequence[int] | IntArray, zone: ZoneInfo) -> IntArray:
    """Each step's weekday * 24 + hour in the market's time zone, at the step's start."""
    starts = pd.DatetimeIndex(
        pd.to_datetime(np.asarray(ends, dtype=np.int64) - 1, unit="s", utc=True)
    ).tz_convert(zone)
    slots: IntArray = np.asarray(starts.day_of_week * 24 + starts.hour, dtype=np.int64)
    return slots


def slot_means(imports: FloatArray, observed: BoolArray, slots: IntArray) -> FloatArray:
    """Many homes' imported Wh per step by slot, each slot's mean smoothed toward its hour's
    mean over every day (a slot seen once leans on the hour; one seen often, on itself), 0 for
    an hour never seen. ``imports`` and ``observed`` are (homes, steps); ``slots`` each step's
    slot. Returns (homes, SLOTS)."""
    onehot = np.zeros((len(slots), SLOTS), dtype=np.float64)
    onehot[np.arange(len(slots)), slots] = 1.0
    weights = observed.astype(np.float64)
    sums = (np.where(observed, imports, 0.0)) @ onehot
    counts = weights @ onehot
    homes = imports.shape[0]
    hour_sums = sums.reshape(homes, 7, 24).sum(axis=1)
    hour_counts = counts.reshape(homes, 7, 24).sum(axis=1)
    hour_means = hour_sums / np.maximum(hour_counts, 1.0)
    prior = np.tile(hour_means, 7)
    means: FloatArray = (sums + SLOT_PRIOR_OBSERVATIONS * prior) / (
        counts + SLOT_PRIOR_OBSERVATIONS
    )
    return means


@dataclass(frozen=True)
class ConsumptionProfile:
    """A home's imported Wh per 15-minute step, by weekday and hour in the market's time zone,
    smoothed toward the hour's mean over every day."""

    means: FloatArray
    zone: ZoneInfo

    @classmethod
    def learn(cls, imports: Sequence[Step], zone: ZoneInfo) -> ConsumptionProfile:
        ends = [step.end for step in imports]
        wh = np.array([[step.wh for step in imports]], dtype=np.float64)
        observed = np.ones_like(wh, dtype=bool)
        return cls(slot_means(wh, observed, local_slots(ends, zone))[0], zone)

    def forecast(self, ends: Sequence[int]) -> tuple[Step, ...]:
        """Expected imports at each step (0 for an hour never seen)."""
        expected = self.means[local_slots(ends, self.zone)]
        return tuple(Step(end, round(float(wh))) for end, wh in zip(ends, expected, strict=True))


@dataclass(frozen=True)
class Band:
    """The p10 and p90 of a step's surplus (production minus consumption, Wh)."""

    end: int
    expected_wh: int
    p10_wh: int
    p90_wh: int


def band_offsets(recent_errors_wh: Sequence[int] | npt.NDArray[np.int32]) -> tuple[float, float]:
    """The 10th and 90th percentiles of a home's recent errors (measured minus forecast
    surplus, Wh per step); no errors, no width."""
    if len(recent_errors_wh) == 0:
        return 0.0, 0.0
    low, high = (float(q) for q in np.percentile(recent_errors_wh, [10, 90]))
    return low, high


def bands(expected: Sequence[Step], recent_errors_wh: Sequence[int]) -> tuple[Band, ...]:
    """Each step's band: the recent errors' p10 and p90 added to the expectation."""
    low, high = band_offsets(recent_errors_wh)
    return tuple(
        Band(step.end, step.wh, round(step.wh + low), round(step.wh + high)) for step in expected
    )
