"""Paying sellers by B2C once their trade settled, exactly once, and never without an end.

Each attempt at a payout has its own OriginatorConversationID (the trade id, then
``<trade id>-<attempt>``), recorded before it is sent, so a resend after a crash is refused by
Daraja as a duplicate instead of paying twice. Daraja's reply gives the payout a
ConversationID, which is kept too: Daraja's own result samples carry an
OriginatorConversationID it made up, so results are matched on either id
(:func:`~nishati_oracle.daraja.same_request`).

A payout whose result has not come is asked of Transaction Status (the answer names the status
query's ids, which are kept, and the queried payout's), at most ``payout_status_attempts``
times, backing off; then it is ``payout_unknown`` and needs a person. A payout that failed is
paid again under a new id after ``payout_retry_secs`` (doubling), ``payout_attempts`` times in
all; then it is ``payout_failed``. A result that matches no payout is kept a while (its
payout's ConversationID may not be recorded yet), then dropped as unmatched: never asked about
again.
"""

from __future__ import annotations

import structlog

from nishati_oracle.trading.gateway import Delivery, ResultNotice
from nishati_oracle.trading.ledger import TradeRecord, TradeState, backoff
from nishati_oracle.trading.results import ResultPhase, answers

log = structlog.get_logger(__name__)

# Where a payout is on its way, or may be: a result for it is acted on there.
PAYING = (TradeState.settled, TradeState.payout_sent, TradeState.payout_unknown)


def attempt_id(trade_id: str, attempt: int) -> str:
    """The OriginatorConversationID of a payout's ``attempt``: the first is the trade's id."""
    return trade_id if attempt == 0 else f"{trade_id}-{attempt}"


class Payouts(ResultPhase):
    """Moves ``settled`` trades to ``payout_sent``, and those to ``payout_confirmed`` on
    Daraja's result, back to ``settled`` for another attempt when one failed, or to
    ``payout_failed`` / ``payout_unknown`` once the attempts are spent."""

    kind = "payout"

    def answered(self, trade: TradeRecord, notice: ResultNotice) -> bool:
        return answers(trade, notice, trade.payout_ids)

    async def on_result(
        self, notice: ResultNotice, received_at: float, queue_timeout: bool
    ) -> str | None:
        """What came of a B2C result, Transaction Status answer or queue timeout; None keeps
        it for a later round (no trade known for it yet)."""
        trade = await self.find(notice, received_at)
        if not isinstance(trade, TradeRecord):
            return trade
        learnt = notice.queried_conversation_id
        if learnt and trade.payout_conversation_id is None and trade.state in PAYING:
            # A status answer names the payout's ConversationID: later results match on it.
            await self.ledger.update(trade.id, trade.state, payout_conversation_id=learnt)
        if notice.result_code is None:
            if queue_timeout:
                await self.timed_out(trade, [TradeState.payout_sent])
            return "not final"
        if notice.succeeded:
            return await self._confirmed(trade, notice)
        if trade.state not in PAYING:
            return f"late failure: trade {trade.state}"
        return await self._failed(
            trade, f"payout failed: {notice.result_code} {notice.result_desc}"
        )

    async def _confirmed(self, trade: TradeRecord, notice: ResultNotice) -> str:
        how = "Transaction Status" if notice.status else "B2C result"
        moved = await self.ledger.move(
            trade.id,
            PAYING,
            TradeState.payout_confirmed,
            f"seller paid, {notice.receipt} ({how})",
            payout_receipt=notice.receipt,
        )
        if moved:
            return "payout 0"
        if trade.state is TradeState.payout_failed:
            # The ledger gave up on a payout Daraja made: a person must know before a retry.
            self.mismatch(trade, "a payout the ledger holds failed was paid", notice.receipt)
            await self.ledger.move(
                trade.id,
                [TradeState.payout_failed],
                TradeState.payout_confirmed,
                f"seller paid after all, {notice.receipt} ({how}): the ledger said failed",
                payout_receipt=notice.receipt,
            )
            return "mismatch: paid"
        return f"late: trade {trade.state}"

    async def _failed(self, trade: TradeRecord, detail: str) -> str:
        """Another attempt after a backoff, under a new id; or ``payout_failed`` once
        ``payout_attempts`` are spent."""
        attempts = self.settings.payments.payout_attempts
        following = trade.payout_attempts + 1
        if following >= attempts:
            await self.ledger.move(
                trade.id,
                [trade.state],
                TradeState.payout_failed,
                f"{detail}; {attempts} attempts made: needs a person",
            )
            return "payout failed"
        wait = self.settings.payments.payout_retry_secs * 2 ** (following - 1)
        await self.ledger.move(
            trade.id,
            [trade.state],
            TradeState.settled,
            f"{detail}; attempt {following + 1} of {attempts} in {wait:.0f} s",
            payout_attempts=following,
            payout_originator_id=attempt_id(trade.id, following),
            payout_conversation_id=None,
            status_conversation_id=None,
            queries=0,
            next_check_at=self.clock() + wait,
        )
        return "payout retry"

    async def pay_sellers(self) -> None:
        for trade in self.ledger.while_held(await self.ledger.due([TradeState.settled])):
            originator = trade.payout_originator_id or attempt_id(trade.id, trade.payout_attempts)
            if trade.payout_originator_id is None:
                # The attempt's id is recorded before anything is sent.
                await self.ledger.update(trade.id, trade.state, payout_originator_id=originator)
            result = await self.gateway.pay(
                conversation_id=originator,
                phone=self.vault.open(trade.seller_phone),
                amount_kes=trade.payout_kes,
                remarks=f"Solar energy {trade.wh} Wh",
                result_url=self.result_url,
                timeout_url=self.timeout_url,
            )
            if result.delivery is Delivery.accepted:
                detail = "payout already submitted" if result.duplicate else "payout sent"
                await self.ledger.move(
                    trade.id,
                    [TradeState.settled],
                    TradeState.payout_sent,
                    f"{detail}: KES {trade.payout_kes}, fee {trade.fee_cents} cents",
                    payout_conversation_id=result.conversation_id,
                    queries=0,
                    next_check_at=self.clock() + self.settings.payments.payout_status_after_secs,
                )
            elif result.delivery is Delivery.refused:
                fresh = await self.ledger.get(trade.id)
                if fresh is not None and fresh.state is TradeState.settled:
                    await self._failed(fresh, f"payout refused: {result.detail}")
            else:
                await self.ledger.check_later(trade, self.clock())

    async def check_payouts(self) -> None:
        """Asks Transaction Status about payouts whose result has not come, a bounded number
        of times; then the payout needs a person."""
        payments = self.settings.payments
        for trade in self.ledger.while_held(await self.ledger.due([TradeState.payout_sent])):
            if trade.queries >= payments.payout_status_attempts:
                log.error("payout outcome unknown, needs a person", trade_id=trade.id)
                await self.ledger.move(
                    trade.id,
                    [TradeState.payout_sent],
                    TradeState.payout_unknown,
                    f"no result after {trade.queries} Transaction Status queries: needs a person",
                )
                continue
            await self.ask_status(trade, trade.payout_originator_id or trade.id)
            await self.ledger.check_later(
                trade, self.clock(), max(payments.payout_status_after_secs, backoff(trade.queries))
            )
