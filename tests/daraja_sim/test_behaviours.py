"""The behaviours of the real Daraja that issue 15 lists, each produced on demand: STK Query's
4999, B2C results with Daraja's own ids, only the documented Transaction Status field, replies
that are not Daraja's, one valid token at a time, per-API token codes, the Reversal API."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from tests.harness.daraja_sim import SANDBOX_PHONE, Daraja, Receiver, error, parameters, seal

PUSH = "/mpesa/stkpush/v1/processrequest"
QUERY = "/mpesa/stkpushquery/v1/query"
B2C = "/mpesa/b2c/v3/paymentrequest"
STATUS = "/mpesa/transactionstatus/v1/query"
REVERSAL = "/mpesa/reversal/v1/request"


def _path(kind: str = "cb") -> str:
    return f"/{kind}/{uuid.uuid4().hex}"


def _patch(daraja: Daraja, **changes: object) -> dict[str, Any]:
    reply = daraja.http.patch("/simulator/settings", json=changes)
    assert reply.status_code == 200, reply.text
    found: dict[str, Any] = reply.json()
    return found


# ---------------------------------------------------------------- 1: 4999 still processing


def test_a_rule_makes_the_query_answer_4999_until_the_customer_decides(
    daraja: Daraja, receiver: Receiver
) -> None:
    daraja.scenario(phone=SANDBOX_PHONE, pending_reply="4999", decide_after_secs=0.6, count=1)
    path = _path()
    checkout = daraja.push(receiver.url(path)).json()["CheckoutRequestID"]
    pending = daraja.query(checkout)
    assert pending.status_code == 200
    assert pending.json() == {
        "ResponseCode": "0",
        "ResponseDescription": "The service request has been accepted successsfully",
        "MerchantRequestID": pending.json()["MerchantRequestID"],
        "CheckoutRequestID": checkout,
        "ResultCode": "4999",
        "ResultDesc": "The transaction is still under processing",
    }
    [callback] = receiver.wait(path, timeout=3)
    assert callback.body["Body"]["stkCallback"]["ResultCode"] == 0
    assert daraja.query(checkout).json()["ResultCode"] == "0"


def test_the_setting_makes_every_pending_query_4999(daraja: Daraja, receiver: Receiver) -> None:
    assert _patch(daraja, stk_query_pending="4999")["stk_query_pending"] == "4999"
    daraja.scenario(decide_after_secs=5, count=1)
    checkout = daraja.push(receiver.url(_path())).json()["CheckoutRequestID"]
    assert daraja.query(checkout).json()["ResultCode"] == "4999"


def test_by_default_a_pending_query_is_the_http_500(daraja: Daraja, receiver: Receiver) -> None:
    daraja.scenario(decide_after_secs=5, count=1)
    checkout = daraja.push(receiver.url(_path())).json()["CheckoutRequestID"]
    assert error(daraja.query(checkout)) == (
        500,
        "500.001.1001",
        "The transaction is being processed",
    )


# ---------------------------------------------------------------- 2, 3: B2C ids, status field


def test_b2c_results_can_carry_daraja_generated_originator_ids(
    daraja: Daraja, receiver: Receiver
) -> None:
    daraja.scenario(api="b2c", result_ids="daraja", count=1)
    originator, path = str(uuid.uuid4()), _path("b2c")
    sync = daraja.b2c(originator, path, receiver).json()
    assert sync["OriginatorConversationID"] == originator  # the reply echoes ours
    result = receiver.wait(f"{path}/result")[0].body["Result"]
    assert result["OriginatorConversationID"] != originator
    assert result["ConversationID"] == sync["ConversationID"]
    assert result["ResultCode"] == 0
    # Transaction Status finds it by any of its ids, and names M-Pesa's ids for it.
    for known in (originator, result["OriginatorConversationID"], sync["ConversationID"]):
        status_path = _path("status")
        daraja.status(status_path, receiver, OriginalConversationID=known)
        found = parameters(receiver.wait(f"{status_path}/result")[0].body)
        assert found["TransactionStatus"] == "Completed"
        assert found["OriginatorConversationID"] == result["OriginatorConversationID"]
        assert found["ConversationID"] == sync["ConversationID"]


def test_the_setting_gives_every_payout_daraja_ids_and_the_timeout_too(
    daraja: Daraja, receiver: Receiver
) -> None:
    _patch(daraja, b2c_result_ids="daraja")
    originator, path = str(uuid.uuid4()), _path("b2c")
    sync = daraja.b2c(originator, path, receiver, PartyB="254708374196").json()
    [timeout] = receiver.wait(f"{path}/timeout")
    assert timeout.body["Result"]["OriginatorConversationID"] != originator
    assert timeout.body["Result"]["ConversationID"] == sync["ConversationID"]


def test_transaction_status_reads_only_the_documented_field(
    daraja: Daraja, receiver: Receiver
) -> None:
    originator, path = str(uuid.uuid4()), _path("b2c")
    daraja.b2c(originator, path, receiver)
    receiver.wait(f"{path}/result")
    reply = daraja.status(_path("status"), receiver, OriginatorConversationID=originator)
    assert error(reply) == (400, "400.002.02", "Bad Request - Invalid TransactionID")


# ---------------------------------------------------------------- 4: replies not Daraja's


def _fault(daraja: Daraja, **fault: object) -> list[dict[str, Any]]:
    reply = daraja.http.post("/simulator/faults", json=fault)
    assert reply.status_code == 200, reply.text
    found: list[dict[str, Any]] = reply.json()["faults"]
    return found


def test_a_gateway_429_with_retry_after(daraja: Daraja, receiver: Receiver) -> None:
    _fault(
        daraja,
        path=PUSH,
        status=429,
        body="Too Many Requests",
        content_type="text/plain",
        headers={"Retry-After": "2"},
    )
    reply = daraja.push(receiver.url(_path()))
    assert (reply.status_code, reply.text, reply.headers["retry-after"]) == (
        429,
        "Too Many Requests",
        "2",
    )
    assert daraja.push(receiver.url(_path())).status_code == 200  # count 1: gone
    assert daraja.http.get("/simulator/faults").json() == {"faults": []}


def test_a_firewall_page_for_any_path_until_cleared(daraja: Daraja, receiver: Receiver) -> None:
    daraja.push(receiver.url(_path()))  # a token before the fault: OAuth gets the page too
    _fault(daraja, status=403, body="<html>Request blocked</html>", count=None)
    for reply in (
        daraja.push(receiver.url(_path())),
        daraja.query("ws_CO_1"),
        daraja.http.get(
            "/oauth/v1/generate",
            params={"grant_type": "client_credentials"},
            auth=("nishati-sim-consumer-key", "nishati-sim-consumer-secret"),
        ),
    ):
        assert reply.status_code == 403
        assert reply.headers["content-type"].startswith("text/html")
        assert "Request blocked" in reply.text
    assert daraja.http.delete("/simulator/faults").json() == {"faults": []}
    assert daraja.push(receiver.url(_path()), phone="254708374150").status_code == 200


def test_a_502_after_processing_loses_only_the_reply(daraja: Daraja, receiver: Receiver) -> None:
    _fault(daraja, path=PUSH, status=502, after_processing=True)
    path = _path()
    reply = daraja.push(receiver.url(path))
    assert reply.status_code == 502
    assert "Bad Gateway" in reply.text
    [callback] = receiver.wait(path)  # the push was accepted all the same
    checkout = callback.body["Body"]["stkCallback"]["CheckoutRequestID"]
    assert daraja.query(checkout).json()["ResultCode"] == "0"


def test_a_slow_reply(daraja: Daraja, receiver: Receiver) -> None:
    _fault(daraja, path=QUERY, status=504, delay_secs=0.5, body="Gateway Timeout")
    started = time.monotonic()
    reply = daraja.query("ws_CO_1")
    assert reply.status_code == 504
    assert time.monotonic() - started >= 0.5


def test_bad_faults_are_refused(daraja: Daraja) -> None:
    assert daraja.http.post("/simulator/faults", json={"status": 99}).status_code == 422
    assert daraja.http.post("/simulator/faults", json={"count": 0}).status_code == 422


# ---------------------------------------------------------------- 5: tokens


def test_a_new_token_invalidates_the_old_when_single(daraja: Daraja, receiver: Receiver) -> None:
    _patch(daraja, single_token=True)
    first = daraja.token()
    second = daraja.token()
    body = daraja.push_body(receiver.url(_path()))
    assert error(daraja.post(PUSH, body, token=first)) == (
        404,
        "404.001.03",
        "Invalid Access Token",
    )
    assert daraja.post(PUSH, body, token=second).status_code == 200


def test_tokens_live_on_together_by_default(daraja: Daraja, receiver: Receiver) -> None:
    first, second = daraja.token(), daraja.token()
    assert (
        daraja.post(PUSH, daraja.push_body(receiver.url(_path())), token=first).status_code == 200
    )
    body = daraja.push_body(receiver.url(_path()), phone="254708374150")
    assert daraja.post(PUSH, body, token=second).status_code == 200


def test_each_api_answers_a_bad_token_with_its_documented_code(
    daraja: Daraja, receiver: Receiver
) -> None:
    status = daraja.http.post(STATUS, json={}, headers={"Authorization": "Bearer nope"})
    assert error(status)[:2] == (400, "400.003.01")
    _patch(daraja, invalid_token_code="401.003.01")  # noqa: S106 (an error code)
    for path in (PUSH, QUERY, B2C, STATUS, REVERSAL):
        reply = daraja.http.post(path, json={}, headers={"Authorization": "Bearer nope"})
        assert error(reply) == (401, "401.003.01", "Invalid Access Token"), path
    _patch(daraja, invalid_token_code=None)
    reply = daraja.http.post(PUSH, json={}, headers={"Authorization": "Bearer nope"})
    assert error(reply)[:2] == (404, "404.001.03")


# ---------------------------------------------------------------- the Reversal API


def _paid(daraja: Daraja, receiver: Receiver, amount: int = 30, phone: str = SANDBOX_PHONE) -> str:
    path = _path()
    daraja.push(receiver.url(path), Amount=amount, phone=phone)
    items = receiver.wait(path)[0].body["Body"]["stkCallback"]["CallbackMetadata"]["Item"]
    receipt: str = next(i["Value"] for i in items if i["Name"] == "MpesaReceiptNumber")
    return receipt


def _reverse(
    daraja: Daraja, receiver: Receiver, receipt: str, path: str, **changes: object
) -> dict[str, Any]:
    body: dict[str, object] = {
        "Initiator": "testapi",
        "SecurityCredential": seal(daraja.certificate(), "Nishati-Sim-Initiator-1!"),
        "CommandID": "TransactionReversal",
        "TransactionID": receipt,
        "Amount": "30",
        "ReceiverParty": "174379",
        "RecieverIdentifierType": "11",
        "ResultURL": receiver.url(f"{path}/result"),
        "QueueTimeOutURL": receiver.url(f"{path}/timeout"),
        "Remarks": "Payment reversal",
        **changes,
    }
    reply = daraja.post(REVERSAL, body)
    found: dict[str, Any] = reply.json()
    found["_status"] = reply.status_code
    return found


def test_a_paid_push_is_reversed_once(daraja: Daraja, receiver: Receiver) -> None:
    receipt = _paid(daraja, receiver)
    path = _path("rev")
    sync = _reverse(daraja, receiver, receipt, path)
    assert sync["_status"] == 200
    assert sync["ResponseCode"] == "0"
    assert sync["ResponseDescription"] == "Accept the service request successfully."
    assert sync["ConversationID"].startswith("AG_")
    [got] = receiver.wait(f"{path}/result")
    result = got.body["Result"]
    assert (result["ResultCode"], result["ConversationID"]) == (0, sync["ConversationID"])
    assert result["OriginatorConversationID"] == sync["OriginatorConversationID"]
    found = parameters(got.body)
    assert found["OriginalTransactionID"] == receipt
    assert found["Amount"] == 30
    assert len(str(found["TransCompletedTime"])) == 14
    assert result["TransactionID"] != receipt
    books = daraja.http.get("/simulator/transactions").json()
    [payment] = [p for p in books["stk"] if p["receipt"] == receipt]
    assert payment["reversed_by"] == sync["ConversationID"]
    [reversal] = books["reversals"]
    assert reversal["reversed"] is True
    # A second reversal of the same receipt is refused: what makes a resend safe.
    again = _path("rev")
    _reverse(daraja, receiver, receipt, again)
    second = receiver.wait(f"{again}/result")[0].body["Result"]
    assert (second["ResultCode"], second["ResultDesc"]) == (
        "R000001",
        "The transaction has already been reversed.",
    )
    assert "ResultParameters" not in second


def test_a_reversal_of_no_payment_is_r000002(daraja: Daraja, receiver: Receiver) -> None:
    path = _path("rev")
    assert _reverse(daraja, receiver, "NOSUCH0001", path)["_status"] == 200
    result = receiver.wait(f"{path}/result")[0].body["Result"]
    assert (result["ResultCode"], result["ResultDesc"]) == (
        "R000002",
        "The OriginalTransactionID is invalid.",
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"Amount": "31"}, "Amount"),
        ({"RecieverIdentifierType": "4"}, "RecieverIdentifierType"),
        ({"ReceiverParty": "600996"}, "ReceiverParty"),
        ({"CommandID": "BusinessPayment"}, "CommandID"),
        ({"Remarks": "x"}, "Remarks"),
        ({"ResultURL": "http://127.0.0.1:9/sql/r"}, "ResultURL"),
    ],
)
def test_bad_reversal_requests(
    daraja: Daraja, receiver: Receiver, changes: dict[str, object], field: str
) -> None:
    receipt = _paid(daraja, receiver)
    reply = _reverse(daraja, receiver, receipt, _path("rev"), **changes)
    assert (reply["_status"], reply["errorCode"], reply["errorMessage"]) == (
        400,
        "400.002.02",
        f"Bad Request - Invalid {field}",
    )


@pytest.mark.parametrize("reversed_all_the_same", [True, False])
def test_a_reversal_that_times_out_in_the_queue(
    daraja: Daraja, receiver: Receiver, reversed_all_the_same: bool
) -> None:
    receipt = _paid(daraja, receiver)
    daraja.scenario(
        api="reversal", queue_timeout=True, paid_despite_timeout=reversed_all_the_same, count=1
    )
    path = _path("rev")
    sync = _reverse(daraja, receiver, receipt, path)
    [notice] = receiver.wait(f"{path}/timeout")
    assert notice.body["Result"]["ConversationID"] == sync["ConversationID"]
    assert receiver.at(f"{path}/result") == []
    status_path = _path("status")
    daraja.status(status_path, receiver, OriginalConversationID=sync["ConversationID"])
    answer = receiver.wait(f"{status_path}/result")[0].body["Result"]
    if reversed_all_the_same:
        assert parameters({"Result": answer})["ReasonType"] == "Reversal"
    else:
        assert answer["ResultCode"] == "R000001"  # no such transaction


def test_a_rule_fails_a_reversal(daraja: Daraja, receiver: Receiver) -> None:
    receipt = _paid(daraja, receiver)
    daraja.scenario(api="reversal", result_code=21, count=1)
    path = _path("rev")
    _reverse(daraja, receiver, receipt, path)
    result = receiver.wait(f"{path}/result")[0].body["Result"]
    assert result["ResultCode"] == 21
    # Not reversed: a second try succeeds.
    path = _path("rev")
    _reverse(daraja, receiver, receipt, path)
    assert receiver.wait(f"{path}/result")[0].body["Result"]["ResultCode"] == 0


def test_a_reversal_with_a_wrong_password_is_2001(daraja: Daraja, receiver: Receiver) -> None:
    receipt = _paid(daraja, receiver)
    path = _path("rev")
    _reverse(daraja, receiver, receipt, path, SecurityCredential=seal(daraja.certificate(), "no"))
    assert receiver.wait(f"{path}/result")[0].body["Result"]["ResultCode"] == 2001


def test_every_callback_url_is_checked_for_blocked_words(
    daraja: Daraja, receiver: Receiver
) -> None:
    originator = str(uuid.uuid4())
    reply = daraja.b2c(originator, "/b2c", receiver, ResultURL=receiver.url("/mpesa/result"))
    assert error(reply) == (400, "400.002.02", "Bad Request - Invalid ResultURL")
