"""An async Daraja (M-Pesa) client on httpx: STK Push and Query, B2C v3, Transaction Status.

Retries follow one rule: a request is sent again only when that cannot pay or charge twice.

- Every call is retried (with backoff) when the connection could not be made, since then nothing
  was sent, and on spike arrest (``500.003.02``), which Daraja answers before processing.
- Every call is sent once more, with a new token, after ``404.001.03`` invalid token.
- STK Push is otherwise never resent: after a read timeout or a dropped connection it raises
  :class:`DarajaOutcomeUnknown`, and the payment is reconciled by STK Query or its callback.
- STK Query and Transaction Status are reads, and B2C carries the caller's
  ``OriginatorConversationID`` (Daraja refuses a duplicate, surfaced as
  :class:`B2CAlreadySubmitted`), so those are also resent after a timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
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
    DarajaOutcomeUnknown,
    DarajaUnavailable,
    InvalidAccountReference,
    InvalidAmount,
    InvalidIdentifier,
    InvalidOccasion,
    InvalidPhone,
    InvalidRemarks,
    InvalidToken,
    InvalidTransactionDesc,
    InvalidUrl,
    RequestRejected,
    SpikeArrest,
    TransactionInProcess,
    UnexpectedResponse,
    api_error,
)
from nishati_oracle.daraja.models import (
    B2CAccepted,
    B2CAlreadySubmitted,
    B2CSubmission,
    StatusQueryAccepted,
    StkPushAccepted,
    StkQueryCompleted,
    StkQueryPending,
    StkQueryResult,
)
from nishati_oracle.daraja.token import TokenCache, parse_token_reply

log = structlog.get_logger(__name__)

TOKEN_PATH = "/oauth/v1/generate"  # noqa: S105 - a path, not a secret
STK_PUSH_PATH = "/mpesa/stkpush/v1/processrequest"
STK_QUERY_PATH = "/mpesa/stkpushquery/v1/query"
B2C_PATH = "/mpesa/b2c/v3/paymentrequest"
TRANSACTION_STATUS_PATH = "/mpesa/transactionstatus/v1/query"

STK_MIN_AMOUNT = 1
STK_MAX_AMOUNT = 250_000
B2C_MIN_AMOUNT = 10
ACCOUNT_REFERENCE_MAX = 12
TRANSACTION_DESC_MAX = 13
REMARKS_MIN, REMARKS_MAX = 2, 100
OCCASION_MAX = 100
IDENTIFIER_MAX = 100
# Words Daraja's gateway filters out of callback URLs (it then never calls them).
FORBIDDEN_URL_WORDS = ("m-pesa", "mpesa", "safaricom", "exe", "cmd", "sql", "query")

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


class DarajaClient:
    """One Daraja app's API. Give it an ``httpx.AsyncClient`` to share a pool (or, in tests, a
    ``MockTransport``); otherwise it makes and closes its own. ``now``, ``clock`` and ``sleep``
    are there for tests: wall time for timestamps, a monotonic clock for the token, the sleep
    used between retries."""

    def __init__(
        self,
        config: DarajaConfig,
        *,
        http: httpx.AsyncClient | None = None,
        now: Callable[[], datetime] = _utc_now,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self._own_http = http is None
        self._http = http if http is not None else httpx.AsyncClient()
        self._timeout = httpx.Timeout(config.read_timeout_secs, connect=config.connect_timeout_secs)
        self._now = now
        self._sleep = sleep
        self._tokens = TokenCache(
            self._fetch_token, margin_secs=config.token_refresh_margin_secs, clock=clock
        )
        self._credential: str | None = None

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

        Raises :class:`DarajaOutcomeUnknown` if the request may have reached Daraja without an
        answer; it is never resent, since the customer could be prompted and charged twice."""
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
        answered (Daraja's HTTP 500 ``500.001.1001`` "being processed"), else
        :class:`StkQueryCompleted` with the int result code."""
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
            if "being processed" in e.error_message.lower():
                return StkQueryPending(checkout_request_id)
            raise
        self._response_code(data)
        raw = data.get("ResultCode")
        if isinstance(raw, bool) or not (
            isinstance(raw, int) or (isinstance(raw, str) and ascii_digits(raw.strip()))
        ):
            raise UnexpectedResponse("STK Query: the reply has no numeric ResultCode")
        return StkQueryCompleted(
            merchant_request_id=str(data.get("MerchantRequestID", "")),
            checkout_request_id=str(data.get("CheckoutRequestID", checkout_request_id)),
            result_code=int(raw),
            result_desc=str(data.get("ResultDesc", "")),
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
        every attempt at the same payout. If Daraja already has it, the answer is
        :class:`B2CAlreadySubmitted`, never a second payment."""
        _check_identifier(originator_conversation_id, "OriginatorConversationID")
        msisdn = _check_phone(phone)
        _check_amount(amount, B2C_MIN_AMOUNT, None)
        _check_text(remarks, "Remarks", REMARKS_MIN, REMARKS_MAX, InvalidRemarks)
        _check_text(occasion, "Occassion", 0, OCCASION_MAX, InvalidOccasion)
        self._check_url(result_url, "ResultURL")
        self._check_url(queue_timeout_url, "QueueTimeOutURL")
        initiator, credential, party_a = self._initiator()
        body = {
            "OriginatorConversationID": originator_conversation_id,
            "InitiatorName": initiator,
            "SecurityCredential": credential,
            "CommandID": "BusinessPayment",
            "Amount": amount,
            "PartyA": party_a,
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
            if "duplicate" in e.error_message.lower():
                log.info(
                    "b2c already submitted",
                    operation="B2C",
                    originator_conversation_id=originator_conversation_id,
                )
                return B2CAlreadySubmitted(originator_conversation_id, e.error_message)
            raise
        log.info(
            "b2c accepted",
            operation="B2C",
            originator_conversation_id=originator_conversation_id,
            amount_kes=amount,
            phone=mask(msisdn),
        )
        return B2CAccepted(
            originator_conversation_id=str(
                data.get("OriginatorConversationID", originator_conversation_id)
            ),
            conversation_id=str(data.get("ConversationID", "")),
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
    ) -> StatusQueryAccepted:
        """Asks where a B2C payout stands (after a queue timeout, before paying again), by its
        ``OriginatorConversationID`` or M-Pesa ``TransactionID``. The reply only acknowledges;
        the answer comes to ``result_url`` (parse it with
        :func:`parse_transaction_status_result`)."""
        if originator_conversation_id is None and transaction_id is None:
            raise InvalidIdentifier("give originator_conversation_id or transaction_id")
        _check_text(remarks, "Remarks", REMARKS_MIN, REMARKS_MAX, InvalidRemarks)
        _check_text(occasion, "Occasion", 0, OCCASION_MAX, InvalidOccasion)
        self._check_url(result_url, "ResultURL")
        self._check_url(queue_timeout_url, "QueueTimeOutURL")
        initiator, credential, party_a = self._initiator()
        body: dict[str, object] = {
            "Initiator": initiator,
            "SecurityCredential": credential,
            "CommandID": "TransactionStatusQuery",
            "PartyA": party_a,
            "IdentifierType": "4",  # an organisation shortcode
            "ResultURL": result_url,
            "QueueTimeOutURL": queue_timeout_url,
            "Remarks": remarks,
            "Occasion": occasion,
        }
        if transaction_id is not None:
            body["TransactionID"] = _check_identifier(transaction_id, "TransactionID")
        if originator_conversation_id is not None:
            body["OriginatorConversationID"] = _check_identifier(
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

    # ------------------------------------------------------------------ plumbing

    def _check_url(self, url: str, name: str) -> None:
        production = self.config.root == PRODUCTION_URL
        if not url.startswith("https://" if production else ("https://", "http://")):
            raise InvalidUrl(f"{name} must be {'https' if production else 'an http(s) URL'}")
        lowered = url.lower()
        for word in FORBIDDEN_URL_WORDS:
            if word in lowered:
                raise InvalidUrl(f"{name} holds {word!r}, which Daraja filters out")

    def _initiator(self) -> tuple[str, str, str]:
        """``(InitiatorName, SecurityCredential, PartyA)`` for B2C-side calls; the credential
        is encrypted once and reused (any encryption of the password is valid)."""
        config = self.config
        if (
            config.initiator_name is None
            or config.initiator_password is None
            or config.certificate is None
            or config.b2c_shortcode is None
        ):
            raise DarajaConfigError(
                "B2C needs initiator_name, initiator_password, certificate and b2c_shortcode"
            )
        if self._credential is None:
            self._credential = security_credential(
                config.initiator_password.get_secret_value(), config.certificate
            )
        return config.initiator_name, self._credential, config.b2c_shortcode

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

    def _backoff(self, attempt: int) -> float:
        """Exponential: ``backoff_secs``, then twice that, ... up to ``max_backoff_secs``."""
        delay: float = self.config.backoff_secs * 2 ** (attempt - 1)
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
    ) -> httpx.Response:
        """One HTTP exchange, retried on connection failures (nothing sent) and, when
        ``resend_after_send``, on any transport failure; ``events`` logs the retries."""
        url = self.config.root + path
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._http.request(method, url, timeout=self._timeout, **kwargs)
            except _NOT_SENT as e:
                failure = type(e).__name__
                if attempt >= self.config.max_attempts:
                    raise DarajaUnavailable(f"{op}: cannot connect to Daraja ({failure})") from e
            except httpx.TransportError as e:
                failure = type(e).__name__
                if not resend_after_send:
                    raise DarajaOutcomeUnknown(
                        f"{op}: no answer ({failure}); it may have been received, "
                        "so it was not resent"
                    ) from e
                if attempt >= self.config.max_attempts:
                    raise DarajaUnavailable(f"{op}: no answer ({failure})") from e
            events.warning("daraja transport failure, retrying", attempt=attempt, error=failure)
            await self._sleep(self._backoff(attempt))

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, object] | None:
        try:
            data = response.json()
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    async def _fetch_token(self) -> tuple[str, int]:
        config = self.config
        auth = httpx.BasicAuth(
            config.consumer_key.get_secret_value(), config.consumer_secret.get_secret_value()
        )
        spikes = 0
        while True:
            response = await self._send(
                "OAuth",
                "GET",
                TOKEN_PATH,
                resend_after_send=True,
                events=log.bind(operation="OAuth"),
                params={"grant_type": "client_credentials"},
                auth=auth,
            )
            data = self._json(response)
            if data is not None and "errorCode" in data:
                error = api_error(data, response.status_code)
                if isinstance(error, SpikeArrest) and spikes + 1 < config.max_attempts:
                    spikes += 1
                    await self._sleep(self._backoff(spikes))
                    continue
                raise error
            if response.status_code in (400, 401, 403):
                raise AuthenticationFailed(
                    str(response.status_code),
                    "the consumer key and secret were refused",
                    status_code=response.status_code,
                )
            if not response.is_success or data is None:
                raise UnexpectedResponse(
                    f"OAuth: HTTP {response.status_code} without a token", response.status_code
                )
            return parse_token_reply(data)

    async def _call(
        self, op: str, path: str, body: Mapping[str, object], *, resend_after_send: bool
    ) -> dict[str, object]:
        """POSTs ``body`` with a bearer token; Daraja's error bodies become named exceptions.
        Resent after an invalid token (once) and spike arrest (with backoff), both refused
        before any processing; for ``resend_after_send`` calls also after a 5xx without an
        error body."""
        config = self.config
        events = log.bind(operation=op)
        if (key := body.get("OriginatorConversationID")) is not None:
            events = events.bind(originator_conversation_id=key)
        renewed = False
        retries = 0
        while True:
            token = await self._tokens.get()
            response = await self._send(
                op,
                "POST",
                path,
                resend_after_send=resend_after_send,
                events=events,
                json=body,
                headers={"Authorization": f"Bearer {token}"},
            )
            data = self._json(response)
            if data is not None and "errorCode" in data:
                error = api_error(data, response.status_code)
                if isinstance(error, InvalidToken) and not renewed:
                    renewed = True
                    self._tokens.invalidate(token)
                    continue
                if isinstance(error, SpikeArrest) and retries + 1 < config.max_attempts:
                    retries += 1
                    events.warning("daraja spike arrest, retrying", attempt=retries)
                    await self._sleep(self._backoff(retries))
                    continue
                if error.error_code != IN_PROCESS:
                    events.warning("daraja refused", error_code=error.error_code, error=str(error))
                raise error
            if response.is_success and data is not None:
                return data
            if response.status_code >= 500 and not resend_after_send:
                raise DarajaOutcomeUnknown(
                    f"{op}: HTTP {response.status_code} without a Daraja error body; "
                    "it may have been received, so it was not resent"
                )
            if response.status_code >= 500 and retries + 1 < config.max_attempts:
                retries += 1
                await self._sleep(self._backoff(retries))
                continue
            raise UnexpectedResponse(
                f"{op}: HTTP {response.status_code} without a Daraja reply", response.status_code
            )
