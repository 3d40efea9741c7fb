"""The forecast routes: each household's PV system, forecast, skill and advice, the market's
skill, and auto-sell. Every one needs a caller (``http.auth``): a household's routes its
owner, an installer the market approves, or the operator; the market's skill any household or
installer of the market, or the operator.

A body that is not of a route's shape (not JSON, wrong types, unknown fields) is a 400; values
of the right type that cannot be (a tilt of 120 degrees, a floor price outside the market's
bounds) a 422 with the rule they break.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nishati_oracle.forecast.advice import Advice
from nishati_oracle.forecast.autosell import (
    AutoOffer,
    AutoSeller,
    AutoSellLimits,
    AutoSellState,
    NotCustodial,
)
from nishati_oracle.forecast.sources import Advisor, Forecasts
from nishati_oracle.forecast.store import Outlook, Skill
from nishati_oracle.forecast.systems import PvSystem, PvSystems
from nishati_oracle.http.auth import HOUSEHOLD_ACCESS, MARKET_ACCESS, HouseholdAccessDep
from nishati_oracle.http.auth import MarketAccessDep as MarketAccess
from nishati_oracle.http.deps import ServicesDep
from nishati_oracle.http.errors import (
    MALFORMED,
    STORAGE_UNAVAILABLE,
    TOO_LARGE,
    describe,
    error_response,
    responses,
)
from nishati_oracle.http.limits import capped
from nishati_oracle.services import Services

log = structlog.get_logger(__name__)


class ForecastReason(StrEnum):
    InvalidPvSystem = "InvalidPvSystem"
    InvalidAutoSell = "InvalidAutoSell"
    FloorPriceOutOfBounds = "FloorPriceOutOfBounds"
    NotCustodial = "NotCustodial"
    NoForecastYet = "NoForecastYet"
    ForecastUnavailable = "ForecastUnavailable"
    AdviceUnavailable = "AdviceUnavailable"


STATUS = {
    ForecastReason.InvalidPvSystem: 422,
    ForecastReason.InvalidAutoSell: 422,
    ForecastReason.FloorPriceOutOfBounds: 422,
    ForecastReason.NotCustodial: 409,
    ForecastReason.NoForecastYet: 404,
    ForecastReason.ForecastUnavailable: 503,
    ForecastReason.AdviceUnavailable: 503,
}


class ForecastRefused(Exception):
    def __init__(self, reason: ForecastReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


async def refused(_: Request, error: Exception) -> Response:
    assert isinstance(error, ForecastRefused)
    return error_response(STATUS[error.reason], error.reason, error.detail)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ForecastRefused, refused)
    app.include_router(router)


class PvSystemIn(BaseModel):
    """A home's PV system as sent: any field left out takes a Nairobi rooftop's value. Angles
    in degrees: tilt from horizontal (0 to 90), azimuth clockwise from north (0 to 360; 180
    faces south). The inverter's limit is 0.2 to 5 times the capacity."""

    model_config = ConfigDict(extra="forbid")

    latitude: float | None = Field(default=None, description="-90 to 90")
    longitude: float | None = Field(default=None, description="-180 to 180")
    altitude_m: int | None = Field(default=None, description="-500 to 9,000 m")
    capacity_wp: int | None = Field(default=None, description="Panels' peak power, 1 to 100,000 W")
    tilt_deg: float | None = Field(default=None, description="0 to 90")
    azimuth_deg: float | None = Field(default=None, description="0 to under 360")
    inverter_limit_w: int | None = Field(default=None, description="1 to 100,000 W")


class PvSystemOut(PvSystem):
    model_config = ConfigDict(frozen=True, extra="forbid")

    household: str
    defaults: bool = Field(description="True: none was set; these are a Nairobi rooftop's")


class AutoSellIn(BaseModel):
    """The limits auto-sell keeps to (each checked: 422 InvalidAutoSell, or
    FloorPriceOutOfBounds outside the market's prices)."""

    model_config = ConfigDict(extra="forbid")

    floor_price_cents_per_kwh: int = Field(description="Never below, KES cents per kWh")
    share_percent: int = Field(description="Share of the forecast surplus offered, 0 to 100")
    max_wh_per_offer: int = Field(description="Most energy one automatic offer holds, Wh (> 0)")


class AutoSellOut(BaseModel):
    household: str
    enabled: bool
    limits: AutoSellState | None
    open_offer: AutoOffer | None


class AutoSellStopped(BaseModel):
    household: str
    was_enabled: bool
    closed_offer: AutoOffer | None = Field(description="The automatic offer it cancelled")


router = APIRouter(
    tags=["forecasts"],
    route_class=capped(lambda http: http.order_body_bytes),
    responses=responses({**MALFORMED, **TOO_LARGE}),
)

HOUSEHOLD_ROUTE = {**HOUSEHOLD_ACCESS, 503: f"ChainUnavailable, {STORAGE_UNAVAILABLE}"}
FORECAST_ROUTE = {
    **HOUSEHOLD_ACCESS,
    503: f"ForecastUnavailable, ChainUnavailable, {STORAGE_UNAVAILABLE}",
}
ADVICE_ROUTE = {
    **HOUSEHOLD_ACCESS,
    503: f"AdviceUnavailable, ChainUnavailable, {STORAGE_UNAVAILABLE}",
}
PV_SYSTEM = "/api/v1/households/{household}/pv-system"
AUTO_SELL = "/api/v1/households/{household}/auto-sell"


def _pv_systems(services: Services) -> PvSystems:
    return PvSystems(services.store.engine)


@router.get(PV_SYSTEM, response_model=PvSystemOut, responses=responses(HOUSEHOLD_ROUTE))
async def get_pv_system(services: ServicesDep, access: HouseholdAccessDep) -> PvSystemOut:
    """The household's PV system, or a Nairobi rooftop's with ``defaults: true`` if none was
    set."""
    household = str(access.household.address)
    stored = await _pv_systems(services).get(household)
    system = stored or PvSystem()
    return PvSystemOut(**system.model_dump(), household=household, defaults=stored is None)


@router.put(
    PV_SYSTEM,
    response_model=PvSystemOut,
    responses=responses(
        {**HOUSEHOLD_ROUTE, 422: "InvalidPvSystem: a value no PV system has, with its rule"}
    ),
)
async def put_pv_system(
    services: ServicesDep, access: HouseholdAccessDep, body: PvSystemIn
) -> PvSystemOut:
    """Sets the household's PV system (the owner, an installer, or the operator)."""
    try:
        system = PvSystem.model_validate(body.model_dump(exclude_none=True))
    except ValidationError as error:
        raise ForecastRefused(ForecastReason.InvalidPvSystem, describe(error.errors())) from None
    household = str(access.household.address)
    await _pv_systems(services).put(household, system)
    log.info("pv system set", household=household, by=access.principal.name)
    return PvSystemOut(**system.model_dump(), household=household, defaults=False)


def _forecasts(services: Services) -> Forecasts:
    if services.forecast is None:
        raise ForecastRefused(
            ForecastReason.ForecastUnavailable, "forecasts are off: set NISHATI_FORECAST_ENABLED"
        )
    return services.forecast


def _advisor(services: Services) -> Advisor:
    if services.advisor is None:
        raise ForecastRefused(
            ForecastReason.AdviceUnavailable,
            "advice needs forecasts, which are off: set NISHATI_FORECAST_ENABLED",
        )
    return services.advisor


@router.get(
    "/api/v1/households/{household}/forecast",
    response_model=Outlook,
    responses=responses(
        {
            **FORECAST_ROUTE,
            404: f"NoForecastYet: no round has forecast it yet; {FORECAST_ROUTE[404]}",
        }
    ),
)
async def forecast(services: ServicesDep, access: HouseholdAccessDep) -> Outlook:
    """The household's next hours in 15-minute steps: production, consumption, surplus (or
    deficit) with its p10/p90 band, what the production forecast rests on (weather, or the
    clear sky times the home's index), and what the home's meter taught it."""
    outlook = await _forecasts(services).outlook(str(access.household.address))
    if outlook is None:
        raise ForecastRefused(
            ForecastReason.NoForecastYet, "no forecast round has reached this household yet"
        )
    return outlook


@router.get(
    "/api/v1/households/{household}/skill",
    response_model=Skill,
    responses=responses(FORECAST_ROUTE),
)
async def household_skill(services: ServicesDep, access: HouseholdAccessDep) -> Skill:
    """How the household's past forecasts did against its meter, per horizon: MAE and skill
    against smart persistence."""
    return await _forecasts(services).skill(str(access.household.address))


@router.get(
    "/api/v1/forecast/skill",
    response_model=Skill,
    responses=responses({**MARKET_ACCESS, 503: f"ForecastUnavailable, {STORAGE_UNAVAILABLE}"}),
)
async def market_skill(services: ServicesDep, _: MarketAccess) -> Skill:
    """How the market's past forecasts did against its meters, all households together, per
    horizon."""
    return await _forecasts(services).skill(None)


@router.get(
    "/api/v1/households/{household}/advice",
    response_model=Advice,
    responses=responses(
        {**ADVICE_ROUTE, 404: f"NoForecastYet: no round has forecast it yet; {ADVICE_ROUTE[404]}"}
    ),
)
async def advice(services: ServicesDep, access: HouseholdAccessDep) -> Advice:
    """What the household should sell (how much, at what price, until when) or buy (the
    shortage coming and the cheapest offers covering it), or that it should hold; in English
    and Swahili, and which advisor said so (``gemini``, or ``rules`` with why Gemini's answer
    was not taken)."""
    found = await _advisor(services).advise(str(access.household.address))
    if found is None:
        raise ForecastRefused(
            ForecastReason.NoForecastYet, "no forecast round has reached this household yet"
        )
    return found


async def _auto_seller(services: ServicesDep) -> AutoSeller:
    return services.auto_sell


async def _auto_sell_out(seller: AutoSeller, household: str) -> AutoSellOut:
    limits = await seller.store.limits(household)
    return AutoSellOut(
        household=household,
        enabled=limits is not None,
        limits=limits,
        open_offer=await seller.store.open_offer(household),
    )


AutoSellerDep = Annotated[AutoSeller, Depends(_auto_seller)]


@router.get(AUTO_SELL, response_model=AutoSellOut, responses=responses(HOUSEHOLD_ROUTE))
async def get_auto_sell(seller: AutoSellerDep, access: HouseholdAccessDep) -> AutoSellOut:
    """Whether auto-sell is on for the household, its limits, and its open automatic offer."""
    return await _auto_sell_out(seller, str(access.household.address))


@router.put(
    AUTO_SELL,
    response_model=AutoSellOut,
    responses=responses(
        {
            **HOUSEHOLD_ROUTE,
            409: "NotCustodial: the household signs its own offers; the oracle cannot",
            422: "InvalidAutoSell: a limit out of its range; FloorPriceOutOfBounds: outside "
            "the market's prices",
        }
    ),
)
async def put_auto_sell(
    services: ServicesDep, seller: AutoSellerDep, access: HouseholdAccessDep, body: AutoSellIn
) -> AutoSellOut:
    """Lets the oracle keep an offer open for the household's forecast surplus within these
    limits (a custodial household only), replacing the limits it had."""
    try:
        seller.check_custodial(access.household)
    except NotCustodial as error:
        raise ForecastRefused(ForecastReason.NotCustodial, str(error)) from None
    try:
        limits = AutoSellLimits.model_validate(body.model_dump())
    except ValidationError as error:
        raise ForecastRefused(ForecastReason.InvalidAutoSell, describe(error.errors())) from None
    config = (await services.client.market(services.market)).config
    low, high = config.min_price_cents_per_kwh, config.max_price_cents_per_kwh
    if not low <= limits.floor_price_cents_per_kwh <= high:
        raise ForecastRefused(
            ForecastReason.FloorPriceOutOfBounds,
            f"the market's prices are {low:,} to {high:,} KES cents per kWh",
        )
    household = str(access.household.address)
    await seller.store.set_limits(household, limits, access.principal.name, time.time())
    log.info("auto-sell set", household=household, by=access.principal.name)
    seller.wake()
    return await _auto_sell_out(seller, household)


@router.delete(AUTO_SELL, response_model=AutoSellStopped, responses=responses(HOUSEHOLD_ROUTE))
async def delete_auto_sell(seller: AutoSellerDep, access: HouseholdAccessDep) -> AutoSellStopped:
    """Stops auto-sell for the household and cancels its open automatic offer."""
    household = str(access.household.address)
    was_enabled = await seller.store.limits(household) is not None
    closed = await seller.stop(access.household, f"stopped by {access.principal.name}")
    log.info("auto-sell stopped", household=household, by=access.principal.name)
    return AutoSellStopped(household=household, was_enabled=was_enabled, closed_offer=closed)


@router.get(
    f"{AUTO_SELL}/offers", response_model=list[AutoOffer], responses=responses(HOUSEHOLD_ROUTE)
)
async def auto_sell_offers(seller: AutoSellerDep, access: HouseholdAccessDep) -> list[AutoOffer]:
    """The household's automatic offers, newest first, each with why it was made and closed."""
    return await seller.store.offers(str(access.household.address))
