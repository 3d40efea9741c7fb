"""Daraja's replies and callbacks as typed values.

Money is always an ``int`` of whole shillings. Callbacks carry amounts as JSON numbers that may
be written ``1`` or ``1.00``; parse raw bodies (``bytes``/``str``) here so those are read as
``Decimal`` and converted exactly, and a fractional amount is refused rather than rounded.
Callback parsers raise :class:`CallbackInvalid` whose message never repeats the body's values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import IntEnum
from typing import Any, Final, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from nishati_client.digits import ascii_digits
from nishati_client.phone import InvalidPhoneNumber, normalise
from nishati_oracle.daraja.credentials import parse_nairobi_time
from nishati_oracle.daraja.errors import CallbackInvalid

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
    """The customer has not answered yet (HTTP 500 ``500.001.1001`` "being processed")."""

    checkout_request_id: str
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
    """Daraja queued the payout; its outcome comes to the ResultURL."""

    originator_conversation_id: str
    conversation_id: str
    response_code: int
    response_description: str


@dataclass(frozen=True)
class B2CAlreadySubmitted:
    """Daraja refused the payout as a duplicate ``OriginatorConversationID``: an earlier
    attempt with this idempotency key reached it. Do not pay again; wait for its result or ask
    Transaction Status."""

    originator_conversation_id: str
    description: str


B2CSubmission = B2CAccepted | B2CAlreadySubmitted


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


class _Item(_Wire):
    name: str = Field(alias="Name")
    value: JsonScalar = Field(default=None, alias="Value")


class _Metadata(_Wire):
    items: list[_Item] = Field(alias="Item")


class _StkCallbackWire(_Wire):
    merchant_request_id: str = Field(alias="MerchantRequestID")
    checkout_request_id: str = Field(alias="CheckoutRequestID")
    result_code: int = Field(alias="ResultCode")
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
            number = value.strip().removeprefix("-")
            if ascii_digits(number):
                return int(value)
            if number.isdigit():
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
    """The B2C result posted to the ResultURL. On success the amount and receipt are set."""

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


class QueueTimeout(_Model):
    """A queue-timeout notice: Daraja did not process the request in time. Not a final
    failure; ask Transaction Status before paying again."""

    originator_conversation_id: str
    conversation_id: str
    result_code: int | str | None
    result_desc: str


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
    """The ``OriginatorConversationID`` parameter: the queried payout's key."""


def whole_shillings(value: object) -> int:
    """An amount as an exact ``int``: ``1``, ``1.00``, ``Decimal('1.00')`` and ``'1.00'`` are
    1; ``1.5`` is refused, never rounded."""
    if isinstance(value, bool):
        raise CallbackInvalid("an amount is not a number")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not value.is_integer():
            raise CallbackInvalid("an amount is not a whole number of shillings")
        return int(value)
    if isinstance(value, str):
        # ``Decimal`` reads digits of any script; Daraja writes amounts in 0-9.
        if not value.isascii():
            raise CallbackInvalid("an amount is not a number")
        try:
            value = Decimal(value.strip())
        except InvalidOperation:
            raise CallbackInvalid("an amount is not a number") from None
    if isinstance(value, Decimal):
        if not value.is_finite() or value != value.to_integral_value():
            raise CallbackInvalid("an amount is not a whole number of shillings")
        return int(value)
    raise CallbackInvalid("an amount is missing or not a number")


def _load(body: bytes | str | Mapping[str, Any]) -> object:
    if isinstance(body, Mapping):
        return body
    try:
        return json.loads(body, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        raise CallbackInvalid("the callback body is not JSON") from None


def _validate(model: type[_W], data: object, what: str) -> _W:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        # Locations and reasons only: pydantic's own text would repeat the input values.
        where = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or '<body>'}: {err['msg']}"
            for err in e.errors(include_input=False, include_url=False)
        )
        raise CallbackInvalid(f"not a {what}: {where}") from None


def _text(value: JsonScalar, name: str) -> str:
    if value is None or isinstance(value, Decimal | float):
        raise CallbackInvalid(f"{name} is missing or not text")
    return str(value)


def _digits(value: JsonScalar, name: str) -> str:
    """A number Daraja writes as a JSON number (dates, phone numbers), as its digits."""
    if isinstance(value, Decimal) and value == value.to_integral_value():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | str) or not ascii_digits(str(value)):
        raise CallbackInvalid(f"{name} is missing or not a number")
    return str(value)


def _time(value: JsonScalar, fmt: str, name: str) -> datetime:
    text = _digits(value, name) if "%d." not in fmt else _text(value, name)
    # ``strptime`` reads digits of any script.
    if not text.isascii():
        raise CallbackInvalid(f"{name} is not a {fmt} time")
    try:
        return parse_nairobi_time(text, fmt)
    except ValueError:
        raise CallbackInvalid(f"{name} is not a {fmt} time") from None


def stk_callback_keys(body: Mapping[str, Any]) -> tuple[str, str | None]:
    """An STK callback's ``CheckoutRequestID`` and receipt (``None`` unless paid), read without
    the full parse: enough to store and deduplicate it the moment it arrives."""
    try:
        callback = body["Body"]["stkCallback"]
        key, code = callback["CheckoutRequestID"], callback["ResultCode"]
    except (KeyError, TypeError):
        raise CallbackInvalid(
            "not an STK callback: no Body.stkCallback.CheckoutRequestID"
        ) from None
    if not isinstance(key, str) or not key or isinstance(code, bool) or not isinstance(code, int):
        raise CallbackInvalid("an STK callback needs a CheckoutRequestID and an integer ResultCode")
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
    ``Value``) are ignored."""
    wire = _validate(_StkEnvelope, _load(body), "STK callback").body.stk_callback
    payment = None
    if wire.result_code == ResultCode.success:
        if wire.metadata is None:
            raise CallbackInvalid("a successful STK callback has no CallbackMetadata")
        items = {item.name: item.value for item in wire.metadata.items}
        amount = whole_shillings(items.get("Amount"))
        if amount < 1:
            raise CallbackInvalid("the STK callback's Amount is not positive")
        phone: str | None = None
        if items.get("PhoneNumber") is not None:
            try:
                phone = normalise(_digits(items["PhoneNumber"], "PhoneNumber"))
            except (InvalidPhoneNumber, CallbackInvalid):
                # Masked by Safaricom, or a form we do not know: no reason to drop a payment.
                phone = None
        payment = StkPayment(
            amount=amount,
            receipt=_text(items.get("MpesaReceiptNumber"), "MpesaReceiptNumber"),
            transaction_date=_time(items.get("TransactionDate"), "%Y%m%d%H%M%S", "TransactionDate"),
            phone=phone,
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
        raise CallbackInvalid("a successful B2C result lacks TransactionAmount or Receipt")
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
    )
