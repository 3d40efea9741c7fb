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
from collections.abc import Sequence
from decimal import ROUND_DOWN, Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError
from solders.pubkey import Pubkey

from nishati_client.phone import FORMATS
from nishati_oracle.http.deps import RawBody, TradingDep
from nishati_oracle.http.errors import (
    MALFORMED,
    STORAGE_UNAVAILABLE,
    TOO_LARGE,
    error_response,
    responses,
)
from nishati_oracle.http.limits import capped
from nishati_oracle.trading.attention import OPERATOR_CHARS, REASON_CHARS, Attention
from nishati_oracle.trading.desk import Opened, Order, Refusal, TradeRefused
from nishati_oracle.trading.ledger import (
    FINAL_STATES,
    CallbackKind,
    NewCallback,
    TradeRecord,
    TradeState,
)
from nishati_oracle.trading.wiring import Trading

# The characters a phone may be written with: anything else (digits of another script too) is
# malformed. Whether they make a number is the desk's check (InvalidPhone).
Phone = Annotated[
    str,
    Field(
        description=f"M-Pesa phone: {FORMATS}; spaces and dashes allowed",
        max_length=20,
        pattern=r"^[0-9+ -]*$",
    ),
]


class TradeIn(BaseModel):
    offer: Annotated[str, Field(description="Offer account, base58", max_length=44)]
    wh: Annotated[int, Field(description="Energy to buy, Wh", gt=0)]
    phone: Annotated[Phone, Field(description="Buyer's M-Pesa phone")]


class LegacyTradeIn(BaseModel):
    """The original platform's order: kWh and KES per kWh as decimals."""

    type: Literal["BUY"]
    amount: Annotated[Decimal, Field(description="kWh", gt=0, max_digits=18)]
    price: Annotated[Decimal, Field(description="Highest KES per kWh", gt=0, max_digits=18)]
    phone: Annotated[Phone, Field(description="Buyer's M-Pesa phone")]
    seller_phone: Annotated[Phone, Field(description="The seller's M-Pesa phone")]


class TradeOut(BaseModel):
    trade_id: str
    state: TradeState
    checkout_request_id: str | None
    trade_address: str
    trade_index: int | None
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
    payout_receipt: str | None = None
    refund_method: str | None = Field(default=None, description="reversal or b2c")
    refund_receipt: str | None = None


class StkStatusOut(BaseModel):
    checkout_request_id: str
    pending: bool
    result_code: int | None
    detail: str


class PhoneIn(BaseModel):
    phone: Phone


class CallbackAck(BaseModel):
    """What Daraja is answered once a callback is stored (it retries on anything else)."""

    ResultCode: Literal[0]
    ResultDesc: Literal["Accepted"]


async def refused(_: Request, error: Exception) -> Response:
    """A refusal of the desk's (or of a route's) in the one error shape, with its trade if one
    was stored."""
    assert isinstance(error, TradeRefused)
    stored = None if error.trade_id is None else {"trade_id": error.trade_id}
    return error_response(error.status_code, error.reason, error.detail, stored)


def _address(text: str, reason: Refusal, what: str) -> Pubkey:
    try:
        return Pubkey.from_string(text)
    except ValueError:
        raise TradeRefused(reason, f"{what} is not a base58 address") from None


def _opened(opened: Opened) -> TradeOut:
    t = opened.trade
    return TradeOut(
        trade_id=t.id,
        state=t.state,
        checkout_request_id=opened.checkout_request_id,
        trade_address=t.trade_address,
        trade_index=t.trade_index,
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


# Routes by what they take, each kind's bodies capped by its setting: orders and enrolment
# small JSON bodies, Daraja's callbacks larger ones, lookups none.
orders = APIRouter(
    tags=["trading"],
    route_class=capped(lambda http: http.order_body_bytes),
    responses=responses({**MALFORMED, **TOO_LARGE}),
)
lookups = APIRouter(tags=["trading"])
callbacks = APIRouter(
    tags=["Daraja callbacks"],
    route_class=capped(lambda http: http.callback_body_bytes),
    responses=responses(TOO_LARGE),
)

ORDER_REFUSALS = {
    404: "UnknownOffer, UnknownBuyer",
    409: "OfferClosed, NotEnoughEnergy, BuyerNotCustodial, SellerPhoneUnknown, ChainRefused, "
    "AccountNotFound: the buyer's household is no longer on chain, "
    "AccountTypeMismatch: the account at the buyer's address is not a household",
    422: "InvalidPhone, AmountTooLarge, PayoutBelowMinimum",
    502: "PaymentRequestRefused: Daraja refused the STK Push (the trade is being cancelled)",
    503: f"PaymentsDisabled, ChainUnavailable, {STORAGE_UNAVAILABLE}",
}
# What a route that only reads and writes the oracle's database may answer with a 503.
LEDGER_UNAVAILABLE = {503: f"PaymentsDisabled, {STORAGE_UNAVAILABLE}"}


@orders.post(
    "/api/v1/trades",
    status_code=201,
    response_model=TradeOut,
    responses=responses(ORDER_REFUSALS),
)
async def open_trade(trading: TradingDep, order: TradeIn) -> TradeOut:
    """Buys ``wh`` from an offer for a phone: opens the trade on chain and sends the STK
    Push; the payment's progress is at ``GET /api/v1/payments/{trade_id}``."""
    offer = _address(order.offer, Refusal.UnknownOffer, "offer")
    return _opened(await trading.desk.open(Order(offer, order.wh, order.phone)))


@orders.post(
    "/api/execute_trade",
    status_code=201,
    response_model=TradeOut,
    responses=responses(
        {
            **ORDER_REFUSALS,
            404: f"UnknownSeller, {ORDER_REFUSALS[404]}",
            409: f"NoMatchingOffer, {ORDER_REFUSALS[409]}",
            422: f"PriceOutOfBounds, AmountRoundsToZero, {ORDER_REFUSALS[422]}",
        }
    ),
)
async def execute_trade(trading: TradingDep, order: LegacyTradeIn) -> TradeOut:
    """The original platform's shape: ``amount`` kWh at most ``price`` KES/kWh from the
    seller with ``seller_phone``, bought from that seller's cheapest fitting offer."""
    wh = int((order.amount * 1000).to_integral_value(ROUND_DOWN))
    price = int((order.price * 100).to_integral_value(ROUND_DOWN))
    if wh == 0:
        raise TradeRefused(Refusal.AmountRoundsToZero, "less than 1 Wh")
    config = (await trading.desk.market_state()).config
    low, high = config.min_price_cents_per_kwh, config.max_price_cents_per_kwh
    if not low <= price <= high:
        raise TradeRefused(
            Refusal.PriceOutOfBounds,
            f"price must be KES {low / 100:.2f} to {high / 100:.2f} per kWh",
        )
    seller = await trading.desk.household_by_phone(order.seller_phone)
    if seller is None:
        raise TradeRefused(Refusal.UnknownSeller, "no household has the seller's phone")
    offer = await trading.desk.best_offer(seller, wh, price)
    return _opened(await trading.desk.open(Order(offer.address, wh, order.phone)))


@orders.put(
    "/api/v1/households/{household}/phone",
    status_code=204,
    response_class=Response,
    responses=responses(
        {
            404: "UnknownBuyer: no household at that address in this market",
            422: "PhoneMismatch, InvalidPhone",
            503: ORDER_REFUSALS[503],
        }
    ),
)
async def enrol(trading: TradingDep, household: str, body: PhoneIn) -> Response:
    """Tells the oracle a household's phone (checked against the chain's commitment), so
    it can ask it to pay and pay it for what it sells."""
    address = _address(household, Refusal.UnknownBuyer, "the household")
    await trading.desk.enrol(address, body.phone)
    return Response(status_code=204)


@lookups.get(
    "/api/v1/payments/{trade_id}",
    response_model=PaymentOut,
    responses=responses({404: "UnknownTrade", **LEDGER_UNAVAILABLE}),
)
async def payment(trading: TradingDep, trade_id: str) -> PaymentOut:
    """A trade's payment: its state, amounts, M-Pesa and chain references, and history."""
    trade = await trading.ledger.get(trade_id)
    if trade is None:
        raise TradeRefused(Refusal.UnknownTrade, "no trade has that id")
    history = [HistoryOut(**vars(h)) for h in await trading.ledger.history(trade_id)]
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
        payout_receipt=trade.payout_receipt,
        refund_method=trade.refund_method,
        refund_receipt=trade.refund_receipt,
    )


@lookups.get(
    "/api/v1/stk/{checkout_request_id}",
    response_model=StkStatusOut,
    responses=responses({404: "UnknownTrade", **LEDGER_UNAVAILABLE}),
)
async def stk_status(trading: TradingDep, checkout_request_id: str) -> StkStatusOut:
    """Asks Daraja now (STK Query) about one of our payments."""
    if await trading.ledger.by_checkout(checkout_request_id) is None:
        raise TradeRefused(Refusal.UnknownTrade, "no trade has that checkout id")
    status = await trading.gateway.query(checkout_request_id)
    return StkStatusOut(
        checkout_request_id=checkout_request_id,
        pending=status.pending,
        result_code=status.result_code,
        detail=status.detail,
    )


CALLBACK_REFUSALS = responses(
    {
        400: "MalformedCallback: not JSON, or not a callback of this kind",
        403: "CallbackForbidden: a wrong token, or a caller outside the allowlist",
        **LEDGER_UNAVAILABLE,
    }
)
# Daraja posts a JSON object; what it must hold is checked on arrival (400 if not).
CALLBACK_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}
ACCEPTED = CallbackAck(ResultCode=0, ResultDesc="Accepted")


async def _take(
    trading: Trading, request: Request, raw: bytes, token: str, kind: CallbackKind
) -> CallbackAck:
    started = time.perf_counter()
    if not hmac.compare_digest(token.encode(), trading.token.encode()):
        raise TradeRefused(Refusal.CallbackForbidden, "not a callback address of this oracle")
    settings = trading.settings
    if settings.payments.callback_allowlist:
        address = client_address(request, settings.payments.trusted_proxies)
        if not within(address, settings.payments.callback_allowlist):
            raise TradeRefused(Refusal.CallbackForbidden, "callbacks are not taken from there")
    try:
        body = json.loads(raw)
        if kind is CallbackKind.stk:
            # The worker parses it whole; storing it needs only its keys.
            key, receipt = trading.gateway.payment_keys(body)
        else:
            key, receipt = trading.gateway.parse_result(body, kind.timeout).key, None
    except RecursionError:
        raise TradeRefused(Refusal.MalformedCallback, "nested too deeply") from None
    except (ValueError, ValidationError, KeyError, TypeError) as e:
        raise TradeRefused(Refusal.MalformedCallback, str(e)) from None
    new = await trading.inbox.submit(NewCallback(kind, key, receipt, trading.vault.encrypt(raw)))
    if new:
        trading.worker.callback_arrived()
    trading.metrics.callbacks.labels(kind, "new" if new else "duplicate").inc()
    trading.metrics.callback_seconds.observe(time.perf_counter() - started)
    return ACCEPTED


@callbacks.post(
    "/api/v1/payments/callback/{token}", responses=CALLBACK_REFUSALS, openapi_extra=CALLBACK_BODY
)
async def payment_callback(
    trading: TradingDep, request: Request, token: str, raw: RawBody
) -> CallbackAck:
    """Daraja's STK Push result: stored, answered, acted on after."""
    return await _take(trading, request, raw, token, CallbackKind.stk)


@callbacks.post(
    "/api/v1/payouts/result/{token}", responses=CALLBACK_REFUSALS, openapi_extra=CALLBACK_BODY
)
async def payout_result(
    trading: TradingDep, request: Request, token: str, raw: RawBody
) -> CallbackAck:
    """Daraja's B2C result (or transaction status result) for a seller payout."""
    return await _take(trading, request, raw, token, CallbackKind.payout_result)


@callbacks.post(
    "/api/v1/payouts/timeout/{token}", responses=CALLBACK_REFUSALS, openapi_extra=CALLBACK_BODY
)
async def payout_timeout(
    trading: TradingDep, request: Request, token: str, raw: RawBody
) -> CallbackAck:
    """Daraja's B2C queue timeout: not a failure; the payout's status is asked for."""
    return await _take(trading, request, raw, token, CallbackKind.payout_timeout)


@callbacks.post(
    "/api/v1/refunds/result/{token}", responses=CALLBACK_REFUSALS, openapi_extra=CALLBACK_BODY
)
async def refund_result(
    trading: TradingDep, request: Request, token: str, raw: RawBody
) -> CallbackAck:
    """Daraja's result for a refund: a reversal's, a B2C refund's, or a Transaction Status
    answer about one."""
    return await _take(trading, request, raw, token, CallbackKind.refund_result)


@callbacks.post(
    "/api/v1/refunds/timeout/{token}", responses=CALLBACK_REFUSALS, openapi_extra=CALLBACK_BODY
)
async def refund_timeout(
    trading: TradingDep, request: Request, token: str, raw: RawBody
) -> CallbackAck:
    """Daraja's queue timeout for a refund: not a failure; the refund's status is asked for."""
    return await _take(trading, request, raw, token, CallbackKind.refund_timeout)


# Operator routes: the money that needs a person (``trading.attention``), behind a bearer token
# (NISHATI_OPERATOR_TOKEN; unset, they answer 403).


async def operator_trading(trading: TradingDep, request: Request) -> Trading:
    """Trading, for a caller holding the operator token (a 403 OperatorForbidden otherwise)."""
    expected = trading.settings.payments.operator_token
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if expected is None:
        raise TradeRefused(Refusal.OperatorForbidden, "operator routes are off: no token is set")
    token = expected.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token):
        raise TradeRefused(Refusal.OperatorForbidden, "an operator's bearer token is needed")
    return trading


OperatorDep = Annotated[Trading, Depends(operator_trading)]


class AttentionOut(BaseModel):
    trade_id: str
    state: TradeState
    updated_at: float
    amount_kes: int
    payout_kes: int
    mpesa_receipt: str | None
    payout_attempts: int
    refund_method: str | None
    detail: str | None = Field(description="Why it needs a person: its last history entry")


class ActionIn(BaseModel):
    operator: Annotated[str, Field(min_length=1, max_length=OPERATOR_CHARS, description="Who acts")]
    reason: Annotated[str, Field(min_length=1, max_length=REASON_CHARS, description="Why")]


class ActionOut(BaseModel):
    at: float
    operator: str
    action: str
    reason: str
    from_state: TradeState
    to_state: TradeState


class ActedOut(BaseModel):
    trade_id: str
    state: TradeState
    actions: list[ActionOut]


class ReconciliationOut(BaseModel):
    started_at: float
    payments: int
    payouts: int
    refunds: int
    mismatches: int = Field(
        description="Found while it ran; answers that come later are counted "
        "in nishati_ledger_mismatches_total"
    )


operators = APIRouter(
    tags=["operators"],
    route_class=capped(lambda http: http.order_body_bytes),
    responses=responses(
        {403: "OperatorForbidden: no operator token, or a wrong one", **LEDGER_UNAVAILABLE}
    ),
)


async def attention_of(trading: Trading, trade: TradeRecord) -> AttentionOut:
    history = await trading.ledger.history(trade.id)
    return AttentionOut(
        trade_id=trade.id,
        state=trade.state,
        updated_at=trade.updated_at,
        amount_kes=trade.amount_kes,
        payout_kes=trade.payout_kes,
        mpesa_receipt=trade.mpesa_receipt,
        payout_attempts=trade.payout_attempts,
        refund_method=trade.refund_method,
        detail=history[-1].detail if history else None,
    )


@operators.get("/api/v1/operator/attention", response_model=list[AttentionOut])
async def attention(trading: OperatorDep) -> list[AttentionOut]:
    """The trades whose money needs a person, oldest first."""
    waiting = await Attention(trading.ledger, time.time).waiting()
    return [await attention_of(trading, trade) for trade in waiting]


ACTION_REFUSALS = responses(
    {
        **MALFORMED,
        **TOO_LARGE,
        404: "UnknownTrade",
        409: "NotAwaitingAPerson: the trade does not need a person (or cannot be retried)",
    }
)


async def _acted(trading: Trading, trade: TradeRecord) -> ActedOut:
    actions = [ActionOut(**a) for a in await trading.ledger.actions(trade.id)]
    return ActedOut(trade_id=trade.id, state=trade.state, actions=actions)


@operators.post(
    "/api/v1/operator/trades/{trade_id}/retry",
    response_model=ActedOut,
    responses=ACTION_REFUSALS,
)
async def retry(trading: OperatorDep, trade_id: str, body: ActionIn) -> ActedOut:
    """Hands a trade that needs a person back to the worker (``trading.attention``), recorded
    with the operator and their reason."""
    trade = await Attention(trading.ledger, time.time).retry(trade_id, body.operator, body.reason)
    trading.worker.wake()
    return await _acted(trading, trade)


@operators.post(
    "/api/v1/operator/trades/{trade_id}/close",
    response_model=ActedOut,
    responses=ACTION_REFUSALS,
)
async def close(trading: OperatorDep, trade_id: str, body: ActionIn) -> ActedOut:
    """Ends a trade that needs a person (settled by hand), recorded with the operator and
    their reason."""
    trade = await Attention(trading.ledger, time.time).close(trade_id, body.operator, body.reason)
    return await _acted(trading, trade)


@operators.post(
    "/api/v1/operator/reconcile",
    response_model=ReconciliationOut,
    responses=responses({503: "PaymentsDisabled, StorageUnavailable"}),
)
async def reconcile(trading: OperatorDep) -> ReconciliationOut:
    """Reconciles the ledger with Daraja now, as the daily reconciliation does."""
    done = await trading.worker.reconciler.run()
    return ReconciliationOut(
        started_at=done.started_at,
        payments=done.payments,
        payouts=done.payouts,
        refunds=done.refunds,
        mismatches=done.mismatches,
    )
