"""What routes take from the app, as FastAPI dependencies: a route names ``services:
ServicesDep`` (or ``trading: TradingDep``, ``body: RawBody``) and gets it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from nishati_oracle.services import Services
from nishati_oracle.trading.desk import Refusal, TradeRefused
from nishati_oracle.trading.wiring import Trading


def services_of(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


# The dependencies are coroutines: FastAPI runs a plain function dependency in its thread pool,
# a thread hop on every request.
async def services(request: Request) -> Services:
    return services_of(request)


async def trading(request: Request) -> Trading:
    """Trading's services; a 503 PaymentsDisabled while payments are off."""
    found = services_of(request).trading
    if found is None:
        raise TradeRefused(Refusal.PaymentsDisabled, "payments are disabled: set NISHATI_PAYMENTS")
    return found


async def raw_body(request: Request) -> bytes:
    """The body as sent (within the route's cap)."""
    return await request.body()


ServicesDep = Annotated[Services, Depends(services)]
TradingDep = Annotated[Trading, Depends(trading)]
RawBody = Annotated[bytes, Depends(raw_body)]
