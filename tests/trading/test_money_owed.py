"""Money owed, end to end through the Daraja simulator: payouts matched on Daraja's own ids,
failed payouts paid again then given to a person, unknown outcomes that end, refunds by reversal
or by B2C (exactly once, across a restart), a stored success held from the cancel, the
reconciliation, and the operators' actions. One market day for the module; each test has
buyers (and sellers) of its own."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.harness.polling import eventually
from tests.harness.trading import TradingWorld, module_world

pytestmark = pytest.mark.rpc

QUERY = "/mpesa/stkpushquery/v1/query"
REVERSAL = "/mpesa/reversal/v1/request"
STATUS = "/mpesa/transactionstatus/v1/query"
STATUS_ATTEMPTS = 3


world = module_world(
    "money-owed", oracle_env_changes={"NISHATI_PAYOUT_STATUS_ATTEMPTS": str(STATUS_ATTEMPTS)}
)


async def bought(world: TradingWorld, phone: str, **kw: Any) -> dict[str, Any]:
    answer = await world.buy(phone, 2_000, **kw)
    assert answer.status_code == 201, answer.text
    opened: dict[str, Any] = answer.json()
    return opened


async def payment_when(
    world: TradingWorld,
    trade_id: str,
    done: Callable[[dict[str, Any]], bool],
    what: str,
    within_secs: float = 60,
) -> dict[str, Any]:
    """The trade's payment once ``done`` holds of it."""

    async def seen() -> dict[str, Any]:
        payment = await world.payment(trade_id)
        return payment if done(payment) else {}  # empty: not yet

    return await eventually(seen, f"trade {trade_id} {what}", within_secs)


async def in_state(
    world: TradingWorld, trade_id: str, *states: str, within_secs: float = 60
) -> dict[str, Any]:
    return await payment_when(
        world, trade_id, lambda p: p["state"] in states, f"in {states}", within_secs
    )


async def fault(world: TradingWorld, rule: dict[str, Any]) -> None:
    await world.sim_control("/simulator/faults", rule)


async def clear_faults(world: TradingWorld) -> None:
    async with httpx.AsyncClient(base_url=world.sim.url) as sim:
        (await sim.delete("/simulator/faults")).raise_for_status()


async def sim_payouts(world: TradingWorld, trade_id: str) -> list[dict[str, Any]]:
    payouts = (await world.sim_control("/simulator/transactions"))["payouts"]
    return [p for p in payouts if p["originator_conversation_id"].startswith(trade_id)]


def details(payment: dict[str, Any]) -> list[str]:
    return [h["detail"] or "" for h in payment["history"]]


def states(payment: dict[str, Any]) -> list[str]:
    return [h["state"] for h in payment["history"]]


async def test_results_with_darajas_own_ids_settle_the_payout(world: TradingWorld) -> None:
    """Daraja's result samples carry an OriginatorConversationID it made up: the result is
    matched on the ConversationID its reply gave, and so is a queue timeout's status answer."""
    for suffix in ("00", "96"):
        seller_phone = world.phone(suffix)
        rule = {"api": "b2c", "phone": seller_phone, "result_ids": "daraja"}
        await world.sim_control("/simulator/scenario", rule)
        _, offer = await world.seller_with_offer(seller_phone)
        opened = await bought(world, world.phone(), offer=offer)
        payment = await world.final(opened["trade_id"], within_secs=90)
        assert payment["state"] == "payout_confirmed", payment["history"]
        how = "Transaction Status" if suffix == "96" else "B2C result"
        assert any(how in d for d in details(payment)), payment["history"]
        [made] = await sim_payouts(world, opened["trade_id"])
        assert made["daraja_originator_id"]
        assert made["paid"]
        assert payment["payout_receipt"] == made["transaction_id"]


async def test_a_failed_payout_is_paid_again_then_needs_a_person_whose_retry_is_recorded(
    world: TradingWorld,
) -> None:
    seller_phone = world.phone("01")  # every B2C to it fails: 2001
    _, offer = await world.seller_with_offer(seller_phone)
    opened = await bought(world, world.phone(), offer=offer)
    trade_id = opened["trade_id"]
    payment = await world.final(trade_id, within_secs=90)
    assert payment["state"] == "payout_failed", payment["history"]
    made = await sim_payouts(world, trade_id)
    # Three attempts, each under its own id, none paid.
    ids = sorted(p["originator_conversation_id"] for p in made)
    assert ids == [trade_id, f"{trade_id}-1", f"{trade_id}-2"]
    assert not any(p["paid"] for p in made)
    assert "3 attempts made: needs a person" in details(payment)[-1]

    # Without the operator's token the world's client sends by default.
    async with httpx.AsyncClient(base_url=world.oracle.url) as nobody:
        forbidden = await nobody.get("/api/v1/operator/attention")
    assert forbidden.status_code == 403
    assert forbidden.json()["reason"] == "OperatorForbidden"
    listed = await world.operator("GET", "/api/v1/operator/attention")
    assert listed.status_code == 200
    assert trade_id in [t["trade_id"] for t in listed.json()]

    # The seller's account is fixed; an operator pays once more.
    rule = {"api": "b2c", "phone": seller_phone, "result_code": 0, "count": 1}
    await world.sim_control("/simulator/scenario", rule)
    action = {"operator": "amina", "reason": "seller's M-Pesa account fixed"}
    answer = await world.operator("POST", f"/api/v1/operator/trades/{trade_id}/retry", action)
    assert answer.status_code == 200, answer.text
    [recorded] = answer.json()["actions"]
    assert recorded["operator"] == "amina"
    assert (recorded["action"], recorded["from_state"], recorded["to_state"]) == (
        "retry",
        "payout_failed",
        "settled",
    )
    payment = await world.final(trade_id, within_secs=60)
    assert payment["state"] == "payout_confirmed", payment["history"]
    assert len(await sim_payouts(world, trade_id)) == 4
    again = await world.operator("POST", f"/api/v1/operator/trades/{trade_id}/retry", action)
    assert again.status_code == 409
    assert again.json()["reason"] == "NotAwaitingAPerson"


async def test_a_payout_never_answered_ends_and_an_operator_closes_it(
    world: TradingWorld,
) -> None:
    """No result (dropped) and no Transaction Status answer (every query refused by a
    gateway): asked a bounded number of times, then it needs a person; closing it by the
    command is recorded."""
    _, offer = await world.seller_with_offer(world.phone("91"))
    await fault(world, {"path": STATUS, "status": 502, "count": None})
    try:
        opened = await bought(world, world.phone(), offer=offer)
        trade_id = opened["trade_id"]
        payment = await world.final(trade_id, within_secs=90)
    finally:
        await clear_faults(world)
    assert payment["state"] == "payout_unknown", payment["history"]
    assert f"no result after {STATUS_ATTEMPTS} Transaction Status queries" in details(payment)[-1]
    # Daraja paid it (only the answers were lost): a person checks, and closes it.
    [made] = await sim_payouts(world, trade_id)
    assert made["paid"]
    env = {**os.environ, "NISHATI_DATABASE_URL": f"sqlite+aiosqlite:///{world.database}"}
    listed = await nishati_oracle(env, "attention", "--json")
    assert listed.code == 0, listed.err
    assert trade_id in [t["trade_id"] for t in json.loads(listed.out)]
    reason = f"paid, receipt {made['transaction_id']} on the M-Pesa portal"
    closed = await nishati_oracle(
        env, "close", trade_id, "--operator", "otieno", "--reason", reason, "--json"
    )
    assert closed.code == 0, closed.err
    assert json.loads(closed.out)[0]["state"] == "closed"
    with sqlite3.connect(world.database) as db:
        audit = db.execute(
            "SELECT operator, action, reason, from_state, to_state FROM operator_actions "
            "WHERE trade_id = ?",
            (trade_id,),
        ).fetchall()
    assert audit == [("otieno", "close", reason, "payout_unknown", "closed")]
    refused = await nishati_oracle(
        env, "retry", trade_id, "--operator", "otieno", "--reason", "again"
    )
    assert refused.code == 1
    assert "NotAwaitingAPerson" in refused.err


@dataclass(frozen=True)
class Ran:
    code: int | None
    out: str
    err: str


async def nishati_oracle(env: dict[str, str], *args: str) -> Ran:
    """The ``nishati-oracle`` command, as ``python -m nishati_oracle``."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "nishati_oracle",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    return Ran(process.returncode, out.decode(), err.decode())


async def cancelled_then_paid(world: TradingWorld, phone: str) -> dict[str, Any]:
    """A trade the STK Query said failed (so it is cancelled) whose buyer then pays: the
    customer's PIN comes 12 s after the push, while the first queries are answered "cancelled
    by the user" (as the sandbox now and then answers). Returns once the cancel is decided,
    before the payment (faults are cleared)."""
    rule = {"api": "stk", "phone": phone, "result_code": 0, "decide_after_secs": 12, "count": 1}
    await world.sim_control("/simulator/scenario", rule)
    opened = await bought(world, phone)
    failed = {
        "ResponseCode": "0",
        "ResponseDescription": "The service request has been accepted successfully",
        "MerchantRequestID": "0",
        "CheckoutRequestID": opened["checkout_request_id"],
        "ResultCode": "1032",
        "ResultDesc": "Request cancelled by user.",
    }
    answer = {"status": 200, "body": json.dumps(failed), "content_type": "application/json"}
    await fault(world, {"path": QUERY, **answer, "count": None})
    try:
        await in_state(world, opened["trade_id"], "cancelling", "cancelled", within_secs=10)
    finally:
        await clear_faults(world)
    return opened


async def refund_ended(
    world: TradingWorld, trade_id: str, within_secs: float = 60
) -> dict[str, Any]:
    """The trade once its refund is made or given up on (a cancelled trade is final before
    its late payment comes)."""
    return await in_state(world, trade_id, "refunded", "refund_failed", within_secs=within_secs)


async def reversals_of(world: TradingWorld, receipt: str) -> list[dict[str, Any]]:
    reversals = (await world.sim_control("/simulator/transactions"))["reversals"]
    return [r for r in reversals if r["transaction_id"] == receipt]


async def test_a_success_after_the_cancel_is_refunded_by_reversal(world: TradingWorld) -> None:
    phone = world.phone()
    opened = await cancelled_then_paid(world, phone)
    payment = await refund_ended(world, opened["trade_id"])
    assert payment["state"] == "refunded", payment["history"]
    assert payment["refund_method"] == "reversal"
    assert "cancelled" in states(payment) or "cancelling" in states(payment)
    assert "refund_due" in states(payment)
    receipt = payment["mpesa_receipt"]
    assert receipt
    [reversal] = await reversals_of(world, receipt)
    assert reversal["reversed"]
    assert payment["refund_receipt"] == reversal["receipt"]
    # The buyer got no energy, and no B2C refund on top.
    assert await world.market.balance(world.buyers[phone]) == 0
    assert await sim_payouts(world, opened["trade_id"]) == []


async def test_a_refused_reversal_is_refunded_by_b2c(world: TradingWorld) -> None:
    phone = world.phone()
    opened = await cancelled_then_paid(world, phone)
    # Before the payment comes: the reversal is refused by the gateway.
    refused = {"path": REVERSAL, "status": 403, "body": "<html>Forbidden</html>", "count": 1}
    await fault(world, refused)
    trade_id = opened["trade_id"]
    payment = await refund_ended(world, trade_id)
    assert payment["state"] == "refunded", payment["history"]
    assert payment["refund_method"] == "b2c"
    assert any("reversal refused" in d for d in details(payment)), payment["history"]
    [refund] = await sim_payouts(world, trade_id)
    assert refund["originator_conversation_id"] == f"{trade_id}-refund"
    assert refund["phone"] == phone
    assert refund["amount"] == opened["amount_kes"]
    assert refund["paid"]
    assert payment["refund_receipt"] == refund["transaction_id"]
    assert await reversals_of(world, payment["mpesa_receipt"]) == []


async def test_a_refund_is_made_once_across_a_restart_mid_refund(world: TradingWorld) -> None:
    """The oracle is killed while Daraja holds its reversal's reply: on restart it sends the
    reversal again, which M-Pesa refuses (already reversed): one refund."""
    phone = world.phone()
    opened = await cancelled_then_paid(world, phone)
    slow = {"path": REVERSAL, "after_processing": True, "delay_secs": 25, "count": 1}
    await fault(world, slow)
    trade_id = opened["trade_id"]

    async def reversal_requests() -> int:
        return len(await world.sim_control(f"/simulator/requests?path={REVERSAL}"))

    before = await reversal_requests()

    async def another_reversal() -> bool:
        return await reversal_requests() > before

    await eventually(another_reversal, "a reversal sent", within_secs=30)
    world.oracle.kill()
    world.oracle.start()
    payment = await refund_ended(world, trade_id, within_secs=90)
    assert payment["state"] == "refunded", payment["history"]
    assert payment["refund_method"] == "reversal"
    reversals = await reversals_of(world, payment["mpesa_receipt"])
    assert [r["reversed"] for r in reversals].count(True) == 1
    assert await sim_payouts(world, trade_id) == []


async def test_a_stored_success_the_query_cannot_confirm_holds_back_the_cancel(
    world: TradingWorld,
) -> None:
    """The success callback is kept, but every STK Query fails past the deadline: the trade
    is held, not cancelled; once the query answers, it settles."""
    await fault(world, {"path": QUERY, "status": 502, "count": None})
    try:
        opened = await bought(world, world.phone())
        trade_id = opened["trade_id"]
        held = await payment_when(
            world,
            trade_id,
            lambda p: any("held from the cancel" in d for d in details(p)),
            "held from the cancel",
            within_secs=90,
        )
        assert held["state"] == "stk_sent", held["history"]
    finally:
        await clear_faults(world)
    payment = await world.final(trade_id, within_secs=60)
    assert payment["state"] == "payout_confirmed", payment["history"]
    assert "cancelling" not in states(payment)
    assert payment["mpesa_receipt"]


async def test_the_reconciliation_finds_a_mismatch(world: TradingWorld) -> None:
    """A payout the ledger holds failed that Daraja made: the reconciliation asks, reports
    the mismatch in the logs and metrics, and the ledger follows Daraja."""
    opened = await bought(world, world.phone())
    trade_id = opened["trade_id"]
    payment = await world.final(trade_id, within_secs=60)
    assert payment["state"] == "payout_confirmed"
    with sqlite3.connect(world.database) as db:
        db.execute("UPDATE trades SET state = 'payout_failed' WHERE id = ?", (trade_id,))
    before = await world.metric("nishati_ledger_mismatches_total", kind="payout")
    answer = await world.operator("POST", "/api/v1/operator/reconcile")
    assert answer.status_code == 200, answer.text
    assert answer.json()["payouts"] >= 1
    payment = await in_state(world, trade_id, "payout_confirmed")
    assert "the ledger said failed" in details(payment)[-1]
    assert await world.metric("nishati_ledger_mismatches_total", kind="payout") == before + 1
    assert await world.metric("nishati_reconcile_asked_total", kind="payout") >= 1
    assert "ledger and daraja disagree" in world.oracle.log_path.read_text()
