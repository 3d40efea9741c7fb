"""Paying buyers back, exactly once: a trade paid for but closed on chain without settling
(``refund_due``: cancelled by another after the deadline, or a payment that came after the
cancel) is refunded by Daraja's Reversal API, or by a B2C payment to the buyer where the
payment cannot be reversed.

Exactly once across crashes, by the ledger and Daraja's own guards together:

- The intent is recorded before anything is sent: the move to ``refunding`` names the method
  (and a B2C refund's OriginatorConversationID, ``<trade id>-refund``), and each send is counted
  before it leaves. A restart finds a refund sent but unanswered and sends it again.
- A second send is never a second refund: M-Pesa refuses to reverse a receipt twice
  (``R000001``, taken as refunded: the first went through), and refuses a B2C payment whose
  OriginatorConversationID it has (a duplicate).
- The fallback to B2C is taken only when it cannot be a second refund: after the one reversal
  ever sent was refused, or after M-Pesa said the payment cannot be reversed (``R000002``).
  Any other refusal after more than one send needs a person.
- A refund with no answer is asked of Transaction Status (by the request's ids), a bounded
  number of times; a refund refused twice (reversal and B2C), or whose outcome stays unknown,
  is ``refund_failed`` and needs a person.

Results come to the refund URLs and are stored and deduplicated as every callback is; they are
matched on the request's ids (a reversal's are both Daraja's, from its reply), or, for a
successful reversal whose reply was lost, on the receipt it reversed.
"""

from __future__ import annotations

from enum import StrEnum

import structlog

from nishati_oracle.trading.desk import MIN_PAYOUT_KES
from nishati_oracle.trading.gateway import Delivery, ResultNotice
from nishati_oracle.trading.ledger import TradeRecord, TradeState, backoff
from nishati_oracle.trading.results import ResultPhase, answers, status_answer

log = structlog.get_logger(__name__)

# Where a refund's result is acted on: on its way, or given up on (a late success ends it).
REFUNDING = (TradeState.refunding, TradeState.refund_failed)
NOT_REVERSIBLE = "R000002"


class RefundMethod(StrEnum):
    reversal = "reversal"  # Daraja's Reversal API on the payment's receipt
    b2c = "b2c"  # a B2C payment to the buyer's phone


def refund_id(trade_id: str) -> str:
    """A B2C refund's OriginatorConversationID: one per trade, so a resend is a duplicate."""
    return f"{trade_id}-refund"


class Refunds(ResultPhase):
    """Moves ``refund_due`` trades to ``refunding``, and those to ``refunded`` on Daraja's
    result, or to ``refund_failed`` when the refund was refused twice or stays unknown."""

    kind = "refund"

    def answered(self, trade: TradeRecord, notice: ResultNotice) -> bool:
        """On the request's ids, or, for a successful reversal whose reply was lost, on the
        receipt it reversed."""
        if notice.reversed_receipt is not None and notice.reversed_receipt == trade.mpesa_receipt:
            return trade.refund_method == RefundMethod.reversal
        return answers(trade, notice, trade.refund_ids)

    async def start_refunds(self) -> None:
        """Refunds the trades due: by reversal when the payment's receipt is known, else by
        B2C (a reversal needs the receipt)."""
        for trade in self.ledger.while_held(await self.ledger.due([TradeState.refund_due])):
            method = RefundMethod.reversal if trade.mpesa_receipt else RefundMethod.b2c
            await self._refund_by(
                trade, TradeState.refund_due, method, f"refund by {method}: KES {trade.amount_kes}"
            )

    async def _refund_by(
        self, trade: TradeRecord, expected: TradeState, method: RefundMethod, detail: str
    ) -> None:
        """Records the refund's method (and a B2C refund's id) before anything is sent, then
        sends it."""
        moved = await self.ledger.move(
            trade.id,
            [expected],
            TradeState.refunding,
            detail,
            refund_method=method,
            refund_originator_id=refund_id(trade.id) if method is RefundMethod.b2c else None,
            refund_conversation_id=None,
            refund_accepted_at=None,
            status_conversation_id=None,
            queries=0,
        )
        fresh = await self.ledger.get(trade.id) if moved else None
        if fresh is not None:
            await self._send(fresh)

    async def check_refunds(self) -> None:
        """Sends again a refund whose answer was lost, and asks Transaction Status about one
        Daraja took but has not answered; each a bounded number of times."""
        payments = self.settings.payments
        for trade in self.ledger.while_held(await self.ledger.due([TradeState.refunding])):
            if trade.refund_accepted_at is None:
                # Bounded by every send of the refund: ``queries`` also counts the Transaction
                # Status queries before Daraja said it had no such refund.
                if trade.refund_attempts >= payments.refund_attempts:
                    await self._give_up(
                        trade, f"no answer from Daraja to {trade.refund_attempts} sends"
                    )
                else:
                    await self._send(trade)
                continue
            if trade.queries >= payments.payout_status_attempts:
                await self._give_up(
                    trade, f"no result after {trade.queries} Transaction Status queries"
                )
                continue
            await self.ask_about(trade)
            await self.ledger.check_later(
                trade, self.clock(), max(payments.payout_status_after_secs, backoff(trade.queries))
            )

    async def _send(self, trade: TradeRecord) -> None:
        """One send of the refund, counted before it leaves (a crash leaves it counted)."""
        sent = trade.refund_attempts + 1
        now = self.clock()
        await self.ledger.update(
            trade.id,
            TradeState.refunding,
            refund_attempts=sent,
            queries=trade.queries + 1,
            next_check_at=now + max(self.settings.payments.payout_status_after_secs, backoff(sent)),
        )
        if trade.refund_method == RefundMethod.reversal:
            await self._reverse(trade, sent)
        else:
            await self._pay_back(trade)

    async def _reverse(self, trade: TradeRecord, sent: int) -> None:
        assert trade.mpesa_receipt is not None
        asked = await self.gateway.reverse(
            receipt=trade.mpesa_receipt,
            amount_kes=trade.amount_kes,
            result_url=self.result_url,
            timeout_url=self.timeout_url,
        )
        if asked.delivery is Delivery.accepted:
            await self._accepted(trade, asked.originator_conversation_id, asked.conversation_id)
        elif asked.delivery is Delivery.refused:
            if sent == 1:
                await self._by_b2c(trade, f"reversal refused: {asked.detail}")
            else:
                await self._give_up(trade, f"reversal refused after {sent} sends: {asked.detail}")

    async def _pay_back(self, trade: TradeRecord) -> None:
        assert trade.refund_originator_id is not None
        if trade.amount_kes < MIN_PAYOUT_KES:
            await self._give_up(trade, f"KES {trade.amount_kes} is below B2C's minimum")
            return
        result = await self.gateway.pay(
            conversation_id=trade.refund_originator_id,
            phone=self.vault.open(trade.buyer_phone),
            amount_kes=trade.amount_kes,
            remarks="Refund: solar energy not delivered",
            result_url=self.result_url,
            timeout_url=self.timeout_url,
        )
        if result.delivery is Delivery.accepted:
            await self._accepted(trade, trade.refund_originator_id, result.conversation_id)
        elif result.delivery is Delivery.refused:
            await self._give_up(trade, f"B2C refund refused: {result.detail}")

    async def _accepted(
        self, trade: TradeRecord, originator: str | None, conversation: str | None
    ) -> None:
        now = self.clock()
        await self.ledger.move(
            trade.id,
            [TradeState.refunding],
            TradeState.refunding,
            f"{trade.refund_method} accepted by Daraja",
            refund_originator_id=originator or trade.refund_originator_id,
            refund_conversation_id=conversation,
            refund_accepted_at=now,
            queries=0,
            next_check_at=now + self.settings.payments.payout_status_after_secs,
        )

    async def _by_b2c(self, trade: TradeRecord, why: str) -> None:
        """Falls back to a B2C payment to the buyer (the reversal was refused, and no other
        reversal of the payment can be on its way)."""
        await self._refund_by(
            trade, TradeState.refunding, RefundMethod.b2c, f"{why}; refund by b2c"
        )

    async def _give_up(self, trade: TradeRecord, why: str) -> None:
        log.error("refund failed, needs a person", trade_id=trade.id, reason=why)
        await self.ledger.move(
            trade.id,
            [TradeState.refunding],
            TradeState.refund_failed,
            f"{why}: needs a person"[:300],
        )

    async def ask_about(self, trade: TradeRecord) -> None:
        """Transaction Status of the trade's refund, by its OriginatorConversationID."""
        originator = trade.refund_originator_id or trade.refund_conversation_id
        if originator is not None:
            await self.ask_status(trade, originator)

    async def on_result(
        self, notice: ResultNotice, received_at: float, queue_timeout: bool
    ) -> str | None:
        """What came of a reversal or B2C refund result, a Transaction Status answer about
        one, or a queue timeout; None keeps it for a later round."""
        trade = await self.find(notice, received_at, notice.reversed_receipt)
        if not isinstance(trade, TradeRecord):
            return trade
        if trade.state not in REFUNDING:
            return f"late: trade {trade.state}"
        if notice.result_code is None:
            if queue_timeout:
                await self.timed_out(trade, [TradeState.refunding])
            return "not final"
        if status_answer(trade, notice) or notice.status:
            return await self._status_answered(trade, notice)
        if notice.succeeded or notice.already_reversed:
            return await self._refunded(trade, notice)
        if trade.state is TradeState.refund_failed:
            return "late failure"
        detail = f"{trade.refund_method} failed: {notice.result_code} {notice.result_desc}"
        if trade.refund_method == RefundMethod.reversal:
            if trade.refund_attempts == 1 or notice.result_code == NOT_REVERSIBLE:
                await self._by_b2c(trade, detail)
                return "reversal refused"
            await self._give_up(trade, f"{detail}, after {trade.refund_attempts} sends")
            return "refund failed"
        await self._give_up(trade, detail)
        return "refund failed"

    async def _status_answered(self, trade: TradeRecord, notice: ResultNotice) -> str:
        """Transaction Status on the refund: completed is refunded; anything else final means
        Daraja has no such refund made, and it is sent again."""
        if notice.succeeded:
            return await self._refunded(trade, notice)
        if trade.state is TradeState.refund_failed:
            return "late status"
        # It never arrived, or failed: sending it again is safe (a B2C refund under the same
        # id; a reversal of the same receipt, which M-Pesa makes at most once), and never a
        # fallback, which a reversal still queued could make a second refund.
        await self.ledger.move(
            trade.id,
            [TradeState.refunding],
            TradeState.refunding,
            f"Daraja has no such {trade.refund_method} ({notice.result_code}): sending it again",
            refund_accepted_at=None,
        )
        return "refund unknown to daraja: sent again"

    async def _refunded(self, trade: TradeRecord, notice: ResultNotice) -> str:
        how = "already reversed (R000001)" if notice.already_reversed else notice.receipt
        if trade.state is TradeState.refund_failed:
            self.mismatch(trade, "a refund the ledger holds failed was made", notice.receipt)
        await self.ledger.move(
            trade.id,
            REFUNDING,
            TradeState.refunded,
            f"refunded by {trade.refund_method}: KES {trade.amount_kes}, {how}",
            refund_receipt=notice.receipt,
        )
        return "refunded"
