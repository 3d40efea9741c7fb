"""The Daraja layer's exceptions: one base, one class per thing a caller must tell apart.

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
├── DarajaOutcomeUnknown: the request may have reached Daraja, and was not sent again
├── UnexpectedResponse: a reply that is not what the protocol promises
├── CallbackInvalid (ValueError): a callback body breaks the documented format
└── DarajaApiError: Daraja answered with an error (``errorCode`` or a non-zero ``ResponseCode``)
    ├── InvalidField 400.002.02
    ├── AuthenticationFailed: the OAuth endpoint refused the consumer key and secret
    ├── InvalidToken 404.001.03
    ├── TransactionInProcess 500.001.1001
    ├── SpikeArrest 500.003.02
    ├── QuotaExceeded 500.003.03
    └── RequestRejected: HTTP 200 but a non-zero ``ResponseCode``

No message here ever holds a secret or a whole phone number: Daraja's own ``errorMessage`` is
passed through :func:`scrub` first, because it sometimes echoes the request's fields.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from nishati_client.phone import InvalidPhoneNumber, mask

# Anything that looks like a Kenyan mobile number, anywhere in a message. `\d` (digits of any
# script) on purpose: the match is only masked, never read as a number, and masking more is safe.
_PHONE_IN_TEXT = re.compile(r"(?<!\d)(?:\+?254|0)[17]\d{8}(?!\d)")

INVALID_FIELD = "400.002.02"
INVALID_TOKEN = "404.001.03"  # noqa: S105 - an error code, not a secret
IN_PROCESS = "500.001.1001"
SPIKE_ARREST = "500.003.02"
QUOTA_EXCEEDED = "500.003.03"


def scrub(text: str) -> str:
    """``text`` with every phone number masked (``2547****4149``)."""
    return _PHONE_IN_TEXT.sub(lambda m: mask(m.group(0)), text)


class DarajaError(Exception):
    """Base of every error the Daraja layer raises."""


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


class DarajaOutcomeUnknown(DarajaError):
    """The request may have reached Daraja but no answer came back. It was not sent again,
    because for an STK Push that could prompt (and charge) the customer twice: reconcile by
    STK Query or by the callback instead."""


class UnexpectedResponse(DarajaError):
    """Daraja answered with something the protocol does not describe (not JSON, missing
    fields)."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class CallbackInvalid(DarajaError, ValueError):
    """A callback body does not have the documented shape; it cannot be trusted or settled."""


class DarajaApiError(DarajaError):
    """Daraja refused a request: its ``errorCode`` (or non-zero ``ResponseCode``) and message."""

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
    """The OAuth endpoint refused the consumer key and secret."""


class InvalidToken(DarajaApiError):
    """404.001.03: the access token is invalid or expired."""


class TransactionInProcess(DarajaApiError):
    """500.001.1001: a transaction is already in process for this phone (wait a minute), or,
    under the same code, the credentials are wrong."""


class SpikeArrest(DarajaApiError):
    """500.003.02: rate limited; the request was not processed."""


class QuotaExceeded(DarajaApiError):
    """500.003.03: the app's quota is used up."""


class RequestRejected(DarajaApiError):
    """Daraja answered HTTP 200 with a non-zero ``ResponseCode``: the request was not taken."""


_BY_CODE: dict[str, type[DarajaApiError]] = {
    INVALID_FIELD: InvalidField,
    INVALID_TOKEN: InvalidToken,
    IN_PROCESS: TransactionInProcess,
    SPIKE_ARREST: SpikeArrest,
    QUOTA_EXCEEDED: QuotaExceeded,
}


def api_error(body: Mapping[str, object], status_code: int | None = None) -> DarajaApiError:
    """The named exception for a Daraja error body ``{requestId, errorCode, errorMessage}``."""
    code = str(body.get("errorCode", "unknown"))
    message = str(body.get("errorMessage", ""))
    request_id = body.get("requestId")
    cls = _BY_CODE.get(code, DarajaApiError)
    return cls(
        code,
        message,
        request_id=None if request_id is None else str(request_id),
        status_code=status_code,
    )
