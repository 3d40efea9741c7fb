"""The simulator remembers: SIGKILLed with work in flight and started again on the same
database, it finds its books (payments, payouts, reversals, held callbacks, tokens, rules,
faults, settings changes, the B2C account, its records) and finishes the work it had."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

from nishati_dev.processes import DarajaSimService
from tests.harness.daraja_sim import FAST, SANDBOX_PHONE, Daraja, Receiver, seal


def _path(kind: str) -> str:
    return f"/{kind}/{uuid.uuid4().hex}"


def test_killed_and_restarted_it_loses_nothing(tmp_path: Path, receiver: Receiver) -> None:
    database = tmp_path / "daraja-sim.db"
    sim = DarajaSimService({**FAST, "long_delay_secs": 1.5, "database": database})
    sim.start()
    daraja = Daraja(sim.url)
    try:
        # Decided before the kill: a paid push, reversed; a completed payout.
        paid_path = _path("stk")
        paid = daraja.push(receiver.url(paid_path), Amount=40).json()["CheckoutRequestID"]
        [callback] = receiver.wait(paid_path)
        metadata = callback.body["Body"]["stkCallback"]["CallbackMetadata"]["Item"]
        receipt = next(i["Value"] for i in metadata if i["Name"] == "MpesaReceiptNumber")
        done_payout, done_path = str(uuid.uuid4()), _path("b2c")
        daraja.b2c(done_payout, done_path, receiver, Amount=100)
        receiver.wait(f"{done_path}/result")

        # In flight at the kill: an undecided push (answered 4999 meanwhile), a payout, a
        # reversal, and a callback held back by ``reorder``.
        daraja.scenario(phone="254708374150", pending_reply="4999", decide_after_secs=1.0, count=1)
        open_path = _path("stk")
        undecided = daraja.push(receiver.url(open_path), phone="254708374150").json()[
            "CheckoutRequestID"
        ]
        daraja.scenario(api="b2c", decide_after_secs=1.0, count=1)
        open_payout, open_payout_path = str(uuid.uuid4()), _path("b2c")
        daraja.b2c(open_payout, open_payout_path, receiver, Amount=200)
        daraja.scenario(api="reversal", decide_after_secs=1.0, count=1)
        reversal_path = _path("rev")
        reversal = daraja.post(
            "/mpesa/reversal/v1/request",
            {
                "Initiator": "testapi",
                "SecurityCredential": seal(daraja.certificate(), "Nishati-Sim-Initiator-1!"),
                "CommandID": "TransactionReversal",
                "TransactionID": receipt,
                "Amount": 40,
                "ReceiverParty": "174379",
                "RecieverIdentifierType": "11",
                "ResultURL": receiver.url(f"{reversal_path}/result"),
                "QueueTimeOutURL": receiver.url(f"{reversal_path}/timeout"),
                "Remarks": "Refund",
            },
        ).json()
        held_path = _path("stk")
        daraja.scenario(delivery="reorder", count=1)
        daraja.push(receiver.url(held_path), phone="254708374151")
        # Control state: a standing rule, a fault, a settings change.
        daraja.scenario(phone="254708374152", result_code=1032)
        assert daraja.http.post(
            "/simulator/faults", json={"path": "/mpesa/b2c/v3/paymentrequest", "status": 429}
        ).is_success
        assert daraja.http.patch("/simulator/settings", json={"single_token": True}).is_success
        token = daraja._token
        assert token is not None
        assert daraja.query(undecided).json()["ResultCode"] == "4999"
        deadline = time.monotonic() + 3
        while not (before := daraja.http.get("/simulator/transactions").json())["held"]:
            assert time.monotonic() < deadline, "the reorder callback is held"
            time.sleep(0.02)
        assert {w["kind"] for w in before["pending_work"]} >= {
            "stk_decide",
            "b2c_decide",
            "reversal_decide",
            "release",
        }
        requests_before = len(daraja.http.get("/simulator/requests").json())

        pid = sim.pid
        os.kill(pid, signal.SIGKILL)  # by PID: no shutdown, no flush
        assert sim.process is not None
        sim.process.wait()
        sim.process = None

        sim.start()  # same port, same database
        after = daraja.http.get("/simulator/transactions").json()
        by_checkout = {p["checkout_request_id"]: p for p in after["stk"]}
        assert by_checkout[paid]["receipt"] == receipt
        assert by_checkout[paid]["result_code"] == 0
        assert {p["originator_conversation_id"] for p in after["payouts"]} == {
            done_payout,
            open_payout,
        }
        assert before["funds"] == 1_000_000 - 100
        # The open payout may already be paid: work due while it was down runs at once.
        assert after["funds"] in (before["funds"], before["funds"] - 200)
        assert [r["conversation_id"] for r in after["reversals"]] == [reversal["ConversationID"]]
        # The token issued before the kill still works; the rule, fault and setting stand.
        assert daraja.query(paid, token=token).json()["ResultCode"] == "0"
        rules = daraja.http.get("/simulator/scenario").json()["rules"]
        assert [(r["phone"], r["result_code"]) for r in rules] == [("254708374152", 1032)]
        assert [f["status"] for f in daraja.http.get("/simulator/faults").json()["faults"]] == [429]
        assert daraja.http.patch("/simulator/settings", json={}).json()["single_token"] is True
        assert len(daraja.http.get("/simulator/requests").json()) > requests_before

        # And the work in flight is finished: outcomes decided, callbacks sent.
        [late] = receiver.wait(open_path, timeout=5)
        assert late.body["Body"]["stkCallback"]["ResultCode"] == 0
        assert daraja.query(undecided, token=token).json()["ResultCode"] == "0"
        [result] = receiver.wait(f"{open_payout_path}/result", timeout=5)
        assert result.body["Result"]["ResultCode"] == 0
        [reversed_] = receiver.wait(f"{reversal_path}/result", timeout=5)
        assert reversed_.body["Result"]["ResultCode"] == 0
        receiver.wait(held_path, timeout=5)
        deadline = time.monotonic() + 3  # the books are written just after each POST
        while (final := daraja.http.get("/simulator/transactions").json())["pending_work"]:
            assert time.monotonic() < deadline, final["pending_work"]
            time.sleep(0.02)
        assert final["funds"] == 1_000_000 - 300
        assert final["held"] == []
        assert final["pending_work"] == []
        assert {p["checkout_request_id"]: p for p in final["stk"]}[paid]["reversed_by"] == (
            reversal["ConversationID"]
        )
        kinds = [d["kind"] for d in daraja.http.get("/simulator/callbacks").json()]
        assert kinds.count("stk") >= 3
    finally:
        daraja.close()
        sim.stop()


def test_without_a_database_the_books_go_with_the_process(receiver: Receiver) -> None:
    with DarajaSimService(FAST) as sim:
        daraja = Daraja(sim.url)
        path = _path("stk")
        daraja.push(receiver.url(path), phone=SANDBOX_PHONE)
        receiver.wait(path)
        sim.restart()
        assert daraja.http.get("/simulator/transactions").json()["stk"] == []
        daraja.close()
