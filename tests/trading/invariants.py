"""What must hold of the money once a trading day has quiesced, judged from three books that
keep each other honest: the chain (energy escrowed and delivered), the oracle's ledger (each
trade's state, amounts and receipts) and the Daraja simulator (what M-Pesa took, paid out and
reversed).

- Every shilling a buyer paid ends as energy delivered or refunded: never both, never twice.
- Every seller is paid once, exactly the trade's total less the market fee, for each trade
  delivered, and never for one that was not.
- No trade is left in a state that is not final, nor in one that waits for a person; a refund
  left to a person (``refund_failed``, or a trade an operator ``closed``) is not lost money but
  is reported.
- The ledger's states and receipts are Daraja's: a payout confirmed is one Daraja paid, a trade
  refunded is one Daraja refunded, each with Daraja's receipt.
- The chain's escrow and the buyers' token balances agree with the ledger.

:func:`check` reads nothing itself: it is given a :class:`Books` snapshot and returns every
:class:`Violation`, each naming its rule, the trade (or payment, payout, offer) and what was
found, so a failing run says which trades broke which rule and why.

A refund is money going back to the buyer on M-Pesa: a reversal of their payment that Daraja
completed, or a B2C payment to their phone under the trade's refund id (``<id>-refund``). A
B2C payment under the trade's id or an attempt's (``<id>-N``) is a payout to its seller.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from nishati_oracle.trading.ledger import FINAL_STATES, NEEDS_PERSON, TradeState
from nishati_oracle.trading.payout import attempt_id
from nishati_oracle.trading.refund import refund_id

# The ledger's states in which the buyer holds the energy: the chain settled the trade.
DELIVERED_STATES = frozenset(
    {
        TradeState.settled,
        TradeState.payout_sent,
        TradeState.payout_confirmed,
        TradeState.payout_failed,
        TradeState.payout_unknown,
    }
)
# Where a buyer's refund is left to a person: not lost, but reported.
REFUND_BY_PERSON = frozenset({TradeState.refund_failed, TradeState.closed})
BASIS_POINTS = 10_000


class Rule(StrEnum):
    """Each thing that must hold, worded as what went wrong."""

    not_final = "trade not in a final state"
    needs_person = "trade waits for a person"
    account_open = "trade account still on chain"
    paid_twice = "buyer paid twice for one trade"
    paid_wrong_amount = "buyer paid other than the trade's total"
    payment_without_trade = "buyer paid for no trade in the ledger"
    receipt_differs = "ledger's M-Pesa receipt is not the payment's"
    lost = "buyer paid, got neither energy nor a refund"
    refund_by_person = "buyer paid, got no energy; the refund is left to a person"
    unknowable = "buyer paid, the oracle never learnt of it (push answer and callback lost)"
    delivered_and_refunded = "buyer got the energy and a refund"
    refunded_twice = "buyer refunded more than once"
    refund_without_payment = "refund with no payment to undo"
    refund_wrong = "refund not of the payment's amount, or not to the buyer's phone"
    refund_receipt_differs = "ledger's refund receipt is not Daraja's"
    refund_state_differs = "ledger's refund state disagrees with Daraja's books"
    delivered_unpaid = "energy delivered, nothing paid"
    delivery_differs = "buyer's tokens on chain differ from the ledger's delivered trades"
    seller_not_paid = "seller not paid for a delivered trade"
    seller_paid_twice = "seller paid more than once for one trade"
    seller_paid_wrong_amount = "seller paid other than total less fee, or to another phone"
    split_wrong = "ledger's payout and fee are not total less fee"
    seller_paid_undelivered = "seller paid for a trade not delivered"
    payout_without_trade = "B2C paid under an id of no trade"
    payout_receipt_differs = "ledger's payout receipt is not Daraja's"
    payout_state_differs = "ledger's payout state disagrees with Daraja's books"
    escrow_reserved = "offer still reserves energy"
    escrow_differs = "offer's escrow differs from the ledger's delivered trades"


# Reported, not failed. ``unknowable``: the known gap of docs/payments.md (Daraja offers no
# lookup by phone, so a payment whose CheckoutRequestID never reached the oracle can only be
# refunded by a person). ``refund_by_person``: the oracle stopped and asked for a person, as it
# must when a refund may already have been made.
TOLERATED = frozenset({Rule.unknowable, Rule.refund_by_person})


@dataclass(frozen=True)
class LedgerTrade:
    id: str
    state: str
    offer: str
    seller: str
    buyer: str
    wh: int
    total_cents: int
    fee_cents: int
    payout_kes: int
    checkout_request_id: str | None
    mpesa_receipt: str | None
    payout_receipt: str | None
    refund_receipt: str | None

    @property
    def amount_kes(self) -> int:
        return self.total_cents // 100

    @property
    def delivered(self) -> bool:
        return self.state in DELIVERED_STATES


@dataclass(frozen=True)
class SimPayment:
    """An STK Push as the simulator's books hold it (``result_code`` None: undecided)."""

    checkout_request_id: str
    phone: str
    amount: int
    result_code: int | None
    receipt: str | None


@dataclass(frozen=True)
class SimPayout:
    """A B2C payment, by the OriginatorConversationID the oracle sent it under."""

    originator_conversation_id: str
    phone: str
    amount: int
    paid: bool
    transaction_id: str


@dataclass(frozen=True)
class SimReversal:
    conversation_id: str
    transaction_id: str  # the receipt of the payment it undoes
    amount: int
    reversed: bool
    receipt: str


@dataclass(frozen=True)
class OfferBooks:
    address: str
    initial_wh: int
    reserved_wh: int
    unreserved_wh: int
    escrow_wh: int  # the tokens the offer's escrow account holds


@dataclass
class Books:
    trades: list[LedgerTrade]
    phones: dict[str, str]  # household address -> phone, buyers and sellers
    held_wh: dict[str, int]  # buyer household -> energy tokens on chain
    open_accounts: set[str]  # ids of trades whose account is still on chain
    offers: list[OfferBooks]
    payments: list[SimPayment]
    payouts: list[SimPayout]
    reversals: list[SimReversal]
    fee_bps: int
    # CheckoutRequestIDs whose every STK callback failed to reach the oracle.
    undelivered: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Violation:
    rule: Rule
    subject: str  # a trade id, or the payment, payout or offer concerned
    detail: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.detail}"


def report(violations: Iterable[Violation], per_rule: int = 12) -> str:
    """The violations grouped by rule, each group with its count and its first ``per_rule``."""
    grouped: dict[Rule, list[Violation]] = defaultdict(list)
    for v in violations:
        grouped[v.rule].append(v)
    lines: list[str] = []
    for rule in Rule:
        found = grouped.get(rule, [])
        if not found:
            continue
        lines.append(f"{rule.name} ({rule.value}): {len(found)}")
        lines += [f"    {v}" for v in found[:per_rule]]
        if len(found) > per_rule:
            lines.append(f"    ... and {len(found) - per_rule} more")
    return "\n".join(lines)


def expected_payout_kes(total_cents: int, fee_bps: int) -> int:
    """docs/payments.md: floor((total - total x fee_bps / 10,000) / 100) whole shillings."""
    return (total_cents - total_cents * fee_bps // BASIS_POINTS) // 100


def check(books: Books) -> list[Violation]:
    """Every rule broken, in the order of :class:`Rule`'s sections: states, buyers, sellers,
    escrow."""
    b2c = _B2c(books)
    found: list[Violation] = []
    found += _states(books)
    found += _Buyers(books, b2c.refunds).judge()
    found += _sellers(books, b2c.payouts)
    found += b2c.found
    found += _escrow(books)
    return found


def _states(books: Books) -> list[Violation]:
    found = []
    for t in books.trades:
        if t.state not in FINAL_STATES:
            found.append(Violation(Rule.not_final, t.id, f"left {t.state}"))
            continue
        if t.state in NEEDS_PERSON and t.state not in REFUND_BY_PERSON:
            found.append(Violation(Rule.needs_person, t.id, f"ended {t.state}"))
        if t.id in books.open_accounts:
            found.append(Violation(Rule.account_open, t.id, f"ended {t.state}"))
    return found


@dataclass
class _B2c:
    """Daraja's B2C payments sorted by the trade whose id they were sent under: its seller's
    payouts (``<id>``, ``<id>-N``) and its buyer's refund (``<id>-refund``)."""

    books: Books
    payouts: dict[str, list[SimPayout]] = field(default_factory=lambda: defaultdict(list))
    refunds: dict[str, list[SimPayout]] = field(default_factory=lambda: defaultdict(list))
    found: list[Violation] = field(default_factory=list)

    def __post_init__(self) -> None:
        ids = {t.id for t in self.books.trades}
        for p in self.books.payouts:
            name = p.originator_conversation_id
            head, _, tail = name.rpartition("-")
            if name in ids:
                self.payouts[name].append(p)
            elif head in ids and name == refund_id(head):
                self.refunds[head].append(p)
            elif head in ids and tail.isdigit() and name == attempt_id(head, int(tail)):
                self.payouts[head].append(p)
            elif p.paid:
                detail = f"KES {p.amount} to {p.phone}, receipt {p.transaction_id}"
                self.found.append(Violation(Rule.payout_without_trade, name, detail))


@dataclass
class _Buyers:
    """Each payment Daraja took, by the trade it paid for (its CheckoutRequestID, or a trade of
    the same phone that never learnt one), and whether it became energy or came back."""

    books: Books
    b2c_refunds: dict[str, list[SimPayout]]
    found: list[Violation] = field(default_factory=list)
    by_checkout: dict[str, LedgerTrade] = field(default_factory=dict)
    trades_of: dict[str, list[LedgerTrade]] = field(default_factory=lambda: defaultdict(list))
    reversals_of: dict[str, list[SimReversal]] = field(default_factory=lambda: defaultdict(list))
    paid_for: dict[str, list[SimPayment]] = field(default_factory=lambda: defaultdict(list))
    refunded: set[str] = field(default_factory=set)  # trades Daraja's books show refunded

    def __post_init__(self) -> None:
        books = self.books
        for t in books.trades:
            if t.checkout_request_id:
                self.by_checkout[t.checkout_request_id] = t
            self.trades_of[books.phones.get(t.buyer, "")].append(t)
        for r in books.reversals:
            if r.reversed:
                self.reversals_of[r.transaction_id].append(r)

    def add(self, rule: Rule, subject: str, detail: str) -> None:
        self.found.append(Violation(rule, subject, detail))

    def judge(self) -> list[Violation]:
        for payment in self.books.payments:
            if payment.result_code == 0:
                self.payment(payment)
        self.refunds_of_nothing()
        self.deliveries()
        return self.found

    def payment(self, p: SimPayment) -> None:
        trade = self.by_checkout.get(p.checkout_request_id)
        unclaimed = [t for t in self.trades_of.get(p.phone, []) if t.checkout_request_id is None]
        if trade is None and not unclaimed:
            detail = f"KES {p.amount} from {p.phone}, receipt {p.receipt}"
            self.add(Rule.payment_without_trade, p.checkout_request_id, detail)
            return
        owner = trade if trade is not None else unclaimed[0]
        self.paid_for[owner.id].append(p)
        if p.amount != owner.amount_kes:
            detail = f"paid KES {p.amount}, total KES {owner.amount_kes}"
            self.add(Rule.paid_wrong_amount, owner.id, detail)
        if trade is not None and trade.mpesa_receipt not in (None, p.receipt):
            detail = f"ledger {trade.mpesa_receipt}, Daraja {p.receipt}"
            self.add(Rule.receipt_differs, trade.id, detail)
        refunds = self.refunds(p, owner, by_b2c=trade is not None)
        if len(refunds) > 1:
            self.add(Rule.refunded_twice, owner.id, f"refunds {', '.join(refunds)}")
        if trade is not None and trade.delivered:
            if refunds:
                detail = f"{trade.state}, refund {refunds[0]}"
                self.add(Rule.delivered_and_refunded, trade.id, detail)
            return
        if refunds:
            self.refunded.add(owner.id)
            if owner.state != TradeState.refunded:
                detail = f"ledger {owner.state}, Daraja refunded {refunds[0]}"
                self.add(Rule.refund_state_differs, owner.id, detail)
            elif owner.refund_receipt not in refunds:
                detail = f"ledger {owner.refund_receipt}, Daraja {', '.join(refunds)}"
                self.add(Rule.refund_receipt_differs, owner.id, detail)
            return
        detail = f"KES {p.amount}, receipt {p.receipt}; trade {owner.state}"
        if trade is None and p.checkout_request_id in self.books.undelivered:
            self.add(Rule.unknowable, owner.id, f"{detail}, never told of the payment")
        elif owner.state in REFUND_BY_PERSON:
            self.add(Rule.refund_by_person, owner.id, detail)
        else:
            self.add(Rule.lost, owner.id, detail)

    def refunds(self, p: SimPayment, owner: LedgerTrade, by_b2c: bool) -> list[str]:
        """The receipts of what undid payment ``p``: reversals of its receipt, and (for the
        payment its trade knows) the trade's B2C refunds, which must be of its amount and to
        its phone."""
        receipts = [r.receipt for r in self.reversals_of.get(p.receipt or "", [])]
        if not by_b2c:
            return receipts
        for b2c in self.b2c_refunds.get(owner.id, []):
            if not b2c.paid:
                continue
            receipts.append(b2c.transaction_id)
            if (b2c.amount, b2c.phone) != (p.amount, p.phone):
                detail = f"B2C KES {b2c.amount} to {b2c.phone}, paid KES {p.amount} from {p.phone}"
                self.add(Rule.refund_wrong, owner.id, detail)
        return receipts

    def refunds_of_nothing(self) -> None:
        """A B2C refund of a trade nobody paid for, a reversal of no payment, or a trade the
        ledger holds refunded that Daraja never refunded."""
        paid = {p.receipt for p in self.books.payments if p.result_code == 0}
        for trade_id, refunds in self.b2c_refunds.items():
            if trade_id in self.paid_for:
                continue
            for b2c in refunds:
                if b2c.paid:
                    detail = f"B2C KES {b2c.amount} to {b2c.phone}, receipt {b2c.transaction_id}"
                    self.add(Rule.refund_without_payment, trade_id, detail)
        for receipt, reversals in self.reversals_of.items():
            if receipt not in paid:
                for r in reversals:
                    detail = f"reversal {r.receipt} of {receipt}"
                    self.add(Rule.refund_without_payment, r.conversation_id, detail)
        for t in self.books.trades:
            if t.state == TradeState.refunded and t.id not in self.refunded:
                detail = f"ledger refunded ({t.refund_receipt}), Daraja made no refund"
                self.add(Rule.refund_state_differs, t.id, detail)

    def deliveries(self) -> None:
        """Each trade paid once, none delivered unpaid, each buyer's tokens what the ledger
        delivered to them."""
        for t in self.books.trades:
            payments = self.paid_for.get(t.id, [])
            if len(payments) > 1:
                receipts = ", ".join(str(p.receipt) for p in payments)
                self.add(Rule.paid_twice, t.id, f"receipts {receipts}")
            if t.delivered and not payments:
                self.add(Rule.delivered_unpaid, t.id, f"{t.wh} Wh, {t.state}")
        for trades in self.trades_of.values():
            buyer = trades[0].buyer
            delivered_wh = sum(t.wh for t in trades if t.delivered)
            held = self.books.held_wh.get(buyer, 0)
            if held != delivered_wh:
                states = ", ".join(f"{t.id} {t.state} {t.wh} Wh" for t in trades)
                detail = f"holds {held} Wh, ledger delivered {delivered_wh} ({states})"
                self.add(Rule.delivery_differs, buyer, detail)


def _sellers(books: Books, payouts: dict[str, list[SimPayout]]) -> list[Violation]:
    found: list[Violation] = []

    def add(rule: Rule, subject: str, detail: str) -> None:
        found.append(Violation(rule, subject, detail))

    for t in books.trades:
        expected = expected_payout_kes(t.total_cents, books.fee_bps)
        if t.payout_kes != expected or t.payout_kes * 100 + t.fee_cents != t.total_cents:
            detail = (
                f"total {t.total_cents} cents: payout KES {t.payout_kes}, fee {t.fee_cents} "
                f"cents; expected KES {expected}"
            )
            add(Rule.split_wrong, t.id, detail)
        mine = payouts.get(t.id, [])
        paid = [p for p in mine if p.paid]
        if not t.delivered:
            for p in paid:
                detail = f"{t.state}, paid KES {p.amount}, receipt {p.transaction_id}"
                add(Rule.seller_paid_undelivered, t.id, detail)
            continue
        if not paid:
            tried = f"{len(mine)} B2C request(s), none paid" if mine else "no B2C request"
            add(Rule.seller_not_paid, t.id, f"{t.state}; {tried}")
        elif len(paid) > 1:
            receipts = ", ".join(f"{p.originator_conversation_id} {p.transaction_id}" for p in paid)
            add(Rule.seller_paid_twice, t.id, f"paid {receipts}")
        seller_phone = books.phones.get(t.seller)
        for p in paid:
            if (p.amount, p.phone) != (t.payout_kes, seller_phone):
                detail = f"paid KES {p.amount} to {p.phone}; payout KES {t.payout_kes}"
                add(Rule.seller_paid_wrong_amount, t.id, f"{detail} to {seller_phone}")
        if len(paid) == 1 and t.payout_receipt != paid[0].transaction_id:
            detail = f"ledger {t.payout_receipt}, Daraja {paid[0].transaction_id}"
            add(Rule.payout_receipt_differs, t.id, detail)
        if bool(paid) != (t.state == TradeState.payout_confirmed):
            daraja = "paid" if paid else "not paid"
            add(Rule.payout_state_differs, t.id, f"ledger {t.state}, Daraja {daraja}")
    return found


def _escrow(books: Books) -> list[Violation]:
    found = []
    for offer in books.offers:
        delivered = sum(t.wh for t in books.trades if t.offer == offer.address and t.delivered)
        if offer.reserved_wh != 0:
            found.append(
                Violation(Rule.escrow_reserved, offer.address, f"{offer.reserved_wh} Wh reserved")
            )
        if offer.unreserved_wh != offer.initial_wh - delivered:
            found.append(
                Violation(
                    Rule.escrow_differs,
                    offer.address,
                    f"{offer.unreserved_wh} Wh left of {offer.initial_wh}; the ledger "
                    f"delivered {delivered}",
                )
            )
        if offer.escrow_wh != offer.initial_wh - delivered:
            found.append(
                Violation(
                    Rule.escrow_differs,
                    offer.address,
                    f"its escrow holds {offer.escrow_wh} Wh of {offer.initial_wh}; the ledger "
                    f"delivered {delivered}",
                )
            )
    return found
