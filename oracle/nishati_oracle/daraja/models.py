"""Daraja's replies and callbacks as typed values.

Money is always an ``int`` of whole shillings. Callbacks carry amounts as JSON numbers that may
be written ``1`` or ``1.00``; parse raw bodies (``bytes``/``str``) here so those are read as
``Decimal`` and converted exactly, and a fractional amount is refused rather than rounded.
Callback parsers raise :class:`CallbackInvalid` (with a :class:`CallbackProblem` reason) whose
message never repeats the body's values, amounts excepted.

Matching a result to its request: Daraja's B2C and Reversal results carry an
``OriginatorConversationID`` that Daraja may generate itself (its published result samples do),
and always the ``ConversationID`` the synchronous reply returned. So a caller keeps both ids of
every accepted request (``ids``) and matches a result on either (:func:`same_request`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import IntEnum
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from nishati_client.digits import ascii_digits
from nishati_client.phone import InvalidPhoneNumber, normalise
from nishati_oracle.daraja.credentials import parse_nairobi_time
from nishati_oracle.daraja.errors import CallbackInvalid, CallbackProblem

JsonScalar = int | Decimal | float | str | None
_W = TypeVar("_W", bound="_Wire")


class ResultCode(IntEnum):
    """``ResultCode`` values met in STK callbacks and queries (and 2001 in B2C results)."""

    success = 0
    insufficient_balance = 1
    duplicate_within_2_minutes = 17
    expired = 1019
    prompt_too_long = 1025
    cancelled_by_user = 1032
    phone_unreachable = 1037
    wrong_pin = 2001
    wrong_transaction_type = 2028

    @property
    def meaning(self) -> str:
        return _MEANINGS[self]


_MEANINGS: Final[dict[ResultCode, str]] = {
    ResultCode.success: "processed successfully",
    ResultCode.insufficient_balance: "the customer's balance is insufficient",
    ResultCode.duplicate_within_2_minutes: (
        "the same amount to the same customer within 2 minutes (an identical repeat buy)"
    ),
    ResultCode.expired: "the prompt expired before the customer answered",
    ResultCode.prompt_too_long: "the prompt was too long (over 182 characters)",
    ResultCode.cancelled_by_user: "the customer cancelled the prompt",
    ResultCode.phone_unreachable: "the phone could not be reached",
    ResultCode.wrong_pin: "wrong PIN (in B2C results: invalid initiator information)",
    ResultCode.wrong_transaction_type: "the TransactionType does not match the shortcode",
}


# STK Query's answers while the customer has not finished: HTTP 500 ``500.001.1001`` "The
# transaction is being processed", or (the sandbox, recorded in a public integration note) HTTP
# 200 ``{"ResultCode":"4999","ResultDesc":"The transaction is still under processing"}``.
PENDING_RESULT_CODES: Final = frozenset({4999})
PENDING_PHRASES: Final = ("being processed", "under processing")

# Reversal result codes (Daraja's Reversal page): text, not numbers.
ALREADY_REVERSED = "R000001"
ORIGINAL_NOT_FOUND = "R000002"


def result_code(code: int) -> ResultCode | None:
    """The named code, or ``None`` for one this module does not know."""
    try:
        return ResultCode(code)
    except ValueError:
        return None


# ---------------------------------------------------------------- replies to our requests


@dataclass(frozen=True)
class StkPushAccepted:
    """Daraja accepted the STK Push: the prompt is on its way. Not paid yet."""

    merchant_request_id: str
    checkout_request_id: str
    response_code: int
    response_description: str
    customer_message: str


@dataclass(frozen=True)
class StkQueryPending:
    """The customer has not answered yet: HTTP 500 ``500.001.1001`` "being processed"
    (``result_code`` None) or HTTP 200 with ``ResultCode`` 4999 "still under processing".
    Never final: ask again later."""

    checkout_request_id: str
    result_code: int | None = None
    description: str = ""
    status: Literal["pending"] = "pending"


@dataclass(frozen=True)
class StkQueryCompleted:
    """The STK Push is over; ``result_code`` 0 is paid, anything else is not."""

    merchant_request_id: str
    checkout_request_id: str
    result_code: int
    result_desc: str
    status: Literal["completed"] = "completed"

    @property
    def paid(self) -> bool:
        return self.result_code == ResultCode.success

    @property
    def result(self) -> ResultCode | None:
        return result_code(self.result_code)


StkQueryResult = StkQueryPending | StkQueryCompleted


@dataclass(frozen=True)
class B2CAccepted:
    """Daraja queued the payout; its outcome comes to the ResultURL. The reply echoed our
    ``originator_conversation_id`` (checked); ``conversation_id`` is Daraja's, and every
    result for this payout carries it, whatever ``OriginatorConversationID`` the result has."""

    originator_conversation_id: str
    conversation_id: str
    response_code: int
    response_description: str

    @property
    def ids(self) -> frozenset[str]:
        """Both ids, to match a result on either (:func:`same_request`)."""
        return _ids(self.originator_conversation_id, self.conversation_id)


@dataclass(frozen=True)
class B2CAlreadySubmitted:
    """Daraja refused the payout as a duplicate ``OriginatorConversationID``: an earlier
    attempt with this idempotency key reached it. Do not pay again; wait for its result or ask
    Transaction Status."""

    originator_conversation_id: str
    description: str


B2CSubmission = B2CAccepted | B2CAlreadySubmitted


@dataclass(frozen=True)
class ReversalAccepted:
    """Daraja took a reversal request; its result (or a queue timeout) comes later. The
    Reversal API takes no id of ours: both ids here are Daraja's, and the result carries the
    ``conversation_id``."""

    originator_conversation_id: str
    conversation_id: str
    response_code: int
    response_description: str

    @property
    def ids(self) -> frozenset[str]:
        return _ids(self.originator_conversation_id, self.conversation_id)


def _ids(*values: str | None) -> frozenset[str]:
    return frozenset(v for v in values if v)


def same_request(known: Iterable[str], result_ids: Iterable[str]) -> bool:
    """Whether a result with ``result_ids`` answers the request known by ``known`` (our
    ``OriginatorConversationID``, and the ``ConversationID`` its reply gave): any id in
    common. Empty ids never match."""
    return not _ids(*known).isdisjoint(_ids(*result_ids))


@dataclass(frozen=True)
class StatusQueryAccepted:
    """Daraja accepted a Transaction Status query; the answer comes to the ResultURL."""

    originator_conversation_id: str
    conversation_id: str
    response_code: int
    response_description: str


# ---------------------------------------------------------------- callbacks


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


def _digits_code(value: str) -> int | None:
    """A code written in ASCII digits (``"0"``, ``"-1"``, ``"1032"``) as its number; ``None``
    for anything else. Pydantic's own int parsing would also take ``"1_000"``, ``"+5"`` and
    ``"1.0"``."""
    text = value.strip()
    return int(text) if ascii_digits(text.removeprefix("-")) else None


def _numeric_code(value: object) -> object:
    """An integer ``ResultCode`` written as a number or as ASCII digits (``0``, ``"1032"``)."""
    if isinstance(value, str) and (number := _digits_code(value)) is not None:
        return number
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("a ResultCode is a whole number, as a number or in the digits 0-9")
    return value


NumericCode = Annotated[int, BeforeValidator(_numeric_code)]


class _Item(_Wire):
    name: str = Field(alias="Name")
    value: JsonScalar = Field(default=None, alias="Value")


class _Metadata(_Wire):
    items: list[_Item] = Field(alias="Item")


class _StkCallbackWire(_Wire):
    merchant_request_id: str = Field(alias="MerchantRequestID")
    checkout_request_id: str = Field(alias="CheckoutRequestID")
    result_code: NumericCode = Field(alias="ResultCode")
    result_desc: str = Field(alias="ResultDesc")
    metadata: _Metadata | None = Field(default=None, alias="CallbackMetadata")


class _StkBodyWire(_Wire):
    stk_callback: _StkCallbackWire = Field(alias="stkCallback")


class _StkEnvelope(_Wire):
    body: _StkBodyWire = Field(alias="Body")


class _Parameter(_Wire):
    key: str = Field(alias="Key")
    value: JsonScalar = Field(default=None, alias="Value")


class _Parameters(_Wire):
    items: list[_Parameter] = Field(default_factory=list, alias="ResultParameter")

    @field_validator("items", mode="before")
    @classmethod
    def _one_is_a_list(cls, value: object) -> object:
        """Daraja sends a lone parameter as an object rather than a one-item list."""
        return [value] if isinstance(value, Mapping) else value


class _ResultWire(_Wire):
    result_type: int = Field(default=0, alias="ResultType")
    result_code: int | str = Field(alias="ResultCode")
    result_desc: str = Field(default="", alias="ResultDesc")
    originator_conversation_id: str = Field(alias="OriginatorConversationID")
    conversation_id: str = Field(default="", alias="ConversationID")
    transaction_id: str = Field(default="", alias="TransactionID")
    parameters: _Parameters | None = Field(default=None, alias="ResultParameters")

    @field_validator("result_code", mode="after")
    @classmethod
    def _digits_are_ints(cls, value: int | str) -> int | str:
        """Numeric codes as ints, whichever way they were written; others (``SFC_IC0003``)
        stay text. A number in digits other than 0-9 is refused, not kept as a text code."""
        if isinstance(value, str):
            if (number := _digits_code(value)) is not None:
                return number
            if value.strip().removeprefix("-").isdigit():
                raise ValueError("a numeric code must be written in the digits 0-9")
        return value

    def values(self) -> dict[str, JsonScalar]:
        return {} if self.parameters is None else {p.key: p.value for p in self.parameters.items}


class _ResultEnvelope(_Wire):
    result: _ResultWire = Field(alias="Result")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class StkPayment(_Model):
    """What a successful STK callback says was paid."""

    amount: int
    receipt: str
    transaction_date: datetime
    phone: str | None
    """Normalised ``254…``; ``None`` if the callback carried none or only a masked one."""
    phone_shown: str | None = None
    """The phone as the callback showed it when it is masked (``2547****149``) or hashed
    (64 hex digits): not a number to pay, but enough to check against a known one
    (:meth:`phone_matches`). The receipt stands either way."""

    def phone_matches(self, phone: str) -> bool:
        """Whether the callback's phone can be ``phone`` (normalised ``254…``): equal, or the
        masked form's visible digits agree with it, or the hash is its SHA-256."""
        if self.phone is not None:
            return self.phone == phone
        if self.phone_shown is None:
            return False
        return masked_phone_matches(self.phone_shown, phone)


class StkCallback(_Model):
    """The STK Push callback. ``payment`` is set exactly when ``result_code`` is 0."""

    merchant_request_id: str
    checkout_request_id: str
    result_code: int
    result_desc: str
    payment: StkPayment | None

    @property
    def paid(self) -> bool:
        return self.payment is not None

    @property
    def result(self) -> ResultCode | None:
        return result_code(self.result_code)


class B2CResult(_Model):
    """The B2C result posted to the ResultURL. On success the amount and receipt are set.
    Match it to its payout on either id (:attr:`ids`): Daraja's own result samples carry an
    ``OriginatorConversationID`` Daraja generated, not the one the request sent."""

    result_type: int
    result_code: int | str
    result_desc: str
    originator_conversation_id: str
    conversation_id: str
    transaction_id: str
    amount: int | None
    receipt: str | None
    completed_at: datetime | None
    recipient_registered: bool | None

    @property
    def succeeded(self) -> bool:
        return self.result_code == 0

    @property
    def ids(self) -> frozenset[str]:
        return _ids(self.originator_conversation_id, self.conversation_id)


class QueueTimeout(_Model):
    """A queue-timeout notice: Daraja did not process the request in time. Not a final
    failure; ask Transaction Status before paying again."""

    originator_conversation_id: str
    conversation_id: str
    result_code: int | str | None
    result_desc: str

    @property
    def ids(self) -> frozenset[str]:
        return _ids(self.originator_conversation_id, self.conversation_id)


class TransactionStatusResult(_Model):
    """The Transaction Status answer posted to its ResultURL."""

    result_code: int | str
    result_desc: str
    originator_conversation_id: str
    conversation_id: str
    transaction_id: str
    transaction_status: str | None
    """``Completed``, ``Pending``, ``Failed``…, from the ``TransactionStatus`` parameter."""
    receipt: str | None
    amount: int | None
    queried_originator_conversation_id: str | None
    """The ``OriginatorConversationID`` parameter: the queried transaction's, as M-Pesa knows
    it (for a B2C payout this may be Daraja's own id rather than the one we sent)."""
    queried_conversation_id: str | None = None
    """The ``ConversationID`` parameter: the queried transaction's ConversationID."""

    @property
    def queried_ids(self) -> frozenset[str]:
        """The queried transaction's ids, to match with :func:`same_request`. The result's own
        ``originator_conversation_id``/``conversation_id`` are the status query's, not these."""
        return _ids(self.queried_originator_conversation_id, self.queried_conversation_id)


class ReversalResult(_Model):
    """The Reversal API's result. On success ``transaction_id`` is the reversal's own receipt
    and ``original_transaction_id`` the receipt reversed; a failed result carries neither
    parameter (and a placeholder ``TransactionID`` like ``SKE0000000``)."""

    result_type: int
    result_code: int | str
    result_desc: str
    originator_conversation_id: str
    conversation_id: str
    transaction_id: str
    original_transaction_id: str | None
    amount: int | None
    completed_at: datetime | None

    @property
    def succeeded(self) -> bool:
        return self.result_code == 0

    @property
    def already_reversed(self) -> bool:
        """R000001: the transaction was reversed before (by this request's twin, or by hand)."""
        return self.result_code == ALREADY_REVERSED

    @property
    def original_not_found(self) -> bool:
        """R000002: no such transaction to reverse (or not one the API may reverse, as a B2C
        payment, which Daraja reverses only by hand on its portal)."""
        return self.result_code == ORIGINAL_NOT_FOUND

    @property
    def ids(self) -> frozenset[str]:
        return _ids(self.originator_conversation_id, self.conversation_id)


def _fractional(value: float | Decimal) -> CallbackInvalid:
    return CallbackInvalid(
        f"the amount {value} is not a whole number of shillings (M-Pesa moves whole shillings "
        "only, so this is not a genuine Daraja amount)",
        CallbackProblem.fractional_amount,
    )


def whole_shillings(value: object) -> int:
    """An amount as an exact ``int``: ``1``, ``1.00``, ``Decimal('1.00')`` and ``'1.00'`` are
    1; ``1.5`` is refused (reason ``fractional_amount``, the amount in the message), never
    rounded."""
    if isinstance(value, bool):
        raise CallbackInvalid("an amount is not a number", CallbackProblem.bad_amount)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CallbackInvalid("an amount is not a number", CallbackProblem.bad_amount)
        if not value.is_integer():
            raise _fractional(value)
        return int(value)
    if isinstance(value, str):
        # ``Decimal`` reads digits of any script; Daraja writes amounts in 0-9.
        if not value.isascii():
            raise CallbackInvalid("an amount is not a number", CallbackProblem.bad_amount)
        try:
            value = Decimal(value.strip())
        except InvalidOperation:
            raise CallbackInvalid("an amount is not a number", CallbackProblem.bad_amount) from None
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise CallbackInvalid("an amount is not a number", CallbackProblem.bad_amount)
        if value != value.to_integral_value():
            raise _fractional(value)
        return int(value)
    raise CallbackInvalid("an amount is missing or not a number", CallbackProblem.missing_field)


def _load(body: bytes | str | Mapping[str, Any]) -> object:
    if isinstance(body, Mapping):
        return body
    try:
        return json.loads(body, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise CallbackInvalid("the callback body is not JSON", CallbackProblem.not_json) from None


def _validate(model: type[_W], data: object, what: str) -> _W:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        # Locations and reasons only: pydantic's own text would repeat the input values.
        where = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or '<body>'}: {err['msg']}"
            for err in e.errors(include_input=False, include_url=False)
        )
        raise CallbackInvalid(f"not a {what}: {where}", CallbackProblem.wrong_shape) from None


def _text(value: JsonScalar, name: str) -> str:
    if value is None:
        raise CallbackInvalid(f"{name} is missing", CallbackProblem.missing_field)
    if isinstance(value, Decimal | float):
        raise CallbackInvalid(f"{name} is not text", CallbackProblem.bad_value)
    return str(value)


def _digits(value: JsonScalar, name: str) -> str:
    """A number Daraja writes as a JSON number (dates, phone numbers), as its digits."""
    if isinstance(value, Decimal) and value == value.to_integral_value():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if value is None:
        raise CallbackInvalid(f"{name} is missing", CallbackProblem.missing_field)
    if isinstance(value, bool) or not isinstance(value, int | str) or not ascii_digits(str(value)):
        raise CallbackInvalid(f"{name} is not a number", CallbackProblem.bad_value)
    return str(value)


def _time(value: JsonScalar, fmt: str, name: str) -> datetime:
    text = _digits(value, name) if "%d." not in fmt else _text(value, name)
    # ``strptime`` reads digits of any script.
    if not text.isascii():
        raise CallbackInvalid(f"{name} is not a {fmt} time", CallbackProblem.bad_value)
    try:
        return parse_nairobi_time(text, fmt)
    except ValueError:
        raise CallbackInvalid(f"{name} is not a {fmt} time", CallbackProblem.bad_value) from None


# A masked phone as Daraja shows them: "2547****149", "25470****149", "2547 ***** 126".
_MASKED_PHONE = re.compile(r"([0-9]*)[*xX]+([0-9]*)")
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
MIN_VISIBLE_DIGITS = 6


def masked_phone_matches(shown: str, phone: str) -> bool:
    """Whether ``shown`` (a masked number such as ``2547****149``, or the SHA-256 hex of the
    12-digit number) can be ``phone`` (normalised ``254…``). A mask must show at least
    ``MIN_VISIBLE_DIGITS`` digits, all of which agree with ``phone`` at its start and end; the
    count of hidden digits is not trusted (Daraja's masks hide three, four or five)."""
    compact = shown.replace(" ", "")
    if _SHA256_HEX.fullmatch(compact):
        return hashlib.sha256(phone.encode("ascii")).hexdigest() == compact.lower()
    found = _MASKED_PHONE.fullmatch(compact)
    if found is None:
        return False
    head, tail = found.groups()
    if len(head) + len(tail) < MIN_VISIBLE_DIGITS or len(head) + len(tail) >= len(phone):
        return False
    return phone.startswith(head) and phone.endswith(tail)


def _shown_phone(value: JsonScalar) -> str | None:
    """A masked or hashed phone as text, if ``value`` is one; else None."""
    if not isinstance(value, str):
        return None
    compact = value.replace(" ", "")
    if _SHA256_HEX.fullmatch(compact) or _MASKED_PHONE.fullmatch(compact):
        return compact
    return None


def stk_callback_keys(body: Mapping[str, Any]) -> tuple[str, str | None]:
    """An STK callback's ``CheckoutRequestID`` and receipt (``None`` unless paid), read without
    the full parse: enough to store and deduplicate it the moment it arrives."""
    try:
        callback = body["Body"]["stkCallback"]
        key, code = callback["CheckoutRequestID"], callback["ResultCode"]
    except (KeyError, TypeError):
        raise CallbackInvalid(
            "not an STK callback: no Body.stkCallback.CheckoutRequestID",
            CallbackProblem.wrong_shape,
        ) from None
    try:
        _numeric_code(code)
    except ValueError:
        code = None
    if not isinstance(key, str) or not key or code is None:
        raise CallbackInvalid(
            'an STK callback needs a CheckoutRequestID and a whole-number ResultCode (0 or "0")',
            CallbackProblem.missing_field,
        )
    metadata = callback.get("CallbackMetadata")
    items = metadata.get("Item") if isinstance(metadata, Mapping) else None
    for item in items if isinstance(items, list) else []:
        if isinstance(item, Mapping) and item.get("Name") == "MpesaReceiptNumber":
            receipt = item.get("Value")
            return key, None if receipt is None else str(receipt)
    return key, None


def parse_stk_callback(body: bytes | str | Mapping[str, Any]) -> StkCallback:
    """The STK callback, checked. A successful one must carry Amount, MpesaReceiptNumber and
    TransactionDate; items are found by ``Name`` and unknown ones (``Balance``, often without a
    ``Value``) are ignored. ``ResultCode`` may be a number or a string of digits. A masked or
    hashed ``PhoneNumber`` keeps the payment (``phone`` None, ``phone_shown`` the mask)."""
    wire = _validate(_StkEnvelope, _load(body), "STK callback").body.stk_callback
    payment = None
    if wire.result_code == ResultCode.success:
        if wire.metadata is None:
            raise CallbackInvalid(
                "a successful STK callback has no CallbackMetadata", CallbackProblem.missing_field
            )
        items = {item.name: item.value for item in wire.metadata.items}
        amount = whole_shillings(items.get("Amount"))
        if amount < 1:
            raise CallbackInvalid(
                "the STK callback's Amount is not positive", CallbackProblem.bad_amount
            )
        phone: str | None = None
        shown: str | None = None
        if items.get("PhoneNumber") is not None:
            try:
                phone = normalise(_digits(items["PhoneNumber"], "PhoneNumber"))
            except (InvalidPhoneNumber, CallbackInvalid):
                # Masked by Safaricom, or a form we do not know: no reason to drop a payment.
                shown = _shown_phone(items["PhoneNumber"])
        payment = StkPayment(
            amount=amount,
            receipt=_text(items.get("MpesaReceiptNumber"), "MpesaReceiptNumber"),
            transaction_date=_time(items.get("TransactionDate"), "%Y%m%d%H%M%S", "TransactionDate"),
            phone=phone,
            phone_shown=shown,
        )
    return StkCallback(
        merchant_request_id=wire.merchant_request_id,
        checkout_request_id=wire.checkout_request_id,
        result_code=wire.result_code,
        result_desc=wire.result_desc,
        payment=payment,
    )


def _optional_amount(value: JsonScalar) -> int | None:
    return None if value is None else whole_shillings(value)


def parse_b2c_result(body: bytes | str | Mapping[str, Any]) -> B2CResult:
    """The B2C result; a successful one must carry TransactionAmount and TransactionReceipt.
    ``TransactionCompletedDateTime`` (``dd.mm.yyyy HH:MM:SS``, Nairobi) becomes an aware
    datetime."""
    wire = _validate(_ResultEnvelope, _load(body), "B2C result").result
    values = wire.values()
    amount = _optional_amount(values.get("TransactionAmount"))
    receipt = values.get("TransactionReceipt")
    if wire.result_code == 0 and (amount is None or receipt is None):
        raise CallbackInvalid(
            "a successful B2C result lacks TransactionAmount or Receipt",
            CallbackProblem.missing_field,
        )
    completed = values.get("TransactionCompletedDateTime")
    registered = values.get("B2CRecipientIsRegisteredCustomer")
    return B2CResult(
        result_type=wire.result_type,
        result_code=wire.result_code,
        result_desc=wire.result_desc,
        originator_conversation_id=wire.originator_conversation_id,
        conversation_id=wire.conversation_id,
        transaction_id=wire.transaction_id,
        amount=amount,
        receipt=None if receipt is None else _text(receipt, "TransactionReceipt"),
        completed_at=None
        if completed is None
        else _time(completed, "%d.%m.%Y %H:%M:%S", "TransactionCompletedDateTime"),
        recipient_registered=None if registered is None else str(registered).upper() == "Y",
    )


class _FlatTimeout(_Wire):
    result_code: int | str | None = Field(default=None, alias="ResultCode")
    result_desc: str = Field(default="", alias="ResultDesc")
    originator_conversation_id: str = Field(alias="OriginatorConversationID")
    conversation_id: str = Field(default="", alias="ConversationID")


class _TimeoutEnvelope(_Wire):
    result: _FlatTimeout = Field(alias="Result")


def parse_queue_timeout(body: bytes | str | Mapping[str, Any]) -> QueueTimeout:
    """The QueueTimeOutURL notice, wrapped in ``Result`` (as results are) or flat; only the
    ``OriginatorConversationID`` is required, which is all a caller needs to look it up."""
    data = _load(body)
    if isinstance(data, Mapping) and "Result" in data:
        wire = _validate(_TimeoutEnvelope, data, "queue-timeout notice").result
    else:
        wire = _validate(_FlatTimeout, data, "queue-timeout notice")
    return QueueTimeout(
        originator_conversation_id=wire.originator_conversation_id,
        conversation_id=wire.conversation_id,
        result_code=wire.result_code,
        result_desc=wire.result_desc,
    )


def parse_transaction_status_result(
    body: bytes | str | Mapping[str, Any],
) -> TransactionStatusResult:
    """The Transaction Status result (parameters as in Daraja's published sample:
    ``TransactionStatus``, ``ReceiptNo``, ``Amount``, ``OriginatorConversationID``)."""
    wire = _validate(_ResultEnvelope, _load(body), "Transaction Status result").result
    values = wire.values()
    status = values.get("TransactionStatus")
    receipt = values.get("ReceiptNo")
    queried = values.get("OriginatorConversationID")
    queried_conversation = values.get("ConversationID")
    return TransactionStatusResult(
        result_code=wire.result_code,
        result_desc=wire.result_desc,
        originator_conversation_id=wire.originator_conversation_id,
        conversation_id=wire.conversation_id,
        transaction_id=wire.transaction_id,
        transaction_status=None if status is None else _text(status, "TransactionStatus"),
        receipt=None if receipt is None else _text(receipt, "ReceiptNo"),
        amount=_optional_amount(values.get("Amount")),
        queried_originator_conversation_id=None if queried is None else str(queried),
        queried_conversation_id=None if queried_conversation is None else str(queried_conversation),
    )


def parse_reversal_result(body: bytes | str | Mapping[str, Any]) -> ReversalResult:
    """The Reversal API's result (Daraja's published success and failure samples): on
    success ``OriginalTransactionID``, ``Amount`` and ``TransCompletedTime`` (``YYYYMMDDhhmmss``,
    Nairobi) from its parameters. ``ResultCode`` is a number or text (``R000001``)."""
    wire = _validate(_ResultEnvelope, _load(body), "Reversal result").result
    values = wire.values()
    original = values.get("OriginalTransactionID")
    completed = values.get("TransCompletedTime")
    if wire.result_code == 0 and original is None:
        raise CallbackInvalid(
            "a successful reversal result lacks OriginalTransactionID",
            CallbackProblem.missing_field,
        )
    return ReversalResult(
        result_type=wire.result_type,
        result_code=wire.result_code,
        result_desc=wire.result_desc,
        originator_conversation_id=wire.originator_conversation_id,
        conversation_id=wire.conversation_id,
        transaction_id=wire.transaction_id,
        original_transaction_id=None
        if original is None
        else _text(original, "OriginalTransactionID"),
        amount=_optional_amount(values.get("Amount")),
        completed_at=None
        if completed is None
        else _time(completed, "%Y%m%d%H%M%S", "TransCompletedTime"),
    )
