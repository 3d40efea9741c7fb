"""Confirming payments: a trade is paid when the STK Query says so, never on a callback alone.

An STK callback is only a hint that the query is worth asking now, so a forged one never settles
An STK callback is only a hint that the query is worth asking now, so a forged one never settles
anything. Every distinct callback body for a CheckoutRequestID is kept (a few), so a forged one
arriving first cannot crowd out the genuine one; the receipt recorded is that of the one body
the STK Query confirms: a success for the trade's amount and phone, naming the
MerchantRequestID that Daraja gave the push and named again in its query answer (which is never
shown to API callers). One that comes after the query decided still adds its receipt.
Payments whose callback has not come are queried on a backoff, and given up on at the deadline,
unless a kept success callback the query would confirm is one it can neither confirm nor refute
yet (it is pending, or failing): then the trade is held from the cancel until the query decides,
for at most ``unconfirmed_hold_secs``, after which it is ``payment_unknown`` (a person, and the
daily reconciliation, ask again). A success that comes after the cancel, once the query confirms
it, makes the trade ``refund_due``.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import structlog

from nishati_oracle.daraja import masked_phone_matches
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
# A callback may claim a trade given up on at its deadline without ever learning its
# CheckoutRequestID (a crash took the push's answer) while the trade is younger than this: an
# STK prompt lives minutes, so a late PIN's callback comes well within it.
LATE_CLAIM_SECS = 3_600.0
# Tries at confirming a success callback that came after the cancel before the trade needs a
# person (the callback waits longer each time: at most a few minutes in all).
LATE_CONFIRM_ATTEMPTS = 12
# Where a payment is still open, or its outcome unknown: the STK Query's answer decides it.
UNDECIDED = (TradeState.opened, TradeState.stk_sent, TradeState.payment_unknown)


class Confirmations:
    """Moves opened trades to ``paid`` or ``cancelling`` on the STK Query's final answer."""

    def __init__(
        self,
        ledger: Ledger,
        gateway: Gateway,
        vault: PhoneVault,
        clock: Callable[[], float],
        hold_secs: float,
    ) -> None:
        self.ledger = ledger
        self.gateway = gateway
        self.vault = vault
        self.clock = clock
        self.hold_secs = hold_secs

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
        if (
            trade.state in (TradeState.cancelling, TradeState.cancelled)
            and payment.result_code == 0
        ):
            return await self._paid_after_cancel(callback, payment, trade)
        if trade.state not in (TradeState.opened, TradeState.stk_sent):
            if await self._late_receipt(trade):
                return f"receipt recorded: trade {trade.state}"
            await self.ledger.note(trade.id, trade.state, f"late callback {payment.result_code}")
            return f"late: trade {trade.state}"
        status = await self.gateway.query(payment.checkout_request_id)
        if status.pending:
            return None
        return await self.decide(trade, status)

    async def _paid_after_cancel(
        self, callback: StoredCallback, payment: Payment, trade: TradeRecord
    ) -> str | None:
        """A success callback for a trade given up on: if the STK Query confirms it, the buyer
        paid for energy they will not get, and is refunded (once the cancel has landed)."""
        status = await self.gateway.query(payment.checkout_request_id)
        if status.pending:
            if (
                callback.attempts + 1 < LATE_CONFIRM_ATTEMPTS
                or trade.state is not TradeState.cancelled
            ):
                return None
            moved = await self.ledger.move(
                trade.id,
                [TradeState.cancelled],
                TradeState.payment_unknown,
                "a success callback after the cancel that the STK Query neither confirms nor "
                "refutes: needs a person",
            )
            return "unconfirmed late success" if moved else "already decided"
        if status.result_code != 0:
            await self.ledger.note(
                trade.id, trade.state, f"late success callback refuted: {status.result_code}"
            )
            return f"late: refuted {status.result_code}"
        return await self.paid_late(trade, status)

    async def paid_late(self, trade: TradeRecord, status: PaymentStatus) -> str:
        """Records a payment the STK Query confirmed for a trade being (or) cancelled, with the
        receipt of the kept callback it confirms: a cancelled one is ``refund_due`` now; a
        cancelling one when its cancel lands."""
        receipt, _ = await self._receipt(trade, status)
        log.error(
            "paid after the cancel, refunding the buyer",
            trade_id=trade.id,
            market=trade.market,
            household=trade.buyer,
        )
        detail = f"paid after the cancel{f', receipt {receipt}' if receipt else ''}"
        if trade.state is TradeState.cancelling:
            await self.ledger.update(trade.id, trade.state, mpesa_receipt=receipt, result_code=0)
            await self.ledger.note(trade.id, trade.state, f"{detail}: refunded once cancelled")
            return "paid late: refund once cancelled"
        moved = await self.ledger.move(
            trade.id,
            [TradeState.cancelled],
            TradeState.refund_due,
            f"{detail}: refund the buyer",
            mpesa_receipt=receipt,
            result_code=0,
        )
        return "paid late: refund" if moved else "already decided"

    async def _claim(self, payment: Payment, unclaimed: list[TradeRecord]) -> TradeRecord | None:
        """A successful payment for a push whose answer never reached us (a crash or timeout
        mid-request) finds its trade by phone and amount, even one given up on meanwhile."""
        if payment.result_code != 0 or payment.phone is None or payment.amount_kes is None:
            return None
        phone_hash = self.vault.commitment(payment.phone).hex()
        for trade in unclaimed:
            if trade.buyer_phone_hash == phone_hash and trade.amount_kes == payment.amount_kes:
                # An opened trade waits for this payment; one given up on keeps its state, and
                # the payment, confirmed, is refunded.
                opened = trade.state is TradeState.opened
                claimed = await self.ledger.move(
                    trade.id,
                    [trade.state],
                    TradeState.stk_sent if opened else trade.state,
                    f"claimed by callback {payment.checkout_request_id}",
                    checkout_request_id=payment.checkout_request_id,
                )
                if claimed:
                    return await self.ledger.get(trade.id)
        return None

    async def decide(self, trade: TradeRecord, status: PaymentStatus) -> str:
        """Acts on a final STK Query answer; the callbacks only add the receipt (see the
        module docstring)."""
        code = status.result_code
        if code == 0:
            receipt, detail = await self._receipt(trade, status)
            moved = await self.ledger.move(
                trade.id,
                UNDECIDED,
                TradeState.paid,
                detail,
                mpesa_receipt=receipt,
                result_code=0,
                result_desc=status.detail[:200],
                merchant_request_id=trade.merchant_request_id or status.merchant_request_id,
            )
            return "paid" if moved else "already decided"
        moved = await self.ledger.move(
            trade.id,
            UNDECIDED,
            TradeState.cancelling,
            f"payment failed: {code} {status.detail}",
            result_code=code,
            result_desc=status.detail[:200],
        )
        return f"failed {code}" if moved else "already decided"

    async def _receipt(self, trade: TradeRecord, status: PaymentStatus) -> tuple[str | None, str]:
        """The receipt of the one kept callback the query confirms, and what to record."""
        payments = await self._payments(trade)
        merchant = trade.merchant_request_id or status.merchant_request_id
        receipts = self._confirmed_receipts(trade, merchant, payments)
        if len(receipts) == 1:
            [receipt] = receipts
            return receipt, f"paid, receipt {receipt}"
        if len(receipts) > 1:
            log.warning(
                "callbacks disagree on the receipt",
                trade_id=trade.id,
                market=trade.market,
                receipts=sorted(receipts),
            )
            return None, f"paid (STK Query); {len(receipts)} callbacks confirm it, no receipt kept"
        if any(p.result_code == 0 for p in payments):
            return None, "paid (STK Query); no callback's amount, phone or request matched"
        return None, "paid (STK Query)"

    async def _late_receipt(self, trade: TradeRecord) -> bool:
        """Records the receipt of a trade the query found paid before its callback came."""
        if trade.result_code != 0 or trade.mpesa_receipt is not None:
            return False
        payments = await self._payments(trade)
        receipts = self._confirmed_receipts(trade, trade.merchant_request_id, payments)
        if len(receipts) != 1:
            return False
        [receipt] = receipts
        return await self.ledger.add_receipt(trade.id, receipt, f"receipt {receipt} (callback)")

    async def _payments(self, trade: TradeRecord) -> list[Payment]:
        """Every callback kept for the trade's CheckoutRequestID, parsed (malformed ones left)."""
        if trade.checkout_request_id is None:
            return []
        found = []
        for kept in await self.ledger.callback_bodies(CallbackKind.stk, trade.checkout_request_id):
            try:
                found.append(self.gateway.parse_payment(json.loads(self.vault.decrypt(kept.body))))
            except ValueError:
                continue
        return found

    def _confirmed_receipts(
        self, trade: TradeRecord, merchant: str | None, payments: list[Payment]
    ) -> set[str]:
        """The receipts of the kept callbacks that are the success the query confirmed."""
        return {
            p.receipt
            for p in payments
            if p.receipt is not None and self._confirms(trade, merchant, p)
        }

    def _confirms(self, trade: TradeRecord, merchant: str | None, payment: Payment) -> bool:
        """Whether a callback with a receipt is the success the query confirmed: paid, the
        trade's amount and phone (or a masked phone the trade's agrees with), and the push's
        MerchantRequestID (when one is known)."""
        if payment.phone is not None:
            phone_ok = self.vault.commitment(payment.phone).hex() == trade.buyer_phone_hash
        else:
            shown = payment.phone_shown
            phone_ok = shown is not None and masked_phone_matches(
                shown, self.vault.open(trade.buyer_phone)
            )
        return (
            payment.result_code == 0
            and phone_ok
            and payment.amount_kes == trade.amount_kes
            and (merchant is None or payment.merchant_request_id == merchant)
        )

    async def query_payments(self) -> None:
        """Asks about payments whose callback is overdue, and gives up on those still open at
        the trade's deadline. The oracle may cancel at any time, so it keeps the deadline by
        its own clock (``give_up_at``): a local validator's clock only moves with its slots."""
        due = await self.ledger.due([TradeState.stk_sent, TradeState.opened])
        for trade in self.ledger.while_held(due):
            if trade.state is TradeState.stk_sent and trade.checkout_request_id is not None:
                status = await self.gateway.query(trade.checkout_request_id)
                if not status.pending:
                    await self.decide(trade, status)
                    continue
            if trade.give_up_at is not None and self.clock() > trade.give_up_at:
                if await self._held(trade):
                    continue
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

    async def _held(self, trade: TradeRecord) -> bool:
        """Whether a trade past its deadline is held from the cancel: a success callback is
        kept for it that the STK Query would confirm (its amount, phone and push are the
        trade's, so a forged one holds nothing) and has not decided. Past the hold it needs a
        person."""
        payments = await self._payments(trade)
        if not self._confirmed_receipts(trade, trade.merchant_request_id, payments):
            return False
        assert trade.give_up_at is not None
        now = self.clock()
        if now > trade.give_up_at + self.hold_secs:
            log.error("payment unconfirmed past its hold, needs a person", trade_id=trade.id)
            await self.ledger.move(
                trade.id,
                [trade.state],
                TradeState.payment_unknown,
                "a success callback the STK Query never confirmed nor refuted: needs a person",
            )
            return True
        if trade.updated_at <= trade.give_up_at:
            await self.ledger.note(
                trade.id,
                trade.state,
                "past the deadline with a success callback the STK Query has not confirmed: "
                "held from the cancel",
            )
        await self.ledger.check_later(trade, now)
        return True
