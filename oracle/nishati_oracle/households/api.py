"""A household's pages' data: ``/api/v1/households/{household}/...``.

Each route is the household's owner's (signed in with its phone, or its key), an installer's
the market approves, or the operator's (``http.auth.household_access``): a household never
reads another's.
"""

from __future__ import annotations

import time
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from nishati_oracle.households.offers import HouseholdOffers, OfferRefused
from nishati_oracle.households.reads import HouseholdReads
from nishati_oracle.http.auth import HOUSEHOLD_ACCESS, HouseholdAccessDep
from nishati_oracle.http.deps import ServicesDep
from nishati_oracle.http.errors import (
    MALFORMED,
    STORAGE_UNAVAILABLE,
    TOO_LARGE,
    error_response,
    responses,
)
from nishati_oracle.http.limits import capped
from nishati_oracle.trading.ledger import TradeState

# A household's offer stands a week at most.
MAX_OFFER_SECS = 7 * 86_400

router = APIRouter(
    tags=["household"],
    responses=responses({**HOUSEHOLD_ACCESS, 503: STORAGE_UNAVAILABLE}),
)
# The routes that change something: small JSON bodies, capped like orders.
changes = APIRouter(
    tags=["household"],
    route_class=capped(lambda http: http.order_body_bytes),
    responses=responses({**HOUSEHOLD_ACCESS, **MALFORMED, **TOO_LARGE}),
)


class IntervalOut(BaseModel):
    meter: str
    start: int = Field(description="Unix seconds of the reading the interval starts at")
    end: int = Field(description="Unix seconds of the reading the interval ends at")
    exported_wh: int = Field(description="Wh the meter sent to the grid")
    imported_wh: int = Field(description="Wh the meter took from the grid")


class DayOut(BaseModel):
    household: str
    date: date
    start: int = Field(description="The day's start in Nairobi time, Unix seconds")
    end: int
    meters: list[str]
    exported_wh: int
    imported_wh: int
    intervals: list[IntervalOut] = Field(
        description="Oldest first, at the meter's own resolution; export and import apart"
    )


class SolarDayOut(BaseModel):
    household: str
    date: date
    exported_wh: int = Field(description="Wh the household's meters sent to the grid that day")
    sold_wh: int = Field(
        description="Wh of the household's sales to neighbours settled that day (energy it "
        "exported that day or before)"
    )
    sold_trades: int = Field(description="How many sales settled that day")
    to_grid_wh: int = Field(description="Exported and not sold that day: max(0, exported - sold)")


class BalanceOut(BaseModel):
    household: str
    energy_wh: int = Field(description="Energy tokens held on chain (1 = 1 Wh)")
    spent_cents: int = Field(description="KES cents paid for energy bought")
    bought_wh: int
    earned_cents: int = Field(description="KES cents paid out to the household's phone")
    owed_cents: int = Field(description="KES cents of settled sales not yet paid out")
    sold_wh: int


class TradeLineOut(BaseModel):
    trade_id: str
    role: str = Field(description="buyer or seller")
    state: TradeState
    offer: str
    wh: int
    price_cents_per_kwh: int
    total_cents: int
    fee_cents: int
    payout_kes: int
    mpesa_receipt: str | None
    payout_receipt: str | None
    refund_method: str | None
    refund_receipt: str | None
    created_at: float
    updated_at: float


class HistoryPageOut(BaseModel):
    household: str
    trades: list[TradeLineOut]


class MeterHealthOut(BaseModel):
    meter: str
    last_counter: int | None
    last_timestamp: int | None = Field(description="The last accepted reading's time")
    silent_secs: int | None = Field(description="Seconds since the last accepted reading")
    last_exported_wh: int | None
    last_imported_wh: int | None
    attested_counter: int | None
    unattested: int = Field(description="Readings waiting for the chain")
    refused: int = Field(description="Readings the chain refused for good")


class MetersOut(BaseModel):
    household: str
    meters: list[MeterHealthOut]


def _reads(services: ServicesDep) -> HouseholdReads:
    return HouseholdReads(services.store.engine)


async def _chain_now(services: ServicesDep) -> int:
    return await services.pipeline.chain_clock.now()


@router.get("/api/v1/households/{household}/day", response_model=DayOut)
async def day(
    services: ServicesDep,
    access: HouseholdAccessDep,
    on: Annotated[date, Query(alias="date", description="The day, in Nairobi time")],
) -> DayOut:
    """The household's meter readings of one day: each interval's export and import."""
    household = str(access.household.address)
    found = await _reads(services).day(household, on)
    return DayOut(
        household=household,
        date=found.day,
        start=found.start,
        end=found.end,
        meters=found.meters,
        exported_wh=found.exported_wh,
        imported_wh=found.imported_wh,
        intervals=[IntervalOut(**vars(i)) for i in found.intervals],
    )


@router.get("/api/v1/households/{household}/solar", response_model=SolarDayOut)
async def solar(
    services: ServicesDep,
    access: HouseholdAccessDep,
    on: Annotated[date, Query(alias="date", description="The day, in Nairobi time")],
) -> SolarDayOut:
    """Where the day's exported solar went: sold to neighbours (the household's trades as
    seller settled that day) or to the grid. What the home used of its own production is not
    here: the meter sits at the grid connection and sees only what crosses it."""
    household = str(access.household.address)
    found = await _reads(services).solar(household, on)
    return SolarDayOut(
        household=household,
        date=found.day,
        exported_wh=found.exported_wh,
        sold_wh=found.sold_wh,
        sold_trades=found.sold_trades,
        to_grid_wh=found.to_grid_wh,
    )


@router.get(
    "/api/v1/households/{household}/balance",
    response_model=BalanceOut,
    responses=responses({409: "AccountNotFound: the household's energy account is not on chain"}),
)
async def balance(services: ServicesDep, access: HouseholdAccessDep) -> BalanceOut:
    """Energy held on chain, and money spent, earned and owed from the household's trades."""
    household = str(access.household.address)
    energy = await services.client.energy_balance(access.household.energy_account)
    money = await _reads(services).money(household)
    return BalanceOut(household=household, energy_wh=energy, **vars(money))


@router.get("/api/v1/households/{household}/trades", response_model=HistoryPageOut)
async def history(
    services: ServicesDep,
    access: HouseholdAccessDep,
    limit: Annotated[int, Query(ge=1, le=200, description="Trades to list")] = 50,
    before: Annotated[
        float | None, Query(ge=0, description="Only trades created before this Unix time")
    ] = None,
) -> HistoryPageOut:
    """The household's trades, bought and sold, newest first: payments with their M-Pesa
    receipts, payouts, refunds."""
    household = str(access.household.address)
    lines = await _reads(services).trades_of(household, limit, before)
    return HistoryPageOut(household=household, trades=[TradeLineOut(**vars(t)) for t in lines])


@router.get("/api/v1/households/{household}/meters", response_model=MetersOut)
async def meters(services: ServicesDep, access: HouseholdAccessDep) -> MetersOut:
    """The household's meters: last reading, silence, readings waiting and refused."""
    household = str(access.household.address)
    now = int(time.time())
    found = await _reads(services).meter_health(household)
    return MetersOut(
        household=household,
        meters=[
            MeterHealthOut(
                **vars(m),
                silent_secs=None if m.last_timestamp is None else max(0, now - m.last_timestamp),
            )
            for m in found
        ],
    )


class OpenOfferOut(BaseModel):
    offer: str
    seller: str
    own: bool = Field(description="The household's own offer")
    price_cents_per_kwh: int
    unreserved_wh: int = Field(description="Wh still for sale")
    expires_at: int


class OffersOut(BaseModel):
    household: str
    offers: list[OpenOfferOut] = Field(description="Cheapest first")


class OfferIn(BaseModel):
    wh: Annotated[int, Field(gt=0, le=2**63 - 1, description="Energy to offer, Wh")]
    price_cents_per_kwh: Annotated[int, Field(gt=0, le=2**63 - 1)]
    expires_in_secs: Annotated[
        int, Field(gt=0, le=MAX_OFFER_SECS, description="How long the offer stands")
    ]


class OfferCreatedOut(BaseModel):
    offer: str


async def refused(_: Request, error: Exception) -> Response:
    assert isinstance(error, OfferRefused)
    return error_response(error.status_code, error.reason, error.detail)


def _offers(services: ServicesDep) -> HouseholdOffers:
    return HouseholdOffers(services.client, services.pipeline.market, services.attester.oracle)


@router.get(
    "/api/v1/households/{household}/offers",
    response_model=OffersOut,
    responses=responses({503: "OffersUnlisted: the chain lists no accounts (LiteSVM)"}),
)
async def offers(services: ServicesDep, access: HouseholdAccessDep) -> OffersOut:
    """The market's open offers (not cancelled, not expired, energy left), the household's
    own among them marked."""
    household = str(access.household.address)
    found = await _offers(services).open_offers(household, await _chain_now(services))
    return OffersOut(household=household, offers=[OpenOfferOut(**vars(o)) for o in found])


@changes.post(
    "/api/v1/households/{household}/offers",
    status_code=201,
    response_model=OfferCreatedOut,
    responses=responses(
        {
            409: "NotCustodial: the household signs its own offers; ChainRefused: the "
            "program's error (NotEnoughEnergy, PriceOutOfBounds, ...)",
        }
    ),
)
async def create_offer(
    services: ServicesDep, access: HouseholdAccessDep, body: OfferIn
) -> OfferCreatedOut:
    """Offers the household's energy at a price, for a while (the oracle signs for a
    custodial household)."""
    expires_at = await _chain_now(services) + body.expires_in_secs
    address = await _offers(services).create(
        access.household, body.wh, body.price_cents_per_kwh, expires_at
    )
    return OfferCreatedOut(offer=address)


@changes.delete(
    "/api/v1/households/{household}/offers/{offer}",
    status_code=204,
    responses=responses(
        {
            404: "UnknownOffer: no such offer of this household's",
            409: "NotCustodial, ChainRefused",
        }
    ),
)
async def cancel_offer(services: ServicesDep, access: HouseholdAccessDep, offer: str) -> Response:
    """Cancels one of the household's offers: its unsold energy goes back to the household."""
    await _offers(services).cancel(access.household, offer)
    return Response(status_code=204)
