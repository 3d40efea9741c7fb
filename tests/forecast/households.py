"""Households to advise, built step by step: a sunny day with an evening to cover, an evening
short of energy, and the offers near them. Each band's expected and p90 lie above its p10, so a
rule reading anything but the p10 gives other numbers."""

from __future__ import annotations

from datetime import UTC, datetime

from nishati_oracle.forecast.advice import AdviceInput, OpenOffer, PriceBounds
from nishati_oracle.forecast.learning import Band

# Monday 2026-12-07 06:00 UTC: 09:00 in Nairobi.
MORNING = int(datetime(2026, 12, 7, 6, tzinfo=UTC).timestamp())
# 15:00 UTC: 18:00 in Nairobi.
EVENING = MORNING + 9 * 3_600
STEP = 900
HORIZON_STEPS = 192
HOUSEHOLD = "HouseHo1d111111111111111111111111111111111"
BOUNDS = PriceBounds(min_cents_per_kwh=1_000, max_cents_per_kwh=5_000)


def bands(now: int, *runs: tuple[int, int]) -> tuple[Band, ...]:
    """Bands for consecutive runs of ``(steps, p10_wh)`` from ``now``; the horizon's remaining
    steps have a p10 of zero."""
    p10s = [p10 for count, p10 in runs for _ in range(count)]
    p10s += [0] * (HORIZON_STEPS - len(p10s))
    return tuple(
        Band(end=now + STEP * (index + 1), expected_wh=p10 + 50, p10_wh=p10, p90_wh=p10 + 100)
        for index, p10 in enumerate(p10s)
    )


def offer(address: str, wh: int, price: int, seller: str = "Se11er") -> OpenOffer:
    return OpenOffer(address=address, seller=seller, wh_available=wh, price_cents_per_kwh=price)


NEIGHBOURS = (
    offer("OfferA", 1_000, 2_400),
    offer("OfferB", 5_000, 2_600),
    # The household's own offer is no competitor, nor is an offer with nothing left.
    offer("OfferOwn", 5_000, 2_300, seller=HOUSEHOLD),
    offer("OfferEmpty", 0, 2_000),
)


def sunny_day(**changes: object) -> AdviceInput:
    """09:00: 1 kWh in hand; 7 hours of 300 Wh per step spare (8.4 kWh), then 3 hours of 200 Wh
    short per step (2.4 kWh): the path peaks at 9.4 kWh at 16:00 and settles at 7.0 kWh."""
    values: dict[str, object] = {
        "household": HOUSEHOLD,
        "now": MORNING,
        "bands": bands(MORNING, (28, 300), (12, -200)),
        "balance_wh": 1_000,
        "price_bounds": BOUNDS,
        "offers": NEIGHBOURS,
        "own_offers": (NEIGHBOURS[2],),
    }
    return AdviceInput.model_validate(values | changes)


def short_evening(**changes: object) -> AdviceInput:
    """18:00: 500 Wh in hand, 150 Wh short per step for 4 hours: the path falls below zero in
    its fourth step (18:45 to 19:00) and bottoms out 1.9 kWh short at 22:00."""
    values: dict[str, object] = {
        "household": HOUSEHOLD,
        "now": EVENING,
        "bands": bands(EVENING, (16, -150)),
        "balance_wh": 500,
        "price_bounds": BOUNDS,
        "offers": NEIGHBOURS,
    }
    return AdviceInput.model_validate(values | changes)
