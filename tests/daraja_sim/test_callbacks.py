"""STK callbacks: their shape for each outcome, and the ways Daraja delivers them badly."""

from __future__ import annotations

import time
import uuid

import pytest

from nishati_dev.processes import free_port
from tests.harness.daraja_sim import SANDBOX_PHONE, Daraja, Receiver, items


def _path() -> str:
    return f"/stk/{uuid.uuid4().hex}"


def test_success_callback_has_daraja_shape(daraja: Daraja, receiver: Receiver) -> None:
    path = _path()
    reply = daraja.push(receiver.url(path), Amount=42).json()
    [got] = receiver.wait(path)
    callback = got.body["Body"]["stkCallback"]
    assert callback["MerchantRequestID"] == reply["MerchantRequestID"]
    assert callback["CheckoutRequestID"] == reply["CheckoutRequestID"]
    assert callback["ResultCode"] == 0
    assert callback["ResultDesc"] == "The service request is processed successfully."
    found = items(got.body)
    assert found["Amount"] == 42
    assert isinstance(found["Amount"], float)  # rendered 42.0, as Daraja often does
    receipt = found["MpesaReceiptNumber"]
    assert len(receipt) == 10
    assert receipt.isalnum()
    assert receipt.isupper()
    assert "Balance" in found
    assert found["Balance"] is None
    assert found["PhoneNumber"] == int(SANDBOX_PHONE)
    date = found["TransactionDate"]
    assert isinstance(date, int)
    nairobi_now = time.strftime("%Y%m%d%H%M", time.gmtime(time.time() + 3 * 3600))
    assert str(date)[:12] <= nairobi_now
    assert len(str(date)) == 14


def test_receipts_are_unique(daraja: Daraja, receiver: Receiver) -> None:
    paths = [_path() for _ in range(5)]
    for n, path in enumerate(paths):
        daraja.push(receiver.url(path), phone=f"25470000005{n}")
    receipts = {items(receiver.wait(p)[0].body)["MpesaReceiptNumber"] for p in paths}
    assert len(receipts) == 5


@pytest.mark.parametrize(
    ("suffix", "code", "desc"),
    [
        ("32", 1032, "Request cancelled by user."),
        ("37", 1037, "DS timeout user cannot be reached."),
        ("01", 2001, "The initiator information is invalid."),
        ("11", 1, "The balance is insufficient for the transaction."),
        ("17", 17, "Rule limited."),
        ("19", 1019, "Transaction has expired."),
    ],
)
def test_failure_callbacks_by_phone_suffix(
    daraja: Daraja, receiver: Receiver, suffix: str, code: int, desc: str
) -> None:
    path = _path()
    checkout = daraja.push(receiver.url(path), phone=f"2547083741{suffix}").json()[
        "CheckoutRequestID"
    ]
    [got] = receiver.wait(path)
    callback = got.body["Body"]["stkCallback"]
    assert callback["ResultCode"] == code
    assert callback["ResultDesc"] == desc
    assert callback["CheckoutRequestID"] == checkout
    assert "CallbackMetadata" not in callback
    query = daraja.query(checkout).json()
    assert query["ResultCode"] == str(code)


def test_a_rule_overrides_the_suffix_for_the_next_n(daraja: Daraja, receiver: Receiver) -> None:
    daraja.scenario(phone=SANDBOX_PHONE, result_code=2001, count=2)
    codes = []
    for amount in (10, 11, 12):
        path = _path()
        daraja.push(receiver.url(path), Amount=amount)
        codes.append(receiver.wait(path)[0].body["Body"]["stkCallback"]["ResultCode"])
    assert codes == [2001, 2001, 0]
    assert daraja.http.get("/simulator/scenario").json()["rules"] == []


def test_duplicate_delivers_the_same_callback_twice(daraja: Daraja, receiver: Receiver) -> None:
    path = _path()
    daraja.push(receiver.url(path), phone="254708374190")
    first, second = receiver.wait(path, 2)
    assert first.body == second.body
    assert first.body["Body"]["stkCallback"]["ResultCode"] == 0


def test_drop_never_sends_but_the_query_knows(daraja: Daraja, receiver: Receiver) -> None:
    path = _path()
    checkout = daraja.push(receiver.url(path), phone="254708374191").json()["CheckoutRequestID"]
    time.sleep(0.3)
    assert receiver.at(path) == []
    assert daraja.query(checkout).json()["ResultCode"] == "0"
    [record] = daraja.wait_callbacks(1, reference=checkout)
    assert record["outcome"] == "dropped"
    assert record["body"]["Body"]["stkCallback"]["ResultCode"] == 0


def test_delay_sends_late_after_the_outcome(daraja: Daraja, receiver: Receiver) -> None:
    path = _path()
    checkout = daraja.push(receiver.url(path), phone="254708374192").json()["CheckoutRequestID"]
    time.sleep(0.2)
    assert receiver.at(path) == []
    assert daraja.query(checkout).json()["ResultCode"] == "0"  # decided, callback on its way
    receiver.wait(path, timeout=3)


def test_early_callback_arrives_before_the_push_is_answered(
    daraja: Daraja, receiver: Receiver
) -> None:
    path = _path()
    reply = daraja.push(receiver.url(path), phone="254708374193")
    answered = time.monotonic()
    arrived = receiver.at(path)
    assert len(arrived) == 1
    assert arrived[0].at < answered
    callback = arrived[0].body["Body"]["stkCallback"]
    assert callback["CheckoutRequestID"] == reply.json()["CheckoutRequestID"]


def test_early_mode_by_rule(daraja: Daraja, receiver: Receiver) -> None:
    daraja.scenario(delivery="early", result_code=1032, count=1)
    path = _path()
    daraja.push(receiver.url(path))
    [got] = receiver.at(path)
    assert got.body["Body"]["stkCallback"]["ResultCode"] == 1032


def test_reorder_holds_a_callback_until_a_later_one(daraja: Daraja, receiver: Receiver) -> None:
    held, later = _path(), _path()
    first = daraja.push(receiver.url(held), phone="254708374194").json()["CheckoutRequestID"]
    time.sleep(0.15)
    assert receiver.at(held) == []
    second = daraja.push(receiver.url(later), phone="254708374195").json()["CheckoutRequestID"]
    [after] = receiver.wait(held)
    [before] = receiver.wait(later)
    assert before.at <= after.at
    order = [d["reference"] for d in daraja.wait_callbacks(2, kind="stk")]
    assert order == [second, first]


def test_reorder_releases_after_the_long_delay_alone(daraja: Daraja, receiver: Receiver) -> None:
    path = _path()
    daraja.push(receiver.url(path), phone="254708374194")
    receiver.wait(path, timeout=3)


def test_held_callbacks_are_released_on_demand(daraja: Daraja, receiver: Receiver) -> None:
    path = _path()
    daraja.scenario(delivery="reorder", count=1)
    daraja.push(receiver.url(path))
    time.sleep(0.15)
    assert daraja.http.post("/simulator/release").json() == {"count": 1}
    receiver.wait(path, timeout=0.5)


def test_a_refused_connection_is_recorded_not_fatal(daraja: Daraja, receiver: Receiver) -> None:
    dead = f"http://127.0.0.1:{free_port()}/callback"
    checkout = daraja.push(dead).json()["CheckoutRequestID"]
    [record] = daraja.wait_callbacks(1, reference=checkout)
    assert record["outcome"] == "failed"
    assert "ConnectError" in record["error"]
    assert daraja.query(checkout).json()["ResultCode"] == "0"
    path = _path()
    daraja.push(receiver.url(path), Amount=2)
    receiver.wait(path)
