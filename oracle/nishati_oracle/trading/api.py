"""The trading API: orders, Daraja's callbacks, payment status.

Callbacks are answered as soon as they are stored (Daraja wants an answer at once and retries
otherwise); the worker acts on them after. They are not signed by Daraja, so three things guard
them: a secret token in the path, an optional source-address allowlist (``X-Forwarded-For``
believed only from a configured proxy), and the STK Query the worker makes before settling.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from decimal import ROUND_DOWN, Decimal
from typing import Annotated, Literal

import structlog
from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field, ValidationError
from solders.pubkey import Pubkey

from nishati_client.phone import FORMATS
from nishati_oracle.accounts.api_keys import Scope
from nishati_oracle.http.auth import (
    SIGNED_IN,
    Caller,
    CallerDep,
    MaybeCallerDep,
    OrderAccess,
    OrderAccessDep,
)
from nishati_oracle.http.deps import RawBody, ServicesDep, TradingDep
from nishati_oracle.http.errors import (
    MALFORMED,
    STORAGE_UNAVAILABLE,
    TOO_LARGE,
    error_body,
    responses,
)
from nishati_oracle.http.limits import capped
from nishati_oracle.services import Services
from nishati_oracle.storage.schema import (
    CALLBACK_KEY_CHARS,
    CALLBACK_RECEIPT_CHARS,
    IDEMPOTENCY_KEY_CHARS,
)
from nishati_oracle.trading.attention import OPERATOR_CHARS, REASON_CHARS, Attention
from nishati_oracle.trading.desk import Opened, Order, Refusal, TradeRefused
from nishati_oracle.trading.idempotency import Answer, request_digest
from nishati_oracle.trading.ledger import (
    FINAL_STATES,
    MAX_BODIES_PER_KEY,
    CallbackKind,
    HistoryEntry,
    NewCallback,
    Stored,
    TradeRecord,
    TradeState,
)
from nishati_oracle.trading.wiring import Trading

log = structlog.get_logger(__name__)

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


def _refusal_body(error: TradeRefused) -> bytes:
    stored = None if error.trade_id is None else {"trade_id": error.trade_id}
    return error_body(error.reason, error.detail, stored)


async def refused(_: Request, error: Exception) -> Response:
    """A refusal of the desk's (or of a route's) in the one error shape, with its trade if one
    was stored, and ``Retry-After`` when asking again later may succeed."""
    assert isinstance(error, TradeRefused)
    return Response(
        _refusal_body(error),
        status_code=error.status_code,
        headers=error.headers,
        media_type="application/json",
    )


def _address(text: str, reason: Refusal, what: str) -> Pubkey:
    try:
        return Pubkey.from_string(text)
    except ValueError:
        raise TradeRefused(reason, f"{what} is not a base58 address") from None


def _trade_out(t: TradeRecord, checkout_request_id: str | None) -> TradeOut:
    return TradeOut(
        trade_id=t.id,
        state=t.state,
        checkout_request_id=checkout_request_id,
        trade_address=t.trade_address,
        trade_index=t.trade_index,
        offer=t.offer,
        wh=t.wh,
        price_cents_per_kwh=t.price_cents_per_kwh,
        total_cents=t.total_cents,
        amount_kes=t.amount_kes,
    )


def _created(trade: TradeRecord, checkout_request_id: str | None) -> Answer:
    return Answer(201, _trade_out(trade, checkout_request_id).model_dump_json().encode())


def _as_it_stands(trade: TradeRecord) -> Answer:
    """The answer to a repeat of an order whose own answer was never kept: its trade now."""
    return _created(trade, trade.checkout_request_id)


def _answered(answer: Answer) -> Response:
    return Response(answer.body, status_code=answer.status, media_type="application/json")


Place = Callable[[str | None, str | None], Awaitable[Opened]]


async def _for_its_own_phone(trading: Trading, access: OrderAccess, phone: str) -> None:
    """A household orders for its own phone only (operators and keys for any)."""
    if access.buyer is not None:
        await trading.desk.refuse_unless_enrolled_for(phone, access.buyer)


async def _order(
    trading: Trading, route: str, request: BaseModel, key: str | None, place: Place
) -> Response:
    """Places an order (``place(key, digest)``), once per Idempotency-Key: a repeat with the
    key is answered as the first one was (``trading.idempotency``)."""
    if key is None:
        opened = await place(None, None)
        return _answered(_created(opened.trade, opened.checkout_request_id))
    digest = request_digest(route, request.model_dump_json())
    orders = trading.orders

    async def first() -> Answer:
        try:
            opened = await place(key, digest)
        except TradeRefused as error:
            # Kept only with a trade to keep it on, and not while the outcome is unknown.
            if error.trade_id is None or error.status_code == 503:
                raise
            refusal = Answer(error.status_code, _refusal_body(error))
            await orders.record(error.trade_id, refusal)
            return refusal
        answer = _created(opened.trade, opened.checkout_request_id)
        await orders.record(opened.trade.id, answer)
        return answer

    return _answered(await orders.answer(key, digest, first, _as_it_stands))


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Any unique text (a UUID): a repeat of the order with the same key and "
        "body is answered as the first one was, and opens no second trade; the same key with "
        "another body is refused (422 IdempotencyKeyReused). Kept for "
        "NISHATI_IDEMPOTENCY_KEY_SECS (a day). Without one, an order repeating the phone, "
        "offer and total of one within NISHATI_ORDER_REPEAT_WINDOW_SECS is refused (409 "
        "ProbableRepeat).",
        min_length=1,
        max_length=IDEMPOTENCY_KEY_CHARS,
        pattern=r"^[\x21-\x7e]+$",
    ),
]


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
    **SIGNED_IN,
    403: "NotYourPhone: a household's order for a phone not enrolled for it, MissingScope: an "
    "API key without trades:write, CsrfTokenMissing, CsrfTokenMismatch",
    404: "UnknownOffer, UnknownBuyer",
    409: "OfferClosed, NotEnoughEnergy, BuyerNotCustodial, SellerPhoneUnknown, ChainRefused, "
    "AccountNotFound: the buyer's household is no longer on chain, "
    "AccountTypeMismatch: the account at the buyer's address is not a household, "
    "ProbableRepeat: without an Idempotency-Key, the same phone, offer and total as a recent "
    "order neither refused nor cancelled, "
    "IdempotencyKeyInUse: the order first sent with this key is still being opened "
    "(Retry-After)",
    422: "InvalidPhone, AmountTooLarge, PayoutBelowMinimum, "
    "IdempotencyKeyReused: the Idempotency-Key was used for another order",
    502: "PaymentRequestRefused: Daraja refused the STK Push (the trade is being cancelled)",
    503: "PaymentsDisabled, ChainUnavailable: the chain did not answer (Retry-After), "
    f"{STORAGE_UNAVAILABLE}",
}
# What a route that only reads and writes the oracle's database may answer with a 503.
LEDGER_UNAVAILABLE = {503: f"PaymentsDisabled, {STORAGE_UNAVAILABLE}"}
# A lookup of one of our trades (by its id or its CheckoutRequestID): its buyer's, its
# seller's, an operator's, or an API key's with payments:read.
LOOKUP_REFUSALS = responses(
    {
        **SIGNED_IN,
        404: "UnknownTrade: no trade has that id, or it is neither the signed-in household's "
        "purchase nor sale (the same answer: a trade's existence is its parties')",
        **LEDGER_UNAVAILABLE,
    }
)


def _visible(services: Services, who: Caller, trade: TradeRecord | None) -> TradeRecord:
    """The trade, if ``who`` may see it: its buyer's or seller's owner (signed in, or by
    their key), an operator, a key with payments:read; a 404 UnknownTrade otherwise, as for
    none."""
    if trade is None:
        raise TradeRefused(Refusal.UnknownTrade, "no trade of yours has that id")
    if who.is_operator or Scope.payments_read in who.scopes:
        return trade
    owned = who.owned_household(services)
    if owned is None or str(owned) not in (trade.buyer, trade.seller):
        raise TradeRefused(Refusal.UnknownTrade, "no trade of yours has that id")
    return trade


@orders.post(
    "/api/v1/trades",
    status_code=201,
    response_model=TradeOut,
    responses=responses(ORDER_REFUSALS),
)
async def open_trade(
    trading: TradingDep,
    access: OrderAccessDep,
    order: TradeIn,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Buys ``wh`` from an offer for a phone: opens the trade on chain and sends the STK
    Push; the payment's progress is at ``GET /api/v1/payments/{trade_id}``."""
    await _for_its_own_phone(trading, access, order.phone)
    offer = _address(order.offer, Refusal.UnknownOffer, "offer")

    async def place(key: str | None, digest: str | None) -> Opened:
        return await trading.desk.open(Order(offer, order.wh, order.phone, key, digest))

    return await _order(trading, "/api/v1/trades", order, idempotency_key, place)


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
async def execute_trade(
    trading: TradingDep,
    access: OrderAccessDep,
    order: LegacyTradeIn,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """The original platform's shape: ``amount`` kWh at most ``price`` KES/kWh from the
    seller with ``seller_phone``, bought from that seller's cheapest fitting offer."""
    await _for_its_own_phone(trading, access, order.phone)
    wh = int((order.amount * 1000).to_integral_value(ROUND_DOWN))
    price = int((order.price * 100).to_integral_value(ROUND_DOWN))
    if wh == 0:
        raise TradeRefused(Refusal.AmountRoundsToZero, "less than 1 Wh")

    async def place(key: str | None, digest: str | None) -> Opened:
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
        return await trading.desk.open(Order(offer.address, wh, order.phone, key, digest))

    return await _order(trading, "/api/execute_trade", order, idempotency_key, place)


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
    responses=LOOKUP_REFUSALS,
)
async def payment(
    trading: TradingDep, services: ServicesDep, who: CallerDep, trade_id: str
) -> PaymentOut:
    """A trade's payment: its state, amounts, M-Pesa and chain references, and history."""
    return await _payment(trading, _visible(services, who, await trading.ledger.get(trade_id)))


@lookups.get(
    "/api/v1/payments/{trade_id}/events",
    response_class=StreamingResponse,
    responses={
        **LOOKUP_REFUSALS,
        200: {
            "description": "Server-sent events: a `payment` event (the body of "
            "`GET /api/v1/payments/{trade_id}`) at once and at each change, `: heartbeat` "
            "comments while nothing changes; the stream ends after a final state",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
    },
)
async def payment_events(
    trading: TradingDep, services: ServicesDep, who: CallerDep, trade_id: str
) -> StreamingResponse:
    """A trade's payment as it changes, for the same callers as ``GET
    /api/v1/payments/{trade_id}``; refusals are answered before the stream starts."""
    trade = _visible(services, who, await trading.ledger.get(trade_id))
    return StreamingResponse(
        _payment_stream(trading, trade),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _payment_stream(trading: Trading, trade: TradeRecord) -> AsyncIterator[bytes]:
    """The payment at once, then each time the ledger shows it changed (looked at every
    NISHATI_HTTP_EVENTS_POLL_SECS), a heartbeat after NISHATI_HTTP_EVENTS_HEARTBEAT_SECS of
    silence, and nothing after a final state."""
    http = trading.settings.http
    sent: PaymentOut | None = None
    last_sent_at = time.monotonic()
    while True:
        found = await trading.ledger.with_history(trade.id)
        current = await _payment(trading, trade) if found is None else _payment_of(*found)
        if current != sent:
            data = current.model_dump_json()
            yield f"event: payment\nid: {len(current.history)}\ndata: {data}\n\n".encode()
            sent, last_sent_at = current, time.monotonic()
            if current.final:
                log.info("payment stream ended", trade_id=trade.id, state=current.state)
                return
        elif time.monotonic() - last_sent_at >= http.events_heartbeat_secs:
            yield b": heartbeat\n\n"
            last_sent_at = time.monotonic()
        await asyncio.sleep(http.events_poll_secs)


@lookups.get(
    "/api/payment/status/{tx_id}",
    response_model=PaymentOut,
    responses=LOOKUP_REFUSALS,
)
async def legacy_payment_status(
    trading: TradingDep, services: ServicesDep, who: CallerDep, tx_id: str
) -> PaymentOut:
    """The original platform's payment status: ``GET /api/v1/payments/{trade_id}``, with
    the trade id as ``tx_id``."""
    return await _payment(trading, _visible(services, who, await trading.ledger.get(tx_id)))


async def _payment(trading: Trading, trade: TradeRecord) -> PaymentOut:
    return _payment_of(trade, await trading.ledger.history(trade.id))


def _payment_of(trade: TradeRecord, entries: list[HistoryEntry]) -> PaymentOut:
    history = [HistoryOut(**vars(h)) for h in entries]
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
    responses=LOOKUP_REFUSALS,
)
async def stk_status(
    trading: TradingDep, services: ServicesDep, who: CallerDep, checkout_request_id: str
) -> StkStatusOut:
    """Asks Daraja now (STK Query) about one of our payments."""
    _visible(services, who, await trading.ledger.by_checkout(checkout_request_id))
    return await _stk_status(trading, checkout_request_id)


@lookups.get(
    "/api/stk/status/{req_id}",
    response_model=StkStatusOut,
    responses=LOOKUP_REFUSALS,
)
async def legacy_stk_status(
    trading: TradingDep, services: ServicesDep, who: CallerDep, req_id: str
) -> StkStatusOut:
    """The original platform's STK status: ``GET /api/v1/stk/{checkout_request_id}``, with
    the CheckoutRequestID as ``req_id``."""
    _visible(services, who, await trading.ledger.by_checkout(req_id))
    return await _stk_status(trading, req_id)


async def _stk_status(trading: Trading, checkout_request_id: str) -> StkStatusOut:
    status = await trading.gateway.query(checkout_request_id)
    return StkStatusOut(
        checkout_request_id=checkout_request_id,
        pending=status.pending,
        result_code=status.result_code,
        detail=status.detail,
    )


# Longest text a Daraja callback holds anywhere (a ResultDesc, a URL in ReferenceData): longer
# is not Daraja's.
MAX_TEXT_CHARS = 1_024
CALLBACK_REFUSALS = responses(
    {
        400: "MalformedCallback: not JSON, or not a callback of this kind",
        403: "CallbackForbidden: a wrong token, or a caller outside the allowlist",
        413: "BodyTooLarge: over NISHATI_HTTP_CALLBACK_BODY_BYTES; CallbackFieldTooLarge: an "
        f"id over {CALLBACK_KEY_CHARS} characters, a receipt over {CALLBACK_RECEIPT_CHARS}, "
        f"any other text over {MAX_TEXT_CHARS}",
        429: f"TooManyCallbacks: {MAX_BODIES_PER_KEY} different bodies are kept for this key "
        "already",
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


def _longest_text(value: object) -> int:
    """The longest string (key or value) anywhere in a parsed JSON body."""
    longest = 0
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            longest = max(longest, len(item))
        elif isinstance(item, dict):
            pending += item.keys()
            pending += item.values()
        elif isinstance(item, list):
            pending += item
    return longest


def _check_sizes(ids: Iterable[str], receipts: Iterable[str], body: object) -> None:
    """Refuses a callback holding a field longer than Daraja ever sends: its key or an id it
    is matched on, a receipt, any other text."""
    if any(len(i) > CALLBACK_KEY_CHARS for i in ids):
        raise TradeRefused(
            Refusal.CallbackFieldTooLarge, f"an id of it is over {CALLBACK_KEY_CHARS} characters"
        )
    if any(len(r) > CALLBACK_RECEIPT_CHARS for r in receipts):
        raise TradeRefused(
            Refusal.CallbackFieldTooLarge,
            f"its receipt is over {CALLBACK_RECEIPT_CHARS} characters",
        )
    if _longest_text(body) > MAX_TEXT_CHARS:
        raise TradeRefused(
            Refusal.CallbackFieldTooLarge, f"it holds a text over {MAX_TEXT_CHARS} characters"
        )


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
            ids: set[str | None] = {key}
            receipts: set[str | None] = {receipt}
        else:
            notice = trading.gateway.parse_result(body, kind.timeout)
            key, receipt = notice.key, None
            # Every id it may be matched on, and the receipts it may record.
            ids = {key, *notice.ids, *notice.queried_ids, notice.queried_conversation_id}
            receipts = {notice.receipt, notice.reversed_receipt}
    except RecursionError:
        raise TradeRefused(Refusal.MalformedCallback, "nested too deeply") from None
    except (ValueError, ValidationError, KeyError, TypeError) as e:
        raise TradeRefused(Refusal.MalformedCallback, str(e)) from None
    _check_sizes((i for i in ids if i), (r for r in receipts if r), body)
    vault = trading.vault
    callback = NewCallback(kind, key, receipt, vault.encrypt(raw), vault.digest(raw))
    stored = await trading.inbox.submit(callback)
    trading.metrics.callbacks.labels(kind, stored).inc()
    trading.metrics.callback_seconds.observe(time.perf_counter() - started)
    if stored is Stored.over_limit:
        log.warning("callback refused: its key holds enough", kind=kind, key=key)
        raise TradeRefused(
            Refusal.TooManyCallbacks,
            f"{MAX_BODIES_PER_KEY} different callbacks are kept for this key already",
        )
    if stored is Stored.new:
        trading.worker.callback_arrived()
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


# Operator routes: the money that needs a person (``trading.attention``), for an operator signed
# in (``accounts``) or holding the operator's token (NISHATI_OPERATOR_TOKEN).


async def operator_trading(trading: TradingDep, who: MaybeCallerDep) -> Trading:
    """Trading, for an operator (a 403 OperatorForbidden for anyone else, nobody included)."""
    if who is None or not who.is_operator:
        raise TradeRefused(
            Refusal.OperatorForbidden, "an operator's session or bearer token is needed"
        )
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
        {
            **SIGNED_IN,
            403: f"OperatorForbidden: not an operator; {SIGNED_IN[403]}",
            **LEDGER_UNAVAILABLE,
        }
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
