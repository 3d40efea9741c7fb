"""The operator's pages' data: ``/api/v1/operator/...``, for an operator only (a session signed
in with a password, or the operator's bearer token; ``http.auth.operator_access``).

The market's settings and its installers as the chain holds them now, the market's meters and
their silence, the readings refused (at the door since the oracle started, by the chain for
good or for now), and the trades by state. The money that needs a person is
``trading.api``'s (``/api/v1/operator/attention``), the forecasts' skill ``forecast.api``'s.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from nishati_client.chain import AccountLister
from nishati_oracle.core.metrics import counts_by_label
from nishati_oracle.http.auth import OPERATOR_ACCESS, OperatorAccessDep
from nishati_oracle.http.deps import ServicesDep
from nishati_oracle.http.errors import STORAGE_UNAVAILABLE, error_response, responses
from nishati_oracle.operators.reads import OperatorReads
from nishati_oracle.trading.ledger import TradeState

# A meter that sent nothing for this long is silent, unless the operator asks otherwise.
DEFAULT_SILENT_SECS = 3_600
INSTALLERS_UNLISTED = "InstallersUnlisted"

router = APIRouter(
    tags=["operators"],
    responses=responses({**OPERATOR_ACCESS, 503: STORAGE_UNAVAILABLE}),
)


class InstallersUnlisted(Exception):
    """The chain lists no accounts (LiteSVM): the installers cannot be found."""


async def unlisted(_: Request, error: Exception) -> Response:
    assert isinstance(error, InstallersUnlisted)
    return error_response(503, INSTALLERS_UNLISTED, str(error))


class MarketConfigOut(BaseModel):
    oracle_authority: str
    fee_bps: int = Field(description="The market's fee on each trade, basis points")
    min_price_cents_per_kwh: int
    max_price_cents_per_kwh: int
    payment_deadline_secs: int = Field(description="How long a buyer has to pay")
    cancel_grace_secs: int = Field(description="After the deadline, only the oracle cancels")
    max_export_watts: int = Field(description="The most power one meter may export")
    daily_mint_cap_wh: int = Field(description="The most the market mints in a UTC day")
    max_open_trades_per_buyer: int


class MarketOut(BaseModel):
    market: str
    admin: str
    market_id: int
    paused: bool
    energy_mint: str
    mint_day: int = Field(
        description="The chain's day (Unix time // 86,400) minted_today_wh counts"
    )
    minted_today_wh: int
    config: MarketConfigOut


class InstallerOut(BaseModel):
    installer: str = Field(description="The installer's key")
    record: str = Field(description="The admin's approval (InstallerRecord) on chain")
    added_at: int = Field(description="Chain time of the approval")


class InstallersOut(BaseModel):
    installers: list[InstallerOut] = Field(description="The oldest approval first")


class MeterLineOut(BaseModel):
    meter: str
    household: str
    has_reading: bool = Field(description="False while the meter has sent no reading")
    last_timestamp: int = Field(
        description="Its last accepted reading's time (its registration's before any)"
    )
    silent_secs: int = Field(description="Seconds since then")
    attested_counter: int | None = Field(description="The last counter the chain holds")


class ReasonCountOut(BaseModel):
    reason: str
    readings: int


class RefusedOut(BaseModel):
    reason: str = Field(description="The program's error, or MeterReplaced")
    final: int = Field(description="Readings the chain will never take")
    waiting: int = Field(description="Readings it refused last time, tried again later")
    meters: int


class MetersOut(BaseModel):
    meters: int = Field(description="Meters the oracle has seen")
    silent: int = Field(description="Meters with no reading for silent_after_secs")
    silent_after_secs: int
    most_silent: list[MeterLineOut] = Field(description="Most silent first")
    rejected: list[ReasonCountOut] = Field(
        description="Readings refused as they arrived, by reason, since the oracle started "
        "(never stored: nishati_readings_rejected_total)"
    )
    refused: list[RefusedOut] = Field(description="Stored readings the chain refused, by reason")


class StateTradeOut(BaseModel):
    trade_id: str
    buyer: str
    seller: str
    wh: int
    total_cents: int
    payout_kes: int
    created_at: float
    updated_at: float


class StateOut(BaseModel):
    state: TradeState
    trades: int
    latest: list[StateTradeOut] = Field(description="The most recently changed first")


class TradesOut(BaseModel):
    states: list[StateOut] = Field(description="Each state holding a trade, in the ledger's order")


def _reads(services: ServicesDep) -> OperatorReads:
    return OperatorReads(services.store.engine)


@router.get(
    "/api/v1/operator/market",
    response_model=MarketOut,
    responses=responses({503: "ChainUnavailable"}),
)
async def market(services: ServicesDep, _: OperatorAccessDep) -> MarketOut:
    """The market's settings as the chain holds them now: price bounds, fee, deadlines, export
    and mint caps, whether it is paused."""
    found = await services.client.market(services.market)
    config = found.config
    return MarketOut(
        market=str(found.address),
        admin=str(found.admin),
        market_id=found.market_id,
        paused=found.paused,
        energy_mint=str(found.energy_mint),
        mint_day=found.mint_day,
        minted_today_wh=found.minted_today_wh,
        config=MarketConfigOut(
            **{**vars(config), "oracle_authority": str(config.oracle_authority)}
        ),
    )


@router.get(
    "/api/v1/operator/installers",
    response_model=InstallersOut,
    responses=responses(
        {503: f"{INSTALLERS_UNLISTED}: the chain lists no accounts (LiteSVM); ChainUnavailable"}
    ),
)
async def installers(services: ServicesDep, _: OperatorAccessDep) -> InstallersOut:
    """The installers the market's admin approves, as the chain holds them now."""
    if not isinstance(services.client.chain, AccountLister):
        raise InstallersUnlisted("listing installers needs a JSON-RPC chain")
    found = sorted(
        await services.client.installers(services.market),
        key=lambda r: (r.added_at, str(r.installer)),
    )
    return InstallersOut(
        installers=[
            InstallerOut(installer=str(r.installer), record=str(r.address), added_at=r.added_at)
            for r in found
        ]
    )


@router.get("/api/v1/operator/meters", response_model=MetersOut)
async def meter_health(
    services: ServicesDep,
    _: OperatorAccessDep,
    silent_after_secs: Annotated[
        int, Query(ge=60, le=30 * 86_400, description="Silent after this long without a reading")
    ] = DEFAULT_SILENT_SECS,
    limit: Annotated[int, Query(ge=1, le=500, description="Most silent meters to list")] = 50,
) -> MetersOut:
    """The market's meters: how many are silent and the most silent ones, the readings refused
    as they arrived by reason, and those the chain refused."""
    now = int(time.time())
    reads = _reads(services)
    silence = await reads.meter_silence(now - silent_after_secs, limit)
    rejected = counts_by_label(services.metrics.rejected)
    return MetersOut(
        meters=silence.total,
        silent=silence.silent,
        silent_after_secs=silent_after_secs,
        most_silent=[
            MeterLineOut(**vars(m), silent_secs=max(0, now - m.last_timestamp))
            for m in silence.most_silent
        ],
        rejected=[
            ReasonCountOut(reason=reason, readings=count)
            for reason, count in sorted(rejected.items(), key=lambda kv: (-kv[1], kv[0]))
            if count > 0
        ],
        refused=[RefusedOut(**vars(r)) for r in await reads.refused_readings()],
    )


@router.get("/api/v1/operator/trades", response_model=TradesOut)
async def trades_by_state(
    services: ServicesDep,
    _: OperatorAccessDep,
    latest: Annotated[int, Query(ge=1, le=50, description="Trades to list per state")] = 5,
) -> TradesOut:
    """How many trades are in each state, and the latest of each."""
    found = await _reads(services).trades_by_state(latest)
    return TradesOut(
        states=[
            StateOut(
                state=s.state,
                trades=s.trades,
                latest=[StateTradeOut(**vars(t)) for t in s.latest],
            )
            for s in found
        ]
    )
