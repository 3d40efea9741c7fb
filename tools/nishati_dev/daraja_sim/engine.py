"""The far side of Daraja: tokens, STK Push payments, B2C payouts, and their callbacks.

All state is in memory and lives on the event loop; ``reset`` forgets it (tokens excepted).
Money is whole shillings (``int``) throughout; only the JSON a callback carries renders some
values as floats, as Daraja does.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hmac
import secrets
import string
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from pydantic import BaseModel

from nishati_dev.daraja_sim.credentials import (
    SecurityCredentialError,
    load_private_key,
    open_credential,
)
from nishati_dev.daraja_sim.fields import (
    IN_PROCESS,
    INVALID_AUTH,
    INVALID_TOKEN,
    MAX_B2C_AMOUNT,
    MAX_STK_AMOUNT,
    MIN_B2C_AMOUNT,
    SPIKE_ARREST,
    DarajaError,
    amount,
    choice,
    invalid,
    msisdn,
    now_nairobi,
    optional_text,
    shortcode,
    text,
    timestamp,
    url,
)
from nishati_dev.daraja_sim.scenarios import (
    B2C_RESULTS,
    STK_RESULTS,
    B2cPlan,
    Delivery,
    Scenarios,
    StkPlan,
)
from nishati_dev.daraja_sim.settings import DarajaSimSettings

TRANSACTION_TYPES = ("CustomerPayBillOnline", "CustomerBuyGoodsOnline")
B2C_COMMANDS = ("BusinessPayment", "SalaryPayment", "PromotionPayment")
IDENTIFIER_TYPES = ("1", "2", "4")
ACCEPTED = "Accept the service request successfully."
QUERY_ACCEPTED = "The service request has been accepted successsfully"  # Daraja's spelling
RECEIVER_NAME = "JOHN DOE"
NOT_FOUND_CODE = "R000001"
NOT_FOUND_DESC = "The transaction receipt number does not exist."
_RECEIPT_CHARS = string.ascii_uppercase + string.digits

CallbackKind = Literal["stk", "b2c_result", "b2c_timeout", "status_result", "status_timeout"]


class DeliveryRecord(BaseModel):
    """One callback: sent (and what the receiver answered), failed to connect, or dropped."""

    kind: CallbackKind
    reference: str
    url: str
    body: dict[str, Any]
    outcome: Literal["delivered", "failed", "dropped"]
    http_status: int | None = None
    error: str | None = None
    at: float


class RequestRecord(BaseModel):
    """One call to a Daraja API, for assertions (the Authorization header is not kept)."""

    method: str
    path: str
    body: Any
    status: int
    response: Any
    at: float


@dataclass
class Callback:
    kind: CallbackKind
    reference: str
    url: str
    body: dict[str, Any]


@dataclass
class StkPayment:
    merchant_request_id: str
    checkout_request_id: str
    phone: str
    amount: int
    account_reference: str
    callback_url: str
    plan: StkPlan
    result_code: int | None = None  # None while the customer is deciding
    receipt: str | None = None
    transaction_date: int | None = None


@dataclass
class Payout:
    originator_conversation_id: str
    conversation_id: str
    phone: str
    amount: int
    command_id: str
    result_url: str
    queue_timeout_url: str
    occassion: str
    plan: B2cPlan
    result_code: int | None = None  # None while pending
    paid: bool = False
    transaction_id: str = ""
    completed_at: datetime.datetime | None = None
    funds_after: int = 0


@dataclass
class Token:
    value: str
    expires_at: float


@dataclass
class State:
    stk: dict[str, StkPayment] = field(default_factory=dict)
    in_process: dict[str, str] = field(default_factory=dict)  # phone -> CheckoutRequestID
    paid_amounts: dict[tuple[str, int], float] = field(default_factory=dict)
    payouts: dict[str, Payout] = field(default_factory=dict)  # by OriginatorConversationID
    receipts: set[str] = field(default_factory=set)
    requests: list[RequestRecord] = field(default_factory=list)
    deliveries: list[DeliveryRecord] = field(default_factory=list)
    held: list[Callback] = field(default_factory=list)
    funds: int = 0


def _password(shortcode: str, passkey: str, stamp: str) -> str:
    return base64.b64encode(f"{shortcode}{passkey}{stamp}".encode()).decode()


def _digits(n: int) -> str:
    return "".join(secrets.choice(string.digits) for _ in range(n))


class Simulator:
    """One simulated Daraja. Built and closed by the app's lifespan."""

    def __init__(self, settings: DarajaSimSettings) -> None:
        self.started_with = settings
        self.settings = settings
        self.scenarios = Scenarios()
        self.key = load_private_key(settings.private_key_path)
        self.tokens: dict[str, Token] = {}
        self.state = State(funds=settings.b2c_initial_funds)
        self._calls: deque[float] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        # Callbacks go straight to their URL, never through a proxy from the environment.
        self._http = httpx.AsyncClient(timeout=settings.callback_timeout_secs, trust_env=False)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._http.aclose()

    def reset(self) -> None:
        """Forgets payments, payouts, records, rules, pending callbacks and settings changes;
        tokens stay valid."""
        for task in list(self._tasks):
            task.cancel()
        self.scenarios.clear()
        self.settings = self.started_with
        self.state = State(funds=self.settings.b2c_initial_funds)
        self._calls.clear()

    def change_settings(self, changes: dict[str, Any]) -> DarajaSimSettings:
        """Changes timing and gateway settings while running (``reset`` restores them)."""
        self.settings = self.settings.model_copy(update=changes)
        return self.settings

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def record_request(self, method: str, path: str, body: Any, status: int, response: Any) -> None:
        self.state.requests.append(
            RequestRecord(
                method=method,
                path=path,
                body=body,
                status=status,
                response=response,
                at=time.time(),
            )
        )

    # --- gateway ---------------------------------------------------------------------------

    def spike_arrest(self) -> None:
        limit = self.settings.rate_limit_per_sec
        if limit is None:
            return
        now = time.monotonic()
        while self._calls and now - self._calls[0] >= 1.0:
            self._calls.popleft()
        if len(self._calls) >= limit:
            raise DarajaError(SPIKE_ARREST, "Spike arrest violation")
        self._calls.append(now)

    def issue_token(self, authorization: str | None) -> dict[str, str]:
        scheme, _, encoded = (authorization or "").partition(" ")
        try:
            key, sep, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise DarajaError(INVALID_AUTH, "Invalid Authentication passed") from None
        expected = self.settings.consumer_secret.get_secret_value()
        if (
            scheme.lower() != "basic"
            or not sep
            or not hmac.compare_digest(key, self.settings.consumer_key)
            or not hmac.compare_digest(secret, expected)
        ):
            raise DarajaError(INVALID_AUTH, "Invalid Authentication passed")
        lifetime = self.settings.token_lifetime_secs
        token = Token(secrets.token_urlsafe(21), time.monotonic() + lifetime)
        self.tokens[token.value] = token
        # Daraja says 3599 for its hour-long tokens, and says it as a string.
        return {"access_token": token.value, "expires_in": str(max(int(lifetime) - 1, 0))}

    def check_token(self, authorization: str | None) -> None:
        scheme, _, value = (authorization or "").partition(" ")
        token = self.tokens.get(value) if scheme.lower() == "bearer" else None
        if token is None or time.monotonic() >= token.expires_at:
            raise DarajaError(INVALID_TOKEN, "Invalid Access Token")

    def expire_tokens(self) -> int:
        for token in self.tokens.values():
            token.expires_at = 0.0
        return len(self.tokens)

    # --- STK Push ----------------------------------------------------------------------------

    def _check_password(self, body: dict[str, Any]) -> None:
        code = shortcode(body, "BusinessShortCode")
        stamp = timestamp(body)
        password = text(body, "Password", max_len=512)
        if code != self.settings.shortcode:
            raise DarajaError(IN_PROCESS, "Merchant does not exist")
        expected = _password(code, self.settings.passkey.get_secret_value(), stamp)
        if not hmac.compare_digest(password, expected):
            raise DarajaError(IN_PROCESS, "Wrong credentials")

    async def stk_push(self, body: dict[str, Any]) -> dict[str, str]:
        self._check_password(body)
        choice(body, "TransactionType", TRANSACTION_TYPES)
        shillings = amount(body, low=1, high=MAX_STK_AMOUNT)
        msisdn(body, "PartyA")
        shortcode(body, "PartyB")
        phone = msisdn(body, "PhoneNumber")
        callback_url = url(body, "CallBackURL", block_words=self.settings.block_callback_words)
        reference = text(body, "AccountReference", max_len=12)
        text(body, "TransactionDesc", max_len=13)
        if phone in self.state.in_process:
            raise DarajaError(
                IN_PROCESS,
                "Unable to lock subscriber, a transaction is already in process for the current "
                "subscriber",
            )
        now = now_nairobi()
        payment = StkPayment(
            merchant_request_id=f"{_digits(5)}-{_digits(8)}-1",
            checkout_request_id=f"ws_CO_{now:%d%m%Y%H%M%S}{_digits(9)}",
            phone=phone,
            amount=shillings,
            account_reference=reference,
            callback_url=callback_url,
            plan=self.scenarios.stk(phone),
        )
        self.state.stk[payment.checkout_request_id] = payment
        self.state.in_process[phone] = payment.checkout_request_id
        if payment.plan.delivery is Delivery.early:
            self._decide_stk(payment)
            await self._send(self._stk_callback(payment))
        else:
            self._spawn(self._run_stk(payment))
        return {
            "MerchantRequestID": payment.merchant_request_id,
            "CheckoutRequestID": payment.checkout_request_id,
            "ResponseCode": "0",
            "ResponseDescription": "Success. Request accepted for processing",
            "CustomerMessage": "Success. Request accepted for processing",
        }

    def _delay(self, decide_after_secs: float | None) -> float:
        if decide_after_secs is None:
            return self.settings.callback_delay_secs
        return decide_after_secs

    async def _run_stk(self, payment: StkPayment) -> None:
        await asyncio.sleep(self._delay(payment.plan.decide_after_secs))
        self._decide_stk(payment)
        await self._deliver(self._stk_callback(payment), payment.plan.delivery)

    def _receipt(self) -> str:
        while True:
            receipt = secrets.choice(string.ascii_uppercase) + "".join(
                secrets.choice(_RECEIPT_CHARS) for _ in range(9)
            )
            if receipt not in self.state.receipts:
                self.state.receipts.add(receipt)
                return receipt

    def _decide_stk(self, payment: StkPayment) -> None:
        code = payment.plan.result_code
        window = self.settings.same_amount_window_secs
        key = (payment.phone, payment.amount)
        paid_at = self.state.paid_amounts.get(key)
        if code == 0 and window > 0 and paid_at is not None and time.monotonic() - paid_at < window:
            code = 17
        payment.result_code = code
        if code == 0:
            payment.receipt = self._receipt()
            payment.transaction_date = int(f"{now_nairobi():%Y%m%d%H%M%S}")
            self.state.paid_amounts[key] = time.monotonic()
        if self.state.in_process.get(payment.phone) == payment.checkout_request_id:
            del self.state.in_process[payment.phone]

    def _stk_callback(self, payment: StkPayment) -> Callback:
        code = payment.result_code
        assert code is not None
        result: dict[str, Any] = {
            "MerchantRequestID": payment.merchant_request_id,
            "CheckoutRequestID": payment.checkout_request_id,
            "ResultCode": code,
            "ResultDesc": STK_RESULTS.get(code, "The service request failed."),
        }
        if code == 0:
            shown: float | int = payment.amount
            if self.settings.callback_amount_as_float:
                shown = float(payment.amount)
            result["CallbackMetadata"] = {
                "Item": [
                    {"Name": "Amount", "Value": shown},
                    {"Name": "MpesaReceiptNumber", "Value": payment.receipt},
                    {"Name": "Balance"},
                    {"Name": "TransactionDate", "Value": payment.transaction_date},
                    {"Name": "PhoneNumber", "Value": int(payment.phone)},
                ]
            }
        return Callback(
            "stk",
            payment.checkout_request_id,
            payment.callback_url,
            {"Body": {"stkCallback": result}},
        )

    def stk_query(self, body: dict[str, Any]) -> dict[str, str]:
        self._check_password(body)
        checkout = text(body, "CheckoutRequestID", max_len=64)
        payment = self.state.stk.get(checkout)
        if payment is None:
            raise invalid("CheckoutRequestID")
        if payment.result_code is None:
            raise DarajaError(IN_PROCESS, "The transaction is being processed")
        return {
            "ResponseCode": "0",
            "ResponseDescription": QUERY_ACCEPTED,
            "MerchantRequestID": payment.merchant_request_id,
            "CheckoutRequestID": payment.checkout_request_id,
            "ResultCode": str(payment.result_code),
            "ResultDesc": STK_RESULTS.get(payment.result_code, "The service request failed."),
        }

    # --- B2C -------------------------------------------------------------------------------

    def _initiator_ok(self, name: str, credential: str) -> bool:
        """False for a wrong initiator or password (Daraja accepts, then answers 2001); a
        credential that does not open at all is refused at once."""
        try:
            password = open_credential(self.key, credential)
        except SecurityCredentialError:
            raise invalid("SecurityCredential") from None
        expected = self.settings.initiator_password.get_secret_value()
        return hmac.compare_digest(name, self.settings.initiator_name) and hmac.compare_digest(
            password, expected
        )

    def b2c(self, body: dict[str, Any]) -> dict[str, str]:
        originator = text(body, "OriginatorConversationID", max_len=100)
        name = text(body, "InitiatorName", max_len=100)
        credential = text(body, "SecurityCredential", max_len=4_096)
        command = choice(body, "CommandID", B2C_COMMANDS)
        shillings = amount(body, low=MIN_B2C_AMOUNT, high=MAX_B2C_AMOUNT)
        if shortcode(body, "PartyA") != self.settings.b2c_shortcode:
            raise invalid("PartyA")
        phone = msisdn(body, "PartyB")
        text(body, "Remarks", min_len=2, max_len=100)
        timeout_url = url(body, "QueueTimeOutURL")
        result_url = url(body, "ResultURL")
        occassion = optional_text(body, "Occassion", max_len=100)
        if originator in self.state.payouts:
            raise DarajaError(
                IN_PROCESS, "Duplicate OriginatorConversationID: the request was already received"
            )
        initiator_ok = self._initiator_ok(name, credential)
        plan = self.scenarios.b2c(phone)
        if not initiator_ok:
            plan = B2cPlan(2001, plan.delivery, decide_after_secs=plan.decide_after_secs)
        payout = Payout(
            originator_conversation_id=originator,
            conversation_id=f"AG_{now_nairobi():%Y%m%d}_{secrets.token_hex(10)}",
            phone=phone,
            amount=shillings,
            command_id=command,
            result_url=result_url,
            queue_timeout_url=timeout_url,
            occassion=occassion,
            plan=plan,
        )
        self.state.payouts[originator] = payout
        self._spawn(self._run_b2c(payout))
        return {
            "ConversationID": payout.conversation_id,
            "OriginatorConversationID": originator,
            "ResponseCode": "0",
            "ResponseDescription": ACCEPTED,
        }

    async def _run_b2c(self, payout: Payout) -> None:
        await asyncio.sleep(self._delay(payout.plan.decide_after_secs))
        plan = payout.plan
        code = plan.result_code
        if plan.queue_timeout:
            code = 0 if plan.paid_despite_timeout else 1037
        if code == 0 and self.state.funds < payout.amount:
            code = 1
        payout.result_code = code
        payout.completed_at = now_nairobi()
        if code == 0:
            payout.paid = True
            payout.transaction_id = self._receipt()
            self.state.funds -= payout.amount
        else:
            payout.transaction_id = f"{secrets.choice(string.ascii_uppercase)}{'0' * 9}"
        payout.funds_after = self.state.funds
        if plan.queue_timeout:
            await self._send(self._queue_timeout(payout, "b2c_timeout", payout.queue_timeout_url))
        else:
            await self._deliver(self._b2c_result(payout), plan.delivery)

    def _queue_timeout(self, payout: Payout, kind: CallbackKind, target: str) -> Callback:
        body = {
            "Result": {
                "ResultType": 1,
                "ResultCode": 1,
                "ResultDesc": "The request timed out in the queue. Check the Transaction Status.",
                "OriginatorConversationID": payout.originator_conversation_id,
                "ConversationID": payout.conversation_id,
                "TransactionID": "",
                "ReferenceData": {"ReferenceItem": {"Key": "Occassion", "Value": payout.occassion}},
            }
        }
        return Callback(kind, payout.originator_conversation_id, target, body)

    def _b2c_result(self, payout: Payout) -> Callback:
        code = payout.result_code
        assert code is not None
        assert payout.completed_at is not None
        result: dict[str, Any] = {
            "ResultType": 0,
            "ResultCode": code,
            "ResultDesc": B2C_RESULTS.get(code, "The service request failed."),
            "OriginatorConversationID": payout.originator_conversation_id,
            "ConversationID": payout.conversation_id,
            "TransactionID": payout.transaction_id,
        }
        if code == 0:
            masked = f"{payout.phone[:8]}****"
            result["ResultParameters"] = {
                "ResultParameter": [
                    {"Key": "TransactionAmount", "Value": payout.amount},
                    {"Key": "TransactionReceipt", "Value": payout.transaction_id},
                    {"Key": "B2CRecipientIsRegisteredCustomer", "Value": "Y"},
                    {"Key": "B2CChargesPaidAccountAvailableFunds", "Value": 0.0},
                    {"Key": "ReceiverPartyPublicName", "Value": f"{masked} - {RECEIVER_NAME}"},
                    {
                        "Key": "TransactionCompletedDateTime",
                        "Value": f"{payout.completed_at:%d.%m.%Y %H:%M:%S}",
                    },
                    {"Key": "B2CUtilityAccountAvailableFunds", "Value": float(payout.funds_after)},
                    {"Key": "B2CWorkingAccountAvailableFunds", "Value": 0.0},
                ]
            }
        result["ReferenceData"] = {
            "ReferenceItem": {
                "Key": "QueueTimeoutURL",
                "Value": payout.queue_timeout_url,
            }
        }
        body = {"Result": result}
        return Callback("b2c_result", payout.originator_conversation_id, payout.result_url, body)

    # --- Transaction Status ------------------------------------------------------------------

    def transaction_status(self, body: dict[str, Any]) -> dict[str, str]:
        name = text(body, "Initiator", max_len=100)
        credential = text(body, "SecurityCredential", max_len=4_096)
        choice(body, "CommandID", ("TransactionStatusQuery",))
        transaction_id = optional_text(body, "TransactionID", max_len=64)
        original = optional_text(body, "OriginalConversationID", max_len=100) or optional_text(
            body, "OriginatorConversationID", max_len=100
        )
        if not transaction_id and not original:
            raise invalid("TransactionID")
        shortcode(body, "PartyA")
        choice(body, "IdentifierType", IDENTIFIER_TYPES)
        result_url = url(body, "ResultURL")
        url(body, "QueueTimeOutURL")
        text(body, "Remarks", min_len=2, max_len=100)
        occasion = optional_text(body, "Occasion", max_len=100)
        initiator_ok = self._initiator_ok(name, credential)
        conversation = f"AG_{now_nairobi():%Y%m%d}_{secrets.token_hex(10)}"
        own = f"{_digits(5)}-{_digits(8)}-1"
        self._spawn(
            self._run_status(
                initiator_ok, transaction_id, original, result_url, conversation, own, occasion
            )
        )
        return {
            "OriginatorConversationID": own,
            "ConversationID": conversation,
            "ResponseCode": "0",
            "ResponseDescription": ACCEPTED,
        }

    def _find(self, transaction_id: str, original: str) -> Payout | StkPayment | None:
        for payout in self.state.payouts.values():
            if transaction_id and payout.paid and payout.transaction_id == transaction_id:
                return payout
            if original and original in (
                payout.originator_conversation_id,
                payout.conversation_id,
            ):
                return payout
        for payment in self.state.stk.values():
            if transaction_id and payment.receipt == transaction_id:
                return payment
        return None

    async def _run_status(
        self,
        initiator_ok: bool,
        transaction_id: str,
        original: str,
        result_url: str,
        conversation: str,
        own: str,
        occasion: str,
    ) -> None:
        await asyncio.sleep(self.settings.callback_delay_secs)
        found = self._find(transaction_id, original)
        result: dict[str, Any] = {
            "ResultType": 0,
            "OriginatorConversationID": own,
            "ConversationID": conversation,
        }
        if not initiator_ok:
            result |= {"ResultCode": 2001, "ResultDesc": B2C_RESULTS[2001]}
            result["TransactionID"] = f"{secrets.choice(string.ascii_uppercase)}{'0' * 9}"
        elif isinstance(found, Payout) and (found.paid or found.result_code is None):
            result |= self._payout_status(found)
        elif isinstance(found, StkPayment) and found.result_code == 0:
            result |= self._stk_status(found)
        else:
            result |= {"ResultCode": NOT_FOUND_CODE, "ResultDesc": NOT_FOUND_DESC}
            result["TransactionID"] = f"{secrets.choice(string.ascii_uppercase)}{'0' * 9}"
        result["ReferenceData"] = {"ReferenceItem": {"Key": "Occasion", "Value": occasion}}
        reference = original or transaction_id
        await self._send(Callback("status_result", reference, result_url, {"Result": result}))

    def _payout_status(self, payout: Payout) -> dict[str, Any]:
        pending = payout.result_code is None
        when = int(f"{(payout.completed_at or now_nairobi()):%Y%m%d%H%M%S}")
        parameters: list[dict[str, Any]] = [
            {"Key": "DebitPartyName", "Value": f"{self.settings.b2c_shortcode} - Nishati Test"},
            {"Key": "CreditPartyName", "Value": f"{payout.phone[:8]}**** - {RECEIVER_NAME}"},
            {"Key": "OriginatorConversationID", "Value": payout.originator_conversation_id},
            {"Key": "InitiatedTime", "Value": when},
            {"Key": "CreditPartyCharges"},
            {"Key": "DebitAccountType", "Value": "Utility Account"},
            {"Key": "TransactionReason"},
            {"Key": "ReasonType", "Value": "Business Payment to Customer via API"},
            {"Key": "TransactionStatus", "Value": "Pending" if pending else "Completed"},
            {"Key": "FinalisedTime", "Value": when},
            {"Key": "Amount", "Value": float(payout.amount)},
            {"Key": "ConversationID", "Value": payout.conversation_id},
            {"Key": "ReceiptNo", "Value": payout.transaction_id},
        ]
        return {
            "ResultCode": 0,
            "ResultDesc": STK_RESULTS[0],
            "TransactionID": payout.transaction_id,
            "ResultParameters": {"ResultParameter": parameters},
        }

    def _stk_status(self, payment: StkPayment) -> dict[str, Any]:
        assert payment.receipt is not None
        parameters: list[dict[str, Any]] = [
            {"Key": "DebitPartyName", "Value": f"{payment.phone[:8]}**** - {RECEIVER_NAME}"},
            {"Key": "CreditPartyName", "Value": f"{self.settings.shortcode} - Nishati Test"},
            {"Key": "InitiatedTime", "Value": payment.transaction_date},
            {"Key": "TransactionStatus", "Value": "Completed"},
            {"Key": "FinalisedTime", "Value": payment.transaction_date},
            {"Key": "Amount", "Value": float(payment.amount)},
            {"Key": "ReceiptNo", "Value": payment.receipt},
        ]
        return {
            "ResultCode": 0,
            "ResultDesc": STK_RESULTS[0],
            "TransactionID": payment.receipt,
            "ResultParameters": {"ResultParameter": parameters},
        }

    # --- delivery ----------------------------------------------------------------------------

    async def _deliver(self, callback: Callback, mode: Delivery) -> None:
        if mode is Delivery.drop:
            self._record(callback, "dropped")
        elif mode is Delivery.duplicate:
            await self._send(callback)
            await asyncio.sleep(self.settings.duplicate_gap_secs)
            await self._send(callback)
        elif mode is Delivery.delay:
            await asyncio.sleep(self.settings.long_delay_secs)
            await self._send(callback)
        elif mode is Delivery.reorder:
            self.state.held.append(callback)
            await asyncio.sleep(self.settings.long_delay_secs)
            await self.release(callback)
        else:
            await self._send(callback)

    async def release(self, callback: Callback | None = None) -> int:
        """Sends held (``reorder``) callbacks: this one, or all; returns how many were sent."""
        held = self.state.held
        chosen = [c for c in held if callback is None or c is callback]
        for c in chosen:
            held.remove(c)
        for c in chosen:
            await self._post(c)
        return len(chosen)

    async def _send(self, callback: Callback) -> None:
        """Posts a callback, then whatever ``reorder`` held back before it."""
        await self._post(callback)
        await self.release()

    async def _post(self, callback: Callback) -> None:
        try:
            reply = await self._http.post(callback.url, json=callback.body)
        except httpx.HTTPError as e:
            self._record(callback, "failed", error=f"{type(e).__name__}: {e}")
        else:
            self._record(callback, "delivered", http_status=reply.status_code)

    def _record(
        self,
        callback: Callback,
        outcome: Literal["delivered", "failed", "dropped"],
        *,
        http_status: int | None = None,
        error: str | None = None,
    ) -> None:
        self.state.deliveries.append(
            DeliveryRecord(
                kind=callback.kind,
                reference=callback.reference,
                url=callback.url,
                body=callback.body,
                outcome=outcome,
                http_status=http_status,
                error=error,
                at=time.time(),
            )
        )
