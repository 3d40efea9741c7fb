"""What happens to a request: the outcome and how its callback is delivered.

Without rules, the last two digits of the phone pick the outcome (tables below), so a demo or a
test gets any outcome by choosing the number. Rules set through ``POST /simulator/scenario``
override the table: per phone or for any phone, for the next N requests or until cleared.
Rules for a phone come before rules for any phone; among equals the oldest matches first, so
queued rules with ``count`` play out in order.

Rules also produce what the tables do not: ``pending_reply`` ``"4999"`` makes STK Query answer
HTTP 200 ``ResultCode`` 4999 "still under processing" (rather than HTTP 500 ``500.001.1001``)
until the customer decides (``decide_after_secs``); ``result_ids`` ``"daraja"`` gives a B2C
payout's result, queue timeout and Transaction Status an ``OriginatorConversationID`` Daraja
made up, as Daraja's own result samples show (the ``ConversationID`` stays the reply's). Rules
with ``api`` ``"reversal"`` steer the Reversal API (``result_code`` ``"R000001"``, ``11``, ...,
``queue_timeout``, ``paid_despite_timeout``: reversed all the same); without one a reversal of a
paid STK Push succeeds, of anything else ends in ``R000002``, and of a reversed one in
``R000001``. The phone of a reversal rule is the original payer's.

STK Push, by the last two digits of ``PhoneNumber``:

====  =========================================================
  32  1032 cancelled by the user
  37  1037 phone unreachable
  01  2001 wrong PIN
  11  1 insufficient balance
  17  17 same amount to the same customer within 2 minutes
  19  1019 expired
  25  1025 prompt too long
  28  2028 TransactionType not allowed for the shortcode
  90  success, callback sent twice (``duplicate``)
  91  success, callback never sent (``drop``)
  92  success, callback sent ``long_delay_secs`` late (``delay``)
  93  success, callback sent before the push is answered (``early``)
  94  success, callback held until a later one is sent (``reorder``)
 else  success (the sandbox number 254708374149 pays)
====  =========================================================

B2C, by the last two digits of ``PartyB``:

====  =========================================================
  01  2001 initiator information invalid
  40  2040 receiver is not a registered M-Pesa customer
  11  1 insufficient funds in the utility account
  90  success, result sent twice
  91  success, result never sent
  96  queue timeout to QueueTimeOutURL; the payout completed
  97  queue timeout to QueueTimeOutURL; the payout was not made
 else  success
====  =========================================================
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Api(StrEnum):
    stk = "stk"
    b2c = "b2c"
    reversal = "reversal"


PendingReply = Literal["500.001.1001", "4999"]
ResultIds = Literal["ours", "daraja"]


class Delivery(StrEnum):
    """How a callback travels."""

    normal = "normal"
    duplicate = "duplicate"  # sent twice
    delay = "delay"  # sent long_delay_secs after the outcome
    reorder = "reorder"  # held, then sent right after the next callback
    drop = "drop"  # never sent (the outcome stands: a query shows it)
    early = "early"  # STK: sent before the push request is answered


STK_RESULTS: dict[int, str] = {
    0: "The service request is processed successfully.",
    1: "The balance is insufficient for the transaction.",
    17: "Rule limited.",
    1019: "Transaction has expired.",
    1025: "An error occurred while sending a push request.",
    1032: "Request cancelled by user.",
    1037: "DS timeout user cannot be reached.",
    2001: "The initiator information is invalid.",
    2028: "The request is not permitted according to product assignment.",
}

B2C_RESULTS: dict[int, str] = {
    0: "The service request is processed successfully.",
    1: "The balance is insufficient for the transaction.",
    2001: "The initiator information is invalid.",
    2040: "Credit Party customer type (Unregistered or Registered Customer) can't be supported "
    "by the service.",
    8006: "The security credential is locked.",
}

STK_BY_SUFFIX: dict[str, tuple[int, Delivery]] = {
    "32": (1032, Delivery.normal),
    "37": (1037, Delivery.normal),
    "01": (2001, Delivery.normal),
    "11": (1, Delivery.normal),
    "17": (17, Delivery.normal),
    "19": (1019, Delivery.normal),
    "25": (1025, Delivery.normal),
    "28": (2028, Delivery.normal),
    "90": (0, Delivery.duplicate),
    "91": (0, Delivery.drop),
    "92": (0, Delivery.delay),
    "93": (0, Delivery.early),
    "94": (0, Delivery.reorder),
}


class Plan(BaseModel):
    model_config = ConfigDict(frozen=True)


class B2cPlan(Plan):
    result_code: int
    delivery: Delivery
    queue_timeout: bool = False
    paid_despite_timeout: bool = False
    decide_after_secs: float | None = None  # None: the callback_delay_secs setting
    result_ids: ResultIds | None = None  # None: the b2c_result_ids setting


def _b2c(
    code: int, queue_timeout: bool = False, paid: bool = False, delivery: Delivery = Delivery.normal
) -> B2cPlan:
    return B2cPlan(
        result_code=code, delivery=delivery, queue_timeout=queue_timeout, paid_despite_timeout=paid
    )


B2C_BY_SUFFIX: dict[str, B2cPlan] = {
    "01": _b2c(2001),
    "40": _b2c(2040),
    "11": _b2c(1),
    "90": _b2c(0, delivery=Delivery.duplicate),
    "91": _b2c(0, delivery=Delivery.drop),
    "96": _b2c(0, queue_timeout=True, paid=True),
    "97": _b2c(0, queue_timeout=True, paid=False),
}

REVERSAL_RESULTS: dict[int | str, str] = {
    0: "The service request is processed successfully.",
    "R000001": "The transaction has already been reversed.",
    "R000002": "The OriginalTransactionID is invalid.",
    1: "The balance is insufficient for the transaction.",
    11: "The DebitParty is in an invalid state.",
    21: "The initiator is not allowed to initiate this request.",
    2001: "The initiator information is invalid.",
    2006: "Declined due to account rule: The account status does not allow this transaction.",
    2028: "The request is not permitted according to product assignment.",
    8006: "The security credential is locked.",
}

# The endings that pick no scenario in either table: an ordinary payment and payout. Numbers
# made up for simulated households end in one, so a seller is never refused by chance.
ORDINARY_SUFFIXES: tuple[str, ...] = tuple(
    suffix
    for suffix in (f"{n:02d}" for n in range(100))
    if suffix not in STK_BY_SUFFIX and suffix not in B2C_BY_SUFFIX
)


class ScenarioRule(BaseModel):
    """A rule set through the control API. Unset fields fall back to the suffix table."""

    api: Api = Api.stk
    phone: str | None = Field(default=None, description="12 digits; None: any phone")
    result_code: int | str | None = Field(
        default=None, description="None: from the suffix table; text only for reversals"
    )
    delivery: Delivery | None = None
    queue_timeout: bool | None = Field(default=None, description="B2C: time out in the queue")
    paid_despite_timeout: bool | None = Field(
        default=None, description="B2C queue timeout: was the payout made all the same"
    )
    decide_after_secs: float | None = Field(
        default=None, ge=0, description="Outcome after this long; None: callback_delay_secs"
    )
    pending_reply: PendingReply | None = Field(
        default=None, description="STK: how a query of the undecided payment is answered"
    )
    result_ids: ResultIds | None = Field(
        default=None, description="B2C: whose OriginatorConversationID the result carries"
    )
    count: int | None = Field(default=None, ge=1, description="Next N requests; None: until reset")


class StkPlan(Plan):
    result_code: int
    delivery: Delivery
    decide_after_secs: float | None = None  # None: the callback_delay_secs setting
    pending_reply: PendingReply | None = None  # None: the stk_query_pending setting


class ReversalPlan(Plan):
    result_code: int | str | None = None  # None: from the original (0, R000001 or R000002)
    delivery: Delivery = Delivery.normal
    queue_timeout: bool = False
    paid_despite_timeout: bool = False
    decide_after_secs: float | None = None


class Scenarios:
    """The rules in force; safe to use from the event loop and test threads alike. ``changed``
    is told the rules after every change (the simulator keeps them in its books)."""

    def __init__(
        self,
        rules: list[ScenarioRule] | None = None,
        changed: Callable[[list[ScenarioRule]], None] | None = None,
    ) -> None:
        self._rules: list[ScenarioRule] = list(rules or [])
        self._lock = threading.Lock()
        self._changed = changed

    def _tell(self) -> None:
        if self._changed is not None:
            self._changed([r.model_copy() for r in self._rules])

    def add(self, rule: ScenarioRule) -> None:
        with self._lock:
            self._rules.append(rule)
            self._tell()

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self._tell()

    def rules(self) -> list[ScenarioRule]:
        with self._lock:
            return [r.model_copy() for r in self._rules]

    def _take(self, api: Api, phone: str) -> ScenarioRule | None:
        with self._lock:
            candidates = [r for r in self._rules if r.api is api and r.phone == phone]
            candidates += [r for r in self._rules if r.api is api and r.phone is None]
            if not candidates:
                return None
            rule = candidates[0]
            if rule.count is not None:
                rule.count -= 1
                if rule.count == 0:
                    self._rules.remove(rule)
                self._tell()
            return rule

    def stk(self, phone: str) -> StkPlan:
        code, delivery = STK_BY_SUFFIX.get(phone[-2:], (0, Delivery.normal))
        rule = self._take(Api.stk, phone)
        if rule is None:
            return StkPlan(result_code=code, delivery=delivery)
        return StkPlan(
            result_code=code if not isinstance(rule.result_code, int) else rule.result_code,
            delivery=delivery if rule.delivery is None else rule.delivery,
            decide_after_secs=rule.decide_after_secs,
            pending_reply=rule.pending_reply,
        )

    def b2c(self, phone: str) -> B2cPlan:
        plan = B2C_BY_SUFFIX.get(phone[-2:], _b2c(0))
        rule = self._take(Api.b2c, phone)
        if rule is None:
            return plan
        return B2cPlan(
            result_code=plan.result_code
            if not isinstance(rule.result_code, int)
            else rule.result_code,
            delivery=plan.delivery if rule.delivery is None else rule.delivery,
            queue_timeout=plan.queue_timeout if rule.queue_timeout is None else rule.queue_timeout,
            paid_despite_timeout=plan.paid_despite_timeout
            if rule.paid_despite_timeout is None
            else rule.paid_despite_timeout,
            decide_after_secs=rule.decide_after_secs,
            result_ids=rule.result_ids,
        )

    def reversal(self, phone: str) -> ReversalPlan:
        rule = self._take(Api.reversal, phone)
        if rule is None:
            return ReversalPlan()
        return ReversalPlan(
            result_code=rule.result_code,
            delivery=Delivery.normal if rule.delivery is None else rule.delivery,
            queue_timeout=bool(rule.queue_timeout),
            paid_despite_timeout=bool(rule.paid_despite_timeout),
            decide_after_secs=rule.decide_after_secs,
        )
