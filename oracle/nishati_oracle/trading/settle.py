"""Closing trades on chain: paid ones settled (the escrow goes to the buyer), failed ones
cancelled (the energy back to the offer), as many per transaction as fit a packet; and the trades
a crash left between the ledger and the chain.

The trade account exists until it is settled or cancelled, so the chain refuses a second close,
and a trade whose account is gone is asked of the chain instead of closed again. Its address is
never used again (it comes from the offer's trade counter).

Nothing is settled or cancelled on the say of the account read alone: the worker checks it
against the ledger first (:func:`mismatches`: buyer, energy, total, payment reference, offer)
and refuses to act on one that differs (the trade is ``flagged``, logged and counted); and a
settlement names the buyer, energy and total from the ledger, which the program checks again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import structlog
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from nishati_client.chain import cluster_time, fits_in_packet
from nishati_client.errors import NishatiClientError
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


def mismatches(trade: TradeRecord, on_chain: Trade) -> list[str]:
    """The fields in which the account at the trade's address differs from the ledger's trade
    (none: it is the trade the oracle opened)."""
    expected: dict[str, object] = {
        "buyer": Pubkey.from_string(trade.buyer),
        "wh": trade.wh,
        "total_cents": trade.total_cents,
        "payment_ref_hash": trade.payment_ref_hash,
        "offer": Pubkey.from_string(trade.offer),
        "market": Pubkey.from_string(trade.market),
    }
    if trade.trade_index is not None:
        expected["trade_index"] = trade.trade_index
    return [name for name, value in expected.items() if getattr(on_chain, name) != value]


def cancelled(trade: TradeRecord) -> tuple[TradeState, str]:
    """Where a cancelling trade goes once its cancel lands, and why: ``refund_due`` if the
    STK Query found it paid meanwhile (a payment after the deadline), else ``cancelled``."""
    if trade.result_code == 0:
        return TradeState.refund_due, "paid after the cancel, refund the buyer: "
    return TradeState.cancelled, ""


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
        """Trades a crash (or a lost answer) left ``created``: the account at the recorded
        address tells. Ours (our payment reference) was opened, but no payment was asked for:
        it is cancelled. None, or another trade's (ours was refused: StaleTradeIndex), means it
        never opened: rejected."""
        due = await self.ledger.due([TradeState.created])
        if not due:
            return
        found = await self.client.trades_at([Pubkey.from_string(t.trade_address) for t in due])
        for trade, on_chain in zip(due, found, strict=True):
            if on_chain is None or on_chain.payment_ref_hash != trade.payment_ref_hash:
                detail = "never opened on chain"
                if on_chain is not None:
                    detail += f": index {on_chain.trade_index} holds another trade"
                await self.ledger.move(trade.id, [TradeState.created], TradeState.rejected, detail)
                continue
            wrong = mismatches(trade, on_chain)
            if wrong:
                await self._flag(trade, wrong)
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
        fit (a batch that fails is sent again one trade per transaction); a trade whose account
        is not the one the ledger recorded is flagged instead."""
        ready = await self.ledger.due([TradeState.paid, TradeState.cancelling])
        if not ready:
            return
        closing: list[tuple[TradeRecord, Instruction]] = []
        found = await self.client.trades_at([Pubkey.from_string(t.trade_address) for t in ready])
        # Read once, for the first trade found closed already.
        chain_now: int | None = None
        grace_secs = 0
        for trade, on_chain in zip(ready, found, strict=True):
            if on_chain is None:
                if chain_now is None:
                    chain_now = await cluster_time(self.client.chain)
                    market = await self.client.market(Pubkey.from_string(trade.market))
                    grace_secs = market.config.cancel_grace_secs
                await self._closed_already(trade, chain_now, grace_secs)
                continue
            wrong = mismatches(trade, on_chain)
            if wrong:
                await self._flag(trade, wrong)
                continue
            closing.append((trade, self._close_instruction(trade, on_chain)))
        for group in self._pack(closing):
            await self._close(group)

    async def _flag(self, trade: TradeRecord, fields: list[str]) -> None:
        """Refuses to act on a trade whose account differs from the ledger: flagged for a
        person, logged and counted; nothing is sent for it."""
        self.metrics.trade_mismatches.inc()
        log.error(
            "trade account differs from the ledger, not acting on it",
            trade_id=trade.id,
            market=trade.market,
            household=trade.buyer,
            state=str(trade.state),
            fields=fields,
        )
        await self.ledger.move(
            trade.id,
            [trade.state],
            TradeState.flagged,
            f"the account at {trade.trade_address} differs from the ledger in "
            f"{', '.join(fields)}: nothing sent",
        )

    def _close_instruction(self, trade: TradeRecord, on_chain: Trade) -> Instruction:
        """Settles for what the ledger says was paid (buyer, Wh, total), or cancels."""
        program = self.client.program
        if trade.state is TradeState.paid:
            return program.trade_settle(
                oracle=self.oracle.pubkey(),
                trade=on_chain,
                receipt_hash=receipt_hash(trade),
                buyer=Pubkey.from_string(trade.buyer),
                wh=trade.wh,
                total_cents=trade.total_cents,
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
            to, why = cancelled(trade)
            await self.ledger.move(
                trade.id,
                [TradeState.cancelling],
                to,
                f"{why}trade_cancel {signature}",
                chain_signature=signature,
            )

    async def _closed_already(self, trade: TradeRecord, chain_now: int, grace_secs: int) -> None:
        """The trade account is gone (and its address is never used again). Until its deadline
        and the market's cancel grace after it, only the oracle can close it, so our own
        earlier transaction landed (its confirmation was lost, or a crash came first). After
        that anyone may cancel it: a paid trade closed that way needs a refund."""
        if trade.state is TradeState.cancelling:
            to, why = cancelled(trade)
            await self.ledger.move(trade.id, [TradeState.cancelling], to, f"{why}closed on chain")
        elif trade.deadline is not None and chain_now <= trade.deadline + grace_secs:
            await self.ledger.move(
                trade.id, [TradeState.paid], TradeState.settled, "settled on chain", queries=0
            )
        else:
            log.error(
                "paid trade closed on chain after its deadline and grace, refund the buyer",
                trade_id=trade.id,
                market=trade.market,
                household=trade.buyer,
            )
            await self.ledger.move(
                trade.id,
                [TradeState.paid],
                TradeState.refund_due,
                "paid, but closed on chain after the deadline and its grace: refund the buyer",
            )
