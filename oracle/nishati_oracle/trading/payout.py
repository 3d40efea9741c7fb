"""Paying sellers by B2C once their trade settled, exactly once.

Each payout is sent with the trade id as OriginatorConversationID, so a retry after a crash is
refused by Daraja as a duplicate instead of paying twice, and a result that beats our own record
of the payout still finds its trade. A payout whose result has not come is asked of Transaction
Status, whose answer comes back to the result URL.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from nishati_oracle.core.settings import OracleSettings
from nishati_oracle.trading.gateway import Delivery, Gateway, PayoutOutcome
from nishati_oracle.trading.ledger import Ledger, TradeRecord, TradeState, backoff
from nishati_oracle.trading.vault import PhoneVault

log = structlog.get_logger(__name__)


class Payouts:
    """Moves ``settled`` trades to ``payout_sent``, and those to ``payout_confirmed`` or
    ``payout_failed`` on Daraja's result."""

    def __init__(
        self,
        settings: OracleSettings,
        ledger: Ledger,
        gateway: Gateway,
        vault: PhoneVault,
        result_url: str,
        timeout_url: str,
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.gateway = gateway
        self.vault = vault
        self.result_url = result_url
        self.timeout_url = timeout_url
        self.clock = clock

    async def on_result(
        self, outcome: PayoutOutcome, trade: TradeRecord | None, queue_timeout: bool
    ) -> str:
        """What came of a B2C result (or queue timeout) callback."""
        if trade is None:
            log.error("payout result matches no trade", trade_id=outcome.conversation_id)
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

    async def pay_sellers(self) -> None:
        for trade in await self.ledger.due([TradeState.settled]):
            result = await self.gateway.pay(
                conversation_id=trade.id,
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
                await self.ledger.check_later(trade, self.clock())

    async def check_payouts(self) -> None:
        """Asks Transaction Status about payouts whose result has not come."""
        for trade in await self.ledger.due([TradeState.payout_sent]):
            await self.gateway.payout_status(
                conversation_id=trade.id,
                transaction_id=trade.payout_receipt,
                result_url=self.result_url,
                timeout_url=self.timeout_url,
            )
            await self.ledger.check_later(
                trade,
                self.clock(),
                max(self.settings.payments.payout_status_after_secs, backoff(trade.queries)),
            )
