"""Advice for a household from its forecast: what to offer, at what price, until when; or the
shortage coming and the cheapest offers that cover it; or nothing to do.

Every decision reads the household's *pessimistic path*: its token balance plus, step after
step, the p10 of its surplus band (the low end of production minus the high end of
consumption: a cloudy day, a hungry evening). The rules, applied by ``rule_advice`` and held
against any advisor's answer by ``check``:

- **Shortage first.** If the path falls below zero, the household is short: by the path's lowest
  point (``shortage_wh``), from the start of the first step below zero (``shortage_start``) to
  the end of the step where the path is lowest (``shortage_end``). It buys from the cheapest open
  offers of other sellers first (ties by address), each offer up to what it holds, until the
  shortage is covered or the offers run out; each purchase costs what the chain charges
  (``trading.desk.total_cents``: rounded up to a whole shilling). A shortage below
  ``MIN_SHORTAGE_WH`` is not worth a trade.
- **Otherwise sell what stays spare.** The offer runs until the end of the next run of steps
  whose p10 surplus is positive (the horizon's end when there is none), and offers at most
  ``sellable_wh``: the path's level when the offer ends, or any lower level after it, so what
  is sold never leaves the household short later in the horizon. That is never more than the
  balance plus the p10 surplus forecast until the offer ends. An offer below ``MIN_OFFER_WH`` is
  not worth making.
- **Price** within the market's bounds: ``UNDERCUT_CENTS_PER_KWH`` below the cheapest competing
  offer (other sellers' offers holding energy), or the middle of the bounds (rounded down) when
  no one else is selling, then clamped to the bounds.
- **Hold** when neither applies.

``balance_wh`` is the household's token account: what its own open offers escrow is already out
of it, so those offers change nothing here (the advice is for a new offer beside them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from enum import StrEnum
from itertools import pairwise

from pydantic import BaseModel, ConfigDict, Field, model_validator

from nishati_client.market import MarketConfig
from nishati_oracle.forecast.learning import Band
from nishati_oracle.forecast.weather import HOUR_SECS, STEP_SECS
from nishati_oracle.trading.desk import total_cents

# Below these a trade costs the household more attention than it is worth.
MIN_OFFER_WH = 200
MIN_SHORTAGE_WH = 100
# How far below the cheapest competing offer a seller is advised to price (KES 0.10 per kWh).
UNDERCUT_CENTS_PER_KWH = 10
DEFAULT_HORIZON_HOURS = 48
# The market's homes are in Kenya: explanations give East Africa Time (UTC+3, no DST).
EAST_AFRICA_TIME = timezone(timedelta(hours=3), "EAT")
# What an explanation may hold: a few short sentences in each language.
MAX_EXPLANATION_CHARS = 600


class Action(StrEnum):
    sell = "sell"
    buy = "buy"
    hold = "hold"


class AdvisorName(StrEnum):
    """Who wrote the advice."""

    rules = "rules"
    gemini = "gemini"


class FallbackReason(StrEnum):
    """Why Gemini's answer was replaced by the rule-based one."""

    rules_broken = "rules_broken"
    timeout = "timeout"
    malformed = "malformed"
    error = "error"
    no_key = "no_key"


class PriceBounds(BaseModel):
    """The market's price bounds (``MarketConfig``'s), KES cents per kWh."""

    model_config = ConfigDict(frozen=True)

    min_cents_per_kwh: int = Field(ge=0)
    max_cents_per_kwh: int = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> PriceBounds:
        if self.min_cents_per_kwh > self.max_cents_per_kwh:
            raise ValueError(
                f"min_cents_per_kwh {self.min_cents_per_kwh} is above max_cents_per_kwh "
                f"{self.max_cents_per_kwh}"
            )
        return self

    @classmethod
    def of(cls, config: MarketConfig) -> PriceBounds:
        return cls(
            min_cents_per_kwh=config.min_price_cents_per_kwh,
            max_cents_per_kwh=config.max_price_cents_per_kwh,
        )

    def clamp(self, cents_per_kwh: int) -> int:
        return min(max(cents_per_kwh, self.min_cents_per_kwh), self.max_cents_per_kwh)


class OpenOffer(BaseModel):
    """An open offer on chain: its address, its seller household, the Wh it still holds."""

    model_config = ConfigDict(frozen=True)

    address: str
    seller: str
    wh_available: int = Field(ge=0)
    price_cents_per_kwh: int = Field(ge=0)


class AdviceInput(BaseModel):
    """What advice is made from. ``bands``: the household's surplus per 15-minute step
    (``learning.bands``), in order; steps ending after ``now + horizon_hours`` are not read.
    ``balance_wh``: its energy token balance (without what its open offers escrow). ``offers``:
    the open offers near it (its own among them are not competitors); ``own_offers``: its own
    open offers."""

    model_config = ConfigDict(frozen=True)

    household: str
    now: int = Field(ge=0, description="Unix seconds")
    bands: tuple[Band, ...]
    balance_wh: int = Field(ge=0)
    price_bounds: PriceBounds
    offers: tuple[OpenOffer, ...] = ()
    own_offers: tuple[OpenOffer, ...] = ()
    horizon_hours: int = Field(default=DEFAULT_HORIZON_HOURS, ge=1, le=384)

    @model_validator(mode="after")
    def _bands_in_order(self) -> AdviceInput:
        ends = [band.end for band in self.bands]
        if any(later <= earlier for earlier, later in pairwise(ends)):
            raise ValueError("bands must be in order of their ends, one per step")
        return self

    @property
    def horizon_end(self) -> int:
        return self.now + self.horizon_hours * HOUR_SECS

    def competitors(self) -> tuple[OpenOffer, ...]:
        """Other sellers' offers that still hold energy, cheapest first (ties by address)."""
        return tuple(
            sorted(
                (
                    offer
                    for offer in self.offers
                    if offer.seller != self.household and offer.wh_available > 0
                ),
                key=lambda offer: (offer.price_cents_per_kwh, offer.address),
            )
        )


class SellAdvice(BaseModel):
    offer_wh: int = Field(ge=0, description="Wh to offer")
    price_cents_per_kwh: int = Field(ge=0, description="KES cents per kWh")
    until: int = Field(ge=0, description="When the offer ends, Unix seconds")


class Purchase(BaseModel):
    offer: str = Field(description="The open offer's address")
    wh: int = Field(ge=0, description="Wh to buy from it")
    price_cents_per_kwh: int = Field(ge=0, description="The offer's price, KES cents per kWh")
    cost_cents: int = Field(ge=0, description="What the chain charges for it, KES cents")


class BuyAdvice(BaseModel):
    shortage_start: int = Field(ge=0, description="Unix seconds")
    shortage_end: int = Field(ge=0, description="Unix seconds")
    shortage_wh: int = Field(ge=0)
    purchases: list[Purchase] = Field(description="Cheapest first; empty when no one sells")
    total_cost_cents: int = Field(ge=0)

    @property
    def covered_wh(self) -> int:
        return sum(purchase.wh for purchase in self.purchases)


class Suggestion(BaseModel):
    """What an advisor proposes: ``sell`` with a sell part, ``buy`` with a buy part, or
    ``hold`` with neither; an explanation in English and in Swahili. (Gemini's answer schema.)"""

    action: Action
    sell: SellAdvice | None = None
    buy: BuyAdvice | None = None
    explanation_en: str = Field(min_length=1, max_length=MAX_EXPLANATION_CHARS)
    explanation_sw: str = Field(min_length=1, max_length=MAX_EXPLANATION_CHARS)

    @model_validator(mode="after")
    def _parts_match_the_action(self) -> Suggestion:
        if (self.sell is not None) != (self.action is Action.sell):
            raise ValueError("a sell part goes with action sell, and only with it")
        if (self.buy is not None) != (self.action is Action.buy):
            raise ValueError("a buy part goes with action buy, and only with it")
        return self


class Advice(Suggestion):
    """A suggestion for a household, who wrote it, and, when Gemini's answer was replaced by
    the rule-based one, why."""

    household: str
    made_at: int = Field(description="Unix seconds")
    advisor: AdvisorName
    fallback_reason: FallbackReason | None = None

    @classmethod
    def of(
        cls,
        suggestion: Suggestion,
        inputs: AdviceInput,
        advisor: AdvisorName,
        fallback_reason: FallbackReason | None = None,
    ) -> Advice:
        return cls(
            **suggestion.model_dump(),
            household=inputs.household,
            made_at=inputs.now,
            advisor=advisor,
            fallback_reason=fallback_reason,
        )


@dataclass(frozen=True)
class Shortage:
    start: int
    end: int
    wh: int


@dataclass(frozen=True)
class PessimisticPath:
    """The pessimistic path: after each horizon step, the balance plus the p10 surplus of every
    step so far."""

    balance_wh: int
    bands: tuple[Band, ...]
    levels: tuple[int, ...]

    @classmethod
    def of(cls, inputs: AdviceInput) -> PessimisticPath:
        bands = tuple(band for band in inputs.bands if inputs.now < band.end <= inputs.horizon_end)
        levels = []
        level = inputs.balance_wh
        for band in bands:
            level += band.p10_wh
            levels.append(level)
        return cls(inputs.balance_wh, bands, tuple(levels))

    def level_at(self, moment: int) -> int:
        """The level once every step ending by ``moment`` is counted."""
        level = self.balance_wh
        for band, after in zip(self.bands, self.levels, strict=True):
            if band.end > moment:
                break
            level = after
        return level

    def sellable_wh(self, until: int) -> int:
        """The most an offer ending at ``until`` may sell: the level then, or any lower one
        after it (never below zero)."""
        later = [
            level for band, level in zip(self.bands, self.levels, strict=True) if band.end > until
        ]
        return max(min([self.level_at(until), *later]), 0)

    def shortage(self, now: int) -> Shortage | None:
        """The path's fall below zero: from the start of the first step below (``now`` at the
        earliest) to the end of its lowest step, by its lowest level."""
        if not self.levels or min(self.levels) >= 0:
            return None
        first_short = next(i for i, level in enumerate(self.levels) if level < 0)
        lowest = self.levels.index(min(self.levels))
        return Shortage(
            start=max(self.bands[first_short].end - STEP_SECS, now),
            end=self.bands[lowest].end,
            wh=-self.levels[lowest],
        )

    def offer_end(self, horizon_end: int) -> int:
        """The end of the next run of steps with a positive p10 surplus (the horizon's end when
        there is none)."""
        in_run = False
        for index, band in enumerate(self.bands):
            if band.p10_wh > 0:
                in_run = True
            elif in_run:
                return self.bands[index - 1].end
        return self.bands[-1].end if in_run else horizon_end


def advised_price(inputs: AdviceInput) -> int:
    competitors = inputs.competitors()
    bounds = inputs.price_bounds
    if competitors:
        return bounds.clamp(competitors[0].price_cents_per_kwh - UNDERCUT_CENTS_PER_KWH)
    return (bounds.min_cents_per_kwh + bounds.max_cents_per_kwh) // 2


def cheapest_cover(inputs: AdviceInput, wh: int) -> list[Purchase]:
    """The cheapest other sellers' offers covering ``wh``, as far as they go."""
    purchases = []
    remaining = wh
    for offer in inputs.competitors():
        if remaining == 0:
            break
        take = min(offer.wh_available, remaining)
        purchases.append(
            Purchase(
                offer=offer.address,
                wh=take,
                price_cents_per_kwh=offer.price_cents_per_kwh,
                cost_cents=total_cents(take, offer.price_cents_per_kwh),
            )
        )
        remaining -= take
    return purchases


def rule_suggestion(inputs: AdviceInput) -> Suggestion:
    """The rule-based advisor's suggestion (the rules are in this module's docstring)."""
    path = PessimisticPath.of(inputs)
    shortage = path.shortage(inputs.now)
    if shortage is not None and shortage.wh >= MIN_SHORTAGE_WH:
        purchases = cheapest_cover(inputs, shortage.wh)
        buy = BuyAdvice(
            shortage_start=shortage.start,
            shortage_end=shortage.end,
            shortage_wh=shortage.wh,
            purchases=purchases,
            total_cost_cents=sum(purchase.cost_cents for purchase in purchases),
        )
        english, swahili = _buy_text(inputs, buy)
        return Suggestion(
            action=Action.buy, buy=buy, explanation_en=english, explanation_sw=swahili
        )
    if path.bands:
        until = path.offer_end(inputs.horizon_end)
        offer_wh = path.sellable_wh(until)
        if offer_wh >= MIN_OFFER_WH:
            sell = SellAdvice(
                offer_wh=offer_wh, price_cents_per_kwh=advised_price(inputs), until=until
            )
            english, swahili = _sell_text(inputs, sell)
            return Suggestion(
                action=Action.sell, sell=sell, explanation_en=english, explanation_sw=swahili
            )
    return Suggestion(
        action=Action.hold,
        explanation_en=(
            f"Nothing to do now. Your forecast shows no energy to spare and no shortage "
            f"in the next {inputs.horizon_hours} hours."
        ),
        explanation_sw=(
            f"Hakuna la kufanya sasa. Utabiri wako hauonyeshi nishati ya ziada wala upungufu "
            f"katika saa {inputs.horizon_hours} zijazo."
        ),
    )


def rule_advice(inputs: AdviceInput, fallback_reason: FallbackReason | None = None) -> Advice:
    """The rule-based advice; ``fallback_reason`` says why it stands in for Gemini's."""
    return Advice.of(rule_suggestion(inputs), inputs, AdvisorName.rules, fallback_reason)


class Rule(StrEnum):
    """A rule an advisor's numbers must keep."""

    offer_above_sellable = "offer_above_sellable"
    offer_empty = "offer_empty"
    price_outside_bounds = "price_outside_bounds"
    time_outside_horizon = "time_outside_horizon"
    shortage_window_reversed = "shortage_window_reversed"
    shortage_above_forecast = "shortage_above_forecast"
    unknown_offer = "unknown_offer"
    duplicate_offer = "duplicate_offer"
    purchase_empty = "purchase_empty"
    purchase_above_available = "purchase_above_available"
    purchase_price_mismatch = "purchase_price_mismatch"
    purchases_above_shortage = "purchases_above_shortage"
    cost_mismatch = "cost_mismatch"


@dataclass(frozen=True)
class Violation:
    rule: Rule
    detail: str


def check(suggestion: Suggestion, inputs: AdviceInput) -> list[Violation]:
    """Every rule ``suggestion``'s numbers break against ``inputs`` (none: it may be given)."""
    path = PessimisticPath.of(inputs)
    if suggestion.sell is not None:
        return _check_sell(suggestion.sell, inputs, path)
    if suggestion.buy is not None:
        return _check_buy(suggestion.buy, inputs, path)
    return []


def _ends_within_horizon(name: str, moment: int, inputs: AdviceInput) -> list[Violation]:
    """A moment something ends: after now, by the horizon's end."""
    if inputs.now < moment <= inputs.horizon_end:
        return []
    return [
        Violation(
            Rule.time_outside_horizon,
            f"{name} {moment} is outside ({inputs.now}, {inputs.horizon_end}]",
        )
    ]


def _check_sell(sell: SellAdvice, inputs: AdviceInput, path: PessimisticPath) -> list[Violation]:
    violations = _ends_within_horizon("until", sell.until, inputs)
    if sell.offer_wh <= 0:
        violations.append(Violation(Rule.offer_empty, "offer_wh must be positive"))
    sellable = path.sellable_wh(sell.until)
    if sell.offer_wh > sellable:
        violations.append(
            Violation(
                Rule.offer_above_sellable,
                f"offer_wh {sell.offer_wh} is above the {sellable} Wh the balance and the "
                f"p10 surplus leave spare until {sell.until}",
            )
        )
    bounds = inputs.price_bounds
    if bounds.clamp(sell.price_cents_per_kwh) != sell.price_cents_per_kwh:
        violations.append(
            Violation(
                Rule.price_outside_bounds,
                f"price {sell.price_cents_per_kwh} is outside [{bounds.min_cents_per_kwh}, "
                f"{bounds.max_cents_per_kwh}] cents per kWh",
            )
        )
    return violations


def _check_buy(buy: BuyAdvice, inputs: AdviceInput, path: PessimisticPath) -> list[Violation]:
    violations = _ends_within_horizon("shortage_end", buy.shortage_end, inputs)
    if not inputs.now <= buy.shortage_start < inputs.horizon_end:
        violations.append(
            Violation(
                Rule.time_outside_horizon,
                f"shortage_start {buy.shortage_start} is outside [{inputs.now}, "
                f"{inputs.horizon_end})",
            )
        )
    if buy.shortage_start >= buy.shortage_end:
        violations.append(
            Violation(
                Rule.shortage_window_reversed,
                f"shortage_start {buy.shortage_start} is not before shortage_end "
                f"{buy.shortage_end}",
            )
        )
    shortage = path.shortage(inputs.now)
    forecast_wh = 0 if shortage is None else shortage.wh
    if buy.shortage_wh > forecast_wh:
        violations.append(
            Violation(
                Rule.shortage_above_forecast,
                f"shortage_wh {buy.shortage_wh} is above the forecast's {forecast_wh}",
            )
        )
    violations += _check_purchases(buy.purchases, inputs)
    if buy.covered_wh > buy.shortage_wh:
        violations.append(
            Violation(
                Rule.purchases_above_shortage,
                f"purchases buy {buy.covered_wh} Wh for a shortage of {buy.shortage_wh}",
            )
        )
    costs = sum(purchase.cost_cents for purchase in buy.purchases)
    if buy.total_cost_cents != costs:
        violations.append(
            Violation(
                Rule.cost_mismatch,
                f"total_cost_cents {buy.total_cost_cents} is not the purchases' sum {costs}",
            )
        )
    return violations


def _check_purchases(purchases: Sequence[Purchase], inputs: AdviceInput) -> list[Violation]:
    violations = []
    offers = {offer.address: offer for offer in inputs.competitors()}
    seen: set[str] = set()
    for purchase in purchases:
        offer = offers.get(purchase.offer)
        if offer is None:
            violations.append(
                Violation(
                    Rule.unknown_offer,
                    f"{purchase.offer} is not another seller's open offer near the household",
                )
            )
            continue
        if purchase.offer in seen:
            violations.append(Violation(Rule.duplicate_offer, f"{purchase.offer} is listed twice"))
        seen.add(purchase.offer)
        if purchase.wh <= 0:
            violations.append(
                Violation(Rule.purchase_empty, f"{purchase.offer}: wh must be positive")
            )
        if purchase.wh > offer.wh_available:
            violations.append(
                Violation(
                    Rule.purchase_above_available,
                    f"{purchase.offer}: {purchase.wh} Wh, it holds {offer.wh_available}",
                )
            )
        if purchase.price_cents_per_kwh != offer.price_cents_per_kwh:
            violations.append(
                Violation(
                    Rule.purchase_price_mismatch,
                    f"{purchase.offer}: price {purchase.price_cents_per_kwh}, the offer's is "
                    f"{offer.price_cents_per_kwh}",
                )
            )
        charged = total_cents(purchase.wh, offer.price_cents_per_kwh)
        if purchase.cost_cents != charged:
            violations.append(
                Violation(
                    Rule.cost_mismatch,
                    f"{purchase.offer}: cost_cents {purchase.cost_cents}, the chain charges "
                    f"{charged}",
                )
            )
    return violations


def kwh(wh: int) -> str:
    """Wh as kWh with one decimal (rounded half up): ``1_250`` is ``1.3``."""
    return str((Decimal(wh) / 1000).quantize(Decimal("0.1"), rounding="ROUND_HALF_UP"))


def shillings(cents: int) -> str:
    """KES cents as shillings: ``2_450`` is ``24.50``."""
    return f"{cents // 100:,}.{cents % 100:02d}"


@dataclass(frozen=True)
class _Moment:
    """A moment in East Africa Time: its clock (``16:00``) and its day in English and Swahili
    (``today``, ``leo``)."""

    clock: str
    day_en: str
    day_sw: str

    @classmethod
    def of(cls, moment: int, now: int) -> _Moment:
        local = datetime.fromtimestamp(moment, UTC).astimezone(EAST_AFRICA_TIME)
        today = datetime.fromtimestamp(now, UTC).astimezone(EAST_AFRICA_TIME).date()
        days = (local.date() - today).days
        english = {0: "today", 1: "tomorrow", 2: "the day after tomorrow"}
        swahili = {0: "leo", 1: "kesho", 2: "keshokutwa"}
        date = local.strftime("%d/%m")
        return cls(
            local.strftime("%H:%M"),
            english.get(days, f"on {date}"),
            swahili.get(days, f"tarehe {date}"),
        )


def _sell_text(inputs: AdviceInput, sell: SellAdvice) -> tuple[str, str]:
    until = _Moment.of(sell.until, inputs.now)
    price = shillings(sell.price_cents_per_kwh)
    english = [
        f"Offer {kwh(sell.offer_wh)} kWh at KES {price}/kWh until {until.clock} {until.day_en}.",
        "That is your balance and what your panels should spare even on a poor day, "
        "less what you will need later.",
    ]
    swahili = [
        f"Weka ofa ya kWh {kwh(sell.offer_wh)} kwa KES {price} kwa kila kWh hadi saa "
        f"{until.clock} {until.day_sw}.",
        "Kiasi hiki ni salio lako pamoja na nishati ya ziada ya paneli zako, hata siku ya mawingu.",
        "Tumeacha nishati ya kutosha kwa matumizi yako ya baadaye.",
    ]
    competitors = inputs.competitors()
    if competitors:
        cheapest = shillings(competitors[0].price_cents_per_kwh)
        english.append(f"The price is just below the cheapest offer nearby (KES {cheapest}).")
        swahili.append(
            f"Bei iko chini kidogo ya ofa iliyo nafuu zaidi karibu nawe (KES {cheapest})."
        )
    else:
        bounds = inputs.price_bounds
        low, high = shillings(bounds.min_cents_per_kwh), shillings(bounds.max_cents_per_kwh)
        english.append(
            f"No one nearby is selling, so the price is the middle of the market's range "
            f"(KES {low} to {high})."
        )
        swahili.append(
            f"Hakuna anayeuza karibu nawe, kwa hivyo bei ni ya katikati ya viwango vya soko "
            f"(KES {low} hadi {high})."
        )
    escrowed = sum(offer.wh_available for offer in inputs.own_offers)
    if escrowed:
        english.append(f"It comes beside the {kwh(escrowed)} kWh your open offers hold.")
        swahili.append(
            f"Hii ni nyongeza kwa kWh {kwh(escrowed)} zilizo tayari kwenye ofa zako zilizo wazi."
        )
    return " ".join(english), " ".join(swahili)


def _buy_text(inputs: AdviceInput, buy: BuyAdvice) -> tuple[str, str]:
    start = _Moment.of(buy.shortage_start, inputs.now)
    end = _Moment.of(buy.shortage_end, inputs.now)
    short = kwh(buy.shortage_wh)
    if start.day_en == end.day_en:
        window_en = f"between {start.clock} and {end.clock} {end.day_en}"
        window_sw = f"kati ya saa {start.clock} na saa {end.clock} {end.day_sw}"
    else:
        window_en = f"between {start.clock} {start.day_en} and {end.clock} {end.day_en}"
        window_sw = f"kati ya saa {start.clock} {start.day_sw} na saa {end.clock} {end.day_sw}"
    english = [f"You may run short by {short} kWh {window_en}."]
    swahili = [f"Huenda ukakosa kWh {short} {window_sw}."]
    escrowed = sum(offer.wh_available for offer in inputs.own_offers)
    if escrowed:
        english.append(
            f"Your own open offers hold {kwh(escrowed)} kWh; "
            "withdrawing them would cover some of it."
        )
        swahili.append(
            f"Ofa zako zilizo wazi zina kWh {kwh(escrowed)}. "
            "Ukiziondoa, zitasaidia kuziba upungufu huu."
        )
    count = len(buy.purchases)
    if count == 0:
        english.append("No one nearby is selling now. Check again later, or use the grid.")
        swahili.append(
            "Hakuna anayeuza karibu nawe sasa. Angalia tena baadaye, au tumia umeme wa gridi."
        )
        return " ".join(english), " ".join(swahili)
    covered, cost = kwh(buy.covered_wh), shillings(buy.total_cost_cents)
    offers_en = "the cheapest offer" if count == 1 else f"the {count} cheapest offers"
    offers_sw = "ofa nafuu zaidi" if count == 1 else f"ofa {count} nafuu zaidi"
    english.append(f"Buy {covered} kWh from {offers_en} for KES {cost} in total.")
    swahili.append(f"Nunua kWh {covered} kutoka kwa {offers_sw} kwa jumla ya KES {cost}.")
    if buy.covered_wh < buy.shortage_wh:
        english.append("That is all the offers nearby hold; the rest will come from the grid.")
        swahili.append(
            ("Hiyo ndiyo ofa pekee iliyopo." if count == 1 else "Hizo ndizo ofa zote zilizopo.")
            + " Kiasi kilichobaki kitatoka kwenye gridi ya umeme."
        )
    return " ".join(english), " ".join(swahili)
