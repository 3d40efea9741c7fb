"""Confirming payments: a trade is paid when the STK Query says so, never on a callback alone.

An STK callback is only a hint that the query is worth asking now, so a forged one never settles
anything; a callback adds the M-Pesa receipt only when its amount and phone are the trade's.
Payments whose callback has not come are queried on a backoff, and given up on at the deadline.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from nishati_oracle.trading.gateway import Gateway, Payment, PaymentStatus
from nishati_oracle.trading.ledger import (
    CallbackKind,
    Ledger,
    StoredCallback,
    TradeRecord,
    TradeState,
    backoff,
)
from nishati_oracle.trading.vault import PhoneVault

log = structlog.get_logger(__name__)

# A callback for a CheckoutRequestID nobody knows may belong to a push whose answer is still on
# its way (or was lost in a crash): it is kept this long for a trade to claim it.
ORPHAN_GRACE_SECS = 120.0


class Confirmations:
    """Moves opened trades to ``paid`` or ``cancelling`` on the STK Query's final answer."""

    def __init__(
        self, ledger: Ledger, gateway: Gateway, vault: PhoneVault, clock: Callable[[], float]
    ) -> None:
        self.ledger = ledger
        self.gateway = gateway
        self.vault = vault
        self.clock = clock

    def unclaimable(
        self, callback: StoredCallback, trade: TradeRecord | None, unclaimed: list[TradeRecord]
    ) -> bool:
        """Whether nothing could claim the callback yet: an STK callback of no known trade, in
        its grace period, while no trade waits for its push's answer."""
        young = self.clock() - callback.received_at < ORPHAN_GRACE_SECS
        return callback.kind is CallbackKind.stk and trade is None and young and not unclaimed

    async def on_callback(
        self,
        callback: StoredCallback,
        payment: Payment,
        trade: TradeRecord | None,
        unclaimed: list[TradeRecord],
    ) -> str | None:
        """What came of an STK callback; None keeps it for a later round."""
        if trade is None:
            trade = await self._claim(payment, unclaimed)
        if trade is None:
            if self.clock() - callback.received_at < ORPHAN_GRACE_SECS:
                return None
            if payment.result_code == 0:
                log.error(
                    "payment matches no trade, refund by hand",
                    checkout_request_id=payment.checkout_request_id,
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
            await self.ledger.check_later(trade, self.clock(), wait)
