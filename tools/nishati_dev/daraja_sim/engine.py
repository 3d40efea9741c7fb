"""The far side of Daraja: tokens, STK Push payments, B2C payouts, reversals, their callbacks.

The books are kept durably (``store.Books``, SQLite when the ``database`` setting names a file):
a payment, payout or reversal, a token, a callback held back or due, and every piece of work
waiting for its time (an outcome to decide, a status to answer, a callback to send) survive a
kill. On start the simulator reads them back and carries on: outcomes due while it was down
are decided at once, callbacks due are sent. ``reset`` forgets it all but the tokens.

The working copy lives in memory, on the event loop; every change is written through in the
same step. Money is whole shillings (``int``) throughout; only the JSON a callback carries
renders some values as floats, as Daraja does. Times that must survive a restart (token expiry,
when work is due, when an amount was paid) are wall-clock seconds.
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
from typing import Any, Literal

import httpx
from pydantic import BaseModel, Field

from nishati_dev.daraja_sim.credentials import (
    SecurityCredentialError,
    load_private_key,
    open_credential,
)
from nishati_dev.daraja_sim.fields import (
    DUPLICATE,
    IN_PROCESS,
    INVALID_AUTH,
    INVALID_TOKEN,
    MAX_B2C_AMOUNT,
    MAX_STK_AMOUNT,
    MIN_B2C_AMOUNT,
    SPIKE_ARREST,
    TS_INVALID_TOKEN,
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
    REVERSAL_RESULTS,
    STK_RESULTS,
    B2cPlan,
    Delivery,
    ReversalPlan,
    ScenarioRule,
    Scenarios,
    StkPlan,
)
from nishati_dev.daraja_sim.settings import DarajaSimSettings
from nishati_dev.daraja_sim.store import Books

TRANSACTION_TYPES = ("CustomerPayBillOnline", "CustomerBuyGoodsOnline")
B2C_COMMANDS = ("BusinessPayment", "SalaryPayment", "PromotionPayment")
IDENTIFIER_TYPES = ("1", "2", "4")
REVERSAL_IDENTIFIER_TYPE = "11"
ACCEPTED = "Accept the service request successfully."
QUERY_ACCEPTED = "The service request has been accepted successsfully"  # Daraja's spelling
STILL_PROCESSING = "The transaction is still under processing"
RECEIVER_NAME = "JOHN DOE"
NOT_FOUND_CODE = "R000001"
NOT_FOUND_DESC = "The transaction receipt number does not exist."
TRANSACTION_STATUS_PATH = "/mpesa/transactionstatus/v1/query"
_RECEIPT_CHARS = string.ascii_uppercase + string.digits

CallbackKind = Literal[
    "stk",
    "b2c_result",
    "b2c_timeout",
    "status_result",
    "status_timeout",
    "reversal_result",
    "reversal_timeout",
]


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


class Callback(BaseModel):
    kind: CallbackKind
    reference: str
    url: str
    body: dict[str, Any]


class StkPayment(BaseModel):
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
    paid_at: float | None = None  # wall clock, for the same-amount rule
    reversed_by: str | None = None  # the ConversationID of the reversal that undid it


class Payout(BaseModel):
    originator_conversation_id: str
    conversation_id: str
    daraja_originator_id: str = ""  # set when its results carry Daraja's own id
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

    @property
    def result_originator_id(self) -> str:
        """The OriginatorConversationID its results carry."""
        return self.daraja_originator_id or self.originator_conversation_id


class Reversal(BaseModel):
    originator_conversation_id: str
    conversation_id: str
    transaction_id: str  # the receipt asked to be reversed
    amount: int
    phone: str  # the original payer's, or "" if no such payment
    result_url: str
    queue_timeout_url: str
    remarks: str
    occasion: str
    initiator_ok: bool
    plan: ReversalPlan
    result_code: int | str | None = None  # None while pending
    reversed: bool = False
    receipt: str = ""  # the reversal's own transaction id
    completed_at: datetime.datetime | None = None


class Token(BaseModel):
    value: str
    expires_at: float  # wall clock


class FaultRule(BaseModel):
    """A reply that is not Daraja's (a gateway's 429, a firewall's HTML page, a proxy's 502,
    a reply that never comes) for the next ``count`` calls to ``path`` (every Daraja path and
    OAuth when unset). With ``after_processing`` the call is processed first (a push is
    accepted, its callback comes), and only the reply is lost to the fault."""

    path: str | None = Field(default=None, description="e.g. /mpesa/stkpush/v1/processrequest")
    status: int = Field(default=502, ge=100, le=599)
    body: str = Field(
        default="<html><body><h1>502 Bad Gateway</h1></body></html>", max_length=1 << 20
    )
    content_type: str = "text/html"
    headers: dict[str, str] = Field(default_factory=dict, description="e.g. Retry-After")
    delay_secs: float = Field(default=0.0, ge=0, le=600, description="wait before answering")
    after_processing: bool = False
    count: int | None = Field(default=1, ge=1, description="None: until cleared")


class State(BaseModel):
    """The working copy of the books."""

    stk: dict[str, StkPayment] = Field(default_factory=dict)
    payouts: dict[str, Payout] = Field(default_factory=dict)  # by OriginatorConversationID
    reversals: dict[str, Reversal] = Field(default_factory=dict)  # by ConversationID
    held: dict[str, Callback] = Field(default_factory=dict)  # reorder, by hold id
    requests: list[RequestRecord] = Field(default_factory=list)
    deliveries: list[DeliveryRecord] = Field(default_factory=list)
    funds: int = 0

    def receipts(self) -> set[str]:
        found = {p.receipt for p in self.stk.values() if p.receipt}
        found |= {p.transaction_id for p in self.payouts.values() if p.paid}
        found |= {r.receipt for r in self.reversals.values() if r.receipt}
        return found


def _password(shortcode: str, passkey: str, stamp: str) -> str:
    return base64.b64encode(f"{shortcode}{passkey}{stamp}".encode()).decode()


def _digits(n: int) -> str:
    return "".join(secrets.choice(string.digits) for _ in range(n))


def _conversation_id() -> str:
    return f"AG_{now_nairobi():%Y%m%d}_{secrets.token_hex(10)}"


def _daraja_originator_id() -> str:
    """Daraja's own shape, as in its result samples: ``53e3-4aa8-9fe0-8fb5e4092cdd3533373``."""
    h = secrets.token_hex
    return f"{h(2)}-{h(2)}-{h(2)}-{h(6)}{_digits(7)}"


def _result_callback(
    kind: CallbackKind,
    reference: str,
    url: str,
    result: dict[str, Any],
    reference_item: tuple[str, str],
) -> Callback:
    """A result in Daraja's envelope (``{"Result": ...}``), its one ``ReferenceData`` item last,
    as Daraja's samples order them."""
    key, value = reference_item
    result["ReferenceData"] = {"ReferenceItem": {"Key": key, "Value": value}}
    return Callback(kind=kind, reference=reference, url=url, body={"Result": result})


def _placeholder_receipt() -> str:
    return f"{secrets.choice(string.ascii_uppercase)}{'0' * 9}"


class Simulator:
    """One simulated Daraja. Built and closed by the app's lifespan, which calls
    :meth:`resume` once the event loop runs."""

    def __init__(self, settings: DarajaSimSettings) -> None:
        self.started_with = settings
        self.books = Books(settings.database)
        changes = self.books.get("settings", {})
        self.settings = settings.model_copy(update=changes)
        rules = [ScenarioRule.model_validate(r) for r in self.books.get("rules", [])]
        self.scenarios = Scenarios(rules, self._rules_changed)
        self.faults: list[FaultRule] = [
            FaultRule.model_validate(f) for f in self.books.get("faults", [])
        ]
        self.key = load_private_key(settings.private_key_path)
        self.tokens = {k: Token.model_validate_json(v) for k, v in self.books.all("token")}
        self.state = self._load()
        self._derive()
        self._calls: deque[float] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        # Callbacks go straight to their URL, never through a proxy from the environment.
        self._http = httpx.AsyncClient(timeout=settings.callback_timeout_secs, trust_env=False)

    def _load(self) -> State:
        books = self.books
        return State(
            stk={k: StkPayment.model_validate_json(v) for k, v in books.all("stk")},
            payouts={k: Payout.model_validate_json(v) for k, v in books.all("payout")},
            reversals={k: Reversal.model_validate_json(v) for k, v in books.all("reversal")},
            held={k: Callback.model_validate_json(v) for k, v in books.all("held")},
            requests=[RequestRecord.model_validate_json(r) for r in books.records("request")],
            deliveries=[DeliveryRecord.model_validate_json(r) for r in books.records("delivery")],
            funds=books.get("funds", self.settings.b2c_initial_funds),
        )

    def _derive(self) -> None:
        """The lookups kept beside the books: receipts taken, phones with a prompt open."""
        self._receipts = self.state.receipts()
        self._open = {p.phone for p in self.state.stk.values() if p.result_code is None}
        self._paid_at: dict[tuple[str, int], float] = {}
        for p in self.state.stk.values():
            if p.paid_at is not None:
                key = (p.phone, p.amount)
                self._paid_at[key] = max(p.paid_at, self._paid_at.get(key, 0.0))

    def resume(self) -> int:
        """Schedules the work the books hold (all of it, after a restart); returns how much."""
        jobs = self.books.jobs()
        for job_id, due, kind, data in jobs:
            self._schedule(job_id, due, kind, data)
        return len(jobs)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._http.aclose()
        self.books.close()

    def reset(self) -> None:
        """Forgets payments, payouts, reversals, records, rules, faults, pending work and
        settings changes; tokens stay valid."""
        for task in list(self._tasks):
            task.cancel()
        self.scenarios.clear()
        self.faults = []
        self.settings = self.started_with
        with self.books.step():
            self.books.forget("stk", "payout", "reversal", "held")
            self.books.forget_jobs()
            self.books.forget_records()
            self.books.unset("settings", "faults", "funds", "rules")
        self.state = State(funds=self.settings.b2c_initial_funds)
        self._derive()
        self._calls.clear()

    def change_settings(self, changes: dict[str, Any]) -> DarajaSimSettings:
        """Changes timing and gateway settings while running (``reset`` restores them)."""
        self.settings = self.settings.model_copy(update=changes)
        kept = self.books.get("settings", {})
        self.books.set("settings", {**kept, **changes})
        return self.settings

    def _rules_changed(self, rules: list[ScenarioRule]) -> None:
        self.books.set("rules", [r.model_dump(mode="json") for r in rules])

    # --- faults ------------------------------------------------------------------------------

    def add_fault(self, fault: FaultRule) -> list[FaultRule]:
        self.faults.append(fault)
        self._faults_changed()
        return list(self.faults)

    def clear_faults(self) -> None:
        self.faults = []
        self._faults_changed()

    def take_fault(self, path: str) -> FaultRule | None:
        """The fault for this call, if any (the oldest first), counted down."""
        for fault in self.faults:
            if fault.path is None or fault.path == path:
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count == 0:
                        self.faults.remove(fault)
                self._faults_changed()
                return fault
        return None

    def _faults_changed(self) -> None:
        self.books.set("faults", [f.model_dump(mode="json") for f in self.faults])

    # --- work that waits for its time ------------------------------------------------------

    def _enqueue(self, due: float, kind: str, data: dict[str, Any]) -> None:
        job_id = self.books.add_job(due, kind, data)
        self._schedule(job_id, due, kind, data)

    def _schedule(self, job_id: int, due: float, kind: str, data: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._run_job(job_id, due, kind, data))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_job(self, job_id: int, due: float, kind: str, data: dict[str, Any]) -> None:
        await asyncio.sleep(max(0.0, due - time.time()))
        if kind == "send":
            await self._post(Callback.model_validate(data["callback"]))
            self.books.finish_job(job_id)
            await self.release()
            return
        if kind == "release":
            self.books.finish_job(job_id)
            await self.release(data["held"])
            return
        with self.books.step():
            if kind == "stk_decide":
                self._decide_stk_job(data["checkout"])
            elif kind == "b2c_decide":
                self._decide_b2c_job(data["originator"])
            elif kind == "reversal_decide":
                self._decide_reversal_job(data["conversation"])
            elif kind == "status":
                self._answer_status(**data)
            self.books.finish_job(job_id)

    def _send_later(self, callback: Callback, delay_secs: float = 0.0) -> None:
        self._enqueue(time.time() + delay_secs, "send", {"callback": callback.model_dump()})

    def _deliver(self, callback: Callback, mode: Delivery) -> None:
        """Plans a callback's delivery the way ``mode`` says (inside a step)."""
        settings = self.settings
        if mode is Delivery.drop:
            self._record(callback, "dropped")
        elif mode is Delivery.duplicate:
            self._send_later(callback)
            self._send_later(callback, settings.duplicate_gap_secs)
        elif mode is Delivery.delay:
            self._send_later(callback, settings.long_delay_secs)
        elif mode is Delivery.reorder:
            hold = secrets.token_hex(8)
            self.state.held[hold] = callback
            self.books.put("held", hold, callback.model_dump_json())
            self._enqueue(time.time() + settings.long_delay_secs, "release", {"held": hold})
        else:
            self._send_later(callback)

    async def release(self, hold: str | None = None) -> int:
        """Sends held (``reorder``) callbacks: this one, or all; returns how many were sent."""
        held = self.state.held
        chosen = [(k, c) for k, c in held.items() if hold is None or k == hold]
        for k, _ in chosen:
            del held[k]
        for k, c in chosen:
            await self._post(c)
            with self.books.step():
                self.books.remove("held", k)
                self.books.finish_jobs_about("release", "held", k)
        return len(chosen)

    async def _send_now(self, callback: Callback) -> None:
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
        record = DeliveryRecord(
            kind=callback.kind,
            reference=callback.reference,
            url=callback.url,
            body=callback.body,
            outcome=outcome,
            http_status=http_status,
            error=error,
            at=time.time(),
        )
        self.state.deliveries.append(record)
        self.books.record("delivery", record.model_dump_json())

    def record_request(self, method: str, path: str, body: Any, status: int, response: Any) -> None:
        record = RequestRecord(
            method=method, path=path, body=body, status=status, response=response, at=time.time()
        )
        self.state.requests.append(record)
        self.books.record("request", record.model_dump_json())

    def _delay(self, decide_after_secs: float | None) -> float:
        if decide_after_secs is None:
            return self.settings.callback_delay_secs
        return decide_after_secs

    def _receipt(self) -> str:
        while True:
            receipt = secrets.choice(string.ascii_uppercase) + "".join(
                secrets.choice(_RECEIPT_CHARS) for _ in range(9)
            )
            if receipt not in self._receipts:
                self._receipts.add(receipt)
                return receipt

    def _set_funds(self, funds: int) -> None:
        self.state.funds = funds
        self.books.set("funds", funds)

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
        token = Token(value=secrets.token_urlsafe(21), expires_at=time.time() + lifetime)
        with self.books.step():
            if self.settings.single_token:
                # Daraja's Authorization page: "each request invalidates the previous token".
                for old in list(self.tokens):
                    del self.tokens[old]
                self.books.forget("token")
            self.tokens[token.value] = token
            self.books.put("token", token.value, token.model_dump_json())
        # Daraja says 3599 for its hour-long tokens, and says it as a string.
        return {"access_token": token.value, "expires_in": str(max(int(lifetime) - 1, 0))}

    def check_token(self, authorization: str | None, path: str = "") -> None:
        scheme, _, value = (authorization or "").partition(" ")
        token = self.tokens.get(value) if scheme.lower() == "bearer" else None
        if token is None or time.time() >= token.expires_at:
            code = self.settings.invalid_token_code
            if code is None:
                code = TS_INVALID_TOKEN if path == TRANSACTION_STATUS_PATH else INVALID_TOKEN
            raise DarajaError(code, "Invalid Access Token")

    def expire_tokens(self) -> int:
        with self.books.step():
            for token in self.tokens.values():
                token.expires_at = 0.0
                self.books.put("token", token.value, token.model_dump_json())
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

    def _url(self, body: dict[str, Any], field: str) -> str:
        return url(body, field, block_words=self.settings.block_callback_words)

    async def stk_push(self, body: dict[str, Any]) -> dict[str, str]:
        self._check_password(body)
        choice(body, "TransactionType", TRANSACTION_TYPES)
        shillings = amount(body, low=1, high=MAX_STK_AMOUNT)
        msisdn(body, "PartyA")
        shortcode(body, "PartyB")
        phone = msisdn(body, "PhoneNumber")
        callback_url = self._url(body, "CallBackURL")
        reference = text(body, "AccountReference", max_len=12)
        text(body, "TransactionDesc", max_len=13)
        if phone in self._open:
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
        with self.books.step():
            self.state.stk[payment.checkout_request_id] = payment
            self._open.add(phone)
            if payment.plan.delivery is Delivery.early:
                self._decide_stk(payment)
            else:
                due = time.time() + self._delay(payment.plan.decide_after_secs)
                self._enqueue(due, "stk_decide", {"checkout": payment.checkout_request_id})
            self._save_stk(payment)
        if payment.plan.delivery is Delivery.early:
            await self._send_now(self._stk_callback(payment))
        return {
            "MerchantRequestID": payment.merchant_request_id,
            "CheckoutRequestID": payment.checkout_request_id,
            "ResponseCode": "0",
            "ResponseDescription": "Success. Request accepted for processing",
            "CustomerMessage": "Success. Request accepted for processing",
        }

    def _save_stk(self, payment: StkPayment) -> None:
        self.books.put("stk", payment.checkout_request_id, payment.model_dump_json())

    def _decide_stk_job(self, checkout: str) -> None:
        payment = self.state.stk.get(checkout)
        if payment is None or payment.result_code is not None:
            return
        self._decide_stk(payment)
        self._deliver(self._stk_callback(payment), payment.plan.delivery)

    def _decide_stk(self, payment: StkPayment) -> None:
        code = payment.plan.result_code
        window = self.settings.same_amount_window_secs
        now = time.time()
        paid_at = self._paid_at.get((payment.phone, payment.amount))
        if code == 0 and window > 0 and paid_at is not None and now - paid_at < window:
            code = 17
        payment.result_code = code
        self._open.discard(payment.phone)
        if code == 0:
            payment.receipt = self._receipt()
            payment.transaction_date = int(f"{now_nairobi():%Y%m%d%H%M%S}")
            payment.paid_at = now
            self._paid_at[(payment.phone, payment.amount)] = now
        self._save_stk(payment)

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
            kind="stk",
            reference=payment.checkout_request_id,
            url=payment.callback_url,
            body={"Body": {"stkCallback": result}},
        )

    def stk_query(self, body: dict[str, Any]) -> dict[str, str]:
        self._check_password(body)
        checkout = text(body, "CheckoutRequestID", max_len=64)
        payment = self.state.stk.get(checkout)
        if payment is None:
            raise invalid("CheckoutRequestID")
        if payment.result_code is None:
            style = payment.plan.pending_reply or self.settings.stk_query_pending
            if style == "4999":
                # The sandbox, as recorded in a public integration note.
                return {
                    "ResponseCode": "0",
                    "ResponseDescription": QUERY_ACCEPTED,
                    "MerchantRequestID": payment.merchant_request_id,
                    "CheckoutRequestID": payment.checkout_request_id,
                    "ResultCode": "4999",
                    "ResultDesc": STILL_PROCESSING,
                }
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
        timeout_url = self._url(body, "QueueTimeOutURL")
        result_url = self._url(body, "ResultURL")
        occassion = optional_text(body, "Occassion", max_len=100)
        if originator in self.state.payouts:
            # Daraja's B2C page, its sample error response.
            raise DarajaError(DUPLICATE, "Duplicate OriginatorConversationID.")
        initiator_ok = self._initiator_ok(name, credential)
        plan = self.scenarios.b2c(phone)
        if not initiator_ok:
            plan = plan.model_copy(update={"result_code": 2001})
        ids = plan.result_ids or self.settings.b2c_result_ids
        payout = Payout(
            originator_conversation_id=originator,
            conversation_id=_conversation_id(),
            daraja_originator_id=_daraja_originator_id() if ids == "daraja" else "",
            phone=phone,
            amount=shillings,
            command_id=command,
            result_url=result_url,
            queue_timeout_url=timeout_url,
            occassion=occassion,
            plan=plan,
        )
        with self.books.step():
            self.state.payouts[originator] = payout
            self._save_payout(payout)
            due = time.time() + self._delay(plan.decide_after_secs)
            self._enqueue(due, "b2c_decide", {"originator": originator})
        # The reply echoes the request's id (Daraja's B2C page); only results may not.
        return {
            "ConversationID": payout.conversation_id,
            "OriginatorConversationID": originator,
            "ResponseCode": "0",
            "ResponseDescription": ACCEPTED,
        }

    def _save_payout(self, payout: Payout) -> None:
        self.books.put("payout", payout.originator_conversation_id, payout.model_dump_json())

    def _decide_b2c_job(self, originator: str) -> None:
        payout = self.state.payouts.get(originator)
        if payout is None or payout.result_code is not None:
            return
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
            self._set_funds(self.state.funds - payout.amount)
        else:
            payout.transaction_id = _placeholder_receipt()
        payout.funds_after = self.state.funds
        self._save_payout(payout)
        if plan.queue_timeout:
            notice = self._queue_timeout(
                payout.result_originator_id,
                payout.conversation_id,
                payout.occassion,
                "b2c_timeout",
                payout.queue_timeout_url,
                payout.originator_conversation_id,
            )
            self._send_later(notice)
        else:
            self._deliver(self._b2c_result(payout), plan.delivery)

    @staticmethod
    def _queue_timeout(
        originator: str,
        conversation: str,
        occasion: str,
        kind: CallbackKind,
        target: str,
        reference: str,
    ) -> Callback:
        result: dict[str, Any] = {
            "ResultType": 1,
            "ResultCode": 1,
            "ResultDesc": "The request timed out in the queue. Check the Transaction Status.",
            "OriginatorConversationID": originator,
            "ConversationID": conversation,
            "TransactionID": "",
        }
        return _result_callback(kind, reference, target, result, ("Occassion", occasion))

    def _b2c_result(self, payout: Payout) -> Callback:
        code = payout.result_code
        assert code is not None
        assert payout.completed_at is not None
        result: dict[str, Any] = {
            "ResultType": 0,
            "ResultCode": code,
            "ResultDesc": B2C_RESULTS.get(code, "The service request failed."),
            "OriginatorConversationID": payout.result_originator_id,
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
        return _result_callback(
            "b2c_result",
            payout.originator_conversation_id,
            payout.result_url,
            result,
            ("QueueTimeoutURL", payout.queue_timeout_url),
        )

    # --- Reversal ----------------------------------------------------------------------------

    def reversal(self, body: dict[str, Any]) -> dict[str, str]:
        """``POST /mpesa/reversal/v1/request``, as Daraja's Reversal page describes it."""
        name = text(body, "Initiator", max_len=100)
        credential = text(body, "SecurityCredential", max_len=4_096)
        choice(body, "CommandID", ("TransactionReversal",))
        receipt = text(body, "TransactionID", max_len=64)
        shillings = amount(body, low=1, high=MAX_STK_AMOUNT)
        if shortcode(body, "ReceiverParty") != self.settings.shortcode:
            raise invalid("ReceiverParty")
        if str(body.get("RecieverIdentifierType", "")) != REVERSAL_IDENTIFIER_TYPE:
            raise invalid("RecieverIdentifierType")  # sic, as Daraja spells it
        result_url = self._url(body, "ResultURL")
        timeout_url = self._url(body, "QueueTimeOutURL")
        remarks = text(body, "Remarks", min_len=2, max_len=100)
        occasion = optional_text(body, "Occasion", max_len=100)
        initiator_ok = self._initiator_ok(name, credential)
        original = self._paid_stk(receipt)
        # Not documented: the simulator reverses whole payments only.
        if original is not None and shillings != original.amount:
            raise invalid("Amount")
        plan = self.scenarios.reversal(original.phone if original is not None else "")
        rev = Reversal(
            originator_conversation_id=_daraja_originator_id(),
            conversation_id=_conversation_id(),
            transaction_id=receipt,
            amount=shillings,
            phone=original.phone if original is not None else "",
            result_url=result_url,
            queue_timeout_url=timeout_url,
            remarks=remarks,
            occasion=occasion,
            initiator_ok=initiator_ok,
            plan=plan,
        )
        with self.books.step():
            self.state.reversals[rev.conversation_id] = rev
            self._save_reversal(rev)
            due = time.time() + self._delay(plan.decide_after_secs)
            self._enqueue(due, "reversal_decide", {"conversation": rev.conversation_id})
        return {
            "OriginatorConversationID": rev.originator_conversation_id,
            "ConversationID": rev.conversation_id,
            "ResponseCode": "0",
            "ResponseDescription": ACCEPTED,
        }

    def _paid_stk(self, receipt: str) -> StkPayment | None:
        for payment in self.state.stk.values():
            if payment.receipt == receipt and payment.result_code == 0:
                return payment
        return None

    def _save_reversal(self, rev: Reversal) -> None:
        self.books.put("reversal", rev.conversation_id, rev.model_dump_json())

    def _decide_reversal_job(self, conversation: str) -> None:
        rev = self.state.reversals.get(conversation)
        if rev is None or rev.result_code is not None:
            return
        plan = rev.plan
        original = self._paid_stk(rev.transaction_id)
        code: int | str
        if not rev.initiator_ok:
            code = 2001
        elif plan.result_code is not None:
            code = plan.result_code
        elif original is None:
            code = "R000002"
        elif original.reversed_by is not None:
            code = "R000001"
        else:
            code = 0
        timed_out = plan.queue_timeout and not plan.paid_despite_timeout
        done = code == 0 and original is not None and original.reversed_by is None
        done = done and not timed_out
        if timed_out:
            code = 1037
        elif code == 0 and not done:
            code = "R000002"  # a rule said 0, but there is nothing to reverse
        rev.result_code = code
        rev.completed_at = now_nairobi()
        if done:
            assert original is not None
            rev.reversed = True
            rev.receipt = self._receipt()
            original.reversed_by = rev.conversation_id
            self._save_stk(original)
        else:
            rev.receipt = _placeholder_receipt()
        self._save_reversal(rev)
        if plan.queue_timeout:
            notice = self._queue_timeout(
                rev.originator_conversation_id,
                rev.conversation_id,
                rev.occasion,
                "reversal_timeout",
                rev.queue_timeout_url,
                rev.conversation_id,
            )
            self._send_later(notice)
        else:
            self._deliver(self._reversal_result(rev, original), plan.delivery)

    def _reversal_result(self, rev: Reversal, original: StkPayment | None) -> Callback:
        code = rev.result_code
        assert code is not None
        assert rev.completed_at is not None
        result: dict[str, Any] = {
            "ResultType": 0,
            "ResultCode": code,
            "ResultDesc": REVERSAL_RESULTS.get(code, "The service request failed."),
            "OriginatorConversationID": rev.originator_conversation_id,
            "ConversationID": rev.conversation_id,
            "TransactionID": rev.receipt,
        }
        if rev.reversed and original is not None:
            result["ResultParameters"] = {
                "ResultParameter": [
                    {
                        "Key": "DebitAccountBalance",
                        "Value": "Utility Account|KES|1000000.00|1000000.00|0.00|0.00",
                    },
                    {"Key": "Amount", "Value": float(rev.amount)},
                    {"Key": "TransCompletedTime", "Value": int(f"{rev.completed_at:%Y%m%d%H%M%S}")},
                    {"Key": "OriginalTransactionID", "Value": rev.transaction_id},
                    {"Key": "Charge", "Value": 0.0},
                    {
                        "Key": "CreditPartyPublicName",
                        "Value": f"{original.phone} - {RECEIVER_NAME}",
                    },
                    {
                        "Key": "DebitPartyPublicName",
                        "Value": f"{self.settings.shortcode} - Nishati Test",
                    },
                ]
            }
        return _result_callback(
            "reversal_result",
            rev.conversation_id,
            rev.result_url,
            result,
            ("QueueTimeoutURL", rev.queue_timeout_url),
        )

    # --- Transaction Status ------------------------------------------------------------------

    def transaction_status(self, body: dict[str, Any]) -> dict[str, str]:
        name = text(body, "Initiator", max_len=100)
        credential = text(body, "SecurityCredential", max_len=4_096)
        choice(body, "CommandID", ("TransactionStatusQuery",))
        transaction_id = optional_text(body, "TransactionID", max_len=64)
        # The documented field only (Daraja's Transaction Status page); an
        # ``OriginatorConversationID`` here is not read, as Daraja would not.
        original = optional_text(body, "OriginalConversationID", max_len=100)
        if not transaction_id and not original:
            raise invalid("TransactionID")
        shortcode(body, "PartyA")
        choice(body, "IdentifierType", IDENTIFIER_TYPES)
        result_url = self._url(body, "ResultURL")
        self._url(body, "QueueTimeOutURL")
        text(body, "Remarks", min_len=2, max_len=100)
        occasion = optional_text(body, "Occasion", max_len=100)
        initiator_ok = self._initiator_ok(name, credential)
        conversation = _conversation_id()
        own = f"{_digits(5)}-{_digits(8)}-1"
        with self.books.step():
            self._enqueue(
                time.time() + self.settings.callback_delay_secs,
                "status",
                {
                    "initiator_ok": initiator_ok,
                    "transaction_id": transaction_id,
                    "original": original,
                    "result_url": result_url,
                    "conversation": conversation,
                    "own": own,
                    "occasion": occasion,
                },
            )
        return {
            "OriginatorConversationID": own,
            "ConversationID": conversation,
            "ResponseCode": "0",
            "ResponseDescription": ACCEPTED,
        }

    def _find(self, transaction_id: str, original: str) -> Payout | StkPayment | Reversal | None:
        """A transaction by its receipt, or by any id of it: ours, Daraja's, the conversation."""
        for payout in self.state.payouts.values():
            if transaction_id and payout.paid and payout.transaction_id == transaction_id:
                return payout
            ids = (
                payout.originator_conversation_id,
                payout.conversation_id,
                payout.daraja_originator_id,
            )
            if original and original in ids:
                return payout
        for rev in self.state.reversals.values():
            if transaction_id and rev.reversed and rev.receipt == transaction_id:
                return rev
            if original and original in (rev.originator_conversation_id, rev.conversation_id):
                return rev
        for payment in self.state.stk.values():
            if transaction_id and payment.receipt == transaction_id:
                return payment
        return None

    def _answer_status(
        self,
        initiator_ok: bool,
        transaction_id: str,
        original: str,
        result_url: str,
        conversation: str,
        own: str,
        occasion: str,
    ) -> None:
        found = self._find(transaction_id, original)
        result: dict[str, Any] = {
            "ResultType": 0,
            "OriginatorConversationID": own,
            "ConversationID": conversation,
        }
        if not initiator_ok:
            result |= {"ResultCode": 2001, "ResultDesc": B2C_RESULTS[2001]}
            result["TransactionID"] = _placeholder_receipt()
        elif isinstance(found, Payout) and (found.paid or found.result_code is None):
            result |= self._payout_status(found)
        elif isinstance(found, StkPayment) and found.result_code == 0:
            result |= self._stk_status(found)
        elif isinstance(found, Reversal) and (found.reversed or found.result_code is None):
            result |= self._reversal_status(found)
        else:
            result |= {"ResultCode": NOT_FOUND_CODE, "ResultDesc": NOT_FOUND_DESC}
            result["TransactionID"] = _placeholder_receipt()
        reference = original or transaction_id
        self._send_later(
            _result_callback("status_result", reference, result_url, result, ("Occasion", occasion))
        )

    def _status(
        self,
        *,
        status: str,
        debit: str,
        credit: str,
        when: int,
        amount: int,
        receipt: str,
        reason: str,
        originator: str | None = None,
        conversation: str | None = None,
    ) -> dict[str, Any]:
        parameters: list[dict[str, Any]] = [
            {"Key": "DebitPartyName", "Value": debit},
            {"Key": "CreditPartyName", "Value": credit},
        ]
        if originator is not None:
            parameters.append({"Key": "OriginatorConversationID", "Value": originator})
        parameters += [
            {"Key": "InitiatedTime", "Value": when},
            {"Key": "CreditPartyCharges"},
            {"Key": "DebitAccountType", "Value": "Utility Account"},
            {"Key": "TransactionReason"},
            {"Key": "ReasonType", "Value": reason},
            {"Key": "TransactionStatus", "Value": status},
            {"Key": "FinalisedTime", "Value": when},
            {"Key": "Amount", "Value": float(amount)},
        ]
        if conversation is not None:
            parameters.append({"Key": "ConversationID", "Value": conversation})
        parameters.append({"Key": "ReceiptNo", "Value": receipt})
        return {
            "ResultCode": 0,
            "ResultDesc": STK_RESULTS[0],
            "TransactionID": receipt,
            "ResultParameters": {"ResultParameter": parameters},
        }

    def _payout_status(self, payout: Payout) -> dict[str, Any]:
        pending = payout.result_code is None
        return self._status(
            status="Pending" if pending else "Completed",
            debit=f"{self.settings.b2c_shortcode} - Nishati Test",
            credit=f"{payout.phone[:8]}**** - {RECEIVER_NAME}",
            when=int(f"{(payout.completed_at or now_nairobi()):%Y%m%d%H%M%S}"),
            amount=payout.amount,
            receipt=payout.transaction_id,
            reason="Business Payment to Customer via API",
            # As M-Pesa knows it: Daraja's own id, when its results carry that.
            originator=payout.result_originator_id,
            conversation=payout.conversation_id,
        )

    def _stk_status(self, payment: StkPayment) -> dict[str, Any]:
        assert payment.receipt is not None
        assert payment.transaction_date is not None
        return self._status(
            status="Completed",
            debit=f"{payment.phone[:8]}**** - {RECEIVER_NAME}",
            credit=f"{self.settings.shortcode} - Nishati Test",
            when=payment.transaction_date,
            amount=payment.amount,
            receipt=payment.receipt,
            reason="Pay Bill Online",
        )

    def _reversal_status(self, rev: Reversal) -> dict[str, Any]:
        return self._status(
            status="Pending" if rev.result_code is None else "Completed",
            debit=f"{self.settings.shortcode} - Nishati Test",
            credit=f"{rev.phone[:8]}**** - {RECEIVER_NAME}",
            when=int(f"{(rev.completed_at or now_nairobi()):%Y%m%d%H%M%S}"),
            amount=rev.amount,
            receipt=rev.receipt,
            reason="Reversal",
            originator=rev.originator_conversation_id,
            conversation=rev.conversation_id,
        )

    # --- inspection ---------------------------------------------------------------------------

    def transactions(self) -> dict[str, Any]:
        state = self.state
        return {
            "stk": [p.model_dump(mode="json") for p in state.stk.values()],
            "payouts": [p.model_dump(mode="json") for p in state.payouts.values()],
            "reversals": [r.model_dump(mode="json") for r in state.reversals.values()],
            "held": [{"hold": k, **c.model_dump(mode="json")} for k, c in state.held.items()],
            "pending_work": [
                {"due": due, "kind": kind, **({} if kind == "send" else data)}
                for _, due, kind, data in self.books.jobs()
            ],
            "tokens": len(self.tokens),
            "funds": state.funds,
        }
