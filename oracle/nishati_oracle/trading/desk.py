"""Opening trades: checks an order against the chain, stores the intent, opens the trade on
chain, then asks the buyer to pay by STK Push.

Order matters for exactly-once: the trade row exists before anything leaves the oracle, and the
STK Push goes out only after the chain holds the trade, so a callback always finds a trade to
match (even one that comes back before the push request itself returns).

A trade's address comes from its offer and the offer's trade counter (``next_trade_index``),
so it is never used twice. The row records the index and the address before ``trade_open`` is
sent; if another trade took that index first, the program refuses with ``StaleTradeIndex``
(having done nothing), and the desk records the offer's new index and sends again. Whether an
open whose answer was lost landed is told by the account at the recorded address: ours if it
holds our payment reference (``settle.Settlements.finish_created``).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import NoReturn

import structlog
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from sqlalchemy.exc import IntegrityError

from nishati_client.chain import TxOutcome, cluster_time
from nishati_client.errors import (
    AccountNotFound,
    AccountTypeMismatch,
    NishatiClientError,
    NishatiProgramError,
    TransactionFailed,
)
from nishati_client.market import Market
from nishati_client.phone import InvalidPhoneNumber, mask, normalise
from nishati_client.program import NishatiClient
from nishati_client.trading import Offer, payment_reference
from nishati_oracle.core.settings import OracleSettings
from nishati_oracle.http.errors import CHAIN_RETRY_AFTER_SECS
from nishati_oracle.trading.gateway import Delivery, Gateway
from nishati_oracle.trading.ledger import Ledger, TradeRecord, TradeState
from nishati_oracle.trading.vault import PhoneVault

log = structlog.get_logger(__name__)

# M-Pesa's limits: STK Push takes 1 to 250,000 shillings, B2C pays at least 10.
MAX_STK_KES = 250_000
MIN_PAYOUT_KES = 10
MILLI_CENTS_PER_SHILLING = 100_000
BASIS_POINTS = 10_000
ACCOUNT_REFERENCE = "NISHATI"  # at most 12 characters
TRANSACTION_DESC = "Solar energy"  # at most 13 characters
# Longest an order request may take to open its trade on chain (sending retries included).
OPEN_GRACE_SECS = 60.0
# How many times an open is sent at the offer's next index when other trades keep taking it.
OPEN_ATTEMPTS = 5


class Refusal(StrEnum):
    """Why an order or a request was refused: the ``reason`` of every 4xx/5xx answer."""

    PaymentsDisabled = "PaymentsDisabled"
    UnknownOffer = "UnknownOffer"
    OfferClosed = "OfferClosed"
    NotEnoughEnergy = "NotEnoughEnergy"
    NoMatchingOffer = "NoMatchingOffer"
    PriceOutOfBounds = "PriceOutOfBounds"
    InvalidPhone = "InvalidPhone"
    UnknownBuyer = "UnknownBuyer"
    BuyerNotCustodial = "BuyerNotCustodial"
    UnknownSeller = "UnknownSeller"
    SellerPhoneUnknown = "SellerPhoneUnknown"
    AmountRoundsToZero = "AmountRoundsToZero"
    AmountTooLarge = "AmountTooLarge"
    PayoutBelowMinimum = "PayoutBelowMinimum"
    ChainRefused = "ChainRefused"
    ChainUnavailable = "ChainUnavailable"
    PaymentRequestRefused = "PaymentRequestRefused"
    PhoneMismatch = "PhoneMismatch"
    UnknownTrade = "UnknownTrade"
    MalformedCallback = "MalformedCallback"
    CallbackForbidden = "CallbackForbidden"
    OperatorForbidden = "OperatorForbidden"
    NotAwaitingAPerson = "NotAwaitingAPerson"
    # The same phone, offer and total as an order of the last NISHATI_ORDER_REPEAT_WINDOW_SECS
    # that is neither refused nor cancelled, without an Idempotency-Key saying it is a new one.
    ProbableRepeat = "ProbableRepeat"
    # An Idempotency-Key already used for an order of another body.
    IdempotencyKeyReused = "IdempotencyKeyReused"
    # The order first sent with this Idempotency-Key is still being opened.
    IdempotencyKeyInUse = "IdempotencyKeyInUse"
    # A callback field longer than Daraja ever sends (its key, its receipt, any text).
    CallbackFieldTooLarge = "CallbackFieldTooLarge"
    # The callback's key holds as many different bodies as are kept.
    TooManyCallbacks = "TooManyCallbacks"
    # A household's order for a phone that is not enrolled for it.
    NotYourPhone = "NotYourPhone"


STATUS = {
    Refusal.PaymentsDisabled: 503,
    Refusal.UnknownOffer: 404,
    Refusal.UnknownBuyer: 404,
    Refusal.UnknownSeller: 404,
    Refusal.UnknownTrade: 404,
    Refusal.OfferClosed: 409,
    Refusal.NotEnoughEnergy: 409,
    Refusal.NoMatchingOffer: 409,
    Refusal.BuyerNotCustodial: 409,
    Refusal.SellerPhoneUnknown: 409,
    Refusal.ChainRefused: 409,
    Refusal.ChainUnavailable: 503,
    Refusal.PaymentRequestRefused: 502,
    Refusal.CallbackForbidden: 403,
    Refusal.MalformedCallback: 400,
    Refusal.OperatorForbidden: 403,
    Refusal.NotAwaitingAPerson: 409,
    Refusal.ProbableRepeat: 409,
    Refusal.IdempotencyKeyInUse: 409,
    Refusal.CallbackFieldTooLarge: 413,
    Refusal.TooManyCallbacks: 429,
    Refusal.NotYourPhone: 403,
}
# Refusals that say when to ask again (``Retry-After``, seconds): the chain or the first order
# with a key may be back by then.
RETRY_AFTER_SECS = {
    Refusal.ChainUnavailable: CHAIN_RETRY_AFTER_SECS,
    Refusal.IdempotencyKeyInUse: 1,
}


# What a caller is told of a trade the chain's silence left unfinished (the worker finishes it).
UNFINISHED = "the chain did not answer; the trade is being finished"


class TradeRefused(Exception):
    """An order the desk will not take, with the reason an API answer carries."""

    def __init__(self, reason: Refusal, detail: str, trade_id: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.trade_id = trade_id

    @property
    def status_code(self) -> int:
        return STATUS.get(self.reason, 422)

    @property
    def headers(self) -> dict[str, str] | None:
        after = RETRY_AFTER_SECS.get(self.reason)
        return None if after is None else {"Retry-After": str(after)}


def chain_unavailable(
    error: NishatiClientError, detail: str, trade_id: str | None = None
) -> TradeRefused:
    """ChainUnavailable with a fixed ``detail``: the error's text may name the RPC endpoint,
    so it goes to the log, not the caller."""
    log.warning("chain unavailable", trade_id=trade_id, error=str(error))
    return TradeRefused(Refusal.ChainUnavailable, detail, trade_id)


class KeyTaken(Exception):
    """Another order stored its trade with this Idempotency-Key first (nothing was stored)."""


def total_cents(wh: int, price_cents_per_kwh: int) -> int:
    """What the chain charges (``Trade::total_cents``): rounded up to a whole shilling, so energy
    is never sold below its price and M-Pesa gets whole shillings."""
    shillings = -(-(wh * price_cents_per_kwh) // MILLI_CENTS_PER_SHILLING)
    return shillings * 100


def payout_split(total: int, fee_bps: int) -> tuple[int, int]:
    """(seller payout in whole shillings, fee in cents): B2C pays whole shillings, so the fee
    keeps the market's basis points plus the sub-shilling remainder."""
    payout_kes = (total - total * fee_bps // BASIS_POINTS) // 100
    return payout_kes, total - payout_kes * 100


@dataclass(frozen=True)
class Order:
    offer: Pubkey
    wh: int
    phone: str
    # The order's Idempotency-Key and the digest of the request it came with (``idempotency``).
    idempotency_key: str | None = None
    request_digest: str | None = None


@dataclass(frozen=True)
class Opened:
    trade: TradeRecord
    checkout_request_id: str | None


class TradeDesk:
    def __init__(
        self,
        settings: OracleSettings,
        ledger: Ledger,
        client: NishatiClient,
        oracle: Keypair,
        market: Pubkey,
        vault: PhoneVault,
        gateway: Gateway,
        callback_url: str,
        wake: Callable[[], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.client = client
        self.oracle = oracle
        self.market = market
        self.vault = vault
        self.gateway = gateway
        self.callback_url = callback_url
        self.wake = wake
        self.clock = clock
        # Held from the repeat check to the trade's row: two copies of one order sent at once
        # are never both new.
        self._storing = asyncio.Lock()

    async def market_state(self) -> Market:
        return await self.client.market(self.market)

    async def enrol(self, household: Pubkey, phone: str) -> None:
        """Records a household's phone, after checking it against the chain's commitment."""
        number = _normal(phone)
        try:
            home = await self.client.household(household)
        except (AccountNotFound, AccountTypeMismatch):
            raise TradeRefused(Refusal.UnknownBuyer, f"no household {household}") from None
        if home.market != self.market:
            raise TradeRefused(Refusal.UnknownBuyer, f"{household} is in another market")
        if home.phone_commitment != self.vault.commitment(number):
            raise TradeRefused(Refusal.PhoneMismatch, "that phone is not this household's")
        await self.ledger.enrol(str(household), home.phone_commitment, self.vault.seal(number))

    async def household_by_phone(self, phone: str) -> Pubkey | None:
        """The household whose commitment is this phone's: the directory first, then the chain
        (and the phone is enrolled when found there)."""
        digest = self.vault.commitment(phone)
        known = await self.ledger.household_of(digest)
        if known is not None:
            return Pubkey.from_string(known)
        for home in await self.client.households(self.market):
            if home.phone_commitment == digest:
                await self.ledger.enrol(str(home.address), digest, self.vault.seal(phone))
                return home.address
        return None

    async def best_offer(self, seller: Pubkey, wh: int, max_price_cents_per_kwh: int) -> Offer:
        """The seller's cheapest open offer with ``wh`` to spare at or below the price."""
        now = await cluster_time(self.client.chain)
        fitting = [
            o
            for o in await self.client.offers(self.market, seller)
            if not o.cancelled
            and o.expires_at > now
            and o.unreserved_wh >= wh
            and o.price_cents_per_kwh <= max_price_cents_per_kwh
        ]
        if not fitting:
            raise TradeRefused(
                Refusal.NoMatchingOffer,
                f"the seller has no open offer of {wh:,} Wh at or below "
                f"{max_price_cents_per_kwh} cents/kWh",
            )
        return min(fitting, key=lambda o: (o.price_cents_per_kwh, o.expires_at))

    async def refuse_unless_enrolled_for(self, phone: str, household: Pubkey) -> None:
        """A 403 NotYourPhone unless ``phone`` is enrolled for ``household``: the same answer
        whether it is another's or nobody's."""
        if await self.household_by_phone(_normal(phone)) != household:
            raise TradeRefused(
                Refusal.NotYourPhone, "that phone is not enrolled for your household"
            )

    async def open(self, order: Order) -> Opened:
        """Checks, stores, opens on chain, sends the STK Push; see the module docstring."""
        phone = _normal(order.phone)
        if order.wh <= 0:
            raise TradeRefused(Refusal.AmountRoundsToZero, "buy at least 1 Wh")
        offer = await self._offer(order.offer)
        market = await self.market_state()
        total = total_cents(order.wh, offer.price_cents_per_kwh)
        if total // 100 > MAX_STK_KES:
            raise TradeRefused(
                Refusal.AmountTooLarge, f"KES {total // 100:,} is over M-Pesa's {MAX_STK_KES:,}"
            )
        payout_kes, fee_cents = payout_split(total, market.config.fee_bps)
        if payout_kes < MIN_PAYOUT_KES:
            raise TradeRefused(
                Refusal.PayoutBelowMinimum,
                f"the seller would receive KES {payout_kes}; M-Pesa pays out at least "
                f"KES {MIN_PAYOUT_KES}: buy more",
            )
        buyer = await self.household_by_phone(phone)
        if buyer is None:
            raise TradeRefused(Refusal.UnknownBuyer, "no household in this market has that phone")
        if not (await self.client.household(buyer)).custodial:
            raise TradeRefused(
                Refusal.BuyerNotCustodial, "this household signs its own trades (wallet)"
            )
        seller_phone = await self.ledger.sealed_phone(str(offer.seller))
        if seller_phone is None:
            raise TradeRefused(
                Refusal.SellerPhoneUnknown, "the seller's phone is not enrolled with the oracle"
            )
        async with self._storing:
            if order.idempotency_key is None:
                await self._refuse_repeat(phone, offer, total)
            trade = await self._store(order, offer, buyer, phone, seller_phone, total, fee_cents)
        trade = await self._open_on_chain(trade, market)
        return await self._push(trade, phone)

    async def _refuse_repeat(self, phone: str, offer: Offer, total: int) -> None:
        """Refuses an order without an Idempotency-Key that repeats one of the last
        ``order_repeat_window_secs`` neither refused nor cancelled: most likely the same order
        sent twice."""
        window = self.settings.payments.order_repeat_window_secs
        if window <= 0:
            return
        since = self.clock() - window
        phone_hash = self.vault.commitment(phone).hex()
        earlier = await self.ledger.recent_order(phone_hash, str(offer.address), total, since)
        if earlier is not None:
            ago = max(0, int(self.clock() - earlier.created_at))
            raise TradeRefused(
                Refusal.ProbableRepeat,
                f"the same phone ordered KES {total // 100:,} from this offer {ago} s ago; "
                f"send an Idempotency-Key to place another such order within {window:g} s",
            )

    async def _offer(self, address: Pubkey) -> Offer:
        try:
            offer = await self.client.offer(address)
        except (AccountNotFound, AccountTypeMismatch):
            raise TradeRefused(Refusal.UnknownOffer, f"no offer at {address}") from None
        except NishatiClientError as e:
            raise chain_unavailable(e, "the chain did not answer; try again") from None
        if offer.market != self.market:
            raise TradeRefused(Refusal.UnknownOffer, f"offer {address} is in another market")
        if offer.cancelled or offer.expires_at <= await cluster_time(self.client.chain):
            raise TradeRefused(Refusal.OfferClosed, f"offer {address} is closed")
        return offer

    async def _store(
        self,
        order: Order,
        offer: Offer,
        buyer: Pubkey,
        phone: str,
        seller_phone: bytes,
        total: int,
        fee_cents: int,
    ) -> TradeRecord:
        if order.wh > offer.unreserved_wh:
            raise TradeRefused(
                Refusal.NotEnoughEnergy, f"the offer has {offer.unreserved_wh:,} Wh left"
            )
        trade_id = secrets.token_hex(16)
        reference = payment_reference(trade_id)
        now = self.clock()
        trade = TradeRecord(
            id=trade_id,
            state=TradeState.created,
            market=str(self.market),
            offer=str(offer.address),
            seller=str(offer.seller),
            buyer=str(buyer),
            trade_address=str(
                self.client.program.trade_address(offer.address, offer.next_trade_index)
            ),
            trade_index=offer.next_trade_index,
            payment_ref_hash=reference,
            wh=order.wh,
            price_cents_per_kwh=offer.price_cents_per_kwh,
            total_cents=total,
            fee_cents=fee_cents,
            payout_kes=(total - fee_cents) // 100,
            buyer_phone=self.vault.seal(phone),
            buyer_phone_hash=self.vault.commitment(phone).hex(),
            seller_phone=seller_phone,
            deadline=None,
            give_up_at=None,
            merchant_request_id=None,
            checkout_request_id=None,
            mpesa_receipt=None,
            result_code=None,
            result_desc=None,
            chain_signature=None,
            payout_conversation_id=None,
            payout_receipt=None,
            queries=0,
            # Until then the request itself finishes opening it; after, the worker does.
            next_check_at=now + OPEN_GRACE_SECS,
            created_at=now,
            updated_at=now,
            idempotency_key=order.idempotency_key,
            request_digest=order.request_digest,
        )
        try:
            await self.ledger.create(trade, f"order for {order.wh:,} Wh from {mask(phone)}")
        except IntegrityError:
            if order.idempotency_key is None:
                raise
            raise KeyTaken(order.idempotency_key) from None
        return trade

    async def _open_on_chain(self, trade: TradeRecord, market: Market) -> TradeRecord:
        """Opens the trade at its recorded index; at the offer's next one, recorded first,
        when another trade took it (``StaleTradeIndex`` changed nothing)."""
        for attempt in range(OPEN_ATTEMPTS):
            assert trade.trade_index is not None
            try:
                created = await self.client.trade_open(
                    payer=self.oracle,
                    authority=self.oracle,
                    market=self.market,
                    offer=Pubkey.from_string(trade.offer),
                    buyer=Pubkey.from_string(trade.buyer),
                    wh=trade.wh,
                    payment_ref_hash=trade.payment_ref_hash,
                    trade_index=trade.trade_index,
                )
            except NishatiProgramError as e:
                if e.name != "StaleTradeIndex" or attempt + 1 == OPEN_ATTEMPTS:
                    await self._refused_on_chain(trade, str(e))
                trade = await self._next_index(trade)
                continue
            except TransactionFailed as e:
                await self._refused_on_chain(trade, str(e))
            except NishatiClientError as e:
                # Whether it landed is unknown: the worker asks the chain and finishes the trade.
                raise chain_unavailable(e, UNFINISHED, trade.id) from None
            return await self._opened(trade, market, created.outcome)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _refused_on_chain(self, trade: TradeRecord, detail: str) -> NoReturn:
        await self.ledger.move(trade.id, [TradeState.created], TradeState.rejected, detail)
        raise TradeRefused(Refusal.ChainRefused, detail, trade.id)

    async def _next_index(self, trade: TradeRecord) -> TradeRecord:
        """Records the offer's next trade index and its address, read now, before sending
        again (so a crash never leaves a sent open unrecorded)."""
        try:
            offer = await self.client.offer(Pubkey.from_string(trade.offer))
        except NishatiClientError as e:
            # Nothing is open: no earlier send landed (it was refused, StaleTradeIndex).
            withdrawn = "the chain did not answer; order withdrawn"
            await self.ledger.move(trade.id, [TradeState.created], TradeState.rejected, withdrawn)
            raise chain_unavailable(e, withdrawn, trade.id) from None
        if offer.unreserved_wh < trade.wh or offer.cancelled:
            detail = f"the offer has {offer.unreserved_wh:,} Wh left"
            await self.ledger.move(trade.id, [TradeState.created], TradeState.rejected, detail)
            raise TradeRefused(Refusal.NotEnoughEnergy, detail, trade.id)
        index = offer.next_trade_index
        address = str(self.client.program.trade_address(offer.address, index))
        if not await self.ledger.update(
            trade.id, TradeState.created, trade_index=index, trade_address=address
        ):
            raise TradeRefused(
                Refusal.ChainUnavailable, "the chain took too long; order withdrawn", trade.id
            )
        found = await self.ledger.get(trade.id)
        assert found is not None
        return found

    async def _opened(self, trade: TradeRecord, market: Market, outcome: TxOutcome) -> TradeRecord:
        """Records the trade opened, with its deadline from the transaction's TradeOpened
        event (or, without one, from the account: a lagging RPC node may not show it yet,
        and then the worker finishes the trade)."""
        deadline = self._deadline_of(trade, outcome)
        if deadline is None:
            try:
                deadline = (
                    await self.client.trade(Pubkey.from_string(trade.trade_address))
                ).deadline
            except NishatiClientError as e:
                raise chain_unavailable(e, UNFINISHED, trade.id) from None
        opened = await self.ledger.move(
            trade.id,
            [TradeState.created],
            TradeState.opened,
            f"trade_open {outcome.signature} at index {trade.trade_index}",
            deadline=deadline,
            # The same span by the oracle's own clock.
            give_up_at=self.clock() + market.config.payment_deadline_secs,
            chain_signature=str(outcome.signature),
        )
        if not opened:
            # The worker gave up on this order while the chain was slow: no payment is asked.
            raise TradeRefused(
                Refusal.ChainUnavailable, "the chain took too long; order withdrawn", trade.id
            )
        found = await self.ledger.get(trade.id)
        assert found is not None
        return found

    def _deadline_of(self, trade: TradeRecord, outcome: TxOutcome) -> int | None:
        """The deadline in the transaction's TradeOpened event of this trade, if it has one."""
        for event in self.client.program.events(outcome.logs):
            data = event.data
            if event.name == "TradeOpened" and str(data.trade) == trade.trade_address:
                if bytes(data.payment_ref_hash) != trade.payment_ref_hash:
                    return None
                return int(data.deadline)
        return None

    async def _push(self, trade: TradeRecord, phone: str) -> Opened:
        result = await self.gateway.push(
            phone=phone,
            amount_kes=trade.amount_kes,
            reference=ACCOUNT_REFERENCE,
            description=TRANSACTION_DESC,
            callback_url=self.callback_url,
        )
        if result.delivery is Delivery.accepted:
            await self.ledger.move(
                trade.id,
                [TradeState.opened],
                TradeState.stk_sent,
                f"STK Push {result.checkout_request_id}",
                checkout_request_id=result.checkout_request_id,
                merchant_request_id=result.merchant_request_id,
                next_check_at=self.clock() + self.settings.payments.stk_query_after_secs,
            )
            # A callback may already be waiting for this CheckoutRequestID.
            if result.checkout_request_id is not None:
                await self.ledger.release_callbacks(result.checkout_request_id)
            self.wake()
            found = await self.ledger.get(trade.id)
            assert found is not None
            return Opened(found, result.checkout_request_id)
        if result.delivery is Delivery.refused:
            await self.ledger.move(
                trade.id,
                [TradeState.opened],
                TradeState.cancelling,
                f"STK Push refused: {result.detail}",
            )
            self.wake()
            raise TradeRefused(Refusal.PaymentRequestRefused, result.detail, trade.id)
        # No answer: a prompt may be on the buyer's phone. Its callback can still claim the
        # trade; otherwise the worker cancels it at the deadline.
        log.warning(
            "stk push unanswered", trade_id=trade.id, market=trade.market, detail=result.detail
        )
        await self.ledger.release_callbacks()
        self.wake()
        return Opened(trade, None)


def _normal(phone: str) -> str:
    try:
        return normalise(phone)
    except InvalidPhoneNumber as e:
        raise TradeRefused(Refusal.InvalidPhone, str(e)) from None
