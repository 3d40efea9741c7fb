"""The payment worker: the loop that moves trades on, one phase after another.

The worker only acts on what is stored: a callback is in the ledger before it is looked at, a
trade's state says what is left to do. Every round (and whenever the API has something new) it:

1. handles stored callbacks, each by its phase: an STK callback only hints that the payment's
   STK Query is worth asking now (``confirm``), a B2C result confirms or fails a payout
   (``payout``);
2. queries payments whose callback has not come, and gives up on them after the deadline
   (``confirm``);
3. finishes trades a crash left half-opened (``settle``);
4. settles paid trades and cancels failed ones on chain, as many per transaction as fit
   (``settle``);
5. pays sellers by B2C, again after a failure (``payout``);
6. asks Daraja about payouts whose result has not come (``payout``);
7. refunds buyers who paid for a trade closed without settling, and asks about refunds whose
   result has not come (``refund``);
8. once a day, reconciles the ledger with Daraja (``reconcile``).

After a crash the same rounds pick up where the ledger says each trade stands; anything whose
outcome on chain is unknown is asked of the chain (the trade account exists until it is settled
or cancelled).

Several replicas may run workers on one database: each round acts only on the trades and
callbacks it claimed (``Ledger.due``, ``Ledger.claim``, ``Ledger.claim_callbacks``), and
releases them when it ends; a callback whose trade another replica holds waits a second.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from solders.keypair import Keypair

from nishati_client.program import NishatiClient
from nishati_oracle.core.metrics import Metrics
from nishati_oracle.core.settings import OracleSettings
from nishati_oracle.trading.confirm import LATE_CLAIM_SECS, ORPHAN_GRACE_SECS, Confirmations
from nishati_oracle.trading.gateway import Gateway
from nishati_oracle.trading.ledger import CallbackKind, Ledger, StoredCallback, TradeRecord
from nishati_oracle.trading.payout import Payouts
from nishati_oracle.trading.reconcile import Reconciler
from nishati_oracle.trading.refund import Refunds
from nishati_oracle.trading.settle import Settlements
from nishati_oracle.trading.vault import PhoneVault

log = structlog.get_logger(__name__)

# A callback that has to wait is looked at again after a second, then less and less often: a
# flood of callbacks nobody knows must not keep the worker from real ones. (A trade that learns
# its CheckoutRequestID releases its waiting callback at once.)
CALLBACK_RETRY_SECS = 1.0
MAX_CALLBACK_WAIT_SECS = 30.0
CALLBACKS_PER_ROUND = 64
# Shortest time between rounds: callbacks arriving together are handled, and their trades
# settled, together.
ROUND_GAP_SECS = 0.05


@dataclass(frozen=True)
class CallbackUrls:
    payment: str
    payout_result: str
    payout_timeout: str
    refund_result: str
    refund_timeout: str


class PaymentWorker:
    """Runs the rounds: the callbacks first, then each phase (``confirmations``,
    ``settlements``, ``payouts``) on the trades due."""

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
        self.vault = vault
        self.gateway = gateway
        self.clock = clock
        payments = settings.payments
        self.confirmations = Confirmations(
            ledger, gateway, vault, clock, payments.unconfirmed_hold_secs
        )
        self.settlements = Settlements(ledger, client, oracle, metrics, clock)
        self.payouts = Payouts(
            settings,
            ledger,
            gateway,
            vault,
            urls.payout_result,
            urls.payout_timeout,
            clock,
            metrics,
        )
        self.refunds = Refunds(
            settings,
            ledger,
            gateway,
            vault,
            urls.refund_result,
            urls.refund_timeout,
            clock,
            metrics,
        )
        self.reconciler = Reconciler(
            settings,
            ledger,
            gateway,
            self.confirmations,
            self.payouts,
            self.refunds,
            metrics,
            clock,
        )
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
                log.exception("payment round failed, retrying next round")
            try:
                await self.ledger.release_claims()
            except Exception:
                log.exception("releasing the round's claims failed: they run out instead")
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
        await self.confirmations.query_payments()
        await self.settlements.finish_created()
        await self.settlements.close_on_chain()
        await self.payouts.pay_sellers()
        await self.payouts.check_payouts()
        await self.refunds.start_refunds()
        await self.refunds.check_refunds()
        await self.reconciler.run_if_due()

    async def handle_callbacks(self) -> int:
        """The callbacks due, with their trades looked up together; what they leave to do is
        recorded in one transaction. Returns how many were acted on (not left waiting)."""
        pending = await self.ledger.claim_callbacks(CALLBACKS_PER_ROUND)
        if not pending:
            return 0
        # An STK callback's key is its CheckoutRequestID: its trade is found without opening
        # it. Read with the trades it could claim, in one snapshot: were the trades waiting
        # for a push answer read apart, a push answered in between would have its callback
        # parked for the grace period after the desk's release had already come and gone.
        stk = [c.key for c in pending if c.kind is CallbackKind.stk]
        since = self.clock() - LATE_CLAIM_SECS
        known, unclaimed = await self.ledger.claimants(stk, since) if stk else ({}, [])
        touched = 0
        done: list[tuple[int, str]] = []
        later: list[tuple[int, float]] = []
        for callback in pending:
            trade = known.get(callback.key)
            if self.confirmations.unclaimable(callback, trade, unclaimed):
                # Nothing could claim it yet: it waits, unopened, until a trade learns its
                # CheckoutRequestID or loses its push's answer (both release it), or its grace
                # ends. A flood of callbacks nobody knows costs nothing more.
                later.append((callback.id, callback.received_at + ORPHAN_GRACE_SECS))
                continue
            if trade is not None and not await self.ledger.claim(trade.id):
                # Another replica is acting on its trade: looked at again once it is done.
                later.append((callback.id, self.clock() + CALLBACK_RETRY_SECS))
                continue
            touched += 1
            outcome = await self._on_callback(callback, trade, unclaimed)
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

    async def _on_callback(
        self, callback: StoredCallback, trade: TradeRecord | None, unclaimed: list[TradeRecord]
    ) -> str | None:
        if callback.kind is not CallbackKind.stk:
            # Results are matched to their trade on Daraja's ids, by the phase they answer.
            timeout = callback.kind.timeout
            notice = self.gateway.parse_result(self._body(callback), timeout)
            if callback.kind in (CallbackKind.refund_result, CallbackKind.refund_timeout):
                return await self.refunds.on_result(notice, callback.received_at, timeout)
            return await self.payouts.on_result(notice, callback.received_at, timeout)
        try:
            payment = self.gateway.parse_payment(self._body(callback))
        except ValueError as e:
            log.warning("stk callback malformed", checkout_request_id=callback.key, error=str(e))
            return f"malformed: {e}"
        return await self.confirmations.on_callback(callback, payment, trade, unclaimed)

    def _body(self, callback: StoredCallback) -> object:
        return json.loads(self.vault.decrypt(callback.body))
