"""What trading needs from M-Pesa, as a small protocol: the Daraja client satisfies it through
:class:`DarajaGateway`, and tests may put anything else behind it."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import structlog

from nishati_oracle.core.settings import OracleSettings
from nishati_oracle.daraja import (
    B2CAlreadySubmitted,
    CallbackInvalid,
    DarajaApiError,
    DarajaClient,
    DarajaConfig,
    DarajaConfigError,
    DarajaError,
    DarajaOutcomeUnknown,
    DarajaRequestInvalid,
    DarajaUnavailable,
    StkQueryPending,
    TokenStore,
    TransactionType,
)
from nishati_oracle.daraja.models import (
    TransactionStatusResult,
    parse_b2c_result,
    parse_queue_timeout,
    parse_reversal_result,
    parse_stk_callback,
    parse_transaction_status_result,
    stk_callback_keys,
)

log = structlog.get_logger(__name__)

# While Daraja is not known to answer, readiness probes start a probe of it (a token renewal)
# at most this often, whatever the probes' own rate.
DARAJA_PROBE_SECS = 30.0


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
    # The MerchantRequestID Daraja's final answer names (the genuine callback carries it too).
    merchant_request_id: str | None = None

    @property
    def pending(self) -> bool:
        return self.result_code is None


@dataclass(frozen=True)
class PayoutResult:
    delivery: Delivery
    duplicate: bool = False
    detail: str = ""
    # The ConversationID Daraja's reply gave (every result for the payout carries it); None
    # for a duplicate, whose reply gives none.
    conversation_id: str | None = None


@dataclass(frozen=True)
class Asked:
    """A request Daraja answers later at its result URL (Transaction Status, a reversal):
    whether it was taken, and the ids its reply gave (the answer carries them)."""

    delivery: Delivery
    originator_conversation_id: str | None = None
    conversation_id: str | None = None
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
    merchant_request_id: str | None = None
    # The phone as shown when Daraja masked it (``2547****149``): not a number, but one to
    # check a known number against.
    phone_shown: str | None = None


@dataclass(frozen=True)
class ResultNotice:
    """A parsed result posted to a result or queue-timeout URL: a B2C result, a reversal
    result, a Transaction Status answer or a queue timeout. ``key`` tells one callback from
    another; ``ids`` are the result's own OriginatorConversationID and ConversationID (for a
    status answer, the status query's: ``queried_ids`` are the queried transaction's);
    ``result_code`` is None when nothing is final yet (a timeout, a pending status)."""

    key: str
    ids: frozenset[str]
    result_code: int | str | None
    result_desc: str
    receipt: str | None  # the transaction's M-Pesa receipt, on success
    status: bool = False  # a Transaction Status answer
    queried_ids: frozenset[str] = frozenset()
    queried_conversation_id: str | None = None  # a status answer: the transaction's
    reversed_receipt: str | None = None  # a successful reversal: the receipt it reversed
    already_reversed: bool = False  # a reversal refused with R000001

    @property
    def succeeded(self) -> bool:
        return self.result_code == 0


class Gateway(Protocol):
    async def close(self) -> None: ...

    def readiness(self) -> str:
        """``ok`` if M-Pesa answered the last time it was called, else ``down: <why>``;
        never waits for M-Pesa (it may start a probe in the background)."""
        ...

    def payment_keys(self, body: object) -> tuple[str, str | None]:
        """An STK callback's CheckoutRequestID and receipt, cheaply; ValueError if absent."""
        ...

    def parse_payment(self, body: object) -> Payment:
        """An STK callback body; ValueError if it is not one."""
        ...

    def parse_result(self, body: object, timeout: bool) -> ResultNotice:
        """A queue-timeout notice if ``timeout``, else a B2C, reversal or Transaction Status
        result; ValueError if the body is not one."""
        ...

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

    async def status(
        self, *, originator_conversation_id: str, result_url: str, timeout_url: str
    ) -> Asked:
        """Transaction Status of a payout or refund by its OriginatorConversationID; the
        answer comes to ``result_url``."""
        ...

    async def reverse(
        self, *, receipt: str, amount_kes: int, result_url: str, timeout_url: str
    ) -> Asked:
        """Reverses a customer payment (its M-Pesa receipt): the money goes back to the
        payer. M-Pesa refuses to reverse a receipt twice, so a resend is safe."""
        ...


def daraja_config(settings: OracleSettings) -> DarajaConfig:
    """The Daraja client's configuration from the oracle's settings."""
    daraja = settings.payments.daraja
    missing = daraja.missing_credentials()
    if missing:
        raise DarajaConfigError(f"payments need {', '.join(missing)}")
    assert daraja.consumer_key is not None
    assert daraja.consumer_secret is not None
    assert daraja.passkey is not None
    return DarajaConfig(
        base_url=settings.payments.daraja_base_url,
        consumer_key=daraja.consumer_key,
        consumer_secret=daraja.consumer_secret,
        shortcode=daraja.shortcode,
        passkey=daraja.passkey,
        transaction_type=TransactionType(daraja.transaction_type),
        initiator_name=daraja.initiator_name,
        initiator_password=daraja.initiator_password,
        certificate=daraja.certificate,
        b2c_shortcode=daraja.b2c_shortcode,
    )


class DarajaGateway:
    """:class:`Gateway` over the Daraja client: its answers become deliveries, so callers
    never guess whether money may have moved."""

    def __init__(
        self,
        config: DarajaConfig,
        clock: Callable[[], float] = time.monotonic,
        token_store: TokenStore | None = None,
    ) -> None:
        self.client = DarajaClient(config, clock=clock, token_store=token_store)
        self.clock = clock
        self._probe: asyncio.Task[None] | None = None
        self._probed_at = -math.inf

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            await asyncio.gather(self._probe, return_exceptions=True)
        await self.client.aclose()

    def readiness(self) -> str:
        seen = self.client.reachability
        if seen.reachable:
            return "ok"
        self._probe_soon()
        if seen.last_failure_at is None:
            return "down: not reached yet"
        return f"down: {seen.last_failure} {self.clock() - seen.last_failure_at:.0f} s ago"

    def _probe_soon(self) -> None:
        """A token renewal in the background (it shows in the reachability), unless one is
        running or ran within DARAJA_PROBE_SECS."""
        running = self._probe is not None and not self._probe.done()
        if running or self.clock() - self._probed_at < DARAJA_PROBE_SECS:
            return
        self._probed_at = self.clock()
        self._probe = asyncio.create_task(self._renew_token())

    async def _renew_token(self) -> None:
        try:
            await self.client.tokens.renew()
        except DarajaError as e:
            log.warning("daraja probe failed", error=str(e))

    async def push(
        self, *, phone: str, amount_kes: int, reference: str, description: str, callback_url: str
    ) -> PushResult:
        try:
            accepted = await self.client.stk_push(
                phone=phone,
                amount=amount_kes,
                account_reference=reference,
                description=description,
                callback_url=callback_url,
            )
        except DarajaOutcomeUnknown as e:
            return PushResult(Delivery.unknown, detail=str(e))
        except (DarajaApiError, DarajaRequestInvalid, DarajaUnavailable) as e:
            # Refused before or by Daraja: no prompt reached the phone.
            return PushResult(Delivery.refused, detail=str(e))
        return PushResult(
            Delivery.accepted, accepted.checkout_request_id, accepted.merchant_request_id
        )

    async def query(self, checkout_request_id: str) -> PaymentStatus:
        try:
            answer = await self.client.stk_query(checkout_request_id)
        except DarajaError as e:
            # Not an answer: ask again later.
            return PaymentStatus(None, f"query failed: {e}")
        if isinstance(answer, StkQueryPending):
            return PaymentStatus(None, "pending")
        return PaymentStatus(answer.result_code, answer.result_desc, answer.merchant_request_id)

    async def pay(
        self,
        *,
        conversation_id: str,
        phone: str,
        amount_kes: int,
        remarks: str,
        result_url: str,
        timeout_url: str,
    ) -> PayoutResult:
        try:
            submitted = await self.client.b2c_payment(
                originator_conversation_id=conversation_id,
                phone=phone,
                amount=amount_kes,
                remarks=remarks,
                result_url=result_url,
                queue_timeout_url=timeout_url,
            )
        except DarajaError as e:
            return PayoutResult(_delivery(e), detail=str(e))
        if isinstance(submitted, B2CAlreadySubmitted):
            return PayoutResult(Delivery.accepted, duplicate=True)
        return PayoutResult(Delivery.accepted, conversation_id=submitted.conversation_id or None)

    async def status(
        self, *, originator_conversation_id: str, result_url: str, timeout_url: str
    ) -> Asked:
        try:
            asked = await self.client.transaction_status(
                result_url=result_url,
                queue_timeout_url=timeout_url,
                originator_conversation_id=originator_conversation_id,
            )
        except DarajaError as e:
            log.warning(
                "transaction status failed",
                originator_conversation_id=originator_conversation_id,
                error=str(e),
            )
            return Asked(Delivery.unknown, detail=str(e))
        return Asked(
            Delivery.accepted,
            asked.originator_conversation_id or None,
            asked.conversation_id or None,
        )

    async def reverse(
        self, *, receipt: str, amount_kes: int, result_url: str, timeout_url: str
    ) -> Asked:
        try:
            accepted = await self.client.reversal(
                transaction_id=receipt,
                amount=amount_kes,
                result_url=result_url,
                queue_timeout_url=timeout_url,
            )
        except DarajaError as e:
            return Asked(_delivery(e), detail=str(e))
        return Asked(
            Delivery.accepted,
            accepted.originator_conversation_id or None,
            accepted.conversation_id or None,
        )

    def payment_keys(self, body: object) -> tuple[str, str | None]:
        return stk_callback_keys(_mapping(body))

    def parse_payment(self, body: object) -> Payment:
        callback = parse_stk_callback(_mapping(body))
        paid = callback.payment
        return Payment(
            checkout_request_id=callback.checkout_request_id,
            result_code=callback.result_code,
            result_desc=callback.result_desc,
            amount_kes=None if paid is None else paid.amount,
            receipt=None if paid is None else paid.receipt,
            phone=None if paid is None else paid.phone,
            merchant_request_id=callback.merchant_request_id,
            phone_shown=None if paid is None else paid.phone_shown,
        )

    def parse_result(self, body: object, timeout: bool) -> ResultNotice:
        return parse_result(body, timeout)


def parse_result(body: object, timeout: bool) -> ResultNotice:
    """A result posted to a result or queue-timeout URL (see :class:`ResultNotice`)."""
    data = _mapping(body)
    if timeout:
        notice = parse_queue_timeout(data)
        key = _key(notice.originator_conversation_id, notice.conversation_id)
        return ResultNotice(key, notice.ids, None, notice.result_desc, None)
    result = data.get("Result")
    parameters = result.get("ResultParameters") if isinstance(result, Mapping) else None
    if _has_parameter(parameters, "TransactionStatus"):
        return _status_notice(parse_transaction_status_result(data))
    if _has_parameter(parameters, "OriginalTransactionID") or _reversal_refusal(result):
        reversal = parse_reversal_result(data)
        return ResultNotice(
            _key(reversal.originator_conversation_id, reversal.conversation_id),
            reversal.ids,
            reversal.result_code,
            reversal.result_desc,
            reversal.transaction_id if reversal.succeeded else None,
            reversed_receipt=reversal.original_transaction_id,
            already_reversed=reversal.already_reversed,
        )
    b2c = parse_b2c_result(data)
    key = _key(b2c.originator_conversation_id, b2c.conversation_id)
    return ResultNotice(key, b2c.ids, b2c.result_code, b2c.result_desc, b2c.receipt)


def _key(originator: str, conversation: str) -> str:
    """A result's key among the callbacks kept: Daraja's ConversationID of the request it
    answers (each request has its own), else its OriginatorConversationID."""
    return conversation or originator


def _status_notice(status: TransactionStatusResult) -> ResultNotice:
    """A Transaction Status answer: final once the transaction is ``Completed`` (0) or the
    query is refused (the transaction is not known, say); ``Pending`` is not final."""
    finished = (status.transaction_status or "").lower()
    final: int | str | None = None
    if status.result_code == 0 and finished == "completed":
        final = 0
    elif status.result_code != 0 or finished == "failed":
        final = status.result_code if status.result_code != 0 else "failed"
    ids = frozenset(i for i in (status.originator_conversation_id, status.conversation_id) if i)
    return ResultNotice(
        _key(status.originator_conversation_id, status.conversation_id),
        ids,
        final,
        status.result_desc,
        status.receipt if final == 0 else None,
        status=True,
        queried_ids=status.queried_ids,
        queried_conversation_id=status.queried_conversation_id,
    )


def _reversal_refusal(result: object) -> bool:
    """A reversal's own refusal codes (``R000001`` already reversed, ``R000002`` no such
    transaction), which a failed reversal result carries without parameters."""
    code = result.get("ResultCode") if isinstance(result, Mapping) else None
    return isinstance(code, str) and code.startswith("R")


def _delivery(error: DarajaError) -> Delivery:
    """What a failed request that moves money tells: refused before or by Daraja (nothing
    moved), or unknown (it may have been processed, or never sent: try again later)."""
    if isinstance(error, (DarajaOutcomeUnknown, DarajaUnavailable)):
        return Delivery.unknown
    if isinstance(error, (DarajaApiError, DarajaRequestInvalid, DarajaConfigError)):
        return Delivery.refused
    return Delivery.unknown


def _mapping(body: object) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise CallbackInvalid("a callback body is a JSON object")
    return body


def _has_parameter(parameters: object, key: str) -> bool:
    if not isinstance(parameters, Mapping):
        return False
    items = parameters.get("ResultParameter")
    items = [items] if isinstance(items, Mapping) else items
    return isinstance(items, list) and any(
        isinstance(i, Mapping) and i.get("Key") == key for i in items
    )
