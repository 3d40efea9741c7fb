"""Money that needs a person: the trades the worker has given up on (a payout failed every
attempt or stayed unknown, a refund refused twice or unknown, a payment never confirmed nor
refuted, a flagged trade), and what an operator may do with them.

Each action is a compare-and-set on the trade's state, written with its history row and an
audit row naming the operator and their reason (``operator_actions``) in one transaction. The
``nishati-oracle`` command (``cli.py``) and the operator routes (``api.py``,
``/api/v1/operator/...``) both come here.

- **retry** hands the trade back to the worker: a failed payout is paid once more under a new
  OriginatorConversationID (check Daraja first: the daily reconciliation asks about failed
  payouts, and one that was paid is corrected); an unknown payout or refund is asked of
  Transaction Status again (a refund never answered is sent again, which M-Pesa's guards keep
  from refunding twice); an unknown payment is asked of the STK Query again, with a new hold.
  A flagged trade cannot be retried: its account differs from the ledger.
- **close** ends it (``closed``), for what a person settled by hand: a refund made on the
  M-Pesa portal, a payout made another way, a flagged trade looked into.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nishati_oracle.trading.desk import Refusal, TradeRefused
from nishati_oracle.trading.ledger import NEEDS_PERSON, Ledger, TradeRecord, TradeState
from nishati_oracle.trading.payout import attempt_id

# The longest operator name and reason an audit row keeps (the API and the command refuse more).
OPERATOR_CHARS = 100
REASON_CHARS = 300


class Attention:
    def __init__(self, ledger: Ledger, clock: Callable[[], float]) -> None:
        self.ledger = ledger
        self.clock = clock

    async def waiting(self) -> list[TradeRecord]:
        """Every trade that needs a person, oldest first."""
        return await self.ledger.in_states(NEEDS_PERSON)

    async def _waiting(self, trade_id: str) -> TradeRecord:
        trade = await self.ledger.get(trade_id)
        if trade is None:
            raise TradeRefused(Refusal.UnknownTrade, "no trade has that id")
        if trade.state not in NEEDS_PERSON:
            raise TradeRefused(
                Refusal.NotAwaitingAPerson, f"the trade is {trade.state}: nothing to do"
            )
        return trade

    def _retry(self, trade: TradeRecord) -> tuple[TradeState, dict[str, Any]]:
        now = self.clock()
        if trade.state is TradeState.payout_failed:
            attempt = trade.payout_attempts + 1
            return TradeState.settled, {
                "payout_attempts": attempt,
                "payout_originator_id": attempt_id(trade.id, attempt),
                "payout_conversation_id": None,
                "status_conversation_id": None,
                "queries": 0,
            }
        if trade.state is TradeState.payout_unknown:
            return TradeState.payout_sent, {"queries": 0}
        if trade.state is TradeState.refund_failed:
            return TradeState.refunding, {"queries": 0}
        if trade.state is TradeState.payment_unknown:
            return TradeState.stk_sent, {"queries": 0, "give_up_at": now}
        raise TradeRefused(
            Refusal.NotAwaitingAPerson,
            "a flagged trade's account differs from the ledger: look into it, then close it",
        )

    async def retry(self, trade_id: str, operator: str, reason: str) -> TradeRecord:
        trade = await self._waiting(trade_id)
        to, values = self._retry(trade)
        return await self._act(trade, to, "retry", operator, reason, values)

    async def close(self, trade_id: str, operator: str, reason: str) -> TradeRecord:
        trade = await self._waiting(trade_id)
        return await self._act(trade, TradeState.closed, "close", operator, reason, {})

    async def _act(
        self,
        trade: TradeRecord,
        to: TradeState,
        action: str,
        operator: str,
        reason: str,
        values: dict[str, Any],
    ) -> TradeRecord:
        acted = await self.ledger.act(
            trade, to, operator=operator, action=action, reason=reason, **values
        )
        if not acted:
            raise TradeRefused(Refusal.NotAwaitingAPerson, "the trade moved meanwhile: look again")
        moved = await self.ledger.get(trade.id)
        assert moved is not None
        return moved
