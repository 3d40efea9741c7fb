"""What trading needs from M-Pesa, as a small protocol: the Daraja client satisfies it through
:class:`DarajaGateway`, and tests may put anything else behind it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class Delivery(StrEnum):
    """What became of a request whose answer decides whether money may have moved."""

    accepted = "accepted"  # Daraja took it
    refused = "refused"  # Daraja refused it: no money moves, safe to give up
    unknown = "unknown"  # no answer: it may or may not have reached Daraja


@dataclass(frozen=True)
class PushResult:
    delivery: Delivery
    checkout_request_id: str | None = None
    merchant_request_id: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class PaymentStatus:
    """An STK Query answer: ``result_code`` None while the payment is still open."""

    result_code: int | None
    detail: str = ""

    @property
    def pending(self) -> bool:
        return self.result_code is None


@dataclass(frozen=True)
class PayoutResult:
    delivery: Delivery
    duplicate: bool = False
    detail: str = ""


@dataclass(frozen=True)
class Payment:
    """A parsed STK callback."""

    checkout_request_id: str
    result_code: int
    result_desc: str
    amount_kes: int | None
    receipt: str | None
    phone: str | None


@dataclass(frozen=True)
class PayoutOutcome:
    """A parsed B2C result (or transaction status result) for one of our payouts."""

    conversation_id: str
    result_code: int
    result_desc: str
    transaction_id: str | None


class Gateway(Protocol):
    async def push(
        self, *, phone: str, amount_kes: int, reference: str, description: str, callback_url: str
    ) -> PushResult: ...

    async def query(self, checkout_request_id: str) -> PaymentStatus: ...

    async def pay(
        self,
        *,
        conversation_id: str,
        phone: str,
        amount_kes: int,
        remarks: str,
        result_url: str,
        timeout_url: str,
    ) -> PayoutResult: ...

    async def payout_status(
        self, *, conversation_id: str, transaction_id: str | None, result_url: str, timeout_url: str
    ) -> Delivery: ...
