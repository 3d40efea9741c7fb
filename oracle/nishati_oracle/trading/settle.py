"""Closing trades on chain: paid ones settled (the escrow goes to the buyer), failed ones
cancelled (the energy back to the offer), as many per transaction as fit a packet; and the trades
a crash left between the ledger and the chain.

The trade account exists until it is settled or cancelled, so the chain refuses a second close,
and a trade whose account is gone is asked of the chain instead of closed again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import structlog
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from nishati_client.chain import cluster_time, fits_in_packet
from nishati_client.errors import AccountNotFound, NishatiClientError
from nishati_client.program import NishatiClient
from nishati_client.trading import Trade
from nishati_oracle.core.metrics import Metrics
from nishati_oracle.trading.ledger import Ledger, TradeRecord, TradeState

log = structlog.get_logger(__name__)


def receipt_hash(trade: TradeRecord) -> bytes:
    """What the chain records of the payment: a hash of the M-Pesa receipt (or, when only the
    STK Query confirmed it, of the CheckoutRequestID)."""
    reference = trade.mpesa_receipt or trade.checkout_request_id or trade.id
    return hashlib.sha256(b"nishati-receipt:" + reference.encode()).digest()


class Settlements:
    """Moves ``paid`` trades to ``settled`` and ``cancelling`` ones to ``cancelled`` on chain."""

    def __init__(
        self,
        ledger: Ledger,
        client: NishatiClient,
        oracle: Keypair,
        metrics: Metrics,
        clock: Callable[[], float],
    ) -> None:
        self.ledger = ledger
        self.client = client
        self.oracle = oracle
        self.metrics = metrics
        self.clock = clock

    async def finish_created(self) -> None:
        """Trades a crash left ``created``: rejected if never opened on chain, else cancelled."""
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

    async def close_on_chain(self) -> None:
        """Settles the paid trades due and cancels the failed ones, as many per transaction as
        fit (a batch that fails is sent again one trade per transaction)."""
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
            log.warning(
                "closing trade failed", trade_id=trade.id, market=trade.market, error=str(e)
            )
            await self.ledger.check_later(trade, self.clock())
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
            log.error(
                "paid trade closed on chain after its deadline, refund the buyer",
                trade_id=trade.id,
                market=trade.market,
                household=trade.buyer,
            )
            await self.ledger.move(
                trade.id,
                [TradeState.paid],
                TradeState.refund_due,
                "paid, but cancelled on chain after the deadline: refund the buyer",
            )
