"""What auto-sell offers for a piece of advice, within a household's limits and the market's
bounds: never below the floor, never above the market's highest price, never more than the
share, the most per offer or what the household holds."""

from __future__ import annotations

from solders.pubkey import Pubkey

from nishati_client.market import MarketConfig
from nishati_oracle.forecast.advice import Action, Advice, AdvisorName, SellAdvice
from nishati_oracle.forecast.autosell import MIN_OFFER_SECS, AutoSellLimits, target_offer

NOW = 1_790_000_000
CONFIG = MarketConfig(
    oracle_authority=Pubkey.default(),
    fee_bps=150,
    min_price_cents_per_kwh=1_500,
    max_price_cents_per_kwh=4_000,
    payment_deadline_secs=900,
    cancel_grace_secs=600,
    max_export_watts=10_000,
    daily_mint_cap_wh=10_000_000,
    max_open_trades_per_buyer=8,
)
LIMITS = AutoSellLimits(floor_price_cents_per_kwh=2_000, share_percent=50, max_wh_per_offer=3_000)


def advice(wh: int, price: int, until: int = NOW + 7_200) -> Advice:
    return Advice(
        action=Action.sell,
        sell=SellAdvice(offer_wh=wh, price_cents_per_kwh=price, until=until),
        explanation_en="Sell.",
        explanation_sw="Uza.",
        household="h",
        made_at=NOW,
        advisor=AdvisorName.rules,
    )


def target(
    given: Advice, limits: AutoSellLimits = LIMITS, held: int = 10_000
) -> tuple[int, int, str]:
    found = target_offer(limits, given, CONFIG, held, NOW, min_offer_wh=100)
    return found.wh, found.price_cents_per_kwh, found.why


def test_the_share_of_the_surplus_at_the_better_of_the_advice_and_the_floor() -> None:
    assert target(advice(4_000, 2_600))[:2] == (2_000, 2_600)
    assert target(advice(4_000, 1_800))[:2] == (2_000, 2_000)


def test_the_most_per_offer_and_what_is_held_cap_it() -> None:
    assert target(advice(10_000, 2_600))[:2] == (3_000, 2_600)
    assert target(advice(10_000, 2_600), held=1_200)[:2] == (1_200, 2_600)


def test_an_advised_price_above_the_market_is_the_markets_highest() -> None:
    assert target(advice(4_000, 9_000))[:2] == (2_000, 4_000)


def test_a_floor_above_the_markets_highest_price_offers_nothing() -> None:
    high_floor = LIMITS.model_copy(update={"floor_price_cents_per_kwh": 4_500})
    wh, price, why = target(advice(4_000, 2_600), high_floor)
    assert (wh, price) == (0, 4_500)
    assert why.endswith("the floor is above the market's highest price")


def test_nothing_when_there_is_no_sale_it_ends_soon_or_it_is_too_small() -> None:
    nothing = advice(0, 0).model_copy(update={"action": Action.hold, "sell": None})
    assert target(nothing)[0] == 0
    wh, _, why = target(advice(4_000, 2_600, until=NOW + MIN_OFFER_SECS - 1))
    assert wh == 0
    assert f"ends within {MIN_OFFER_SECS} s" in why
    wh, _, why = target(advice(150, 2_600))
    assert wh == 0
    assert "75 Wh is under the 100 Wh worth an offer" in why
