"""The desk and the worker in process, on LiteSVM, with M-Pesa faked: the ledger's state
machine, packing of settlements and cancellations, and recovery from what a crash leaves."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from solders.pubkey import Pubkey
from sqlalchemy import select, update

from nishati_client.errors import AccountNotFound, NishatiProgramError
from nishati_client.keys import write_keypair
from nishati_client.phone import commitment
from nishati_client.program import NishatiClient, NishatiProgram
from nishati_client.trading import Offer, Trade
from nishati_dev.sandbox import (
    CANCEL_GRACE_SECS,
    Harness,
    Member,
    OpenMarket,
    open_market,
    set_time,
)
from nishati_oracle.core.metrics import Metrics
from nishati_oracle.core.settings import OracleSettings, StorageSettings
from nishati_oracle.readings.store import Store
from nishati_oracle.storage.schema import callbacks
from nishati_oracle.trading.attention import Attention
from nishati_oracle.trading.desk import UNFINISHED, Order, Refusal, TradeDesk, TradeRefused
from nishati_oracle.trading.gateway import (
    Asked,
    Delivery,
    Payment,
    PaymentStatus,
    PayoutResult,
    PushResult,
    ResultNotice,
    parse_result,
)
from nishati_oracle.trading.idempotency import Answer, Idempotency
from nishati_oracle.trading.ledger import (
    MAX_BODIES_PER_KEY,
    CallbackKind,
    Ledger,
    NewCallback,
    Stored,
    TradeRecord,
    TradeState,
)
from nishati_oracle.trading.vault import PhoneVault
from nishati_oracle.trading.wiring import callback_inbox, callback_urls
from nishati_oracle.trading.worker import CALLBACKS_PER_ROUND, CallbackUrls, PaymentWorker

SALT = bytes(range(16, 48))
KEY = bytes(range(32))
SELLER_PHONE = "254711000001"


@dataclass
class FakeGateway:
    """M-Pesa as these tests want it: pushes accepted, query answers set per checkout id."""

    answers: dict[str, int | None] = field(default_factory=dict)
    payouts: list[str] = field(default_factory=list)
    ids: itertools.count[int] = field(default_factory=itertools.count)
    # Every STK Query asked, and how long each Daraja request takes (replicas' rounds overlap).
    queries: list[str] = field(default_factory=list)
    latency_secs: float = 0.0

    async def close(self) -> None:
        return None

    def readiness(self) -> str:
        return "ok"

    async def push(
        self, *, phone: str, amount_kes: int, reference: str, description: str, callback_url: str
    ) -> PushResult:
        checkout = f"ws_CO_fake_{next(self.ids)}"
        self.answers.setdefault(checkout, None)
        return PushResult(Delivery.accepted, checkout, f"merchant-{checkout}")

    async def query(self, checkout_request_id: str) -> PaymentStatus:
        self.queries.append(checkout_request_id)
        await asyncio.sleep(self.latency_secs)
        return PaymentStatus(self.answers.get(checkout_request_id), "fake")

    async def pay(
        self,
        *,
        conversation_id: str,
        phone: str,
        amount_kes: int,
        remarks: str,
        result_url: str,
        timeout_url: str,
    ) -> PayoutResult:
        duplicate = conversation_id in self.payouts
        self.payouts.append(conversation_id)
        await asyncio.sleep(self.latency_secs)
        if duplicate:
            return PayoutResult(Delivery.accepted, duplicate=True)
        return PayoutResult(Delivery.accepted, conversation_id=f"AG_{conversation_id}")

    async def status(
        self, *, originator_conversation_id: str, result_url: str, timeout_url: str
    ) -> Asked:
        return Asked(Delivery.accepted, "status-own", f"AG_status_{next(self.ids)}")

    async def reverse(
        self, *, receipt: str, amount_kes: int, result_url: str, timeout_url: str
    ) -> Asked:
        return Asked(Delivery.accepted, "reversal-own", f"AG_reversal_{next(self.ids)}")

    def payment_keys(self, body: object) -> tuple[str, str | None]:
        raise NotImplementedError

    def parse_payment(self, body: object) -> Payment:
        assert isinstance(body, dict)
        return Payment(
            body["checkout"],
            body["code"],
            "fake",
            body["amount"],
            body["receipt"],
            body.get("phone"),
            body.get("merchant"),
            body.get("shown"),
        )

    def parse_result(self, body: object, timeout: bool) -> ResultNotice:
        return parse_result(body, timeout)


@dataclass
class Desk:
    market: OpenMarket
    offer: Offer
    ledger: Ledger
    desk: TradeDesk
    worker: PaymentWorker
    gateway: FakeGateway
    vault: PhoneVault
    database: str
    numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(100))

    async def buyer(self) -> tuple[Member, str]:
        phone = f"2547{next(self.numbers):08d}"
        member = await self.market.register(
            custodial=True, phone_commitment=commitment(SALT, phone)
        )
        # LiteSVM cannot list accounts: the desk learns the phone up front.
        await self.desk.enrol(member.address, phone)
        return member, phone

    async def order(self, wh: int = 1_000) -> str:
        _, phone = await self.buyer()
        opened = await self.desk.open(Order(self.offer.address, wh, phone))
        return opened.trade.id


@pytest.fixture
async def desk(litesvm: Harness, database_url: str, tmp_path: Path) -> AsyncIterator[Desk]:
    assert litesvm.litesvm is not None
    market = await open_market(litesvm)
    litesvm.litesvm.fund(market.oracle.pubkey(), 100 * 10**9)
    key = tmp_path / "oracle.json"
    write_keypair(key, market.oracle)
    settings = OracleSettings(
        market=str(market.address),
        oracle_keypair=key,
        storage=StorageSettings(database_url=database_url),
    )
    seller = await market.register(custodial=True, phone_commitment=commitment(SALT, SELLER_PHONE))
    await market.mint(seller, 100_000)
    offer = await market.offer(seller, 100_000)
    store = await Store.open(database_url)
    ledger = Ledger(store.engine, store.writer)
    vault = PhoneVault(KEY, SALT)
    gateway = FakeGateway()
    urls: CallbackUrls = callback_urls(settings, "token")
    worker = PaymentWorker(
        settings, ledger, litesvm.client, market.oracle, vault, gateway, urls, Metrics()
    )
    trade_desk = TradeDesk(
        settings,
        ledger,
        litesvm.client,
        market.oracle,
        market.address,
        vault,
        gateway,
        urls.payment,
        worker.wake,
    )
    await trade_desk.enrol(seller.address, SELLER_PHONE)
    try:
        yield Desk(market, offer, ledger, trade_desk, worker, gateway, vault, database_url)
    finally:
        await store.close()


async def state(desk: Desk, trade_id: str) -> TradeState:
    trade = await desk.ledger.get(trade_id)
    assert trade is not None
    return trade.state


async def test_ready_trades_settle_and_cancel_together(desk: Desk) -> None:
    paid = [await desk.order() for _ in range(4)]
    failed = [await desk.order() for _ in range(2)]
    for trade_id in paid + failed:
        trade = await desk.ledger.get(trade_id)
        assert trade is not None
        assert trade.checkout_request_id is not None
        desk.gateway.answers[trade.checkout_request_id] = 0 if trade_id in paid else 1032
        # The callback never came: the worker's query finds out.
        await desk.ledger.update(trade_id, TradeState.stk_sent, next_check_at=0)
    await desk.worker.confirmations.query_payments()
    await desk.worker.settlements.close_on_chain()
    trades = [await desk.ledger.get(t) for t in paid + failed]
    assert [t.state for t in trades if t] == [TradeState.settled] * 4 + [TradeState.cancelled] * 2
    signatures = {t.chain_signature for t in trades if t}
    # Six closings in as few transactions as fit a packet (settle 8 accounts, cancel 5).
    assert len(signatures) <= 2
    offer = await desk.market.h.client.offer(desk.offer.address)
    assert offer.reserved_wh == 0
    assert offer.unreserved_wh == 100_000 - 4 * 1_000


async def test_a_settled_trade_is_paid_out_once(desk: Desk) -> None:
    trade_id = await settled_trade(desk)
    await desk.worker.payouts.pay_sellers()
    await desk.worker.payouts.pay_sellers()
    assert desk.gateway.payouts == [trade_id]
    assert await state(desk, trade_id) is TradeState.payout_sent


async def test_a_callback_is_only_a_hint_the_query_decides(desk: Desk) -> None:
    trade_id = await desk.order()
    trade = await desk.ledger.get(trade_id)
    assert trade is not None
    assert trade.checkout_request_id is not None
    # A callback claiming success while Daraja says the payment is still open (forged).
    body = {"checkout": trade.checkout_request_id, "code": 0, "amount": trade.amount_kes}
    claimed = json.dumps({**body, "receipt": "FAKE000001"})
    sealed = desk.vault.encrypt(claimed.encode())
    checkout = trade.checkout_request_id
    digest = desk.vault.digest(claimed.encode())
    assert (
        await desk.ledger.store_callback(CallbackKind.stk, checkout, "FAKE000001", sealed, digest)
        is Stored.new
    )
    await desk.worker.handle_callbacks()
    assert await state(desk, trade_id) is TradeState.stk_sent
    # Kept, and not looked at again every round.
    assert await desk.ledger.pending_callbacks() == []
    assert len(await desk.ledger.pending_callbacks(now=float("inf"))) == 1
    # Daraja's answer: the buyer cancelled. The trade is cancelled, whatever the callback said.
    desk.gateway.answers[checkout] = 1032
    await desk.ledger.release_callbacks(checkout)
    await desk.worker.handle_callbacks()
    assert await state(desk, trade_id) is TradeState.cancelling
    assert await desk.ledger.pending_callbacks(now=float("inf")) == []


async def keep(desk: Desk, body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    stored = await desk.ledger.store_callback(
        CallbackKind.stk,
        body["checkout"],
        body["receipt"],
        desk.vault.encrypt(raw),
        desk.vault.digest(raw),
    )
    assert stored is Stored.new


async def pushed(desk: Desk) -> tuple[TradeRecord, str, str]:
    """A new buyer's order of 1,000 Wh with its STK Push sent: the trade, its
    CheckoutRequestID and the buyer's phone."""
    _, phone = await desk.buyer()
    opened = await desk.desk.open(Order(desk.offer.address, 1_000, phone))
    assert opened.checkout_request_id is not None
    return opened.trade, opened.checkout_request_id, phone


async def test_the_receipt_is_the_one_of_the_callback_the_query_confirms(desk: Desk) -> None:
    """A forged success first (the trade's amount and phone, not its MerchantRequestID) does
    not crowd out the genuine one; the genuine receipt is recorded."""
    trade, checkout, phone = await pushed(desk)
    paid = {"checkout": checkout, "code": 0, "amount": trade.amount_kes, "phone": phone}
    await keep(desk, {**paid, "receipt": "FORGED0001", "merchant": "forged"})
    await desk.worker.handle_callbacks()  # the query says pending: it waits
    assert await state(desk, trade.id) is TradeState.stk_sent
    await keep(desk, {**paid, "receipt": "RCPT00GOOD", "merchant": f"merchant-{checkout}"})
    desk.gateway.answers[checkout] = 0
    await desk.ledger.release_callbacks(checkout)
    await desk.worker.handle_callbacks()
    found = await desk.ledger.get(trade.id)
    assert found is not None
    assert (found.state, found.mpesa_receipt) == (TradeState.paid, "RCPT00GOOD")


async def test_a_masked_phone_keeps_the_receipt(desk: Desk) -> None:
    trade, checkout, phone = await pushed(desk)
    masked = f"{phone[:4]}****{phone[-3:]}"
    body = {"checkout": checkout, "code": 0, "amount": trade.amount_kes, "shown": masked}
    await keep(desk, {**body, "receipt": "RCPTMASKED", "merchant": f"merchant-{checkout}"})
    desk.gateway.answers[checkout] = 0
    await desk.worker.handle_callbacks()
    found = await desk.ledger.get(trade.id)
    assert found is not None
    assert (found.state, found.mpesa_receipt) == (TradeState.paid, "RCPTMASKED")


async def test_a_callback_after_the_query_still_adds_its_receipt(desk: Desk) -> None:
    trade, checkout, phone = await pushed(desk)
    desk.gateway.answers[checkout] = 0
    await desk.ledger.update(trade.id, TradeState.stk_sent, next_check_at=0)
    await desk.worker.confirmations.query_payments()
    found = await desk.ledger.get(trade.id)
    assert found is not None
    assert (found.state, found.mpesa_receipt) == (TradeState.paid, None)
    body = {"checkout": checkout, "code": 0, "amount": trade.amount_kes, "phone": phone}
    await keep(desk, {**body, "receipt": "RCPT00LATE", "merchant": f"merchant-{checkout}"})
    await desk.worker.handle_callbacks()
    found = await desk.ledger.get(trade.id)
    assert found is not None
    assert (found.state, found.mpesa_receipt) == (TradeState.paid, "RCPT00LATE")
    assert "receipt RCPT00LATE (callback)" in [
        h.detail for h in await desk.ledger.history(trade.id)
    ]


async def test_only_a_callback_the_query_would_confirm_holds_back_the_cancel(desk: Desk) -> None:
    """Past the deadline, the query still pending: a forged success (not the push's
    MerchantRequestID) holds nothing; the genuine one holds the trade from the cancel."""
    forged, forged_checkout, forged_phone = await pushed(desk)
    genuine, genuine_checkout, genuine_phone = await pushed(desk)
    for trade, checkout, phone, merchant, receipt in (
        (forged, forged_checkout, forged_phone, "forged", "RCPTFORGED"),
        (genuine, genuine_checkout, genuine_phone, f"merchant-{genuine_checkout}", "RCPTGENUIN"),
    ):
        paid = {"checkout": checkout, "code": 0, "amount": trade.amount_kes, "phone": phone}
        await keep(desk, {**paid, "receipt": receipt, "merchant": merchant})
        await desk.ledger.update(
            trade.id, TradeState.stk_sent, next_check_at=0, give_up_at=time.time() - 1
        )
    await desk.worker.confirmations.query_payments()
    assert await state(desk, forged.id) is TradeState.cancelling
    assert await state(desk, genuine.id) is TradeState.stk_sent


async def test_an_idempotency_key_holds_for_its_time_then_is_free(desk: Desk) -> None:
    now = time.time()
    orders = Idempotency(desk.ledger, 60, clock=lambda: now)
    _, phone = await desk.buyer()

    async def place(digest: str) -> Answer:
        async def first() -> Answer:
            order = Order(desk.offer.address, 1_000, phone, "the-key", digest)
            opened = await desk.desk.open(order)
            answer = Answer(201, opened.trade.id.encode())
            await orders.record(opened.trade.id, answer)
            return answer

        return await orders.answer("the-key", digest, first, lambda _: Answer(201, b""))

    placed = await place("one")
    assert await place("one") == placed
    with pytest.raises(TradeRefused) as refused:
        await place("another")
    assert refused.value.reason is Refusal.IdempotencyKeyReused
    now += 61
    again = await place("another")
    assert again != placed
    holder = await desk.ledger.by_idempotency_key("the-key")
    assert holder is not None
    assert holder.id == again.body.decode()


async def test_copies_that_look_up_their_key_at_once_share_one_order(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both copies find no trade with the key before either starts its order: the second
    waits for the first's, and is answered as it was."""
    orders = Idempotency(desk.ledger, 60)
    _, phone = await desk.buyer()
    looked_up = asyncio.Barrier(2)
    lookup = desk.ledger.by_idempotency_key
    lookups = 0

    async def together(key: str) -> TradeRecord | None:
        """The first two lookups answer only once both have looked."""
        nonlocal lookups
        found = await lookup(key)
        lookups += 1
        if lookups <= 2:
            await looked_up.wait()
        return found

    monkeypatch.setattr(desk.ledger, "by_idempotency_key", together)

    async def first() -> Answer:
        opened = await desk.desk.open(Order(desk.offer.address, 1_000, phone, "at-once", "d"))
        answer = Answer(201, opened.trade.id.encode())
        await orders.record(opened.trade.id, answer)
        return answer

    copies = [orders.answer("at-once", "d", first, lambda _: Answer(201, b"")) for _ in range(2)]
    one, other = await asyncio.gather(*copies)
    assert one == other
    assert (await desk.ledger.by_idempotency_key("at-once")) is not None


async def test_compare_and_set(desk: Desk) -> None:
    trade_id = await desk.order()
    assert not await desk.ledger.move(trade_id, [TradeState.paid], TradeState.settled)
    assert await desk.ledger.move(trade_id, [TradeState.stk_sent], TradeState.cancelling)
    assert not await desk.ledger.move(trade_id, [TradeState.stk_sent], TradeState.paid)
    states = [h.state for h in await desk.ledger.history(trade_id)]
    assert states == [
        TradeState.created,
        TradeState.opened,
        TradeState.stk_sent,
        TradeState.cancelling,
    ]


async def test_callbacks_are_kept_once(desk: Desk) -> None:
    store = desk.ledger.store_callback
    assert await store(CallbackKind.stk, "ws_CO_1", "RCPT000001", b"{}", "a") is Stored.new
    # The same body again, or the same receipt under another id: duplicates.
    assert await store(CallbackKind.stk, "ws_CO_1", None, b"{}", "a") is Stored.duplicate
    assert await store(CallbackKind.stk, "ws_CO_2", "RCPT000001", b"{}", "b") is Stored.duplicate
    # A payout result may share a key with an STK callback: another kind.
    assert await store(CallbackKind.payout_result, "ws_CO_1", None, b"{}", "a") is Stored.new
    assert [c.key for c in await desk.ledger.pending_callbacks()] == ["ws_CO_1", "ws_CO_1"]


async def test_each_distinct_body_is_kept_up_to_the_bound(desk: Desk) -> None:
    """A forger's bodies for a CheckoutRequestID do not make the genuine one a duplicate; a key
    takes MAX_BODIES_PER_KEY bodies, then refuses more."""
    store = desk.ledger.store_callback
    for i in range(MAX_BODIES_PER_KEY):
        assert await store(CallbackKind.stk, "ws_CO_9", None, b"{}", f"d{i}") is Stored.new
    assert await store(CallbackKind.stk, "ws_CO_9", None, b"{}", "more") is Stored.over_limit
    # Another kind, another key: their own bounds.
    assert await store(CallbackKind.payout_result, "ws_CO_9", None, b"{}", "x") is Stored.new
    assert len(await desk.ledger.callback_bodies(CallbackKind.stk, "ws_CO_9")) == MAX_BODIES_PER_KEY


async def test_what_a_crash_leaves_half_done(desk: Desk) -> None:
    """A trade stored but never opened on chain is rejected; one opened but never offered for
    payment is cancelled there; one whose settlement landed unrecorded is settled."""
    client, oracle = desk.market.h.client, desk.market.oracle
    never_opened, opened_only, landed = [await desk.order() for _ in range(3)]
    records = {t: await desk.ledger.get(t) for t in (never_opened, opened_only, landed)}
    on_chain = {
        t: await client.trade(Pubkey.from_string(r.trade_address))
        for t, r in records.items()
        if r is not None
    }
    # As if the first's trade_open never landed: its account is gone.
    cancel = client.program.trade_cancel(caller=oracle.pubkey(), trade=on_chain[never_opened])
    await desk.market.h.chain.send([cancel], [oracle])
    for trade_id in (never_opened, opened_only):
        await desk.ledger.move(trade_id, [TradeState.stk_sent], TradeState.created, next_check_at=0)
    # The third was paid and settled on chain, but the ledger only got as far as paid.
    assert await desk.ledger.move(landed, [TradeState.stk_sent], TradeState.paid)
    paid = records[landed]
    assert paid is not None
    settle = client.program.trade_settle(
        oracle=oracle.pubkey(),
        trade=on_chain[landed],
        receipt_hash=bytes(32),
        buyer=Pubkey.from_string(paid.buyer),
        wh=paid.wh,
        total_cents=paid.total_cents,
    )
    await desk.market.h.chain.send([settle], [oracle])
    await desk.worker.settlements.finish_created()
    await desk.worker.settlements.close_on_chain()
    assert await state(desk, never_opened) is TradeState.rejected
    assert await state(desk, opened_only) is TradeState.cancelled
    assert await state(desk, landed) is TradeState.settled


async def test_paid_but_cancelled_by_another_after_the_deadline_is_a_refund(desk: Desk) -> None:
    trade_id = await desk.order()
    trade = await desk.ledger.get(trade_id)
    assert trade is not None
    assert trade.deadline is not None
    assert await desk.ledger.move(trade_id, [TradeState.stk_sent], TradeState.paid)
    on_chain = await desk.market.h.client.trade(Pubkey.from_string(trade.trade_address))
    stranger = desk.market.h.payer
    cancel = desk.market.h.client.program.trade_cancel(caller=stranger.pubkey(), trade=on_chain)
    # Within the grace after the deadline only the oracle may cancel: a paid trade is settled.
    set_time(desk.market.h, trade.deadline + CANCEL_GRACE_SECS)
    with pytest.raises(NishatiProgramError, match="TradeInGracePeriod"):
        await desk.market.h.chain.send([cancel], [stranger])
    set_time(desk.market.h, trade.deadline + CANCEL_GRACE_SECS + 1)
    await desk.market.h.chain.send([cancel], [stranger])
    await desk.worker.settlements.close_on_chain()
    assert await state(desk, trade_id) is TradeState.refund_due


async def given_up(desk: Desk, trade_id: str, checkout: str | None) -> None:
    """The trade past its deadline with its payment undecided (``checkout`` None: the push's
    answer was lost), cancelled by the worker."""
    state_now = TradeState.stk_sent if checkout else TradeState.opened
    trade = await desk.ledger.get(trade_id)
    assert trade is not None
    assert await desk.ledger.move(
        trade_id,
        [TradeState.stk_sent],
        state_now,
        checkout_request_id=checkout,
        # The push's answer names both ids: a lost one leaves the trade with neither.
        merchant_request_id=trade.merchant_request_id if checkout else None,
        give_up_at=0,
        next_check_at=0,
    )
    await desk.worker.confirmations.query_payments()
    await desk.worker.settlements.close_on_chain()
    assert await state(desk, trade_id) is TradeState.cancelled


async def test_a_late_pin_whose_callback_was_lost_is_found_by_the_reconciliation(
    desk: Desk,
) -> None:
    trade_id = await desk.order()
    trade = await desk.ledger.get(trade_id)
    assert trade is not None
    assert trade.checkout_request_id is not None
    await given_up(desk, trade_id, trade.checkout_request_id)
    # The buyer typed the PIN after the cancel; the callback never reached the oracle.
    desk.gateway.answers[trade.checkout_request_id] = 0
    done = await desk.worker.reconciler.run()
    assert done.mismatches == 1
    assert await state(desk, trade_id) is TradeState.refund_due


async def test_a_late_callback_claims_a_trade_given_up_on_without_its_checkout_id(
    desk: Desk,
) -> None:
    _, phone = await desk.buyer()
    opened = await desk.desk.open(Order(desk.offer.address, 1_000, phone))
    trade_id = opened.trade.id
    await given_up(desk, trade_id, None)
    # The push's answer was lost; the buyer paid after the deadline, and the callback came.
    checkout = "ws_CO_late_claim"
    desk.gateway.answers[checkout] = 0
    amount = opened.trade.amount_kes
    body = {"checkout": checkout, "code": 0, "amount": amount, "receipt": "RCPTLATE01"}
    raw = json.dumps({**body, "phone": phone}).encode()
    sealed, digest = desk.vault.encrypt(raw), desk.vault.digest(raw)
    stored = await desk.ledger.store_callback(
        CallbackKind.stk, checkout, "RCPTLATE01", sealed, digest
    )
    assert stored is Stored.new
    await desk.worker.handle_callbacks()
    trade = await desk.ledger.get(trade_id)
    assert trade is not None
    assert (trade.state, trade.checkout_request_id) == (TradeState.refund_due, checkout)
    assert trade.mpesa_receipt == "RCPTLATE01"


async def test_a_refund_daraja_has_no_record_of_is_sent_again(desk: Desk) -> None:
    """Transaction Status said Daraja has no such reversal after four queries: the one send
    is made again, not given up on as if four sends had gone unanswered."""
    trade_id = await desk.order()
    assert await desk.ledger.move(
        trade_id,
        [TradeState.stk_sent],
        TradeState.refunding,
        mpesa_receipt="RCPTREFUND",
        refund_method="reversal",
        refund_attempts=1,
        refund_accepted_at=None,
        queries=4,
        next_check_at=0,
    )
    await desk.worker.refunds.check_refunds()
    trade = await desk.ledger.get(trade_id)
    assert trade is not None
    assert (trade.state, trade.refund_attempts) == (TradeState.refunding, 2)
    assert trade.refund_accepted_at is not None


async def test_a_trade_gone_within_the_grace_was_settled_by_us(desk: Desk) -> None:
    """Until the deadline and the cancel grace after it, only the oracle closes a trade: one
    whose account is gone then was settled by an earlier send whose answer was lost."""
    trade_id = await desk.order()
    trade = await desk.ledger.get(trade_id)
    assert trade is not None
    assert trade.deadline is not None
    assert await desk.ledger.move(trade_id, [TradeState.stk_sent], TradeState.paid)
    paid = await desk.ledger.get(trade_id)
    assert paid is not None
    on_chain = await desk.market.h.client.trade(Pubkey.from_string(trade.trade_address))
    settle = desk.worker.settlements._close_instruction(paid, on_chain)
    await desk.market.h.chain.send([settle], [desk.market.oracle])
    set_time(desk.market.h, trade.deadline + CANCEL_GRACE_SECS)
    await desk.worker.settlements.close_on_chain()
    assert await state(desk, trade_id) is TradeState.settled


async def test_an_account_unlike_the_ledger_is_never_settled_nor_cancelled(desk: Desk) -> None:
    """The worker reads the trade's account and checks it against its ledger before building
    a settle or a cancel: one that differs (here, as if another buyer's trade were at the
    address) is flagged, counted, and nothing is sent for it."""
    paid_id, failing_id = await desk.order(), await desk.order()
    other, _ = await desk.buyer()
    assert await desk.ledger.move(paid_id, [TradeState.stk_sent], TradeState.paid)
    assert await desk.ledger.move(failing_id, [TradeState.stk_sent], TradeState.cancelling)
    await desk.ledger.update(paid_id, TradeState.paid, buyer=str(other.address))
    await desk.ledger.update(failing_id, TradeState.cancelling, wh=999)
    await desk.worker.settlements.close_on_chain()
    for trade_id in (paid_id, failing_id):
        assert await state(desk, trade_id) is TradeState.flagged
        trade = await desk.ledger.get(trade_id)
        assert trade is not None
        # Still open on chain: nothing was sent.
        await desk.market.h.client.trade(Pubkey.from_string(trade.trade_address))
    history = await desk.ledger.history(paid_id)
    assert history[-1].detail is not None
    assert "buyer" in history[-1].detail
    mismatches = desk.worker.settlements.metrics.registry.get_sample_value(
        "nishati_trade_mismatches_total"
    )
    assert mismatches == 2


async def test_an_index_taken_meanwhile_is_recorded_again_and_retried(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another trade takes the offer's next index between the desk's read of the offer and its
    open: the program refuses ours (StaleTradeIndex, nothing done); the desk records the next
    index and its address, and opens there."""
    other, _ = await desk.buyer()
    real = TradeDesk._store

    async def store_then_race(self: TradeDesk, *args: Any) -> TradeRecord:
        stored = await real(self, *args)
        await desk.market.open_trade(desk.offer, other, 500)
        return stored

    monkeypatch.setattr(TradeDesk, "_store", store_then_race)
    first = await desk.order()
    monkeypatch.undo()
    trade = await desk.ledger.get(first)
    assert trade is not None
    assert trade.state is TradeState.stk_sent
    assert trade.trade_index == 1
    offer = desk.offer.address
    assert trade.trade_address == str(desk.market.h.client.program.trade_address(offer, 1))
    on_chain = await desk.market.h.client.trade(Pubkey.from_string(trade.trade_address))
    assert on_chain.payment_ref_hash == trade.payment_ref_hash
    assert on_chain.trade_index == 1


async def test_a_created_trade_whose_index_holds_another_trade_never_opened(desk: Desk) -> None:
    """An open whose answer was lost is told by the account at the recorded address: another
    trade's payment reference there means ours was refused (StaleTradeIndex)."""
    trade_id = await desk.order()
    other, _ = await desk.buyer()
    theirs = await desk.market.open_trade(desk.offer, other, 500)
    address = str(theirs.address)
    await desk.ledger.move(
        trade_id,
        [TradeState.stk_sent],
        TradeState.created,
        next_check_at=0,
        trade_index=theirs.trade_index,
        trade_address=address,
    )
    await desk.worker.settlements.finish_created()
    assert await state(desk, trade_id) is TradeState.rejected
    history = await desk.ledger.history(trade_id)
    assert history[-1].detail is not None
    assert "holds another trade" in history[-1].detail
    # Theirs is untouched.
    assert (await desk.market.h.client.trade(theirs.address)).buyer == other.address


async def test_an_open_that_landed_unread_is_left_to_the_worker_with_its_trade_id(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """trade_open confirmed, but neither its event nor its account could be read back (a
    lagging RPC node): ChainUnavailable naming the trade, which the worker then finishes."""
    monkeypatch.setattr(NishatiProgram, "events", lambda self, logs: [])

    async def lagging(self: NishatiClient, address: Pubkey) -> Trade:
        raise AccountNotFound(f"no account at {address}")

    monkeypatch.setattr(NishatiClient, "trade", lagging)
    with pytest.raises(TradeRefused) as refused:
        await desk.order()
    monkeypatch.undo()
    assert refused.value.reason is Refusal.ChainUnavailable
    # The RPC's own text stays in the log.
    assert refused.value.detail == UNFINISHED
    assert refused.value.trade_id is not None
    trade_id = refused.value.trade_id
    assert await state(desk, trade_id) is TradeState.created
    await desk.ledger.update(trade_id, TradeState.created, next_check_at=0)
    await desk.worker.settlements.finish_created()
    assert await state(desk, trade_id) is TradeState.cancelling
    await desk.worker.settlements.close_on_chain()
    assert await state(desk, trade_id) is TradeState.cancelled


async def test_phones_are_encrypted_at_rest(desk: Desk) -> None:
    await desk.order()
    if not desk.database.startswith("sqlite"):
        pytest.skip("reads the SQLite file")
    path = Path(desk.database.split("///", 1)[1])
    stored = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    assert SELLER_PHONE.encode() not in stored
    assert SELLER_PHONE[3:].encode() not in stored


async def test_callbacks_stored_together_are_each_new_or_a_duplicate(desk: Desk) -> None:
    """The inbox's group commit: one transaction, each callback answered for itself."""
    inbox = callback_inbox(desk.ledger)

    def store(kind: CallbackKind, key: str, receipt: str | None) -> Awaitable[bool]:
        # Each callback's body the same for its key: a second one is the same body again.
        async def stored() -> bool:
            return await inbox.submit(NewCallback(kind, key, receipt, b"{}", key)) is Stored.new

        return stored()

    assert await store(CallbackKind.stk, "ws_CO_0", "R0")
    calls = [
        store(CallbackKind.stk, "ws_CO_1", "R1"),
        store(CallbackKind.stk, "ws_CO_0", None),  # kept before
        store(CallbackKind.stk, "ws_CO_2", "R2"),
        store(CallbackKind.stk, "ws_CO_2", "R2"),  # twin in the same group
        store(CallbackKind.stk, "ws_CO_3", "R1"),  # a receipt seen in the group
        store(CallbackKind.stk, "ws_CO_4", "R0"),  # a receipt kept before
        store(CallbackKind.payout_result, "ws_CO_1", None),
    ]
    assert await asyncio.gather(*calls) == [True, False, True, False, False, False, True]
    kept = await desk.ledger.pending_callbacks(now=float("inf"))
    assert sorted((c.kind, c.key) for c in kept) == [
        (CallbackKind.payout_result, "ws_CO_1"),
        (CallbackKind.stk, "ws_CO_0"),
        (CallbackKind.stk, "ws_CO_1"),
        (CallbackKind.stk, "ws_CO_2"),
    ]


async def test_a_flood_of_unknown_callbacks_does_not_hold_up_a_trades(desk: Desk) -> None:
    """Callbacks nobody knows, stored before a real trade's, are parked after it is acted on."""
    flood = [
        NewCallback(CallbackKind.stk, f"ws_CO_unknown_{i}", None, b"{}", str(i))
        for i in range(CALLBACKS_PER_ROUND)
    ]
    await desk.ledger.store_callbacks(flood)
    trade_id = await desk.order()
    trade = await desk.ledger.get(trade_id)
    assert trade is not None
    assert trade.checkout_request_id is not None
    checkout = trade.checkout_request_id
    desk.gateway.answers[checkout] = 0
    body = {"checkout": checkout, "code": 0, "amount": trade.amount_kes, "receipt": "RCPT000009"}
    raw = json.dumps(body).encode()
    sealed = desk.vault.encrypt(raw)
    digest = desk.vault.digest(raw)
    assert (
        await desk.ledger.store_callback(CallbackKind.stk, checkout, "RCPT000009", sealed, digest)
        is Stored.new
    )
    await desk.worker.handle_callbacks()
    assert await state(desk, trade_id) is TradeState.paid


async def settled_trade(desk: Desk) -> str:
    """A trade paid and settled on chain, its payout due."""
    trade_id = await desk.order()
    trade = await desk.ledger.get(trade_id)
    assert trade is not None
    assert trade.checkout_request_id is not None
    desk.gateway.answers[trade.checkout_request_id] = 0
    await desk.ledger.update(trade_id, TradeState.stk_sent, next_check_at=0)
    await desk.worker.confirmations.query_payments()
    await desk.worker.settlements.close_on_chain()
    assert await state(desk, trade_id) is TradeState.settled
    return trade_id


def b2c_result(originator: str, conversation: str, code: int) -> bytes:
    result: dict[str, Any] = {
        "ResultType": 0,
        "ResultCode": code,
        "ResultDesc": "fake",
        "OriginatorConversationID": originator,
        "ConversationID": conversation,
        "TransactionID": "RCPT00PAID" if code == 0 else "R000000000",
    }
    if code == 0:
        result["ResultParameters"] = {
            "ResultParameter": [
                {"Key": "TransactionAmount", "Value": 10},
                {"Key": "TransactionReceipt", "Value": "RCPT00PAID"},
            ]
        }
    return json.dumps({"Result": result}).encode()


async def deliver(desk: Desk, kind: CallbackKind, body: bytes) -> None:
    notice = parse_result(json.loads(body), kind.timeout)
    sealed, digest = desk.vault.encrypt(body), desk.vault.digest(body)
    assert await desk.ledger.store_callback(kind, notice.key, None, sealed, digest) is Stored.new
    await desk.worker.handle_callbacks()


async def test_a_result_carrying_darajas_own_id_is_matched_on_the_conversation(
    desk: Desk,
) -> None:
    """The reply's ConversationID is kept: a result whose OriginatorConversationID Daraja
    made up settles the payout; one of an earlier attempt never touches the current one."""
    trade_id = await settled_trade(desk)
    await desk.worker.payouts.pay_sellers()
    trade = await desk.ledger.get(trade_id)
    assert trade is not None
    assert (trade.payout_originator_id, trade.payout_conversation_id) == (
        trade_id,
        f"AG_{trade_id}",
    )
    # The first attempt fails: it is paid again under a new id, after a backoff.
    await deliver(desk, CallbackKind.payout_result, b2c_result("53e3-4aa8", f"AG_{trade_id}", 1))
    trade = await desk.ledger.get(trade_id)
    assert trade is not None
    assert trade.state is TradeState.settled
    assert trade.payout_originator_id == f"{trade_id}-1"
    await desk.ledger.update(trade_id, TradeState.settled, next_check_at=0)
    await desk.worker.payouts.pay_sellers()
    assert desk.gateway.payouts == [trade_id, f"{trade_id}-1"]
    # The first attempt's result again (a duplicate with new ids): it matches nothing now.
    await deliver(desk, CallbackKind.payout_result, b2c_result(trade_id, "AG_other", 1))
    assert await state(desk, trade_id) is TradeState.payout_sent
    await deliver(desk, CallbackKind.payout_result, b2c_result("9fe0-8fb5", f"AG_{trade_id}-1", 0))
    trade = await desk.ledger.get(trade_id)
    assert trade is not None
    assert trade.state is TradeState.payout_confirmed
    assert trade.payout_receipt == "RCPT00PAID"


async def test_a_flood_of_unknown_results_does_not_hold_up_a_payouts(desk: Desk) -> None:
    """A payout's result is keyed by Daraja's ConversationID, not by its trade: it still goes
    before a round's worth of results nobody knows, stored before it."""
    trade_id = await settled_trade(desk)
    await desk.worker.payouts.pay_sellers()
    flood = [
        NewCallback(
            CallbackKind.payout_result,
            f"AG_unknown_{i}",
            None,
            desk.vault.encrypt(b2c_result(f"unknown-{i}", f"AG_unknown_{i}", 0)),
            str(i),
        )
        for i in range(CALLBACKS_PER_ROUND)
    ]
    await desk.ledger.store_callbacks(flood)
    await deliver(desk, CallbackKind.payout_result, b2c_result("53e3-4aa8", f"AG_{trade_id}", 0))
    assert await state(desk, trade_id) is TradeState.payout_confirmed


async def test_a_status_answer_matching_no_payout_ends(desk: Desk) -> None:
    """Kept for a grace (its payout's ids may be on their way to the ledger), then dropped as
    unmatched: never looked at again, never asked about again."""
    status = {
        "Result": {
            "ResultType": 0,
            "ResultCode": 0,
            "ResultDesc": "ok",
            "OriginatorConversationID": "status-own-unknown",
            "ConversationID": "AG_status_unknown",
            "TransactionID": "RCPT000009",
            "ResultParameters": {
                "ResultParameter": [
                    {"Key": "TransactionStatus", "Value": "Completed"},
                    {"Key": "ReceiptNo", "Value": "RCPT000009"},
                    {"Key": "OriginatorConversationID", "Value": "nobody-knows"},
                    {"Key": "ConversationID", "Value": "AG_nobody"},
                ]
            },
        }
    }
    await deliver(desk, CallbackKind.payout_result, json.dumps(status).encode())
    [waiting] = await desk.ledger.pending_callbacks(now=float("inf"))
    assert waiting.key == "AG_status_unknown"
    # Past the grace: handled as unmatched.
    async with desk.ledger.engine.begin() as conn:
        await conn.execute(update(callbacks).values(received_at=time.time() - 1_000, retry_at=None))
    await desk.worker.handle_callbacks()
    assert await desk.ledger.pending_callbacks(now=float("inf")) == []
    async with desk.ledger.engine.connect() as conn:
        outcome: str | None = (await conn.execute(select(callbacks.c.outcome))).scalar_one()
    assert outcome == "unmatched"


async def test_a_payout_never_answered_needs_a_person(desk: Desk) -> None:
    """Transaction Status a bounded number of times, each query's id kept; then
    payout_unknown, listed for operators."""
    trade_id = await settled_trade(desk)
    await desk.worker.payouts.pay_sellers()
    attempts = desk.worker.settings.payments.payout_status_attempts
    for _ in range(attempts):
        await desk.ledger.update(trade_id, TradeState.payout_sent, next_check_at=0)
        await desk.worker.payouts.check_payouts()
        trade = await desk.ledger.get(trade_id)
        assert trade is not None
        assert trade.status_conversation_id is not None
    await desk.ledger.update(trade_id, TradeState.payout_sent, next_check_at=0)
    await desk.worker.payouts.check_payouts()
    assert await state(desk, trade_id) is TradeState.payout_unknown
    waiting = await Attention(desk.ledger, time.time).waiting()
    assert [t.id for t in waiting] == [trade_id]


@dataclass
class Replica:
    """A second oracle replica on the desk's database: its own engine, ledger and worker,
    paying through the same (counting) Daraja."""

    store: Store
    ledger: Ledger
    worker: PaymentWorker


@pytest.fixture
async def replica(desk: Desk, litesvm: Harness, tmp_path: Path) -> AsyncIterator[Replica]:
    store = await Store.open(desk.database)
    ledger = Ledger(store.engine, store.writer)
    worker = PaymentWorker(
        desk.worker.settings,
        ledger,
        litesvm.client,
        desk.market.oracle,
        desk.vault,
        desk.gateway,
        callback_urls(desk.worker.settings, "token"),
        Metrics(),
    )
    try:
        yield Replica(store, ledger, worker)
    finally:
        await store.close()


async def due_now(desk: Desk, count: int, answer: int) -> list[TradeRecord]:
    """``count`` trades whose STK Push went out, their query's answer ``answer``, due now."""
    trades = []
    for _ in range(count):
        trade_id = await desk.order()
        trade = await desk.ledger.get(trade_id)
        assert trade is not None
        assert trade.checkout_request_id is not None
        desk.gateway.answers[trade.checkout_request_id] = answer
        await desk.ledger.update(trade_id, TradeState.stk_sent, next_check_at=0)
        trades.append(trade)
    return trades


async def entered(desk: Desk, trade_id: str, state: TradeState) -> int:
    return sum(1 for entry in await desk.ledger.history(trade_id) if entry.state is state)


async def test_two_replicas_act_on_each_trade_once(desk: Desk, replica: Replica) -> None:
    """Two workers on one database, their rounds at once: each payment queried once, each trade
    settled once, each seller paid once."""
    trades = await due_now(desk, 6, answer=0)
    desk.gateway.latency_secs = 0.02
    workers = (desk.worker, replica.worker)
    await asyncio.gather(*(w.confirmations.query_payments() for w in workers))
    assert sorted(desk.gateway.queries) == sorted(str(t.checkout_request_id) for t in trades)
    for w in workers:
        await w.ledger.release_claims()
    await asyncio.gather(*(w.settlements.close_on_chain() for w in workers))
    for w in workers:
        await w.ledger.release_claims()
    await asyncio.gather(*(w.payouts.pay_sellers() for w in workers))
    assert sorted(desk.gateway.payouts) == sorted(t.id for t in trades)
    for trade in trades:
        assert await state(desk, trade.id) is TradeState.payout_sent
        assert await entered(desk, trade.id, TradeState.settled) == 1
        assert await entered(desk, trade.id, TradeState.payout_sent) == 1


async def test_two_replicas_handle_each_callback_once(desk: Desk, replica: Replica) -> None:
    trades = await due_now(desk, 4, answer=0)
    for trade in trades:
        assert trade.checkout_request_id is not None
        await keep(
            desk,
            {
                "checkout": trade.checkout_request_id,
                "code": 0,
                "amount": trade.amount_kes,
                "receipt": f"RCPT{trade.id[:6].upper()}",
                "merchant": trade.merchant_request_id,
            },
        )
    desk.gateway.latency_secs = 0.02
    handled = await asyncio.gather(
        desk.worker.handle_callbacks(), replica.worker.handle_callbacks()
    )
    assert sum(handled) == len(trades)
    assert sorted(desk.gateway.queries) == sorted(str(t.checkout_request_id) for t in trades)
    for trade in trades:
        assert await state(desk, trade.id) is TradeState.paid
        assert await entered(desk, trade.id, TradeState.paid) == 1
    assert await desk.ledger.pending_callbacks(now=float("inf")) == []


async def test_a_dead_replicas_claims_run_out_and_another_takes_its_trades(
    desk: Desk, replica: Replica
) -> None:
    [trade] = await due_now(desk, 1, answer=0)
    # The desk's replica claims the trade, then dies before acting on it (nor releasing it).
    [claimed] = await desk.ledger.due([TradeState.stk_sent])
    assert claimed.id == trade.id
    assert await replica.ledger.due([TradeState.stk_sent]) == []
    later = time.time() + desk.ledger.claim_secs + 1
    [taken] = await replica.ledger.due([TradeState.stk_sent], now=later)
    assert taken.id == trade.id
    # Were the first replica only slow, it would not act on the trade any more: it knows its
    # claim has run out.
    assert desk.ledger.held(claimed)
    desk.ledger.clock = lambda: later
    assert list(desk.ledger.while_held([claimed])) == []


async def test_one_reconciliation_among_replicas(desk: Desk, replica: Replica) -> None:
    ran = await asyncio.gather(
        desk.worker.reconciler.run_if_due(), replica.worker.reconciler.run_if_due()
    )
    assert sum(r is not None for r in ran) == 1
    # The one that did not run knows when the next one is due.
    assert await replica.worker.reconciler.run_if_due() is None
    assert await desk.worker.reconciler.run_if_due() is None
