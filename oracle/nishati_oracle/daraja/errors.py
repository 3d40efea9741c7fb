"""The Daraja layer's exceptions: one base, one class per thing a caller must tell apart.

Every exception the client raises is in one of three families, and the family says whether
money may have moved: **refused before sending** (``DarajaConfigError``, ``DarajaRequestInvalid``,
``DarajaUnavailable``), **refused by the far side** (``DarajaApiError``: the request was not
processed), or **outcome unknown** (``DarajaOutcomeUnknown``: it may have been processed; reconcile
before doing it again). ``may_have_been_processed`` says which, on every class.

DarajaError
├── DarajaConfigError: the configuration cannot make this call (no initiator, no certificate)
├── DarajaRequestInvalid (ValueError): refused here, before anything was sent
│   ├── InvalidAmount
│   ├── InvalidPhone (also a nishati_client InvalidPhoneNumber)
│   ├── InvalidAccountReference
│   ├── InvalidTransactionDesc
│   ├── InvalidRemarks
│   ├── InvalidOccasion
│   ├── InvalidUrl: a callback URL Daraja would refuse or never call
│   └── InvalidIdentifier: an empty or oversized OriginatorConversationID / request id
├── DarajaUnavailable: no connection could be made; the request never left
│   └── TokenUnavailable: no access token could be had, so the call itself was never sent
├── DarajaOutcomeUnknown: the request may have reached Daraja, and was not sent again
│   ├── NoReply: a timeout or a dropped connection after the request was sent
│   ├── UnexpectedResponse: a reply that is not what the protocol promises
│   │   ├── GatewayFailure: HTTP 5xx without a Daraja error body (a proxy's 502/503/504 page)
│   │   ├── MismatchedReply: the reply names another request than the one sent
│   │   └── UnknownResultCode: a ResultCode that is neither a number nor a known pending code
│   └── ServerError 500.003.1001 (also a DarajaApiError): Daraja failed while processing
├── CallbackInvalid (ValueError): a callback body breaks the documented format
└── DarajaApiError: Daraja answered with an error (``errorCode`` or a non-zero ``ResponseCode``)
    ├── InvalidField 400.002.02
    ├── AuthenticationFailed: OAuth refused the consumer key and secret (400.008.01/02)
    ├── InvalidToken 404.001.03, 400.003.01, 401.003.01, 401.002.01, 401.001
    ├── TransactionInProcess 500.001.1001
    ├── DuplicateRequest 500.002.1001: that OriginatorConversationID was already received
    ├── SpikeArrest 500.003.02
    ├── QuotaExceeded 500.003.03
    ├── RequestRejected: HTTP 200 but a non-zero ``ResponseCode``
    └── GatewayRejected: HTTP 4xx without a Daraja error body (a firewall's HTML page)
        └── RateLimited: HTTP 429 from a gateway in front of Daraja

No message here ever holds a secret or a whole phone number: Daraja's own ``errorMessage`` is
passed through :func:`scrub` first, because it sometimes echoes the request's fields.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import ClassVar

from nishati_client.phone import InvalidPhoneNumber, mask

# Anything that looks like a Kenyan mobile number, anywhere in a message. `\d` (digits of any
# script) on purpose: the match is only masked, never read as a number, and masking more is safe.
_PHONE_IN_TEXT = re.compile(r"(?<!\d)(?:\+?254|0)[17]\d{8}(?!\d)")

INVALID_FIELD = "400.002.02"
INVALID_TOKEN = "404.001.03"  # noqa: S105 - an error code, not a secret
# Daraja's APIs each document their own code for a bad or expired token: 404.001.03 (STK Push,
# Reversal), 400.003.01 (Transaction Status, C2B), 401.002.01 (Account Balance), 401.001 (Pull
# Transactions); 401.003.01 is reported for others. All of them mean: renew and resend.
INVALID_TOKEN_CODES = frozenset(
    {INVALID_TOKEN, "400.003.01", "401.003.01", "401.002.01", "401.001"}
)
INVALID_AUTHENTICATION = "400.008.01"
INVALID_GRANT = "400.008.02"
IN_PROCESS = "500.001.1001"
DUPLICATE = "500.002.1001"
SERVER_ERROR = "500.003.1001"
SPIKE_ARREST = "500.003.02"
QUOTA_EXCEEDED = "500.003.03"

EXCERPT_CHARS = 200
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]+")


def scrub(text: str) -> str:
    """``text`` with every phone number masked (``2547****4149``)."""
    return _PHONE_IN_TEXT.sub(lambda m: mask(m.group(0)), text)


def excerpt(text: str) -> str:
    """The start of a reply body fit for a log line: printable ASCII, phones masked, short."""
    flat = _UNPRINTABLE.sub(" ", text[: EXCERPT_CHARS * 4]).strip()
    flat = scrub(flat)
    return flat if len(flat) <= EXCERPT_CHARS else flat[: EXCERPT_CHARS - 1] + "…"


class DarajaError(Exception):
    """Base of every error the Daraja layer raises."""

    may_have_been_processed: ClassVar[bool] = False
    """True when the request may have been processed (money may have moved): reconcile (STK
    Query, Transaction Status, the callback) before sending it again with a new key."""


class DarajaConfigError(DarajaError):
    """The configuration lacks what this call needs (B2C without an initiator, say)."""


class DarajaRequestInvalid(DarajaError, ValueError):
    """A request broke one of Daraja's rules and was refused before it was sent."""


class InvalidAmount(DarajaRequestInvalid):
    """Not a whole number of shillings in the range the API accepts."""


class InvalidPhone(DarajaRequestInvalid, InvalidPhoneNumber):
    """Not a Kenyan mobile number (``07…``, ``01…``, ``+254…``, ``254…``)."""


class InvalidAccountReference(DarajaRequestInvalid):
    """``AccountReference`` empty or longer than 12 characters."""


class InvalidTransactionDesc(DarajaRequestInvalid):
    """``TransactionDesc`` empty or longer than 13 characters."""


class InvalidRemarks(DarajaRequestInvalid):
    """B2C ``Remarks`` outside 2 to 100 characters."""


class InvalidOccasion(DarajaRequestInvalid):
    """B2C ``Occassion`` longer than 100 characters."""


class InvalidUrl(DarajaRequestInvalid):
    """A callback URL that is not http(s), not https in production, or holds a word Daraja
    filters out (M-PESA, Safaricom, exe, cmd, SQL, query)."""


class InvalidIdentifier(DarajaRequestInvalid):
    """An identifier (``OriginatorConversationID``, ``CheckoutRequestID``…) that is empty,
    too long or not printable ASCII."""


class DarajaUnavailable(DarajaError):
    """No connection to Daraja could be made, after retries; nothing was sent."""


class TokenUnavailable(DarajaUnavailable):
    """No access token could be had (OAuth unreachable or answering nonsense), so the call it
    was for was never sent. A refusal of the consumer key and secret is
    :class:`AuthenticationFailed` instead."""


class DarajaOutcomeUnknown(DarajaError):
    """The request may have reached Daraja but no usable answer came back. An STK Push is not
    sent again, because that could prompt (and charge) the customer twice: reconcile by STK
    Query or by the callback instead."""

    may_have_been_processed = True


class NoReply(DarajaOutcomeUnknown):
    """The request was sent, then the connection timed out or dropped before an answer."""


class UnexpectedResponse(DarajaOutcomeUnknown):
    """Daraja (or something in front of it) answered with something the protocol does not
    describe: not JSON, missing fields, a code nobody documents. Whether the request was
    processed is unknown. ``excerpt`` is the start of the body, printable and scrubbed."""

    def __init__(self, message: str, status_code: int | None = None, excerpt: str = "") -> None:
        super().__init__(message)
        self.status_code = status_code
        self.excerpt = excerpt


class GatewayFailure(UnexpectedResponse):
    """HTTP 5xx without a Daraja error body: a proxy or load balancer failed (502, 503, 504,
    an HTML error page). The request may have been processed behind it."""


class MismatchedReply(UnexpectedResponse):
    """The reply names another request than the one sent (a ``CheckoutRequestID`` or
    ``OriginatorConversationID`` that is not ours), so it cannot be read as our answer."""


class UnknownResultCode(UnexpectedResponse):
    """A ``ResultCode`` that is not a number and not one this layer knows (the sandbox answers
    ``E3008`` for numbers it will not prompt). Not read as final either way."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class CallbackProblem(StrEnum):
    """Why a callback was refused, as a stable word a caller can record next to it."""

    not_json = "not_json"
    wrong_shape = "wrong_shape"
    missing_field = "missing_field"
    fractional_amount = "fractional_amount"
    bad_amount = "bad_amount"
    bad_value = "bad_value"


class CallbackInvalid(DarajaError, ValueError):
    """A callback body does not have the documented shape; it cannot be trusted or settled.
    ``reason`` says which rule it broke; the message says it in words."""

    def __init__(self, message: str, reason: CallbackProblem = CallbackProblem.wrong_shape) -> None:
        super().__init__(message)
        self.reason = reason


class DarajaApiError(DarajaError):
    """Daraja refused a request: its ``errorCode`` (or non-zero ``ResponseCode``) and message.
    Nothing was processed (but see :class:`ServerError`)."""

    def __init__(
        self,
        error_code: str,
        error_message: str,
        *,
        request_id: str | None = None,
        status_code: int | None = None,
    ) -> None:
        self.error_code = error_code
        self.error_message = scrub(error_message)
        self.request_id = request_id
        self.status_code = status_code
        super().__init__(f"Daraja {error_code}: {self.error_message}")


class InvalidField(DarajaApiError):
    """400.002.02: a field is invalid (or the request lacked ``Content-Type``)."""


class AuthenticationFailed(DarajaApiError):
    """OAuth refused the consumer key and secret (400.008.01 "Invalid Authentication passed",
    400.008.02 invalid grant type, or a bare HTTP 400/401/403 from the token endpoint)."""


class InvalidToken(DarajaApiError):
    """The access token is invalid or expired (each API has its own code for it; a newer
    token for the same app also invalidates it). Renewed and sent once more before this is
    raised."""


class TransactionInProcess(DarajaApiError):
    """500.001.1001: a transaction is already in process for this phone (wait a minute), or,
    under the same code, the credentials are wrong."""


class DuplicateRequest(DarajaApiError):
    """500.002.1001 "Duplicate OriginatorConversationID": an earlier request with this key
    reached Daraja. For B2C this is what makes a resend safe."""


class ServerError(DarajaApiError, DarajaOutcomeUnknown):
    """500.003.1001 Internal Server Error: Daraja failed while handling the request, which may
    have been processed. Both a Daraja error (with its code) and an unknown outcome."""

    may_have_been_processed = True


class SpikeArrest(DarajaApiError):
    """500.003.02: rate limited; the request was not processed."""


class QuotaExceeded(DarajaApiError):
    """500.003.03: the app's quota is used up."""


class RequestRejected(DarajaApiError):
    """Daraja answered HTTP 200 with a non-zero ``ResponseCode``: the request was not taken."""


class GatewayRejected(DarajaApiError):
    """HTTP 4xx without a Daraja error body: something in front of Daraja (a firewall, a
    gateway, a wrong URL) refused the request before it was processed. ``error_code`` is
    ``HTTP <status>``; the message holds an excerpt of the body."""


class RateLimited(GatewayRejected):
    """HTTP 429 from a gateway: not processed; sent again after ``retry_after_secs`` (its
    ``Retry-After``, when it gave one) or the usual backoff."""

    def __init__(
        self, error_message: str, *, status_code: int = 429, retry_after_secs: float | None = None
    ) -> None:
        super().__init__(f"HTTP {status_code}", error_message, status_code=status_code)
        self.retry_after_secs = retry_after_secs


_BY_CODE: dict[str, type[DarajaApiError]] = {
    INVALID_FIELD: InvalidField,
    **dict.fromkeys(INVALID_TOKEN_CODES, InvalidToken),
    INVALID_AUTHENTICATION: AuthenticationFailed,
    INVALID_GRANT: AuthenticationFailed,
    IN_PROCESS: TransactionInProcess,
    DUPLICATE: DuplicateRequest,
    SERVER_ERROR: ServerError,
    SPIKE_ARREST: SpikeArrest,
    QUOTA_EXCEEDED: QuotaExceeded,
}


def api_error(body: Mapping[str, object], status_code: int | None = None) -> DarajaApiError:
    """The named exception for a Daraja error body ``{requestId, errorCode, errorMessage}``.
    A code this layer does not know but whose message says the token is invalid (as some
    APIs word it: "Error Occurred - Invalid Access Token - …") is an :class:`InvalidToken`."""
    code = str(body.get("errorCode", "unknown"))
    message = str(body.get("errorMessage", ""))
    request_id = body.get("requestId")
    cls = _BY_CODE.get(code)
    if cls is None:
        cls = InvalidToken if "invalid access token" in message.lower() else DarajaApiError
    return cls(
        code,
        message,
        request_id=None if request_id is None else str(request_id),
        status_code=status_code,
    )
