"""What happens to a request: the outcome and how its callback is delivered.

Without rules, the last two digits of the phone pick the outcome (tables below), so a demo or a
test gets any outcome by choosing the number. Rules set through ``POST /simulator/scenario``
override the table: per phone or for any phone, for the next N requests or until cleared.
Rules for a phone come before rules for any phone; among equals the oldest matches first, so
queued rules with ``count`` play out in order.

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
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, Field


class Api(StrEnum):
    stk = "stk"
    b2c = "b2c"


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


@dataclass(frozen=True)
class B2cPlan:
    result_code: int
    delivery: Delivery
    queue_timeout: bool = False
    paid_despite_timeout: bool = False
    decide_after_secs: float | None = None  # None: the callback_delay_secs setting


B2C_BY_SUFFIX: dict[str, B2cPlan] = {
    "01": B2cPlan(2001, Delivery.normal),
    "40": B2cPlan(2040, Delivery.normal),
    "11": B2cPlan(1, Delivery.normal),
    "90": B2cPlan(0, Delivery.duplicate),
    "91": B2cPlan(0, Delivery.drop),
    "96": B2cPlan(0, Delivery.normal, queue_timeout=True, paid_despite_timeout=True),
    "97": B2cPlan(0, Delivery.normal, queue_timeout=True, paid_despite_timeout=False),
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
    result_code: int | None = Field(default=None, description="None: from the suffix table")
    delivery: Delivery | None = None
    queue_timeout: bool | None = Field(default=None, description="B2C: time out in the queue")
    paid_despite_timeout: bool | None = Field(
        default=None, description="B2C queue timeout: was the payout made all the same"
    )
    decide_after_secs: float | None = Field(
        default=None, ge=0, description="Outcome after this long; None: callback_delay_secs"
    )
    count: int | None = Field(default=None, ge=1, description="Next N requests; None: until reset")


@dataclass(frozen=True)
class StkPlan:
    result_code: int
    delivery: Delivery
    decide_after_secs: float | None = None  # None: the callback_delay_secs setting


class Scenarios:
    """The rules in force; safe to use from the event loop and test threads alike."""

    def __init__(self) -> None:
        self._rules: list[ScenarioRule] = []
        self._lock = threading.Lock()

    def add(self, rule: ScenarioRule) -> None:
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

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
            return rule

    def stk(self, phone: str) -> StkPlan:
        code, delivery = STK_BY_SUFFIX.get(phone[-2:], (0, Delivery.normal))
        rule = self._take(Api.stk, phone)
        if rule is None:
            return StkPlan(code, delivery)
        return StkPlan(
            code if rule.result_code is None else rule.result_code,
            delivery if rule.delivery is None else rule.delivery,
            rule.decide_after_secs,
        )

    def b2c(self, phone: str) -> B2cPlan:
        plan = B2C_BY_SUFFIX.get(phone[-2:], B2cPlan(0, Delivery.normal))
        rule = self._take(Api.b2c, phone)
        if rule is None:
            return plan
        return B2cPlan(
            plan.result_code if rule.result_code is None else rule.result_code,
            plan.delivery if rule.delivery is None else rule.delivery,
            plan.queue_timeout if rule.queue_timeout is None else rule.queue_timeout,
            plan.paid_despite_timeout
            if rule.paid_despite_timeout is None
            else rule.paid_despite_timeout,
            rule.decide_after_secs,
        )
