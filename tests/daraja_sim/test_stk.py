"""STK Push: Daraja's field rules, the synchronous reply, the query, and the in-process lock."""

from __future__ import annotations

import base64
import time
import uuid

import pytest

from tests.client.support import written_in
from tests.harness.daraja_sim import SANDBOX_PHONE, Daraja, Receiver, error


def _path() -> str:
    return f"/stk/{uuid.uuid4().hex}"


def test_accepted_push_answers_like_daraja(daraja: Daraja, receiver: Receiver) -> None:
    reply = daraja.push(receiver.url(_path()))
    assert reply.status_code == 200
    body = reply.json()
    assert set(body) == {
        "MerchantRequestID",
        "CheckoutRequestID",
        "ResponseCode",
        "ResponseDescription",
        "CustomerMessage",
    }
    assert body["ResponseCode"] == "0"
    assert body["ResponseDescription"] == "Success. Request accepted for processing"
    assert body["CheckoutRequestID"].startswith("ws_CO_")


def test_wrong_password_is_wrong_credentials(daraja: Daraja, receiver: Receiver) -> None:
    stamp = daraja.stamp()
    wrong = base64.b64encode(f"174379{'0' * 64}{stamp}".encode()).decode()
    reply = daraja.push(receiver.url(_path()), Password=wrong, Timestamp=stamp)
    assert error(reply) == (500, "500.001.1001", "Wrong credentials")


def test_password_must_use_the_same_timestamp(daraja: Daraja, receiver: Receiver) -> None:
    reply = daraja.push(receiver.url(_path()), Timestamp="20240101120000")
    assert error(reply) == (500, "500.001.1001", "Wrong credentials")


def test_unknown_shortcode_is_refused(daraja: Daraja, receiver: Receiver) -> None:
    stamp = daraja.stamp()
    reply = daraja.push(
        receiver.url(_path()),
        BusinessShortCode="600000",
        Password=daraja.password(stamp, "600000"),
        Timestamp=stamp,
    )
    assert error(reply)[:2] == (500, "500.001.1001")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"Amount": 1.5}, "Amount"),
        ({"Amount": "1.5"}, "Amount"),
        ({"Amount": 1.0}, "Amount"),
        ({"Amount": 0}, "Amount"),
        ({"Amount": 250_001}, "Amount"),
        ({"Amount": True}, "Amount"),
        ({"phone": "0708374149"}, "PartyA"),
        ({"phone": "+254708374149"}, "PartyA"),
        ({"phone": "255708374149"}, "PartyA"),
        ({"phone": "25470837414"}, "PartyA"),
        ({"PhoneNumber": "254808374149"}, "PhoneNumber"),
        ({"AccountReference": "NISHATI-TRADE"}, "AccountReference"),
        ({"AccountReference": ""}, "AccountReference"),
        ({"TransactionDesc": "Solar kWh sale"}, "TransactionDesc"),
        ({"TransactionType": "CustomerPayBill"}, "TransactionType"),
        ({"CallBackURL": "not a url"}, "CallBackURL"),
        ({"CallBackURL": "ftp://127.0.0.1/cb"}, "CallBackURL"),
        ({"CallBackURL": None}, "CallBackURL"),
        ({"Timestamp": "2024-01-01 12:00"}, "Timestamp"),
        ({"Timestamp": "20241301120000"}, "Timestamp"),
        # Digits other than 0-9: Arabic-Indic and full-width.
        ({"phone": "2547" + written_in("arabic-indic", "08374149")}, "PartyA"),
        ({"PhoneNumber": "2547" + written_in("full-width", "08374149")}, "PhoneNumber"),
        ({"BusinessShortCode": written_in("arabic-indic", "174379")}, "BusinessShortCode"),
        ({"Timestamp": written_in("full-width", "20240101120000")}, "Timestamp"),
        ({"Amount": written_in("arabic-indic", "12")}, "Amount"),
    ],
)
def test_invalid_fields_are_bad_requests(
    daraja: Daraja, receiver: Receiver, changes: dict[str, object], field: str
) -> None:
    reply = daraja.push(receiver.url(_path()), **changes)
    assert error(reply) == (400, "400.002.02", f"Bad Request - Invalid {field}")


def test_decimal_amount_is_invalid_amount(daraja: Daraja, receiver: Receiver) -> None:
    reply = daraja.push(receiver.url(_path()), Amount=12.5)
    status, code, message = error(reply)
    assert (status, code) == (400, "400.002.02")
    assert "Invalid Amount" in message


def test_whole_amounts_as_numbers_or_digit_strings_are_accepted(
    daraja: Daraja, receiver: Receiver
) -> None:
    assert daraja.push(receiver.url(_path()), Amount=250_000).status_code == 200
    reply = daraja.push(receiver.url(_path()), Amount="7", phone="254112345678")
    assert reply.status_code == 200


def test_callback_url_with_a_blocked_word_is_refused(daraja: Daraja, receiver: Receiver) -> None:
    reply = daraja.push(receiver.url("/mpesa/query/callback"))
    assert error(reply) == (400, "400.002.02", "Bad Request - Invalid CallBackURL")


def test_second_push_to_a_phone_in_process_is_refused(daraja: Daraja, receiver: Receiver) -> None:
    daraja.scenario(phone=SANDBOX_PHONE, decide_after_secs=0.5, count=1)
    first = daraja.push(receiver.url(_path()))
    assert first.status_code == 200
    second = daraja.push(receiver.url(_path()), Amount=2)
    status, code, message = error(second)
    assert (status, code) == (500, "500.001.1001")
    assert "a transaction is already in process" in message
    other_phone = daraja.push(receiver.url(_path()), phone="254708374150")
    assert other_phone.status_code == 200
    time.sleep(0.6)
    assert daraja.push(receiver.url(_path()), Amount=3).status_code == 200


def test_query_is_pending_then_final(daraja: Daraja, receiver: Receiver) -> None:
    daraja.scenario(phone=SANDBOX_PHONE, result_code=1032, decide_after_secs=0.4, count=1)
    checkout = daraja.push(receiver.url(_path())).json()["CheckoutRequestID"]
    pending = daraja.query(checkout)
    assert error(pending) == (500, "500.001.1001", "The transaction is being processed")
    time.sleep(0.5)
    final = daraja.query(checkout)
    assert final.status_code == 200
    body = final.json()
    assert body["ResponseCode"] == "0"
    assert body["ResultCode"] == "1032"
    assert body["ResultDesc"] == "Request cancelled by user."
    assert body["CheckoutRequestID"] == checkout


def test_query_of_a_paid_push_says_zero_as_a_string(daraja: Daraja, receiver: Receiver) -> None:
    path = _path()
    checkout = daraja.push(receiver.url(path)).json()["CheckoutRequestID"]
    receiver.wait(path)
    body = daraja.query(checkout).json()
    assert (body["ResultCode"], body["ResultDesc"]) == (
        "0",
        "The service request is processed successfully.",
    )


def test_query_checks_the_password_and_the_id(daraja: Daraja, receiver: Receiver) -> None:
    assert error(daraja.query("ws_CO_000000000000000000"))[:2] == (400, "400.002.02")
    checkout = daraja.push(receiver.url(_path())).json()["CheckoutRequestID"]
    reply = daraja.post(
        "/mpesa/stkpushquery/v1/query",
        {
            "BusinessShortCode": "174379",
            "Password": "d3Jvbmc=",
            "Timestamp": daraja.stamp(),
            "CheckoutRequestID": checkout,
        },
    )
    assert error(reply) == (500, "500.001.1001", "Wrong credentials")


def test_same_amount_to_the_same_phone_within_two_minutes_is_17(
    daraja: Daraja, receiver: Receiver
) -> None:
    first, second = _path(), _path()
    daraja.push(receiver.url(first), Amount=55)
    assert receiver.wait(first)[0].body["Body"]["stkCallback"]["ResultCode"] == 0
    daraja.push(receiver.url(second), Amount=55)
    callback = receiver.wait(second)[0].body["Body"]["stkCallback"]
    assert callback["ResultCode"] == 17
    assert "CallbackMetadata" not in callback


def test_requests_are_recorded_for_inspection(daraja: Daraja, receiver: Receiver) -> None:
    daraja.push(receiver.url(_path()), Amount=1.5)
    found = daraja.http.get(
        "/simulator/requests", params={"path": "/mpesa/stkpush/v1/processrequest"}
    ).json()
    assert len(found) == 1
    assert found[0]["body"]["Amount"] == 1.5
    assert found[0]["status"] == 400
    assert found[0]["response"]["errorCode"] == "400.002.02"
