"""Moving trades on: callbacks, queries, settlement and cancellation on chain, seller payouts.

The worker only acts on what is stored: a callback is in the ledger before it is looked at, a
trade's state says what is left to do. Every round (and whenever the API has something new) it:

1. handles stored callbacks: an STK callback is only a hint, the STK Query is the authority, so
   a forged one never settles anything; a B2C result confirms or fails a payout;
2. queries payments whose callback has not come, and gives up on them after the deadline;
3. finishes trades a crash left half-opened;
4. settles paid trades and cancels failed ones on chain, as many per transaction as fit;
5. pays sellers by B2C, with the trade id as OriginatorConversationID, so a retry after a crash
   is refused by Daraja as a duplicate instead of paying twice;
6. asks Daraja about payouts whose result has not come.

After a crash the same rounds pick up where the ledger says each trade stands; anything whose
outcome on chain is unknown is asked of the chain (the trade account exists until it is settled
or cancelled).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from nishati_client.chain import cluster_time, fits_in_packet
from nishati_client.errors import AccountNotFound, NishatiClientError
from nishati_client.program import NishatiClient
from nishati_client.trading import Trade
from nishati_oracle.core.metrics import Metrics
from nishati_oracle.core.settings import OracleSettings
from nishati_oracle.trading.gateway import (
    Delivery,
    Gateway,
    Payment,
    PaymentStatus,
    PayoutOutcome,
)
from nishati_oracle.trading.ledger import (
    CallbackKind,
    Ledger,
    StoredCallback,
    TradeRecord,
    TradeState,
)
from nishati_oracle.trading.vault import PhoneVault

log = logging.getLogger(__name__)

# A callback for a CheckoutRequestID nobody knows may belong to a push whose answer is still on
# its way (or was lost in a crash): it is kept this long for a trade to claim it.
ORPHAN_GRACE_SECS = 120.0
# A callback that has to wait is looked at again after a second, then less and less often: a
# flood of callbacks nobody knows must not keep the worker from real ones. (A trade that learns
# its CheckoutRequestID releases its waiting callback at once.)
CALLBACK_RETRY_SECS = 1.0
MAX_CALLBACK_WAIT_SECS = 30.0
CALLBACKS_PER_ROUND = 64
# Shortest time between rounds: callbacks arriving together are handled, and their trades
# settled, together.
ROUND_GAP_SECS = 0.05
# Backoff between queries of one payment or payout: doubling, capped.
MAX_BACKOFF_SECS = 60.0


@dataclass(frozen=True)
class CallbackUrls:
    payment: str
    payout_result: str
    payout_timeout: str


def receipt_hash(trade: TradeRecord) -> bytes:
    """What the chain records of the payment: a hash of the M-Pesa receipt (or, when only the
    STK Query confirmed it, of the CheckoutRequestID)."""
    reference = trade.mpesa_receipt or trade.checkout_request_id or trade.id
    return hashlib.sha256(b"nishati-receipt:" + reference.encode()).digest()


def backoff(queries: int) -> float:
    return float(min(MAX_BACKOFF_SECS, 2.0 ** min(queries, 6)))


class PaymentWorker:
    def __init__(
        self,
        settings: OracleSettings,
        ledger: Ledger,
        client: NishatiClient,
        oracle: Keypair,
        vault: PhoneVault,
        gateway: Gateway,
        urls: CallbackUrls,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.client = client
        self.oracle = oracle
        self.vault = vault
        self.gateway = gateway
        self.urls = urls
        self.metrics = metrics
        self.clock = clock
        self._wake = asyncio.Event()
        self._whole_round = True

    def wake(self) -> None:
        """Something changed for a trade: a whole round soon."""
        self._whole_round = True
        self._wake.set()

    def callback_arrived(self) -> None:
        """A callback was stored: a round for callbacks soon (the rest follows if one of them
        moves a trade), so a flood of callbacks does not make every round a whole one."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Rounds until ``stop``; a failing round is logged and tried again next time."""
        # After a restart, trades may have lost their push's answer: let callbacks find them.
        await self.ledger.release_callbacks()
        last_whole = -math.inf
        while not stop.is_set():
            whole = self._whole_round or (
                time.monotonic() - last_whole >= self.settings.payments.payment_worker_interval_secs
            )
            self._whole_round = False
            try:
                if await self.handle_callbacks() or whole:
                    last_whole = time.monotonic()
                    await self.run_rest()
            except Exception:
                log.exception("payment round failed; retrying next round")
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
            await asyncio.wait(
                waits,
                timeout=self.settings.payments.payment_worker_interval_secs,
                return_when="FIRST_COMPLETED",
            )
            for w in waits:
                w.cancel()
            await asyncio.sleep(ROUND_GAP_SECS)
            self._wake.clear()

    async def run_rest(self) -> None:
        """Everything but the callbacks."""
        await self.query_payments()
        await self.finish_created()
        await self.close_on_chain()
        await self.pay_sellers()
        await self.check_payouts()

    async def _later(self, trade: TradeRecord, wait: float | None = None) -> None:
        """Looks at the trade again after ``wait`` (by default, backing off with each try)."""
        wait = backoff(trade.queries) if wait is None else wait
        await self.ledger.update(
            trade.id, trade.state, queries=trade.queries + 1, next_check_at=self.clock() + wait
        )

    # 1. Callbacks

    async def handle_callbacks(self) -> int:
        """The callbacks due, with their trades looked up together; what they leave to do is
        recorded in one transaction. Returns how many were acted on (not left waiting)."""
        pending = await self.ledger.pending_callbacks(CALLBACKS_PER_ROUND)
        if not pending:
            return 0
        # An STK callback's key is its CheckoutRequestID: its trade is found without opening
        # it. Read with the trades it could claim, in one snapshot: were the trades waiting
        # for a push answer read apart, a push answered in between would have its callback
        # parked for the grace period after the desk's release had already come and gone.
        stk = [c.key for c in pending if c.kind is CallbackKind.stk]
        known, unclaimed = await self.ledger.claimants(stk) if stk else ({}, [])
        # A payout's key is its trade's id (a status result's is not: those are looked up alone).
        paying = await self.ledger.get_many(
            [c.key for c in pending if c.kind is not CallbackKind.stk]
        )
        touched = 0
        done: list[tuple[int, str]] = []
        later: list[tuple[int, float]] = []
        for callback in pending:
            trade = known.get(callback.key)
            if self._unclaimable(callback, trade, unclaimed):
                # Nothing could claim it yet: it waits, unopened, until a trade learns its
                # CheckoutRequestID or loses its push's answer (both release it), or its grace
                # ends. A flood of callbacks nobody knows costs nothing more.
                later.append((callback.id, callback.received_at + ORPHAN_GRACE_SECS))
                continue
            touched += 1
            outcome = await self._on_callback(
                callback, trade or paying.get(callback.key), unclaimed
            )
            # Answering callbacks comes first: never hold the event loop for a whole batch.
            await asyncio.sleep(0)
            if outcome is None:
                wait = min(MAX_CALLBACK_WAIT_SECS, CALLBACK_RETRY_SECS * 2**callback.attempts)
                later.append((callback.id, self.clock() + wait))
            else:
                done.append((callback.id, outcome))
        await self.ledger.settle_callbacks(done, later)
        if len(pending) == CALLBACKS_PER_ROUND:
            # More may be due: the next round comes after the gap, not on the next callback or
            # the interval. Parking a backlog of callbacks nobody knows counts as no work, and a
            # fresh callback of a real trade is in line behind it.
            self._wake.set()
        return touched

    def _unclaimable(
        self, callback: StoredCallback, trade: TradeRecord | None, unclaimed: list[TradeRecord]
    ) -> bool:
        young = self.clock() - callback.received_at < ORPHAN_GRACE_SECS
        return callback.kind is CallbackKind.stk and trade is None and young and not unclaimed

    async def _on_callback(
        self, callback: StoredCallback, trade: TradeRecord | None, unclaimed: list[TradeRecord]
    ) -> str | None:
        if callback.kind is not CallbackKind.stk:
            timeout = callback.kind is CallbackKind.payout_timeout
            outcome = self.gateway.parse_payout(self._body(callback), timeout)
            if trade is None or trade.id != outcome.conversation_id:
                trade = await self.ledger.get(outcome.conversation_id)
            return await self._on_payout(outcome, trade, timeout)
        try:
            payment = self.gateway.parse_payment(self._body(callback))
        except ValueError as e:
            log.warning("STK callback %s is malformed: %s", callback.key, e)
            return f"malformed: {e}"
        return await self._on_payment(callback, payment, trade, unclaimed)

    def _body(self, callback: StoredCallback) -> object:
        return json.loads(self.vault.decrypt(callback.body))

    async def _on_payment(
        self,
        callback: StoredCallback,
        payment: Payment,
        trade: TradeRecord | None,
        unclaimed: list[TradeRecord],
    ) -> str | None:
        """None keeps the callback for a later round."""
        if trade is None:
            trade = await self._claim(payment, unclaimed)
        if trade is None:
            if self.clock() - callback.received_at < ORPHAN_GRACE_SECS:
                return None
            if payment.result_code == 0:
                log.error(
                    "payment %s matches no trade: refund by hand", payment.checkout_request_id
                )
            return "unmatched"
        if trade.state not in (TradeState.opened, TradeState.stk_sent):
            await self.ledger.note(trade.id, trade.state, f"late callback {payment.result_code}")
            return f"late: trade {trade.state}"
        status = await self.gateway.query(payment.checkout_request_id)
        if status.pending:
            return None
        return await self._decide(trade, status, payment)

    async def _claim(self, payment: Payment, unclaimed: list[TradeRecord]) -> TradeRecord | None:
        """A successful payment for a push whose answer never reached us (a crash or timeout
        mid-request) finds its trade by phone and amount."""
        if payment.result_code != 0 or payment.phone is None or payment.amount_kes is None:
            return None
        phone_hash = self.vault.commitment(payment.phone).hex()
        for trade in unclaimed:
            if trade.buyer_phone_hash == phone_hash and trade.amount_kes == payment.amount_kes:
                claimed = await self.ledger.move(
                    trade.id,
                    [TradeState.opened],
                    TradeState.stk_sent,
                    f"claimed by callback {payment.checkout_request_id}",
                    checkout_request_id=payment.checkout_request_id,
                )
                if claimed:
                    return await self.ledger.get(trade.id)
        return None

    async def _decide(
        self, trade: TradeRecord, status: PaymentStatus, payment: Payment | None
    ) -> str:
        """Acts on a final STK Query answer; a callback only adds the receipt, and only when
        its amount and phone are the trade's."""
        code = status.result_code
        if code == 0:
            receipt = None
            detail = "paid (STK Query)"
            if payment is not None and payment.result_code == 0:
                if self._matches(trade, payment):
                    receipt = payment.receipt
                    detail = f"paid, receipt {receipt}"
                else:
                    detail = "paid (STK Query); the callback's amount or phone did not match"
            moved = await self.ledger.move(
                trade.id,
                [TradeState.opened, TradeState.stk_sent],
                TradeState.paid,
                detail,
                mpesa_receipt=receipt,
                result_code=0,
                result_desc=status.detail[:200],
            )
            return "paid" if moved else "already decided"
        moved = await self.ledger.move(
            trade.id,
            [TradeState.opened, TradeState.stk_sent],
            TradeState.cancelling,
            f"payment failed: {code} {status.detail}",
            result_code=code,
            result_desc=status.detail[:200],
        )
        return f"failed {code}" if moved else "already decided"

    def _matches(self, trade: TradeRecord, payment: Payment) -> bool:
        phone_ok = (
            payment.phone is not None
            and self.vault.commitment(payment.phone).hex() == trade.buyer_phone_hash
        )
        return phone_ok and payment.amount_kes == trade.amount_kes

    async def _on_payout(
        self, outcome: PayoutOutcome, trade: TradeRecord | None, queue_timeout: bool
    ) -> str:
        """Payouts are sent under the trade's id, so even a result that beats our own record of
        the payout finds its trade."""
        if trade is None:
            log.error("payout result %s matches no trade", outcome.conversation_id)
            return "unmatched"
        if outcome.result_code is None:
            if queue_timeout:
                await self.ledger.update(trade.id, trade.state, next_check_at=self.clock())
                await self.ledger.note(trade.id, trade.state, "payout queue timeout: asking status")
            return "not final"
        sent = [TradeState.settled, TradeState.payout_sent]
        if outcome.result_code == 0:
            moved = await self.ledger.move(
                trade.id,
                sent,
                TradeState.payout_confirmed,
                f"seller paid, {outcome.transaction_id}",
                payout_receipt=outcome.transaction_id,
            )
        else:
            moved = await self.ledger.move(
                trade.id,
                sent,
                TradeState.payout_failed,
                f"payout failed: {outcome.result_code} {outcome.result_desc}",
            )
        return f"payout {outcome.result_code}" if moved else f"late: trade {trade.state}"

    # 2. Payments whose callback has not come

    async def query_payments(self) -> None:
        """Asks about payments whose callback is overdue, and gives up on those still open at
        the trade's deadline. The oracle may cancel at any time, so it keeps the deadline by
        its own clock (``give_up_at``): a local validator's clock only moves with its slots."""
        for trade in await self.ledger.due([TradeState.stk_sent, TradeState.opened]):
            if trade.state is TradeState.stk_sent and trade.checkout_request_id is not None:
                status = await self.gateway.query(trade.checkout_request_id)
                if not status.pending:
                    await self._decide(trade, status, None)
                    continue
            if trade.give_up_at is not None and self.clock() > trade.give_up_at:
                await self.ledger.move(
                    trade.id,
                    [trade.state],
                    TradeState.cancelling,
                    "no payment by the deadline",
                )
                continue
            wait = backoff(trade.queries)
            if trade.give_up_at is not None:
                wait = max(0.0, min(wait, trade.give_up_at + 1 - self.clock()))
            await self._later(trade, wait)

    # 3. Trades a crash left between the ledger and the chain

    async def finish_created(self) -> None:
        for trade in await self.ledger.due([TradeState.created]):
            try:
                on_chain = await self.client.trade(Pubkey.from_string(trade.trade_address))
            except AccountNotFound:
                await self.ledger.move(
                    trade.id, [TradeState.created], TradeState.rejected, "never opened on chain"
                )
                continue
            # Opened, but no payment was ever asked for: give the energy back.
            await self.ledger.move(
                trade.id,
                [TradeState.created],
                TradeState.cancelling,
                "opened on chain but never sent for payment",
                deadline=on_chain.deadline,
            )

    # 4. Settle and cancel on chain

    async def close_on_chain(self) -> None:
        ready = await self.ledger.due([TradeState.paid, TradeState.cancelling])
        if not ready:
            return
        chain_now = await cluster_time(self.client.chain)
        closing: list[tuple[TradeRecord, Instruction]] = []
        found = await self.client.trades_at([Pubkey.from_string(t.trade_address) for t in ready])
        for trade, on_chain in zip(ready, found, strict=True):
            if on_chain is None:
                await self._closed_already(trade, chain_now)
                continue
            closing.append((trade, self._close_instruction(trade, on_chain)))
        for group in self._pack(closing):
            await self._close(group)

    def _close_instruction(self, trade: TradeRecord, on_chain: Trade) -> Instruction:
        program = self.client.program
        if trade.state is TradeState.paid:
            return program.trade_settle(
                oracle=self.oracle.pubkey(), trade=on_chain, receipt_hash=receipt_hash(trade)
            )
        return program.trade_cancel(caller=self.oracle.pubkey(), trade=on_chain)

    def _pack(
        self, closing: Sequence[tuple[TradeRecord, Instruction]]
    ) -> list[list[tuple[TradeRecord, Instruction]]]:
        groups: list[list[tuple[TradeRecord, Instruction]]] = []
        for item in closing:
            candidate = [*groups[-1], item] if groups else []
            if candidate and self._fits(candidate):
                groups[-1] = candidate
            else:
                groups.append([item])
        return groups

    def _fits(self, group: Sequence[tuple[TradeRecord, Instruction]]) -> bool:
        return fits_in_packet([ix for _, ix in group], [self.oracle], self.client.chain.policy)

    async def _close(self, group: Sequence[tuple[TradeRecord, Instruction]]) -> None:
        try:
            outcome = await self.client.chain.send([ix for _, ix in group], [self.oracle])
        except NishatiClientError as e:
            if len(group) > 1:
                for item in group:
                    await self._close([item])
                return
            trade = group[0][0]
            self.metrics.settle_batches.labels("failed").inc()
            log.warning("closing trade %s failed: %s", trade.id, e)
            await self._later(trade)
            return
        self.metrics.settle_batches.labels("confirmed").inc()
        for trade, _ in group:
            await self._closed(trade, str(outcome.signature))

    async def _closed(self, trade: TradeRecord, signature: str) -> None:
        if trade.state is TradeState.paid:
            await self.ledger.move(
                trade.id,
                [TradeState.paid],
                TradeState.settled,
                f"trade_settle {signature}",
                chain_signature=signature,
                queries=0,
            )
        else:
            await self.ledger.move(
                trade.id,
                [TradeState.cancelling],
                TradeState.cancelled,
                f"trade_cancel {signature}",
                chain_signature=signature,
            )

    async def _closed_already(self, trade: TradeRecord, chain_now: int) -> None:
        """The trade account is gone. Before its deadline only the oracle can close it, so our
        own earlier transaction landed (its confirmation was lost, or a crash came first). After
        the deadline anyone may cancel it: a paid trade closed that way needs a refund."""
        if trade.state is TradeState.cancelling:
            await self.ledger.move(
                trade.id, [TradeState.cancelling], TradeState.cancelled, "closed on chain"
            )
        elif trade.deadline is not None and chain_now <= trade.deadline:
            await self.ledger.move(
                trade.id, [TradeState.paid], TradeState.settled, "settled on chain", queries=0
            )
        else:
            log.error("trade %s was paid but closed on chain after its deadline", trade.id)
            await self.ledger.move(
                trade.id,
                [TradeState.paid],
                TradeState.refund_due,
                "paid, but cancelled on chain after the deadline: refund the buyer",
            )

    # 5. Pay sellers

    async def pay_sellers(self) -> None:
        for trade in await self.ledger.due([TradeState.settled]):
            result = await self.gateway.pay(
                conversation_id=trade.id,
                phone=self.vault.open(trade.seller_phone),
                amount_kes=trade.payout_kes,
                remarks=f"Solar energy {trade.wh} Wh",
                result_url=self.urls.payout_result,
                timeout_url=self.urls.payout_timeout,
            )
            if result.delivery is Delivery.accepted:
                detail = "payout already submitted" if result.duplicate else "payout sent"
                await self.ledger.move(
                    trade.id,
                    [TradeState.settled],
                    TradeState.payout_sent,
                    f"{detail}: KES {trade.payout_kes}, fee {trade.fee_cents} cents",
                    payout_conversation_id=trade.id,
                    next_check_at=self.clock() + self.settings.payments.payout_status_after_secs,
                )
            elif result.delivery is Delivery.refused:
                await self.ledger.move(
                    trade.id,
                    [TradeState.settled],
                    TradeState.payout_failed,
                    f"payout refused: {result.detail}",
                )
            else:
                await self._later(trade)

    # 6. Payouts whose result has not come

    async def check_payouts(self) -> None:
        for trade in await self.ledger.due([TradeState.payout_sent]):
            await self.gateway.payout_status(
                conversation_id=trade.id,
                transaction_id=trade.payout_receipt,
                result_url=self.urls.payout_result,
                timeout_url=self.urls.payout_timeout,
            )
            await self._later(
                trade, max(self.settings.payments.payout_status_after_secs, backoff(trade.queries))
            )
