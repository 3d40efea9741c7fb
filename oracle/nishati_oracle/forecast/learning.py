"""What a home's own meter teaches its forecast: a steady ratio between what it makes and what
the model says (shading, soiling, a wrong tilt), its consumption by hour and weekday, and the
spread of its recent errors (the p10/p90 band)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from nishati_oracle.forecast.pv import Step

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
    expected = sum(wh for wh, _ in pairs)
    if expected < MIN_RATIO_WH:
        return None
    low, high = RATIO_BOUNDS
    return min(max(sum(wh for _, wh in pairs) / expected, low), high)


def corrected(forecast: Sequence[Step], ratio: float) -> tuple[Step, ...]:
    return tuple(Step(step.end, round(step.wh * ratio)) for step in forecast)


def _slot(end: int) -> tuple[int, int]:
    """A step's weekday and hour (UTC; the market's homes share one time zone)."""
    moment = datetime.fromtimestamp(end - 1, UTC)
    return moment.weekday(), moment.hour


@dataclass(frozen=True)
class ConsumptionProfile:
    """A home's imported Wh per 15-minute step, by weekday and hour, smoothed toward the hour's
    mean over every day."""

    by_slot: dict[tuple[int, int], float]
    by_hour: dict[int, float]

    @classmethod
    def learn(cls, imports: Sequence[Step]) -> ConsumptionProfile:
        slots: dict[tuple[int, int], list[int]] = {}
        hours: dict[int, list[int]] = {}
        for step in imports:
            weekday, hour = _slot(step.end)
            slots.setdefault((weekday, hour), []).append(step.wh)
            hours.setdefault(hour, []).append(step.wh)
        by_hour = {hour: float(np.mean(values)) for hour, values in hours.items()}
        by_slot = {
            slot: (sum(values) + SLOT_PRIOR_OBSERVATIONS * by_hour[slot[1]])
            / (len(values) + SLOT_PRIOR_OBSERVATIONS)
            for slot, values in slots.items()
        }
        return cls(by_slot, by_hour)

    def forecast(self, ends: Sequence[int]) -> tuple[Step, ...]:
        """Expected imports at each step (0 for an hour never seen)."""
        steps = []
        for end in ends:
            slot = _slot(end)
            wh = self.by_slot.get(slot, self.by_hour.get(slot[1], 0.0))
            steps.append(Step(end, round(wh)))
        return tuple(steps)


@dataclass(frozen=True)
class Band:
    """The p10 and p90 of a step's surplus (production minus consumption, Wh)."""

    end: int
    expected_wh: int
    p10_wh: int
    p90_wh: int


def bands(expected: Sequence[Step], recent_errors_wh: Sequence[int]) -> tuple[Band, ...]:
    """Each step's band from the home's recent errors (measured minus forecast surplus, Wh per
    step): its 10th and 90th percentiles added to the expectation; no errors, no width."""
    if recent_errors_wh:
        low, high = (float(q) for q in np.percentile(recent_errors_wh, [10, 90]))
    else:
        low = high = 0.0
    return tuple(
        Band(step.end, step.wh, round(step.wh + low), round(step.wh + high)) for step in expected
    )
