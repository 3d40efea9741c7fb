"""B2C payouts, their Result and queue-timeout callbacks, and Transaction Status."""

from __future__ import annotations

import base64
import re
import time
import uuid

import pytest

from tests.harness.daraja_sim import SANDBOX_PHONE, Daraja, Receiver, error, parameters, seal


def _ids() -> tuple[str, str]:
    return str(uuid.uuid4()), f"/b2c/{uuid.uuid4().hex}"


def test_payout_with_a_sealed_credential_is_paid_and_reported(
    daraja: Daraja, receiver: Receiver
) -> None:
    originator, path = _ids()
    reply = daraja.b2c(originator, path, receiver, Amount=120)
    assert reply.status_code == 200
    sync = reply.json()
    assert sync["OriginatorConversationID"] == originator
    assert sync["ResponseCode"] == "0"
    assert sync["ResponseDescription"] == "Accept the service request successfully."
    assert sync["ConversationID"].startswith("AG_")
    [got] = receiver.wait(f"{path}/result")
    result = got.body["Result"]
    assert result["ResultType"] == 0
    assert result["ResultCode"] == 0
    assert result["OriginatorConversationID"] == originator
    assert result["ConversationID"] == sync["ConversationID"]
    assert len(result["TransactionID"]) == 10
    found = parameters(got.body)
    assert found["TransactionAmount"] == 120
    assert found["TransactionReceipt"] == result["TransactionID"]
    assert found["ReceiverPartyPublicName"] == "25470837**** - JOHN DOE"
    assert re.fullmatch(r"\d\d\.\d\d\.\d{4} \d\d:\d\d:\d\d", found["TransactionCompletedDateTime"])
    assert found["B2CUtilityAccountAvailableFunds"] == 1_000_000 - 120
    assert "ReferenceData" in result
    assert receiver.at(f"{path}/timeout") == []
    assert daraja.http.get("/simulator/transactions").json()["funds"] == 1_000_000 - 120


def test_wrong_initiator_password_is_refused_with_2001(daraja: Daraja, receiver: Receiver) -> None:
    originator, path = _ids()
    wrong = seal(daraja.certificate(), "not-the-password")
    reply = daraja.b2c(originator, path, receiver, SecurityCredential=wrong)
    assert reply.status_code == 200  # Daraja accepts, then says no
    [got] = receiver.wait(f"{path}/result")
    assert got.body["Result"]["ResultCode"] == 2001
    assert got.body["Result"]["ResultDesc"] == "The initiator information is invalid."
    assert "ResultParameters" not in got.body["Result"]
    assert daraja.http.get("/simulator/transactions").json()["funds"] == 1_000_000


def test_wrong_initiator_name_is_refused_with_2001(daraja: Daraja, receiver: Receiver) -> None:
    originator, path = _ids()
    daraja.b2c(originator, path, receiver, InitiatorName="someone")
    assert receiver.wait(f"{path}/result")[0].body["Result"]["ResultCode"] == 2001


def test_credential_sealed_to_another_key_is_a_bad_request(
    daraja: Daraja, receiver: Receiver
) -> None:
    originator, path = _ids()
    for credential in ("not base64!", base64.b64encode(b"x" * 256).decode()):
        reply = daraja.b2c(originator, path, receiver, SecurityCredential=credential)
        assert error(reply) == (400, "400.002.02", "Bad Request - Invalid SecurityCredential")
    time.sleep(0.15)
    assert receiver.at(f"{path}/result") == []


def test_repeated_originator_conversation_id_is_refused(daraja: Daraja, receiver: Receiver) -> None:
    originator, path = _ids()
    assert daraja.b2c(originator, path, receiver).status_code == 200
    again = daraja.b2c(originator, path, receiver)
    # Daraja's B2C page: 500.002.1001 "Duplicate OriginatorConversationID."
    assert error(again) == (500, "500.002.1001", "Duplicate OriginatorConversationID.")
    receiver.wait(f"{path}/result")
    time.sleep(0.15)
    assert len(receiver.at(f"{path}/result")) == 1
    assert daraja.http.get("/simulator/transactions").json()["funds"] == 1_000_000 - 120


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"Amount": 9}, "Amount"),
        ({"Amount": 10.5}, "Amount"),
        ({"CommandID": "BusinessPayBill"}, "CommandID"),
        ({"PartyA": "174379"}, "PartyA"),
        ({"PartyB": "0708374149"}, "PartyB"),
        ({"Remarks": "x"}, "Remarks"),
        ({"Remarks": "x" * 101}, "Remarks"),
        ({"ResultURL": "nowhere"}, "ResultURL"),
        ({"QueueTimeOutURL": ""}, "QueueTimeOutURL"),
        ({"InitiatorName": ""}, "InitiatorName"),
    ],
)
def test_invalid_b2c_fields_are_bad_requests(
    daraja: Daraja, receiver: Receiver, changes: dict[str, object], field: str
) -> None:
    originator, path = _ids()
    reply = daraja.b2c(originator, path, receiver, **changes)
    assert error(reply) == (400, "400.002.02", f"Bad Request - Invalid {field}")


@pytest.mark.parametrize(("suffix", "code"), [("01", 2001), ("40", 2040), ("11", 1)])
def test_failures_by_phone_suffix(
    daraja: Daraja, receiver: Receiver, suffix: str, code: int
) -> None:
    originator, path = _ids()
    daraja.b2c(originator, path, receiver, PartyB=f"2547083741{suffix}")
    result = receiver.wait(f"{path}/result")[0].body["Result"]
    assert result["ResultCode"] == code
    assert "ResultParameters" not in result


def test_a_rule_fails_the_next_payout(daraja: Daraja, receiver: Receiver) -> None:
    daraja.scenario(api="b2c", result_code=2040, count=1)
    first, second = _ids(), _ids()
    daraja.b2c(first[0], first[1], receiver)
    daraja.b2c(second[0], second[1], receiver)
    assert receiver.wait(f"{first[1]}/result")[0].body["Result"]["ResultCode"] == 2040
    assert receiver.wait(f"{second[1]}/result")[0].body["Result"]["ResultCode"] == 0


def test_utility_account_cannot_go_below_zero(receiver: Receiver, daraja: Daraja) -> None:
    originator, path = _ids()
    daraja.b2c(originator, path, receiver, Amount=250_000)
    assert receiver.wait(f"{path}/result")[0].body["Result"]["ResultCode"] == 0
    for _ in range(3):
        o, p = _ids()
        daraja.b2c(o, p, receiver, Amount=250_000)
        receiver.wait(f"{p}/result")
    o, p = _ids()
    daraja.b2c(o, p, receiver, Amount=250_000)
    assert receiver.wait(f"{p}/result")[0].body["Result"]["ResultCode"] == 1
    assert daraja.http.get("/simulator/transactions").json()["funds"] == 0


def test_duplicate_and_dropped_results(daraja: Daraja, receiver: Receiver) -> None:
    twice, dropped = _ids(), _ids()
    daraja.b2c(twice[0], twice[1], receiver, PartyB="254708374190")
    daraja.b2c(dropped[0], dropped[1], receiver, PartyB="254708374191")
    first, second = receiver.wait(f"{twice[1]}/result", 2)
    assert first.body == second.body
    [record] = daraja.wait_callbacks(1, reference=dropped[0])
    assert record["outcome"] == "dropped"
    assert receiver.at(f"{dropped[1]}/result") == []


def _status(daraja: Daraja, receiver: Receiver, **ids: str) -> dict[str, object]:
    path = f"/status/{uuid.uuid4().hex}"
    reply = daraja.status(path, receiver, **ids)
    assert reply.status_code == 200
    assert reply.json()["ResponseCode"] == "0"
    assert reply.json()["ResponseDescription"] == "Accept the service request successfully."
    result: dict[str, object] = receiver.wait(f"{path}/result")[0].body
    return result


def test_queue_timeout_then_status_shows_the_payout_completed(
    daraja: Daraja, receiver: Receiver
) -> None:
    originator, path = _ids()
    daraja.b2c(originator, path, receiver, PartyB="254708374196", Amount=300)
    [timeout] = receiver.wait(f"{path}/timeout")
    assert timeout.body["Result"]["OriginatorConversationID"] == originator
    time.sleep(0.1)
    assert receiver.at(f"{path}/result") == []
    status = _status(daraja, receiver, OriginalConversationID=originator)
    found = parameters(status)
    assert status["Result"]["ResultCode"] == 0  # type: ignore[index]
    assert found["TransactionStatus"] == "Completed"
    assert found["Amount"] == 300
    assert found["OriginatorConversationID"] == originator
    by_receipt = _status(daraja, receiver, TransactionID=found["ReceiptNo"])
    assert parameters(by_receipt)["ReceiptNo"] == found["ReceiptNo"]


def test_queue_timeout_then_status_shows_no_payout(daraja: Daraja, receiver: Receiver) -> None:
    originator, path = _ids()
    daraja.b2c(originator, path, receiver, PartyB="254708374197")
    receiver.wait(f"{path}/timeout")
    status = _status(daraja, receiver, OriginalConversationID=originator)
    assert status["Result"]["ResultCode"] == "R000001"  # type: ignore[index]
    assert "ResultParameters" not in status["Result"]  # type: ignore[operator]
    assert daraja.http.get("/simulator/transactions").json()["funds"] == 1_000_000


def test_queue_timeout_by_rule(daraja: Daraja, receiver: Receiver) -> None:
    daraja.scenario(api="b2c", phone=SANDBOX_PHONE, queue_timeout=True, paid_despite_timeout=True)
    originator, path = _ids()
    daraja.b2c(originator, path, receiver)
    receiver.wait(f"{path}/timeout")
    status = _status(daraja, receiver, OriginalConversationID=originator)
    assert parameters(status)["TransactionStatus"] == "Completed"


def test_status_of_a_paid_stk_push_by_receipt(daraja: Daraja, receiver: Receiver) -> None:
    path = f"/stk/{uuid.uuid4().hex}"
    daraja.push(receiver.url(path), Amount=77)
    callback = receiver.wait(path)[0].body["Body"]["stkCallback"]
    receipt = next(
        i["Value"]
        for i in callback["CallbackMetadata"]["Item"]
        if i["Name"] == "MpesaReceiptNumber"
    )
    found = parameters(_status(daraja, receiver, TransactionID=receipt))
    assert (found["ReceiptNo"], found["Amount"]) == (receipt, 77)


def test_status_with_a_wrong_credential_is_2001(daraja: Daraja, receiver: Receiver) -> None:
    path = f"/status/{uuid.uuid4().hex}"
    daraja.status(
        path,
        receiver,
        TransactionID="NLJ41HAY6Q",
        SecurityCredential=seal(daraja.certificate(), "wrong"),
    )
    assert receiver.wait(f"{path}/result")[0].body["Result"]["ResultCode"] == 2001
