"""The rule-based advisor on constructed households, and the checker that holds any advisor's
numbers to the same rules."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError
from solders.pubkey import Pubkey

from nishati_client.market import MarketConfig
from nishati_oracle.forecast.advice import (
    Action,
    AdviceInput,
    AdvisorName,
    BuyAdvice,
    FallbackReason,
    PriceBounds,
    Purchase,
    Rule,
    SellAdvice,
    Suggestion,
    check,
    kwh,
    rule_advice,
    shillings,
)
from nishati_oracle.forecast.learning import Band
from tests.forecast.households import (
    BOUNDS,
    EVENING,
    HOUSEHOLD,
    MORNING,
    STEP,
    bands,
    offer,
    short_evening,
    sunny_day,
)

HORIZON_END = MORNING + 48 * 3_600


def test_a_sunny_day_sells_what_the_evening_leaves_just_below_the_cheapest_neighbour() -> None:
    advice = rule_advice(sunny_day())
    assert advice.action is Action.sell
    assert advice.advisor is AdvisorName.rules
    assert advice.fallback_reason is None
    assert (advice.household, advice.made_at) == (HOUSEHOLD, MORNING)
    # 9.4 kWh at 16:00 less the 2.4 kWh the evening takes; the cheapest other seller asks
    # 24.00, so 23.90 (the household's own 23.00 offer is no competitor).
    assert advice.sell == SellAdvice(
        offer_wh=7_000, price_cents_per_kwh=2_390, until=MORNING + 28 * STEP
    )
    assert advice.buy is None
    assert advice.explanation_en == (
        "Offer 7.0 kWh at KES 23.90/kWh until 16:00 today. That is your balance and what your "
        "panels should spare even on a poor day, less what you will need later. The price is "
        "just below the cheapest offer nearby (KES 24.00). It comes beside the 5.0 kWh your open "
        "offers hold."
    )
    assert advice.explanation_sw.startswith(
        "Weka ofa ya kWh 7.0 kwa KES 23.90 kwa kila kWh hadi saa 16:00 leo."
    )
    assert "KES 24.00" in advice.explanation_sw


def test_no_competitor_prices_at_the_middle_of_the_bounds() -> None:
    advice = rule_advice(
        sunny_day(
            offers=(offer("Mine", 3_000, 2_000, seller=HOUSEHOLD),),
            price_bounds=PriceBounds(min_cents_per_kwh=1_001, max_cents_per_kwh=5_000),
        )
    )
    assert advice.sell is not None
    assert advice.sell.price_cents_per_kwh == 3_000
    assert "(KES 10.01 to 50.00)" in advice.explanation_en
    assert "(KES 10.01 hadi 50.00)" in advice.explanation_sw


@pytest.mark.parametrize(
    ("cheapest", "price"),
    [(905, 1_000), (1_005, 1_000), (1_011, 1_001), (4_000, 3_990), (6_000, 5_000)],
)
def test_the_price_stays_within_the_market_bounds(cheapest: int, price: int) -> None:
    advice = rule_advice(sunny_day(offers=(offer("Cheap", 2_000, cheapest),)))
    assert advice.sell is not None
    assert advice.sell.price_cents_per_kwh == price


def test_a_short_evening_buys_from_the_cheapest_offers_at_the_chains_prices() -> None:
    advice = rule_advice(short_evening())
    assert advice.action is Action.buy
    assert advice.sell is None
    # 500 Wh cover 3 steps of 150; the 4th (18:45 to 19:00) is short, 22:00 the lowest point.
    assert advice.buy == BuyAdvice(
        shortage_start=EVENING + 3 * STEP,
        shortage_end=EVENING + 16 * STEP,
        shortage_wh=1_900,
        purchases=[
            # 1 kWh at KES 24.00 is exactly KES 24; 0.9 kWh at 26.00 is KES 23.40, charged 24.
            Purchase(offer="OfferA", wh=1_000, price_cents_per_kwh=2_400, cost_cents=2_400),
            Purchase(offer="OfferB", wh=900, price_cents_per_kwh=2_600, cost_cents=2_400),
        ],
        total_cost_cents=4_800,
    )
    assert advice.explanation_en == (
        "You may run short by 1.9 kWh between 18:45 and 22:00 today. Buy 1.9 kWh from "
        "the 2 cheapest offers for KES 48.00 in total."
    )
    assert advice.explanation_sw == (
        "Huenda ukakosa kWh 1.9 kati ya saa 18:45 na saa 22:00 leo. Nunua kWh 1.9 kutoka "
        "kwa ofa 2 nafuu zaidi kwa jumla ya KES 48.00."
    )


def test_a_shortage_with_no_offers_near_says_so() -> None:
    advice = rule_advice(short_evening(offers=()))
    assert advice.buy is not None
    assert (advice.buy.shortage_wh, advice.buy.purchases, advice.buy.total_cost_cents) == (
        1_900,
        [],
        0,
    )
    assert "No one nearby is selling now." in advice.explanation_en
    assert "Hakuna anayeuza karibu nawe sasa." in advice.explanation_sw


def test_offers_too_small_cover_what_they_hold_and_the_grid_the_rest() -> None:
    advice = rule_advice(short_evening(offers=(offer("OfferA", 1_000, 2_400),)))
    assert advice.buy is not None
    assert advice.buy.covered_wh == 1_000
    assert advice.buy.total_cost_cents == 2_400
    assert "the rest will come from the grid" in advice.explanation_en
    assert advice.explanation_sw.endswith(
        "Hiyo ndiyo ofa pekee iliyopo. Kiasi kilichobaki kitatoka kwenye gridi ya umeme."
    )


def test_a_shortage_before_the_day_comes_first_and_its_start_is_not_before_now() -> None:
    # Now is 5 minutes into a step: the first step short starts at now, not before it.
    now = EVENING + 300
    inputs = short_evening(now=now, bands=bands(EVENING, (2, -600), (28, 500)), balance_wh=400)
    advice = rule_advice(inputs)
    assert advice.buy is not None
    assert (advice.buy.shortage_start, advice.buy.shortage_end, advice.buy.shortage_wh) == (
        now,
        EVENING + 2 * STEP,
        800,
    )


def test_the_balance_alone_is_offered_when_no_sun_is_forecast() -> None:
    # 3 kWh in hand, 10 Wh used per step for 48 hours: 1.08 kWh stays spare at the horizon's
    # end; what lies beyond the horizon counts for nothing.
    horizon = bands(MORNING, (192, -10))
    beyond = tuple(Band(MORNING + STEP * (193 + i), 10_000, 9_000, 11_000) for i in range(8))
    advice = rule_advice(sunny_day(bands=horizon + beyond, balance_wh=3_000))
    assert advice.sell == SellAdvice(offer_wh=1_080, price_cents_per_kwh=2_390, until=HORIZON_END)
    assert (
        "Offer 1.1 kWh at KES 23.90/kWh until 09:00 the day after tomorrow."
        in advice.explanation_en
    )
    assert "hadi saa 09:00 keshokutwa." in advice.explanation_sw


def test_times_are_said_in_nairobi_with_their_day() -> None:
    late = EVENING + 4 * 3_600
    advice = rule_advice(short_evening(now=late, bands=bands(late, (16, -150)), balance_wh=0))
    assert advice.explanation_en.startswith(
        "You may run short by 2.4 kWh between 22:00 today and 02:00 tomorrow."
    )
    assert advice.explanation_sw.startswith(
        "Huenda ukakosa kWh 2.4 kati ya saa 22:00 leo na saa 02:00 kesho."
    )
    three_days = sunny_day(bands=bands(MORNING, (288, -1)), balance_wh=3_000, horizon_hours=72)
    advice = rule_advice(three_days)
    assert advice.sell == SellAdvice(
        offer_wh=2_712, price_cents_per_kwh=2_390, until=MORNING + 72 * 3_600
    )
    assert "until 09:00 on 10/12." in advice.explanation_en
    assert "hadi saa 09:00 tarehe 10/12." in advice.explanation_sw


@pytest.mark.parametrize(
    "inputs",
    [
        # The evening takes all the day spares.
        sunny_day(bands=bands(MORNING, (10, 200), (10, -200)), balance_wh=0),
        # What is spare is below a trade's worth.
        sunny_day(bands=bands(MORNING, (1, 199)), balance_wh=0),
        # 50 Wh short is below a trade's worth, and nothing is spare after it.
        short_evening(bands=bands(EVENING, (1, -550)), balance_wh=500),
    ],
    ids=["evening-takes-all", "too-little-spare", "too-little-short"],
)
def test_nothing_worth_doing_holds(inputs: AdviceInput) -> None:
    advice = rule_advice(inputs)
    assert (advice.action, advice.sell, advice.buy) == (Action.hold, None, None)
    assert advice.explanation_en.startswith("Nothing to do now.")
    assert advice.explanation_sw.startswith("Hakuna la kufanya sasa.")


def test_a_fallback_reason_is_carried() -> None:
    advice = rule_advice(sunny_day(), FallbackReason.timeout)
    assert (advice.advisor, advice.fallback_reason) == (AdvisorName.rules, FallbackReason.timeout)


def test_impossible_inputs_and_parts_are_refused() -> None:
    with pytest.raises(ValidationError, match="in order of their ends"):
        sunny_day(bands=tuple(reversed(bands(MORNING, (4, 100)))))
    with pytest.raises(ValidationError, match="above max_cents_per_kwh"):
        PriceBounds(min_cents_per_kwh=2_000, max_cents_per_kwh=1_000)
    with pytest.raises(ValidationError, match="a sell part goes with action sell"):
        Suggestion(
            action=Action.hold,
            sell=SellAdvice(offer_wh=1, price_cents_per_kwh=1, until=1),
            explanation_en="x",
            explanation_sw="x",
        )
    with pytest.raises(ValidationError, match="a buy part goes with action buy"):
        Suggestion(action=Action.buy, explanation_en="x", explanation_sw="x")


def test_amounts_read_as_people_say_them() -> None:
    assert [kwh(wh) for wh in (0, 49, 50, 1_250, 12_345)] == ["0.0", "0.0", "0.1", "1.3", "12.3"]
    assert [shillings(cents) for cents in (0, 5, 2_390, 123_456)] == [
        "0.00",
        "0.05",
        "23.90",
        "1,234.56",
    ]


def rules_broken(suggestion: Suggestion, inputs: AdviceInput) -> list[Rule]:
    return [violation.rule for violation in check(suggestion, inputs)]


def sell(**changes: object) -> Suggestion:
    advice = rule_advice(sunny_day())
    assert advice.sell is not None
    return Suggestion(
        action=Action.sell,
        sell=advice.sell.model_copy(update=changes),
        explanation_en="e",
        explanation_sw="s",
    )


def buy(purchases: list[Purchase] | None = None, **changes: object) -> Suggestion:
    advice = rule_advice(short_evening())
    assert advice.buy is not None
    part = advice.buy.model_copy(update=changes)
    if purchases is not None:
        part = part.model_copy(
            update={
                "purchases": purchases,
                "total_cost_cents": sum(purchase.cost_cents for purchase in purchases),
            }
        )
    return Suggestion(action=Action.buy, buy=part, explanation_en="e", explanation_sw="s")


@pytest.mark.parametrize(
    ("changes", "broken"),
    [
        ({}, []),
        # Less than the rules offer, at another price within the bounds: allowed.
        ({"offer_wh": 5_000, "price_cents_per_kwh": 4_999}, []),
        ({"offer_wh": 7_001}, [Rule.offer_above_sellable]),
        ({"offer_wh": 0}, [Rule.offer_empty]),
        ({"price_cents_per_kwh": 999}, [Rule.price_outside_bounds]),
        ({"price_cents_per_kwh": 5_001}, [Rule.price_outside_bounds]),
        # Before 16:00 the evening is not yet counted against the peak, but it still comes.
        ({"until": MORNING + 20 * STEP, "offer_wh": 7_000}, []),
        # By 13:00 only 6 kWh of surplus plus the balance are made: 7 kWh is too much then.
        ({"until": MORNING + 16 * STEP, "offer_wh": 7_000}, [Rule.offer_above_sellable]),
        ({"until": MORNING}, [Rule.time_outside_horizon, Rule.offer_above_sellable]),
        ({"until": HORIZON_END + 1}, [Rule.time_outside_horizon]),
    ],
)
def test_the_checker_names_what_a_sale_breaks(
    changes: dict[str, object], broken: list[Rule]
) -> None:
    assert rules_broken(sell(**changes), sunny_day()) == broken


def test_the_checker_names_what_a_purchase_breaks() -> None:
    inputs = short_evening()
    a = Purchase(offer="OfferA", wh=1_000, price_cents_per_kwh=2_400, cost_cents=2_400)
    assert rules_broken(buy(), inputs) == []
    assert rules_broken(buy(shortage_wh=1_901), inputs) == [Rule.shortage_above_forecast]
    # A smaller shortage than the purchases.
    assert rules_broken(buy(shortage_wh=1_500), inputs) == [Rule.purchases_above_shortage]
    assert rules_broken(buy(shortage_start=EVENING - 1), inputs) == [Rule.time_outside_horizon]
    assert rules_broken(buy(shortage_end=EVENING + 48 * 3_600 + 1), inputs) == [
        Rule.time_outside_horizon
    ]
    assert rules_broken(buy(shortage_start=EVENING + 16 * STEP), inputs) == [
        Rule.shortage_window_reversed
    ]
    assert rules_broken(buy(total_cost_cents=4_700), inputs) == [Rule.cost_mismatch]
    # An address no one offers, and the household's own offer.
    for address in ("Nowhere", "OfferOwn"):
        stranger = Purchase(offer=address, wh=100, price_cents_per_kwh=2_300, cost_cents=300)
        assert rules_broken(buy([stranger]), inputs) == [Rule.unknown_offer]
    half = a.model_copy(update={"wh": 500, "cost_cents": 1_200})
    assert rules_broken(buy([half, half]), inputs) == [Rule.duplicate_offer]
    assert rules_broken(buy([a.model_copy(update={"wh": 1_001, "cost_cents": 2_500})]), inputs) == [
        Rule.purchase_above_available
    ]
    assert rules_broken(buy([a.model_copy(update={"wh": 0, "cost_cents": 0})]), inputs) == [
        Rule.purchase_empty
    ]
    assert rules_broken(buy([a.model_copy(update={"price_cents_per_kwh": 2_000})]), inputs) == [
        Rule.purchase_price_mismatch
    ]
    # KES 24.00 is what the chain charges; a cent less or more is not.
    for cost in (2_399, 2_401):
        assert rules_broken(buy([a.model_copy(update={"cost_cents": cost})]), inputs) == [
            Rule.cost_mismatch
        ]


def test_a_shortage_on_a_day_without_one_breaks_the_forecast() -> None:
    suggestion = buy(purchases=[])
    assert rules_broken(suggestion, sunny_day(now=EVENING)) == [Rule.shortage_above_forecast]


def test_the_rules_own_advice_always_passes_the_check() -> None:
    draw = random.Random(17)  # noqa: S311 - reproducible households, not secrets
    actions = set()
    for _ in range(300):
        now = MORNING + draw.randrange(0, 86_400)
        runs = [(draw.randint(1, 40), draw.randint(-400, 600)) for _ in range(draw.randint(1, 6))]
        low = draw.randint(0, 3_000)
        inputs = AdviceInput(
            household=HOUSEHOLD,
            now=now,
            bands=bands(now - draw.randrange(0, STEP), *runs),
            balance_wh=draw.randint(0, 5_000),
            price_bounds=PriceBounds(
                min_cents_per_kwh=low, max_cents_per_kwh=low + draw.randint(0, 3_000)
            ),
            offers=tuple(
                offer(f"Offer{i}", draw.randint(0, 3_000), draw.randint(0, 7_000))
                for i in range(draw.randint(0, 5))
            ),
        )
        advice = rule_advice(inputs)
        actions.add(advice.action)
        assert check(advice, inputs) == [], inputs
    assert actions == {Action.sell, Action.buy, Action.hold}


def test_bounds_come_from_the_market_config() -> None:
    config = MarketConfig(
        oracle_authority=Pubkey.default(),
        fee_bps=100,
        min_price_cents_per_kwh=1_200,
        max_price_cents_per_kwh=4_800,
        payment_deadline_secs=600,
        cancel_grace_secs=600,
        max_export_watts=10_000,
        daily_mint_cap_wh=1_000_000,
        max_open_trades_per_buyer=4,
    )
    assert PriceBounds.of(config) == PriceBounds(min_cents_per_kwh=1_200, max_cents_per_kwh=4_800)
    assert BOUNDS.clamp(999) == 1_000
