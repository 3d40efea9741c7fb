"""The trading API: orders, Daraja's callbacks, payment status.

Callbacks are answered as soon as they are stored (Daraja wants an answer at once and retries
otherwise); the worker acts on them after. They are not signed by Daraja, so three things guard
them: a secret token in the path, an optional source-address allowlist (``X-Forwarded-For``
believed only from a configured proxy), and the STK Query the worker makes before settling.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError
from solders.pubkey import Pubkey

from nishati_oracle.core.group_commit import GroupCommit
from nishati_oracle.core.metrics import Metrics
from nishati_oracle.core.settings import OracleSettings
from nishati_oracle.trading.desk import Opened, Order, Refusal, TradeDesk, TradeRefused
from nishati_oracle.trading.gateway import Gateway
from nishati_oracle.trading.ledger import (
    FINAL_STATES,
    CallbackKind,
    Ledger,
    NewCallback,
    TradeState,
)
from nishati_oracle.trading.vault import PhoneVault
from nishati_oracle.trading.worker import PaymentWorker

ACCEPTED = {"ResultCode": 0, "ResultDesc": "Accepted"}


@dataclass
class Trading:
    """What the lifespan builds for trading and the routes use."""

    settings: OracleSettings
    ledger: Ledger
    desk: TradeDesk
    worker: PaymentWorker
    gateway: Gateway
    vault: PhoneVault
    inbox: GroupCommit[NewCallback, bool]
    token: str
    metrics: Metrics

    async def close(self) -> None:
        await self.gateway.close()


class TradeIn(BaseModel):
    offer: Annotated[str, Field(description="Offer account, base58", max_length=44)]
    wh: Annotated[int, Field(description="Energy to buy, Wh", gt=0)]
    phone: Annotated[str, Field(description="Buyer's M-Pesa phone", max_length=20)]


class LegacyTradeIn(BaseModel):
    """The original platform's order: kWh and KES per kWh as decimals."""

    type: Literal["BUY"]
    amount: Annotated[Decimal, Field(description="kWh", gt=0, max_digits=18)]
    price: Annotated[Decimal, Field(description="Highest KES per kWh", gt=0, max_digits=18)]
    phone: Annotated[str, Field(max_length=20)]
    seller_phone: Annotated[str, Field(max_length=20)]


class TradeOut(BaseModel):
    trade_id: str
    state: TradeState
    checkout_request_id: str | None
    trade_address: str
    offer: str
    wh: int
    price_cents_per_kwh: int
    total_cents: int
    amount_kes: int


class HistoryOut(BaseModel):
    at: float
    state: TradeState
    detail: str | None


class PaymentOut(BaseModel):
    trade_id: str
    state: TradeState
    final: bool
    wh: int
    total_cents: int
    amount_kes: int
    fee_cents: int
    payout_kes: int
    checkout_request_id: str | None
    mpesa_receipt: str | None
    result_code: int | None
    chain_signature: str | None
    history: list[HistoryOut]


class StkStatusOut(BaseModel):
    checkout_request_id: str
    pending: bool
    result_code: int | None
    detail: str


class PhoneIn(BaseModel):
    phone: Annotated[str, Field(max_length=20)]


def refusal(error: TradeRefused) -> JSONResponse:
    body: dict[str, Any] = {"reason": error.reason, "detail": error.detail}
    if error.trade_id is not None:
        body["trade_id"] = error.trade_id
    return JSONResponse(body, status_code=error.status_code)


def _opened(opened: Opened) -> TradeOut:
    t = opened.trade
    return TradeOut(
        trade_id=t.id,
        state=t.state,
        checkout_request_id=opened.checkout_request_id,
        trade_address=t.trade_address,
        offer=t.offer,
        wh=t.wh,
        price_cents_per_kwh=t.price_cents_per_kwh,
        total_cents=t.total_cents,
        amount_kes=t.amount_kes,
    )


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def within(address: str, networks: Sequence[Network]) -> bool:
    """Whether ``address`` is an IP address in one of ``networks``."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_address(request: Request, trusted_proxies: Sequence[Network]) -> str:
    """The caller's address: the peer, or, when the peer is a trusted proxy, the nearest
    address in ``X-Forwarded-For`` that is not one."""
    peer = request.client.host if request.client else ""
    if not within(peer, trusted_proxies):
        return peer
    hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not within(hop, trusted_proxies):
            return hop
    return peer


def router(trading: Callable[[Request], Trading]) -> APIRouter:
    api = APIRouter(tags=["trading"])

    @api.post("/api/v1/trades", status_code=201, response_model=TradeOut)
    async def open_trade(request: Request, order: TradeIn) -> TradeOut | JSONResponse:
        """Buys ``wh`` from an offer for a phone: opens the trade on chain and sends the STK
        Push; the payment's progress is at ``GET /api/v1/payments/{trade_id}``."""
        t = trading(request)
        try:
            offer = Pubkey.from_string(order.offer)
        except ValueError:
            return refusal(TradeRefused(Refusal.UnknownOffer, "offer is not a base58 address"))
        try:
            return _opened(await t.desk.open(Order(offer, order.wh, order.phone)))
        except TradeRefused as e:
            return refusal(e)

    @api.post("/api/execute_trade", status_code=201, response_model=TradeOut)
    async def execute_trade(request: Request, order: LegacyTradeIn) -> TradeOut | JSONResponse:
        """The original platform's shape: ``amount`` kWh at most ``price`` KES/kWh from the
        seller with ``seller_phone``, bought from that seller's cheapest fitting offer."""
        t = trading(request)
        wh = int((order.amount * 1000).to_integral_value(ROUND_DOWN))
        price = int((order.price * 100).to_integral_value(ROUND_DOWN))
        try:
            if wh == 0:
                raise TradeRefused(Refusal.AmountRoundsToZero, "less than 1 Wh")
            config = (await t.desk.market_state()).config
            low, high = config.min_price_cents_per_kwh, config.max_price_cents_per_kwh
            if not low <= price <= high:
                raise TradeRefused(
                    Refusal.PriceOutOfBounds,
                    f"price must be KES {low / 100:.2f} to {high / 100:.2f} per kWh",
                )
            seller = await t.desk.household_by_phone(order.seller_phone)
            if seller is None:
                raise TradeRefused(Refusal.UnknownSeller, "no household has the seller's phone")
            offer = await t.desk.best_offer(seller, wh, price)
            return _opened(await t.desk.open(Order(offer.address, wh, order.phone)))
        except TradeRefused as e:
            return refusal(e)

    async def take_callback(request: Request, token: str, kind: CallbackKind) -> JSONResponse:
        started = time.perf_counter()
        t = trading(request)
        if not hmac.compare_digest(token.encode(), t.token.encode()):
            raise HTTPException(403, {"reason": Refusal.CallbackForbidden})
        settings = t.settings
        if settings.payments.callback_allowlist:
            address = client_address(request, settings.payments.trusted_proxies)
            if not within(address, settings.payments.callback_allowlist):
                raise HTTPException(403, {"reason": Refusal.CallbackForbidden})
        raw = await request.body()
        try:
            body = json.loads(raw)
            if kind is CallbackKind.stk:
                # The worker parses it whole; storing it needs only its keys.
                key, receipt = t.gateway.payment_keys(body)
            else:
                timeout = kind is CallbackKind.payout_timeout
                outcome = t.gateway.parse_payout(body, timeout)
                key, receipt = outcome.key, None
        except (ValueError, ValidationError, KeyError, TypeError) as e:
            return JSONResponse(
                {"reason": Refusal.MalformedCallback, "detail": str(e)[:200]}, status_code=400
            )
        new = await t.inbox.submit(NewCallback(kind, key, receipt, t.vault.encrypt(raw)))
        if new:
            t.worker.callback_arrived()
        t.metrics.callbacks.labels(kind, "new" if new else "duplicate").inc()
        t.metrics.callback_seconds.observe(time.perf_counter() - started)
        return JSONResponse(ACCEPTED)

    @api.post("/api/v1/payments/callback/{token}")
    async def payment_callback(request: Request, token: str) -> JSONResponse:
        """Daraja's STK Push result: stored, answered, acted on after."""
        return await take_callback(request, token, CallbackKind.stk)

    @api.post("/api/v1/payouts/result/{token}")
    async def payout_result(request: Request, token: str) -> JSONResponse:
        """Daraja's B2C result (or transaction status result) for a seller payout."""
        return await take_callback(request, token, CallbackKind.payout_result)

    @api.post("/api/v1/payouts/timeout/{token}")
    async def payout_timeout(request: Request, token: str) -> JSONResponse:
        """Daraja's B2C queue timeout: not a failure; the payout's status is asked for."""
        return await take_callback(request, token, CallbackKind.payout_timeout)

    @api.get("/api/v1/payments/{trade_id}", response_model=PaymentOut)
    async def payment(request: Request, trade_id: str) -> PaymentOut | JSONResponse:
        t = trading(request)
        trade = await t.ledger.get(trade_id)
        if trade is None:
            return refusal(TradeRefused(Refusal.UnknownTrade, f"no trade {trade_id}"))
        history = [HistoryOut(**vars(h)) for h in await t.ledger.history(trade_id)]
        return PaymentOut(
            trade_id=trade.id,
            state=trade.state,
            final=trade.state in FINAL_STATES,
            wh=trade.wh,
            total_cents=trade.total_cents,
            amount_kes=trade.amount_kes,
            fee_cents=trade.fee_cents,
            payout_kes=trade.payout_kes,
            checkout_request_id=trade.checkout_request_id,
            mpesa_receipt=trade.mpesa_receipt,
            result_code=trade.result_code,
            chain_signature=trade.chain_signature,
            history=history,
        )

    @api.get("/api/v1/stk/{checkout_request_id}", response_model=StkStatusOut)
    async def stk_status(request: Request, checkout_request_id: str) -> StkStatusOut | JSONResponse:
        """Asks Daraja now (STK Query) about one of our payments."""
        t = trading(request)
        if await t.ledger.by_checkout(checkout_request_id) is None:
            return refusal(TradeRefused(Refusal.UnknownTrade, "no trade has that checkout id"))
        status = await t.gateway.query(checkout_request_id)
        return StkStatusOut(
            checkout_request_id=checkout_request_id,
            pending=status.pending,
            result_code=status.result_code,
            detail=status.detail,
        )

    @api.put("/api/v1/households/{household}/phone", status_code=204, response_class=Response)
    async def enrol(request: Request, household: str, body: PhoneIn) -> Response:
        """Tells the oracle a household's phone (checked against the chain's commitment), so
        it can ask it to pay and pay it for what it sells."""
        try:
            address = Pubkey.from_string(household)
        except ValueError:
            return refusal(TradeRefused(Refusal.UnknownBuyer, "not a base58 address"))
        try:
            await trading(request).desk.enrol(address, body.phone)
        except TradeRefused as e:
            return refusal(e)
        return Response(status_code=204)

    return api
