"""An async Daraja (M-Pesa) client on httpx: STK Push and Query, B2C v3, Transaction Status,
Reversal.

Retries follow one rule: a request is sent again only when that cannot pay or charge twice.

- Every call is retried (with backoff) when the connection could not be made, since then nothing
  was sent, and on refusals made before any processing: spike arrest (``500.003.02``) and a
  gateway's HTTP 429 (after its ``Retry-After``, capped).
- Every call is sent once more, with a new token, after an invalid-token error (any of the codes
  Daraja's APIs use for it, or a bare HTTP 401).
- STK Push is otherwise never resent: after a read timeout, a dropped connection or a 5xx that
  is not Daraja's it raises a :class:`DarajaOutcomeUnknown`, and the payment is reconciled by STK
  Query or its callback.
- STK Query and Transaction Status are reads, B2C carries the caller's
  ``OriginatorConversationID`` (Daraja refuses a duplicate, surfaced as
  :class:`B2CAlreadySubmitted`), and a second reversal of the same receipt is refused
  (``R000001``), so those are also resent after a timeout or a bare 5xx.

Every reply maps to a named outcome (see ``errors.py``): a Daraja error body to its
:class:`DarajaApiError`, a 4xx that is not Daraja's (a firewall's HTML page) to
:class:`GatewayRejected`, a 429 to :class:`RateLimited`, a 5xx that is not Daraja's to
:class:`GatewayFailure`, a 2xx that is not the documented reply to :class:`UnexpectedResponse`,
a timeout to :class:`NoReply`. Reply bodies are read up to ``MAX_REPLY_BYTES``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Self

import httpx
import structlog
from structlog.typing import FilteringBoundLogger

from nishati_client.digits import ascii_digits
from nishati_client.phone import InvalidPhoneNumber, mask, normalise
from nishati_oracle.daraja.config import PRODUCTION_URL, DarajaConfig
from nishati_oracle.daraja.credentials import nairobi_timestamp, security_credential, stk_password
from nishati_oracle.daraja.errors import (
    IN_PROCESS,
    AuthenticationFailed,
    DarajaApiError,
    DarajaConfigError,
    DarajaError,
    DarajaUnavailable,
    DuplicateRequest,
    GatewayFailure,
    GatewayRejected,
    InvalidAccountReference,
    InvalidAmount,
    InvalidIdentifier,
    InvalidOccasion,
    InvalidPhone,
    InvalidRemarks,
    InvalidToken,
    InvalidTransactionDesc,
    InvalidUrl,
    MismatchedReply,
    NoReply,
    RateLimited,
    RequestRejected,
    SpikeArrest,
    TokenUnavailable,
    TransactionInProcess,
    UnexpectedResponse,
    UnknownResultCode,
    api_error,
    excerpt,
)
from nishati_oracle.daraja.models import (
    PENDING_PHRASES,
    PENDING_RESULT_CODES,
    B2CAccepted,
    B2CAlreadySubmitted,
    B2CSubmission,
    ReversalAccepted,
    StatusQueryAccepted,
    StkPushAccepted,
    StkQueryCompleted,
    StkQueryPending,
    StkQueryResult,
)
from nishati_oracle.daraja.token import TokenCache, TokenStore, parse_token_reply
from nishati_oracle.daraja.urls import FILTERED_WORDS, TUNNEL_HOSTS, filtered_words

log = structlog.get_logger(__name__)

TOKEN_PATH = "/oauth/v1/generate"  # noqa: S105 - a path, not a secret
STK_PUSH_PATH = "/mpesa/stkpush/v1/processrequest"
STK_QUERY_PATH = "/mpesa/stkpushquery/v1/query"
B2C_PATH = "/mpesa/b2c/v3/paymentrequest"
TRANSACTION_STATUS_PATH = "/mpesa/transactionstatus/v1/query"
REVERSAL_PATH = "/mpesa/reversal/v1/request"

STK_MIN_AMOUNT = 1
STK_MAX_AMOUNT = 250_000
B2C_MIN_AMOUNT = 10
ACCOUNT_REFERENCE_MAX = 12
TRANSACTION_DESC_MAX = 13
REMARKS_MIN, REMARKS_MAX = 2, 100
OCCASION_MAX = 100
IDENTIFIER_MAX = 100
# The Reversal API's RecieverIdentifierType (sic) for an organisation shortcode.
REVERSAL_RECEIVER_TYPE = "11"
# Kept for callers of the old name: the words Daraja's gateway filters out of callback URLs.
FORBIDDEN_URL_WORDS = FILTERED_WORDS
# Daraja's replies are a few hundred bytes; a gateway's error page can be anything.
MAX_REPLY_BYTES = 64 * 1024

_RETRY_EVENTS: dict[type[DarajaError], str] = {
    SpikeArrest: "daraja spike arrest, retrying",
    RateLimited: "daraja rate limited, retrying",
    GatewayFailure: "daraja gateway failure, retrying",
}

# Errors raised before a byte of the request was sent: always safe to try again.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _check_amount(amount: int, low: int, high: int | None) -> int:
    # ``type() is int``: refuses bool, float and Decimal, which Daraja would answer with
    # "Invalid Amount" or, worse, round.
    if type(amount) is not int or amount < low or (high is not None and amount > high):
        limit = f"{low}..{high}" if high is not None else f"at least {low}"
        raise InvalidAmount(f"the amount must be a whole number of shillings, {limit}")
    return amount


def _check_phone(phone: str) -> str:
    try:
        return normalise(phone)
    except InvalidPhoneNumber as e:
        raise InvalidPhone(str(e)) from None


def _check_text(
    value: str, name: str, low: int, high: int, error: type[Exception], *, ascii_only: bool = True
) -> str:
    if not low <= len(value) <= high or (ascii_only and not value.isascii()):
        raise error(f"{name} must be {low} to {high} {'ASCII ' if ascii_only else ''}characters")
    return value


def _check_identifier(value: str, name: str) -> str:
    if not 1 <= len(value) <= IDENTIFIER_MAX or not value.isascii() or not value.isprintable():
        raise InvalidIdentifier(f"{name} must be 1 to {IDENTIFIER_MAX} printable ASCII characters")
    return value


@dataclass(frozen=True)
class _Reply:
    """One HTTP answer, read (up to ``MAX_REPLY_BYTES``) and decoded if it is a JSON object."""

    status: int
    data: dict[str, object] | None
    text: str
    headers: httpx.Headers

    @property
    def excerpt(self) -> str:
        return excerpt(self.text)

    def mentions_token(self) -> bool:
        """An API gateway's own fault body about the token (Apigee's
        ``{"fault": {"faultstring": "Invalid access token", ...}}``)."""
        fault = self.data.get("fault") if self.data is not None else None
        text = str(fault.get("faultstring", "")) if isinstance(fault, Mapping) else ""
        return "token" in text.lower()


def _decode(raw: bytes) -> dict[str, object] | None:
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _retry_after(headers: httpx.Headers, now: datetime) -> float | None:
    """``Retry-After`` in seconds (a number or an HTTP date), or None."""
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    if ascii_digits(value):
        return float(value)
    try:
        when: datetime = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    seconds: float = (when - now).total_seconds()
    return max(0.0, seconds)


@dataclass
class Reachability:
    """What the last exchanges with Daraja came to, on the client's monotonic clock: for a
    readiness probe, which must not call Daraja itself each time it is asked. A reply in
    Daraja's JSON (an error body included) reached it; no connection, no answer or a gateway's
    page did not."""

    last_reply_at: float | None = None
    last_failure_at: float | None = None
    last_failure: str | None = None

    @property
    def reachable(self) -> bool:
        if self.last_reply_at is None:
            return False
        return self.last_failure_at is None or self.last_reply_at >= self.last_failure_at

    def seen(self, at: float, failure: str | None) -> None:
        """Records what an exchange came to: ``failure`` None if Daraja answered."""
        if failure is None:
            self.last_reply_at = at
        else:
            self.last_failure_at = at
            self.last_failure = failure


class DarajaClient:
    """One Daraja app's API. Give it an ``httpx.AsyncClient`` to share a pool (or, in tests, a
    ``MockTransport``); otherwise it makes and closes its own. ``token_store`` shares the app's
    one token with other processes (``token.py``: each new token invalidates the last). ``now``,
    ``clock``, ``wall`` and ``sleep`` are there for tests: wall time for timestamps, a monotonic
    clock for the token, wall seconds for a shared token's expiry, the sleep between retries."""

    def __init__(
        self,
        config: DarajaConfig,
        *,
        http: httpx.AsyncClient | None = None,
        token_store: TokenStore | None = None,
        now: Callable[[], datetime] = _utc_now,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self._own_http = http is None
        self._http = http if http is not None else httpx.AsyncClient()
        self._timeout = httpx.Timeout(config.read_timeout_secs, connect=config.connect_timeout_secs)
        self._now = now
        self._sleep = sleep
        self._clock = clock
        self.reachability = Reachability()
        self.tokens = TokenCache(
            self._fetch_token,
            margin_secs=config.token_refresh_margin_secs,
            clock=clock,
            wall=wall,
            store=token_store,
        )
        self._credentials: dict[str, str] = {}

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Closes the HTTP client if this object made it."""
        if self._own_http:
            await self._http.aclose()

    # ------------------------------------------------------------------ API calls

    async def stk_push(
        self,
        *,
        phone: str,
        amount: int,
        account_reference: str,
        description: str,
        callback_url: str,
    ) -> StkPushAccepted:
        """Prompts ``phone`` to pay ``amount`` whole shillings. Accepted is not paid: the
        outcome comes to ``callback_url`` (confirm it with :meth:`stk_query`). Store the intent
        before calling; the callback can arrive before this returns.

        Raises a :class:`DarajaOutcomeUnknown` if the request may have reached Daraja without a
        usable answer; it is never resent, since the customer could be prompted and charged
        twice."""
        msisdn = _check_phone(phone)
        _check_amount(amount, STK_MIN_AMOUNT, STK_MAX_AMOUNT)
        _check_text(
            account_reference, "AccountReference", 1, ACCOUNT_REFERENCE_MAX, InvalidAccountReference
        )
        _check_text(description, "TransactionDesc", 1, TRANSACTION_DESC_MAX, InvalidTransactionDesc)
        self._check_url(callback_url, "CallBackURL")
        config = self.config
        timestamp = nairobi_timestamp(self._now())  # once, for Password and Timestamp both
        body = {
            "BusinessShortCode": config.shortcode,
            "Password": stk_password(
                config.shortcode, config.passkey.get_secret_value(), timestamp
            ),
            "Timestamp": timestamp,
            "TransactionType": config.transaction_type.value,
            "Amount": amount,
            "PartyA": msisdn,
            "PartyB": config.till_number or config.shortcode,
            "PhoneNumber": msisdn,
            "CallBackURL": callback_url,
            "AccountReference": account_reference,
            "TransactionDesc": description,
        }
        data = await self._call("STK Push", STK_PUSH_PATH, body, resend_after_send=False)
        code = self._response_code(data)
        accepted = StkPushAccepted(
            merchant_request_id=self._field(data, "MerchantRequestID"),
            checkout_request_id=self._field(data, "CheckoutRequestID"),
            response_code=code,
            response_description=str(data.get("ResponseDescription", "")),
            customer_message=str(data.get("CustomerMessage", "")),
        )
        log.info(
            "stk push accepted",
            operation="STK Push",
            checkout_request_id=accepted.checkout_request_id,
            amount_kes=amount,
            phone=mask(msisdn),
        )
        return accepted

    async def stk_query(self, checkout_request_id: str) -> StkQueryResult:
        """The state of an STK Push: :class:`StkQueryPending` while the customer has not
        finished (HTTP 500 ``500.001.1001`` "being processed", or HTTP 200 ``ResultCode`` 4999
        "still under processing"), else :class:`StkQueryCompleted` with the int result code.

        A reply about another ``CheckoutRequestID`` raises :class:`MismatchedReply`; a
        ``ResultCode`` that is not a number (the sandbox's ``E3008``) raises
        :class:`UnknownResultCode`: neither is read as final."""
        _check_identifier(checkout_request_id, "CheckoutRequestID")
        config = self.config
        timestamp = nairobi_timestamp(self._now())
        body = {
            "BusinessShortCode": config.shortcode,
            "Password": stk_password(
                config.shortcode, config.passkey.get_secret_value(), timestamp
            ),
            "Timestamp": timestamp,
            "CheckoutRequestID": checkout_request_id,
        }
        try:
            data = await self._call("STK Query", STK_QUERY_PATH, body, resend_after_send=True)
        except TransactionInProcess as e:
            if any(phrase in e.error_message.lower() for phrase in PENDING_PHRASES):
                return StkQueryPending(checkout_request_id, description=e.error_message)
            raise
        answered = data.get("CheckoutRequestID")
        if answered is not None and answered != checkout_request_id:
            raise MismatchedReply("STK Query: the reply is about another CheckoutRequestID")
        raw = data.get("ResultCode")
        desc = str(data.get("ResultDesc", ""))
        text = str(raw).strip() if raw is not None and not isinstance(raw, bool) else ""
        numeric = ascii_digits(text.removeprefix("-"))
        if (numeric and int(text) in PENDING_RESULT_CODES) or (
            not numeric and any(phrase in desc.lower() for phrase in PENDING_PHRASES)
        ):
            # The sandbox's 4999 comes without a ResponseCode: pending before anything else.
            return StkQueryPending(
                checkout_request_id, int(text) if numeric else None, description=desc
            )
        if "ResponseCode" in data or not numeric:
            self._response_code(data)
        if not numeric:
            if not text or not text.isascii() or not text.isalnum():
                raise UnexpectedResponse("STK Query: the reply has no readable ResultCode")
            raise UnknownResultCode(f"STK Query: ResultCode {text!r} is not a number", text)
        return StkQueryCompleted(
            merchant_request_id=str(data.get("MerchantRequestID", "")),
            checkout_request_id=checkout_request_id,
            result_code=int(text),
            result_desc=desc,
        )

    async def b2c_payment(
        self,
        *,
        originator_conversation_id: str,
        phone: str,
        amount: int,
        remarks: str,
        result_url: str,
        queue_timeout_url: str,
        occasion: str = "",
    ) -> B2CSubmission:
        """Pays ``amount`` whole shillings to ``phone`` (a BusinessPayment from the B2C
        shortcode). ``originator_conversation_id`` is the payout's idempotency key: reuse it for
        every attempt at the same payout. If Daraja already has it (``500.002.1001``), the
        answer is :class:`B2CAlreadySubmitted`, never a second payment.

        The reply must echo ``originator_conversation_id`` (else :class:`MismatchedReply`); keep
        its ``conversation_id`` too, since results are matched on either
        (``B2CAccepted.ids``)."""
        _check_identifier(originator_conversation_id, "OriginatorConversationID")
        msisdn = _check_phone(phone)
        _check_amount(amount, B2C_MIN_AMOUNT, None)
        _check_text(remarks, "Remarks", REMARKS_MIN, REMARKS_MAX, InvalidRemarks)
        _check_text(occasion, "Occassion", 0, OCCASION_MAX, InvalidOccasion)
        self._check_url(result_url, "ResultURL")
        self._check_url(queue_timeout_url, "QueueTimeOutURL")
        initiator, credential = self._initiator()
        body = {
            "OriginatorConversationID": originator_conversation_id,
            "InitiatorName": initiator,
            "SecurityCredential": credential,
            "CommandID": "BusinessPayment",
            "Amount": amount,
            "PartyA": self._b2c_shortcode(),
            "PartyB": msisdn,
            "Remarks": remarks,
            "QueueTimeOutURL": queue_timeout_url,
            "ResultURL": result_url,
            "Occassion": occasion,  # sic: Daraja's spelling
        }
        try:
            data = await self._call("B2C", B2C_PATH, body, resend_after_send=True)
            code = self._response_code(data)
        except DarajaApiError as e:
            if isinstance(e, DuplicateRequest) or "duplicate" in e.error_message.lower():
                log.info(
                    "b2c already submitted",
                    operation="B2C",
                    originator_conversation_id=originator_conversation_id,
                    error_code=e.error_code,
                )
                return B2CAlreadySubmitted(originator_conversation_id, e.error_message)
            raise
        echoed = data.get("OriginatorConversationID")
        if echoed is not None and echoed != originator_conversation_id:
            raise MismatchedReply("B2C: the reply names another OriginatorConversationID")
        conversation_id = str(data.get("ConversationID", ""))
        log.info(
            "b2c accepted",
            operation="B2C",
            originator_conversation_id=originator_conversation_id,
            conversation_id=conversation_id,
            amount_kes=amount,
            phone=mask(msisdn),
        )
        return B2CAccepted(
            originator_conversation_id=originator_conversation_id,
            conversation_id=conversation_id,
            response_code=code,
            response_description=str(data.get("ResponseDescription", "")),
        )

    async def transaction_status(
        self,
        *,
        result_url: str,
        queue_timeout_url: str,
        originator_conversation_id: str | None = None,
        transaction_id: str | None = None,
        remarks: str = "Payout status",
        occasion: str = "",
        party_a: str | None = None,
    ) -> StatusQueryAccepted:
        """Asks where a transaction stands (a B2C payout after a queue timeout, before paying
        again), by its ``OriginatorConversationID`` (sent as Daraja's documented
        ``OriginalConversationID``) or its M-Pesa ``TransactionID``. The reply only
        acknowledges; the answer comes to ``result_url`` (parse it with
        :func:`parse_transaction_status_result`). ``party_a`` is the shortcode the transaction
        went through: the B2C shortcode unless given (give the collecting one for a customer
        payment)."""
        if originator_conversation_id is None and transaction_id is None:
            raise InvalidIdentifier("give originator_conversation_id or transaction_id")
        _check_text(remarks, "Remarks", REMARKS_MIN, REMARKS_MAX, InvalidRemarks)
        _check_text(occasion, "Occasion", 0, OCCASION_MAX, InvalidOccasion)
        self._check_url(result_url, "ResultURL")
        self._check_url(queue_timeout_url, "QueueTimeOutURL")
        initiator, credential = self._initiator()
        body: dict[str, object] = {
            "Initiator": initiator,
            "SecurityCredential": credential,
            "CommandID": "TransactionStatusQuery",
            "PartyA": party_a if party_a is not None else self._b2c_shortcode(),
            "IdentifierType": "4",  # an organisation shortcode
            "ResultURL": result_url,
            "QueueTimeOutURL": queue_timeout_url,
            "Remarks": remarks,
            "Occasion": occasion,
        }
        if transaction_id is not None:
            body["TransactionID"] = _check_identifier(transaction_id, "TransactionID")
        if originator_conversation_id is not None:
            body["OriginalConversationID"] = _check_identifier(
                originator_conversation_id, "OriginatorConversationID"
            )
        data = await self._call(
            "Transaction Status", TRANSACTION_STATUS_PATH, body, resend_after_send=True
        )
        code = self._response_code(data)
        return StatusQueryAccepted(
            originator_conversation_id=str(data.get("OriginatorConversationID", "")),
            conversation_id=str(data.get("ConversationID", "")),
            response_code=code,
            response_description=str(data.get("ResponseDescription", "")),
        )

    async def reversal(
        self,
        *,
        transaction_id: str,
        amount: int,
        result_url: str,
        queue_timeout_url: str,
        remarks: str = "Refund",
        occasion: str = "",
        receiver_party: str | None = None,
    ) -> ReversalAccepted:
        """Reverses the customer payment ``transaction_id`` (its M-Pesa receipt) of ``amount``
        whole shillings: the money goes back to the payer. Only C2B payments (STK Push
        included) can be reversed this way; Daraja reverses B2C payments by hand only.

        The reply only acknowledges; the result (or a queue timeout) comes to ``result_url``
        (:func:`parse_reversal_result`), matched on ``ReversalAccepted.ids``. A resend after a
        timeout is safe: M-Pesa refuses to reverse a receipt twice (``R000001``). Uses the
        reversal initiator if the configuration names one (an API user with the Org Reversals
        Initiator role on ``receiver_party``, the collecting shortcode by default)."""
        _check_identifier(transaction_id, "TransactionID")
        _check_amount(amount, STK_MIN_AMOUNT, None)
        _check_text(remarks, "Remarks", REMARKS_MIN, REMARKS_MAX, InvalidRemarks)
        _check_text(occasion, "Occasion", 0, OCCASION_MAX, InvalidOccasion)
        self._check_url(result_url, "ResultURL")
        self._check_url(queue_timeout_url, "QueueTimeOutURL")
        initiator, credential = self._initiator(reversal=True)
        party = receiver_party if receiver_party is not None else self.config.shortcode
        if not ascii_digits(party):
            raise InvalidIdentifier("ReceiverParty must be a shortcode, the digits 0-9")
        body: dict[str, object] = {
            "Initiator": initiator,
            "SecurityCredential": credential,
            "CommandID": "TransactionReversal",
            "TransactionID": transaction_id,
            "Amount": amount,
            "ReceiverParty": party,
            "RecieverIdentifierType": REVERSAL_RECEIVER_TYPE,  # sic: Daraja's spelling
            "ResultURL": result_url,
            "QueueTimeOutURL": queue_timeout_url,
            "Remarks": remarks,
        }
        if occasion:
            body["Occasion"] = occasion
        data = await self._call("Reversal", REVERSAL_PATH, body, resend_after_send=True)
        code = self._response_code(data)
        accepted = ReversalAccepted(
            originator_conversation_id=str(data.get("OriginatorConversationID", "")),
            conversation_id=str(data.get("ConversationID", "")),
            response_code=code,
            response_description=str(data.get("ResponseDescription", "")),
        )
        if not accepted.ids:
            raise UnexpectedResponse("Reversal: the reply has no ConversationID")
        log.info(
            "reversal accepted",
            operation="Reversal",
            transaction_id=transaction_id,
            conversation_id=accepted.conversation_id,
            amount_kes=amount,
        )
        return accepted

    # ------------------------------------------------------------------ plumbing

    def _check_url(self, url: str, name: str) -> None:
        production = self.config.root == PRODUCTION_URL
        if not url.startswith("https://" if production else ("https://", "http://")):
            raise InvalidUrl(f"{name} must be {'https' if production else 'an http(s) URL'}")
        words = filtered_words(url)
        if words:
            raise InvalidUrl(f"{name} holds {words[0]!r}, which Daraja filters out")
        if production and any(host in url.lower() for host in TUNNEL_HOSTS):
            raise InvalidUrl(f"{name} is a public URL tester, which Daraja blocks in production")

    def _b2c_shortcode(self) -> str:
        if self.config.b2c_shortcode is None:
            raise DarajaConfigError("B2C and Transaction Status need b2c_shortcode")
        return self.config.b2c_shortcode

    def _initiator(self, *, reversal: bool = False) -> tuple[str, str]:
        """``(Initiator name, SecurityCredential)``; each credential is encrypted once and
        reused (any encryption of the password is valid). For a reversal, the reversal
        initiator when one is configured."""
        config = self.config
        name, password = config.initiator_name, config.initiator_password
        if reversal and config.reversal_initiator_name is not None:
            name, password = config.reversal_initiator_name, config.reversal_initiator_password
        if name is None or password is None or config.certificate is None:
            raise DarajaConfigError(
                "this call needs an initiator name, its password and the certificate"
            )
        if name not in self._credentials:
            self._credentials[name] = security_credential(
                password.get_secret_value(), config.certificate
            )
        return name, self._credentials[name]

    @staticmethod
    def _field(data: Mapping[str, object], name: str) -> str:
        value = data.get(name)
        if not isinstance(value, str) or not value:
            raise UnexpectedResponse(f"the reply has no {name}")
        return value

    @staticmethod
    def _response_code(data: Mapping[str, object]) -> int:
        """The synchronous ``ResponseCode`` (a string, ``"0"`` when accepted); anything else
        raises :class:`RequestRejected`."""
        raw = data.get("ResponseCode")
        text = str(raw).strip() if raw is not None and not isinstance(raw, bool) else ""
        if not ascii_digits(text):
            raise UnexpectedResponse("the reply has no ResponseCode")
        code = int(text)
        if code != 0:
            raise RequestRejected(text, str(data.get("ResponseDescription", "")))
        return code

    def _backoff(self, attempt: int, floor: float | None = None) -> float:
        """Exponential: ``backoff_secs``, then twice that, ... up to ``max_backoff_secs``; at
        least ``floor`` (a ``Retry-After``), within the same cap."""
        delay: float = self.config.backoff_secs * 2 ** (attempt - 1)
        if floor is not None:
            delay = max(delay, floor)
        return min(self.config.max_backoff_secs, delay)

    async def _send(
        self,
        op: str,
        method: str,
        path: str,
        *,
        resend_after_send: bool,
        events: FilteringBoundLogger,
        **kwargs: Any,
    ) -> _Reply:
        """One HTTP exchange, retried on connection failures (nothing sent) and, when
        ``resend_after_send``, on any transport failure; ``events`` logs the retries."""
        url = self.config.root + path
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._exchange(method, url, **kwargs)
            except _NOT_SENT as e:
                failure = type(e).__name__
                if attempt >= self.config.max_attempts:
                    raise DarajaUnavailable(f"{op}: cannot connect to Daraja ({failure})") from e
            except httpx.HTTPError as e:
                failure = type(e).__name__
                if not resend_after_send:
                    raise NoReply(
                        f"{op}: no answer ({failure}); it may have been received, "
                        "so it was not resent"
                    ) from e
                if attempt >= self.config.max_attempts:
                    raise NoReply(f"{op}: no answer after {attempt} attempts ({failure})") from e
            events.warning("daraja transport failure, retrying", attempt=attempt, error=failure)
            await self._sleep(self._backoff(attempt))

    async def _exchange(
        self, method: str, url: str, *, auth: httpx.Auth | None = None, **kwargs: Any
    ) -> _Reply:
        try:
            reply = await self._exchange_once(method, url, auth=auth, **kwargs)
        except httpx.HTTPError as e:
            self.reachability.seen(self._clock(), type(e).__name__)
            raise
        failure = None if reply.data is not None else f"HTTP {reply.status} not from Daraja"
        self.reachability.seen(self._clock(), failure)
        return reply

    async def _exchange_once(
        self, method: str, url: str, *, auth: httpx.Auth | None = None, **kwargs: Any
    ) -> _Reply:
        request = self._http.build_request(method, url, timeout=self._timeout, **kwargs)
        response = await self._http.send(request, auth=auth, stream=True)
        try:
            raw = bytearray()
            async for chunk in response.aiter_bytes():
                raw += chunk
                if len(raw) > MAX_REPLY_BYTES:
                    break
        finally:
            await response.aclose()
        body = bytes(raw[:MAX_REPLY_BYTES])
        data = _decode(body) if len(raw) <= MAX_REPLY_BYTES else None
        return _Reply(response.status_code, data, body.decode("utf-8", "replace"), response.headers)

    async def _fetch_token(self) -> tuple[str, int]:
        config = self.config
        auth = httpx.BasicAuth(
            config.consumer_key.get_secret_value(), config.consumer_secret.get_secret_value()
        )
        events = log.bind(operation="OAuth")
        retries = 0
        while True:
            reply = await self._send(
                "OAuth",
                "GET",
                TOKEN_PATH,
                resend_after_send=True,
                events=events,
                params={"grant_type": "client_credentials"},
                auth=auth,
            )
            data = reply.data
            error: DarajaError | None = None
            if data is not None and "errorCode" in data:
                error = api_error(data, reply.status)
            elif reply.status in (400, 401, 403):
                error = AuthenticationFailed(
                    str(reply.status),
                    "the consumer key and secret were refused",
                    status_code=reply.status,
                )
            elif reply.status == 429:
                error = RateLimited(
                    f"OAuth: HTTP 429 ({reply.excerpt})",
                    retry_after_secs=_retry_after(reply.headers, self._now()),
                )
            elif reply.status >= 300 or data is None:
                error = self._not_daraja("OAuth", reply)
            if error is None:
                assert data is not None
                return parse_token_reply(data)
            if isinstance(error, SpikeArrest | RateLimited) and retries + 1 < config.max_attempts:
                retries += 1
                await self._sleep(self._backoff(retries, getattr(error, "retry_after_secs", None)))
                continue
            raise error

    @staticmethod
    def _not_daraja(op: str, reply: _Reply) -> DarajaError:
        """The outcome of a reply that is neither a Daraja error body nor a JSON success."""
        status = reply.status
        if status == 429:
            return RateLimited(f"{op}: HTTP 429 ({reply.excerpt})")
        if 300 <= status < 500:
            return GatewayRejected(
                f"HTTP {status}",
                f"{op}: refused before Daraja ({reply.excerpt or 'no body'})",
                status_code=status,
            )
        if status >= 500:
            return GatewayFailure(
                f"{op}: HTTP {status} without a Daraja error body; it may have been received",
                status,
                reply.excerpt,
            )
        return UnexpectedResponse(
            f"{op}: HTTP {status} without a Daraja reply", status, reply.excerpt
        )

    async def _token(self, op: str) -> str:
        try:
            return await self.tokens.get()
        except AuthenticationFailed:
            raise
        except DarajaError as e:
            raise TokenUnavailable(f"{op}: no access token ({e})") from e

    async def _call(
        self, op: str, path: str, body: Mapping[str, object], *, resend_after_send: bool
    ) -> dict[str, object]:
        """POSTs ``body`` with a bearer token; every reply becomes the JSON success or a named
        exception. Resent after an invalid token (once), spike arrest and HTTP 429 (with
        backoff), all refused before any processing; for ``resend_after_send`` calls also
        after a 5xx that is not Daraja's."""
        config = self.config
        events = log.bind(operation=op)
        if (key := body.get("OriginatorConversationID")) is not None:
            events = events.bind(originator_conversation_id=key)
        renewed = False
        retries = 0
        while True:
            token = await self._token(op)
            reply = await self._send(
                op,
                "POST",
                path,
                resend_after_send=resend_after_send,
                events=events,
                json=body,
                headers={"Authorization": f"Bearer {token}"},
            )
            data = reply.data
            if data is not None and "errorCode" in data:
                error: DarajaError = api_error(data, reply.status)
            elif reply.status == 401 or (reply.status in (400, 403) and reply.mentions_token()):
                # A gateway's own word for a bad token, without Daraja's error body.
                error = InvalidToken(
                    f"HTTP {reply.status}", f"{op}: token refused ({reply.excerpt or 'no body'})"
                )
            elif 200 <= reply.status < 300 and data is not None:
                return data
            elif reply.status == 429:
                error = RateLimited(
                    f"{op}: HTTP 429 ({reply.excerpt or 'no body'})",
                    retry_after_secs=_retry_after(reply.headers, self._now()),
                )
            else:
                error = self._not_daraja(op, reply)
            if isinstance(error, InvalidToken) and not renewed:
                renewed = True
                self.tokens.invalidate(token)
                events.info("daraja refused the token, renewing", error_code=error.error_code)
                continue
            retryable = isinstance(error, SpikeArrest | RateLimited) or (
                isinstance(error, GatewayFailure) and resend_after_send
            )
            if retryable and retries + 1 < config.max_attempts:
                retries += 1
                events.warning(_RETRY_EVENTS[type(error)], attempt=retries)
                await self._sleep(self._backoff(retries, getattr(error, "retry_after_secs", None)))
                continue
            if not (isinstance(error, DarajaApiError) and error.error_code == IN_PROCESS):
                events.warning("daraja call failed", error=str(error), outcome=type(error).__name__)
            raise error
