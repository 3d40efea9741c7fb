"""The daily reconciliation: the ledger against what Daraja says happened, so that nothing
stays unknown.

Once every ``reconcile_interval_secs`` (the last run is kept in the database, so a restart does
not run it again early, and of several replicas one runs it) the worker asks Daraja about every
payment, payout and refund whose outcome is not final or waits for a person (but those another
replica is acting on now):

- payments still open or unknown (``stk_sent``, ``payment_unknown``), and cancelled trades for
  which a success callback is kept or that were cancelled at the deadline with the payment
  undecided (a PIN typed late, its callback lost): the STK Query (the one lookup Daraja offers by
  CheckoutRequestID), decided at once; a cancelled trade found paid is a mismatch and is
  refunded;
- payouts sent, failed or unknown (``payout_sent``, ``payout_failed``, ``payout_unknown``) and
  refunds on their way or given up on (``refunding``, ``refund_failed``): Transaction Status,
  answered at the result URL, where the answer settles what was unknown, and one that
  contradicts the ledger (a payout or refund it holds failed was made) is a mismatch.

Every mismatch is logged (``ledger and daraja disagree``) and counted
(``nishati_ledger_mismatches_total{kind}``), and the ledger follows Daraja. Each run is recorded
(``reconciliations``: when, how much was asked, the mismatches found while it ran).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from nishati_oracle.core.metrics import Metrics
from nishati_oracle.core.settings import OracleSettings
from nishati_oracle.trading.confirm import Confirmations
from nishati_oracle.trading.gateway import Gateway
from nishati_oracle.trading.ledger import Ledger, TradeState
from nishati_oracle.trading.payout import Payouts
from nishati_oracle.trading.refund import Refunds

log = structlog.get_logger(__name__)

PAYMENTS = (TradeState.stk_sent, TradeState.payment_unknown)
PAYOUTS = (TradeState.payout_sent, TradeState.payout_failed, TradeState.payout_unknown)
REFUNDS = (TradeState.refunding, TradeState.refund_failed)


@dataclass(frozen=True)
class Reconciliation:
    started_at: float
    payments: int
    payouts: int
    refunds: int
    mismatches: int

    @property
    def asked(self) -> int:
        return self.payments + self.payouts + self.refunds


class Reconciler:
    def __init__(
        self,
        settings: OracleSettings,
        ledger: Ledger,
        gateway: Gateway,
        confirmations: Confirmations,
        payouts: Payouts,
        refunds: Refunds,
        metrics: Metrics,
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.gateway = gateway
        self.confirmations = confirmations
        self.payouts = payouts
        self.refunds = refunds
        self.metrics = metrics
        self.clock = clock
        self._next_at: float | None = None

    async def run_if_due(self) -> Reconciliation | None:
        """A reconciliation if the last one started ``reconcile_interval_secs`` ago or more."""
        interval = self.settings.payments.reconcile_interval_secs
        if self._next_at is None:
            last = await self.ledger.last_reconciliation()
            self._next_at = -math.inf if last is None else last + interval
        if self.clock() < self._next_at:
            return None
        started = self.clock()
        begun = await self.ledger.begin_reconciliation(started, started - interval)
        if begun is None:
            # Another replica's reconciliation started since: the next is due after it.
            last = await self.ledger.last_reconciliation()
            self._next_at = started if last is None else last + interval
            return None
        return await self._run(started, begun)

    async def run(self) -> Reconciliation:
        """Asks Daraja about everything not final, now."""
        started = self.clock()
        begun = await self.ledger.begin_reconciliation(started, None)
        assert begun is not None
        return await self._run(started, begun)

    async def _run(self, started: float, reconciliation_id: int) -> Reconciliation:
        self._next_at = started + self.settings.payments.reconcile_interval_secs
        self.metrics.reconciliations.inc()
        payments = mismatches = 0
        for trade in await self.ledger.in_states(PAYMENTS):
            if trade.checkout_request_id is None or not await self.ledger.claim(trade.id):
                continue
            status = await self.gateway.query(trade.checkout_request_id)
            payments += 1
            if not status.pending:
                await self.confirmations.decide(trade, status)
        since = started - 2 * self.settings.payments.reconcile_interval_secs
        for trade in await self.ledger.cancelled_unrefuted(since):
            assert trade.checkout_request_id is not None
            if not await self.ledger.claim(trade.id):
                continue
            status = await self.gateway.query(trade.checkout_request_id)
            payments += 1
            if status.result_code == 0:
                mismatches += 1
                self.metrics.ledger_mismatches.labels("payment").inc()
                log.error(
                    "ledger and daraja disagree: a cancelled trade was paid",
                    trade_id=trade.id,
                    market=trade.market,
                )
                await self.confirmations.paid_late(trade, status)
        payouts = 0
        for trade in await self.ledger.in_states(PAYOUTS):
            if not await self.ledger.claim(trade.id):
                continue
            await self.payouts.ask_status(trade, trade.payout_originator_id or trade.id)
            payouts += 1
        refunds = 0
        for trade in await self.ledger.in_states(REFUNDS):
            if not await self.ledger.claim(trade.id):
                continue
            await self.refunds.ask_about(trade)
            refunds += 1
        for kind, count in (("payment", payments), ("payout", payouts), ("refund", refunds)):
            self.metrics.reconcile_asked.labels(kind).inc(count)
        done = Reconciliation(started, payments, payouts, refunds, mismatches)
        await self.ledger.record_reconciliation(reconciliation_id, done.asked, mismatches)
        log.info(
            "reconciliation asked daraja",
            payments=payments,
            payouts=payouts,
            refunds=refunds,
            mismatches=mismatches,
        )
        return done
