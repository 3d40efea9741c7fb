"""Callback parsers: STK callback, B2C result, queue timeout, Transaction Status result."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from decimal import Decimal
from typing import Any

import pytest

from nishati_oracle.daraja import (
    CallbackInvalid,
    CallbackProblem,
    ResultCode,
    masked_phone_matches,
    parse_b2c_result,
    parse_queue_timeout,
    parse_reversal_result,
    parse_stk_callback,
    parse_transaction_status_result,
    same_request,
    whole_shillings,
)
from nishati_oracle.daraja.models import stk_callback_keys
from tests.client.support import written_in

NAIROBI = dt.timezone(dt.timedelta(hours=3))
# Digits other than 0-9, which ``str.isdigit``, ``int``, ``Decimal`` and ``strptime`` all read.
ARABIC_INDIC_10 = written_in("arabic-indic", "10")
FULL_WIDTH_10 = written_in("full-width", "10")

# Daraja's published example, byte for byte as the gateway writes it (note ``1.00``).
STK_SUCCESS = b"""{"Body":{"stkCallback":{"MerchantRequestID":"29115-34620561-1",
 "CheckoutRequestID":"ws_CO_191220191020363925","ResultCode":0,
 "ResultDesc":"The service request is processed successfully.",
 "CallbackMetadata":{"Item":[{"Name":"Amount","Value":1.00},
  {"Name":"MpesaReceiptNumber","Value":"NLJ7RT61SV"},
  {"Name":"Balance"},
  {"Name":"TransactionDate","Value":20191219102115},
  {"Name":"PhoneNumber","Value":254708374149}]}}}}"""


def stk(result_code: int, items: list[dict[str, Any]] | None) -> dict[str, Any]:
    callback: dict[str, Any] = {
        "MerchantRequestID": "29115-34620561-1",
        "CheckoutRequestID": "ws_CO_191220191020363925",
        "ResultCode": result_code,
        "ResultDesc": "desc",
    }
    if items is not None:
        callback["CallbackMetadata"] = {"Item": items}
    return {"Body": {"stkCallback": callback}}


def test_stk_success_from_raw_bytes() -> None:
    callback = parse_stk_callback(STK_SUCCESS)
    assert callback.paid
    assert callback.result is ResultCode.success
    assert callback.checkout_request_id == "ws_CO_191220191020363925"
    assert callback.payment is not None
    assert callback.payment.amount == 1
    assert type(callback.payment.amount) is int
    assert callback.payment.receipt == "NLJ7RT61SV"
    assert callback.payment.transaction_date == dt.datetime(
        2019, 12, 19, 10, 21, 15, tzinfo=NAIROBI
    )
    assert callback.payment.transaction_date.utcoffset() == dt.timedelta(hours=3)
    assert callback.payment.phone == "254708374149"


@pytest.mark.parametrize("amount", [1, 1.0, "1.00", Decimal("1.00")])
def test_stk_amount_forms_are_the_same_int(amount: object) -> None:
    items: list[dict[str, Any]] = [
        {"Name": "Amount", "Value": amount},
        {"Name": "MpesaReceiptNumber", "Value": "NLJ7RT61SV"},
        {"Name": "TransactionDate", "Value": 20191219102115},
        {"Name": "PhoneNumber", "Value": 254708374149},
    ]
    payment = parse_stk_callback(stk(0, items)).payment
    assert payment is not None
    assert payment.amount == 1


@pytest.mark.parametrize("amount", [b"1.50", b"0.99", b"1e0x", b"null"])
def test_stk_fractional_or_missing_amount_is_refused(amount: bytes) -> None:
    raw = STK_SUCCESS.replace(b'"Value":1.00', b'"Value":' + amount)
    with pytest.raises(CallbackInvalid):
        parse_stk_callback(raw)


def test_stk_items_are_found_by_name_in_any_order() -> None:
    items: list[dict[str, Any]] = [
        {"Name": "PhoneNumber", "Value": 254708374149},
        {"Name": "Balance"},
        {"Name": "TransactionDate", "Value": 20250101003000},
        {"Name": "MpesaReceiptNumber", "Value": "TA1BC2DE3F"},
        {"Name": "Amount", "Value": 250000},
    ]
    payment = parse_stk_callback(stk(0, items)).payment
    assert payment is not None
    assert payment.amount == 250_000
    assert payment.receipt == "TA1BC2DE3F"
    assert payment.transaction_date == dt.datetime(2025, 1, 1, 0, 30, tzinfo=NAIROBI)


def test_stk_masked_phone_is_kept_as_none() -> None:
    items: list[dict[str, Any]] = [
        {"Name": "Amount", "Value": 5},
        {"Name": "MpesaReceiptNumber", "Value": "TA1BC2DE3F"},
        {"Name": "TransactionDate", "Value": 20250101003000},
        {"Name": "PhoneNumber", "Value": "2547****4149"},
    ]
    payment = parse_stk_callback(stk(0, items)).payment
    assert payment is not None
    assert payment.phone is None


@pytest.mark.parametrize(
    ("code", "result"),
    [(1032, ResultCode.cancelled_by_user), (1037, ResultCode.phone_unreachable), (17, None)],
)
def test_stk_failure_has_no_payment(code: int, result: ResultCode | None) -> None:
    callback = parse_stk_callback(json.dumps(stk(code, None)))
    assert not callback.paid
    assert callback.payment is None
    assert callback.result_code == code
    if result is not None:
        assert callback.result is result


def test_stk_success_without_metadata_is_refused() -> None:
    with pytest.raises(CallbackInvalid, match="CallbackMetadata"):
        parse_stk_callback(stk(0, None))


def test_stk_success_without_receipt_is_refused() -> None:
    items = [{"Name": "Amount", "Value": 5}, {"Name": "TransactionDate", "Value": 20250101003000}]
    with pytest.raises(CallbackInvalid, match="MpesaReceiptNumber"):
        parse_stk_callback(stk(0, items))


@pytest.mark.parametrize(
    "body", [b"not json", b"[]", b'{"Body":{}}', b'{"Body":{"stkCallback":{"ResultCode":0}}}']
)
def test_malformed_stk_callbacks_are_refused(body: bytes) -> None:
    with pytest.raises(CallbackInvalid):
        parse_stk_callback(body)


def test_callback_errors_do_not_repeat_values() -> None:
    body = stk(0, None)
    body["Body"]["stkCallback"]["ResultCode"] = "254708374149x"
    with pytest.raises(CallbackInvalid) as info:
        parse_stk_callback(body)
    assert "254708374149" not in str(info.value)


def test_result_codes_are_named() -> None:
    assert [int(c) for c in ResultCode] == [0, 1, 17, 1019, 1025, 1032, 1037, 2001, 2028]
    assert all(code.meaning for code in ResultCode)
    assert "2 minutes" in ResultCode.duplicate_within_2_minutes.meaning


def test_whole_shillings() -> None:
    assert whole_shillings(Decimal("250000.00")) == 250_000
    for bad in (True, None, 1.5, Decimal("NaN"), "abc", [1], ARABIC_INDIC_10, FULL_WIDTH_10):
        with pytest.raises(CallbackInvalid):
            whole_shillings(bad)


B2C_SUCCESS = b"""{"Result":{"ResultType":0,"ResultCode":0,
 "ResultDesc":"The service request is processed successfully.",
 "OriginatorConversationID":"payout-42","ConversationID":"AG_20191219_00005797af5d7d75f652",
 "TransactionID":"NLJ41HAY6Q","ResultParameters":{"ResultParameter":[
  {"Key":"TransactionAmount","Value":10},
  {"Key":"TransactionReceipt","Value":"NLJ41HAY6Q"},
  {"Key":"B2CRecipientIsRegisteredCustomer","Value":"Y"},
  {"Key":"B2CChargesPaidAccountAvailableFunds","Value":-4510.00},
  {"Key":"ReceiverPartyPublicName","Value":"254708374149 - John Doe"},
  {"Key":"TransactionCompletedDateTime","Value":"19.12.2019 11:45:50"},
  {"Key":"B2CUtilityAccountAvailableFunds","Value":10116.00},
  {"Key":"B2CWorkingAccountAvailableFunds","Value":900000.00}]},
 "ReferenceData":{"ReferenceItem":{"Key":"QueueTimeoutURL",
  "Value":"https://internalsandbox.safaricom.co.ke/mpesa/b2cresults/v1/submit"}}}}"""


def test_b2c_success() -> None:
    result = parse_b2c_result(B2C_SUCCESS)
    assert result.succeeded
    assert result.originator_conversation_id == "payout-42"
    assert result.transaction_id == "NLJ41HAY6Q"
    assert result.amount == 10
    assert result.receipt == "NLJ41HAY6Q"
    assert result.recipient_registered is True
    assert result.completed_at == dt.datetime(2019, 12, 19, 11, 45, 50, tzinfo=NAIROBI)
    assert "John Doe" not in repr(result)


def test_b2c_failure_without_parameters() -> None:
    result = parse_b2c_result(
        {
            "Result": {
                "ResultType": 0,
                "ResultCode": 2001,
                "ResultDesc": "The initiator information is invalid.",
                "OriginatorConversationID": "payout-42",
                "ConversationID": "AG_20181024_000043ade8e082b13567",
                "TransactionID": "MJO61H754M",
            }
        }
    )
    assert not result.succeeded
    assert result.result_code == 2001
    assert result.amount is None
    assert result.completed_at is None


def test_b2c_string_result_code_and_lone_parameter() -> None:
    result = parse_b2c_result(
        {
            "Result": {
                "ResultCode": "SFC_IC0003",
                "ResultDesc": "Operator does not exist",
                "OriginatorConversationID": "payout-43",
                "ResultParameters": {"ResultParameter": {"Key": "TransactionAmount", "Value": 10}},
            }
        }
    )
    assert result.result_code == "SFC_IC0003"
    assert result.amount == 10


def test_b2c_bad_completion_time_is_refused() -> None:
    raw = B2C_SUCCESS.replace(b"19.12.2019 11:45:50", b"2019-12-19T11:45:50")
    with pytest.raises(CallbackInvalid, match="TransactionCompletedDateTime"):
        parse_b2c_result(raw)


def test_b2c_success_without_amount_is_refused() -> None:
    raw = B2C_SUCCESS.replace(b'{"Key":"TransactionAmount","Value":10},', b"")
    with pytest.raises(CallbackInvalid):
        parse_b2c_result(raw)


@pytest.mark.parametrize("digits", [ARABIC_INDIC_10, FULL_WIDTH_10])
def test_stk_amount_in_other_digits_is_refused(digits: str) -> None:
    items: list[dict[str, Any]] = [
        {"Name": "Amount", "Value": digits},
        {"Name": "MpesaReceiptNumber", "Value": "NLJ7RT61SV"},
        {"Name": "TransactionDate", "Value": 20191219102115},
    ]
    with pytest.raises(CallbackInvalid, match="amount"):
        parse_stk_callback(stk(0, items))


# One digit of another script in a date; strptime reads it as that digit.
@pytest.mark.parametrize(
    "date",
    [
        "2019121" + written_in("arabic-indic", "9") + "102115",
        "2019121910211" + written_in("full-width", "5"),
    ],
)
def test_stk_transaction_date_in_other_digits_is_refused(date: str) -> None:
    items: list[dict[str, Any]] = [
        {"Name": "Amount", "Value": 10},
        {"Name": "MpesaReceiptNumber", "Value": "NLJ7RT61SV"},
        {"Name": "TransactionDate", "Value": date},
    ]
    with pytest.raises(CallbackInvalid, match="TransactionDate"):
        parse_stk_callback(stk(0, items))


@pytest.mark.parametrize("code", [ARABIC_INDIC_10, FULL_WIDTH_10, "²"])
def test_result_code_in_other_digits_is_refused(code: str) -> None:
    body = json.loads(B2C_SUCCESS)
    body["Result"]["ResultCode"] = code
    with pytest.raises(CallbackInvalid, match="ResultCode"):
        parse_b2c_result(body)
    with pytest.raises(CallbackInvalid, match="ResultCode"):
        parse_transaction_status_result(body)
    stk_body = stk(0, None)
    stk_body["Body"]["stkCallback"]["ResultCode"] = code
    with pytest.raises(CallbackInvalid, match="ResultCode"):
        parse_stk_callback(stk_body)


def test_b2c_completion_time_in_other_digits_is_refused() -> None:
    date = "1" + written_in("arabic-indic", "9") + ".12.2019"
    raw = B2C_SUCCESS.replace(b"19.12.2019", date.encode())
    with pytest.raises(CallbackInvalid, match="TransactionCompletedDateTime"):
        parse_b2c_result(raw)


def test_queue_timeout() -> None:
    notice = parse_queue_timeout(
        b"""{"Result":{"ResultType":1,"ResultCode":1,
        "ResultDesc":"The service request has timed out.",
        "OriginatorConversationID":"payout-42","ConversationID":"AG_2019_x"}}"""
    )
    assert notice.originator_conversation_id == "payout-42"
    assert notice.result_code == 1
    flat = parse_queue_timeout({"OriginatorConversationID": "payout-43"})
    assert flat.originator_conversation_id == "payout-43"
    with pytest.raises(CallbackInvalid):
        parse_queue_timeout({"Result": {"ResultCode": 1}})


def test_transaction_status_result() -> None:
    result = parse_transaction_status_result(
        {
            "Result": {
                "ResultType": 0,
                "ResultCode": 0,
                "ResultDesc": "The service request is processed successfully.",
                "OriginatorConversationID": "1236-7134259-1",
                "ConversationID": "AG_20210709_1234409f86436c583e3f",
                "TransactionID": "LXXXXXX1234",
                "ResultParameters": {
                    "ResultParameter": [
                        {"Key": "DebitPartyName", "Value": "600310 - Safaricom333"},
                        {"Key": "OriginatorConversationID", "Value": "payout-42"},
                        {"Key": "TransactionStatus", "Value": "Completed"},
                        {"Key": "Amount", "Value": 300.00},
                        {"Key": "ReceiptNo", "Value": "LGR019G3J2"},
                        {"Key": "FinalisedTime", "Value": 20210709120203},
                    ]
                },
            }
        }
    )
    assert result.result_code == 0
    assert result.transaction_status == "Completed"
    assert result.amount == 300
    assert result.receipt == "LGR019G3J2"
    assert result.queried_originator_conversation_id == "payout-42"


def test_stk_keys_are_read_without_the_full_parse() -> None:
    assert stk_callback_keys(json.loads(STK_SUCCESS)) == (
        "ws_CO_191220191020363925",
        "NLJ7RT61SV",
    )
    assert stk_callback_keys(stk(1032, None)) == (
        stk(1032, None)["Body"]["stkCallback"]["CheckoutRequestID"],
        None,
    )
    malformed: list[dict[str, Any]] = [
        {},
        {"Body": {}},
        {"Body": {"stkCallback": {"CheckoutRequestID": 7}}},
    ]
    for body in malformed:
        with pytest.raises(CallbackInvalid):
            stk_callback_keys(body)


# ---------------------------------------------------------------- issue 15's smaller items


@pytest.mark.parametrize(("raw", "code"), [(0, 0), ("0", 0), ("1032", 1032), (1032, 1032)])
def test_result_code_as_a_string_or_a_number(raw: object, code: int) -> None:
    items = None if code else STK_ITEMS
    body = stk(0, items)
    body["Body"]["stkCallback"]["ResultCode"] = raw
    key, receipt = stk_callback_keys(body)
    assert key == "ws_CO_191220191020363925"
    assert receipt == (None if code else "NLJ7RT61SV")
    callback = parse_stk_callback(body)
    assert callback.result_code == code
    assert callback.paid is (code == 0)


@pytest.mark.parametrize("raw", ["", "1.0", "+5", "1_000", "0x1", True, None, 1.5, ARABIC_INDIC_10])
def test_result_codes_that_are_not_whole_numbers_are_refused(raw: object) -> None:
    body = stk(1032, None)
    body["Body"]["stkCallback"]["ResultCode"] = raw
    with pytest.raises(CallbackInvalid):
        stk_callback_keys(body)
    with pytest.raises(CallbackInvalid):
        parse_stk_callback(body)


STK_ITEMS: list[dict[str, Any]] = [
    {"Name": "Amount", "Value": 1.00},
    {"Name": "MpesaReceiptNumber", "Value": "NLJ7RT61SV"},
    {"Name": "TransactionDate", "Value": 20191219102115},
    {"Name": "PhoneNumber", "Value": 254708374149},
]


@pytest.mark.parametrize("shown", ["2547****149", "25470****149", "2547 ***** 149", "254708xxx149"])
def test_a_masked_phone_keeps_the_receipt_and_can_be_checked(shown: str) -> None:
    items = [*STK_ITEMS[:3], {"Name": "PhoneNumber", "Value": shown}]
    payment = parse_stk_callback(stk(0, items)).payment
    assert payment is not None
    assert payment.receipt == "NLJ7RT61SV"
    assert payment.phone is None
    assert payment.phone_shown == shown.replace(" ", "")
    assert payment.phone_matches("254708374149")
    assert not payment.phone_matches("254708374150")
    assert not payment.phone_matches("254108374149")


def test_a_hashed_phone_can_be_checked() -> None:
    digest = hashlib.sha256(b"254708374149").hexdigest()
    payment = parse_stk_callback(
        stk(0, [*STK_ITEMS[:3], {"Name": "PhoneNumber", "Value": digest.upper()}])
    ).payment
    assert payment is not None
    assert payment.phone_matches("254708374149")
    assert not payment.phone_matches("254708374148")


def test_a_full_phone_matches_only_itself() -> None:
    payment = parse_stk_callback(stk(0, STK_ITEMS)).payment
    assert payment is not None
    assert payment.phone == "254708374149"
    assert payment.phone_shown is None
    assert payment.phone_matches("254708374149")
    assert not payment.phone_matches("254708374148")


@pytest.mark.parametrize("shown", ["****", "25****9", "garbage", "2547**41**49", "254708374149**"])
def test_a_mask_showing_too_little_or_nonsense_matches_nothing(shown: str) -> None:
    assert not masked_phone_matches(shown, "254708374149")


def test_a_fractional_amount_is_refused_with_a_clear_reason() -> None:
    raw = STK_SUCCESS.replace(b'"Value":1.00', b'"Value":1.50')
    with pytest.raises(CallbackInvalid) as info:
        parse_stk_callback(raw)
    assert info.value.reason is CallbackProblem.fractional_amount
    assert "1.50" in str(info.value)
    assert "whole number of shillings" in str(info.value)
    # The receipt is still read by the cheap key parse, so the callback is stored with it.
    assert stk_callback_keys(json.loads(raw)) == ("ws_CO_191220191020363925", "NLJ7RT61SV")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", CallbackProblem.not_json),
        (b"[" * 100_000, CallbackProblem.not_json),
        (b'{"Body":{}}', CallbackProblem.wrong_shape),
        (
            STK_SUCCESS.replace(b'{"Name":"MpesaReceiptNumber","Value":"NLJ7RT61SV"},', b""),
            CallbackProblem.missing_field,
        ),
    ],
)
def test_every_refusal_has_a_reason(body: bytes, reason: CallbackProblem) -> None:
    with pytest.raises(CallbackInvalid) as info:
        parse_stk_callback(body)
    assert info.value.reason is reason


def test_transaction_status_names_the_queried_ids() -> None:
    result = parse_transaction_status_result(
        {
            "Result": {
                "ResultType": 0,
                "ResultCode": 0,
                "ResultDesc": "The service request is processed successfully.",
                "OriginatorConversationID": "3213-416199-2",
                "ConversationID": "AG_20180223_0000493344ae97d86f75",
                "TransactionID": "MBN0000000",
                "ResultParameters": {
                    "ResultParameter": [
                        {"Key": "OriginatorConversationID", "Value": "3211-416020-3"},
                        {"Key": "TransactionStatus", "Value": "Completed"},
                        {"Key": "Amount", "Value": "300"},
                        {"Key": "ConversationID", "Value": "AG_20180223_000041b09c22e613d6c9"},
                        {"Key": "ReceiptNo", "Value": "MBN31H462N"},
                    ]
                },
            }
        }
    )
    assert result.queried_ids == {"3211-416020-3", "AG_20180223_000041b09c22e613d6c9"}
    assert same_request({"payout-42", "AG_20180223_000041b09c22e613d6c9"}, result.queried_ids)
    assert result.amount == 300


# Daraja's Reversal page: its success and failure samples.
REVERSAL_SUCCESS = b"""{"Result":{"ResultType":0,"ResultCode":0,
 "ResultDesc":"The service request is processed successfully.",
 "OriginatorConversationID":"dad6-4c34-8787-c8cb963a496d1268232",
 "ConversationID":"AG_20211114_201018edbbf9f1582eaa","TransactionID":"SKE52PAWR9",
 "ResultParameters":{"ResultParameter":[
  {"Key":"DebitAccountBalance","Value":"Utility Account|KES|7722179.62|7722179.62|0.00|0.00"},
  {"Key":"Amount","Value":1.00},{"Key":"TransCompletedTime","Value":20211114132711},
  {"Key":"OriginalTransactionID","Value":"SKC82PACB8"},{"Key":"Charge","Value":0.00},
  {"Key":"CreditPartyPublicName","Value":"254705912645 - NICHOLAS JOHN SONGOK"},
  {"Key":"DebitPartyPublicName","Value":"600992 - Safaricom Daraja 992"}]},
 "ReferenceData":{"ReferenceItem":{"Key":"QueueTimeoutURL",
  "Value":"https://internalsandbox.safaricom.co.ke/mpesa/reversalresults/v1/submit"}}}}"""
REVERSAL_FAILURE = b"""{"Result":{"ResultType":0,"ResultCode":"R000002",
 "ResultDesc":"The OriginalTransactionID is invalid.",
 "OriginatorConversationID":"3124-481d-b706-10bdd6fbc8e21792398",
 "ConversationID":"AG_20211114_2010573069aefb6b625a","TransactionID":"SKE0000000"}}"""


def test_reversal_success() -> None:
    result = parse_reversal_result(REVERSAL_SUCCESS)
    assert result.succeeded
    assert not result.already_reversed
    assert result.transaction_id == "SKE52PAWR9"
    assert result.original_transaction_id == "SKC82PACB8"
    assert result.amount == 1
    assert result.completed_at == dt.datetime(2021, 11, 14, 13, 27, 11, tzinfo=NAIROBI)
    assert result.ids == {"dad6-4c34-8787-c8cb963a496d1268232", "AG_20211114_201018edbbf9f1582eaa"}
    assert "SONGOK" not in repr(result)


def test_reversal_failures() -> None:
    result = parse_reversal_result(REVERSAL_FAILURE)
    assert not result.succeeded
    assert result.original_not_found
    assert result.original_transaction_id is None
    already = json.loads(REVERSAL_FAILURE)
    already["Result"] |= {"ResultCode": "R000001", "ResultDesc": "already reversed"}
    assert parse_reversal_result(already).already_reversed
    broken = json.loads(REVERSAL_SUCCESS)
    del broken["Result"]["ResultParameters"]
    with pytest.raises(CallbackInvalid) as info:
        parse_reversal_result(broken)
    assert info.value.reason is CallbackProblem.missing_field
