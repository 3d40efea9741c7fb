"""Trades end to end: RPC validator + oracle + Daraja simulator + client. One market day per
module; each test has buyers of its own, whose phone suffixes pick the simulator's outcome."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from solders.pubkey import Pubkey

from tests.harness.trading import (
    FEE_BPS,
    HAPPY_PATH,
    SELLER_PHONE,
    TradingWorld,
    forged_success,
    module_world,
)

pytestmark = pytest.mark.rpc


# A late callback comes 5 s after the outcome, after the oracle's own query (3 s).
world = module_world("trading", sim_settings={"long_delay_secs": 5.0})


async def bought(world: TradingWorld, phone: str, wh: int = 2_000, **kw: Any) -> dict[str, Any]:
    answer = await world.buy(phone, wh, **kw)
    assert answer.status_code == 201, answer.text
    opened: dict[str, Any] = answer.json()
    return opened


async def assert_settled(world: TradingWorld, opened: dict[str, Any], phone: str) -> None:
    assert await world.market.balance(world.buyers[phone]) == opened["wh"]
    trade = Pubkey.from_string(opened["trade_address"])
    assert await world.market.h.chain.account(trade) is None


async def test_a_paid_trade_settles_and_pays_the_seller(world: TradingWorld) -> None:
    phone = world.phone()
    before = await world.client.offer(world.offer.address)
    opened = await bought(world, phone)
    assert opened["checkout_request_id"].startswith("ws_CO_")
    assert opened["amount_kes"] == 50  # 2 kWh at KES 25/kWh
    payment = await world.final(opened["trade_id"])
    assert payment["state"] == "payout_confirmed", payment["history"]
    assert [h["state"] for h in payment["history"]] == HAPPY_PATH
    await assert_settled(world, opened, phone)
    offer = await world.client.offer(world.offer.address)
    assert offer.unreserved_wh == before.unreserved_wh - 2_000
    assert offer.reserved_wh == 0
    fee = 5_000 * FEE_BPS // 10_000
    assert payment["payout_kes"] == (5_000 - fee) // 100
    assert payment["fee_cents"] == 5_000 - payment["payout_kes"] * 100
    assert payment["mpesa_receipt"]
    payouts = (await world.sim_control("/simulator/transactions"))["payouts"]
    mine = [p for p in payouts if p["originator_conversation_id"] == opened["trade_id"]]
    assert len(mine) == 1
    assert mine[0]["paid"]
    assert mine[0]["amount"] == payment["payout_kes"]
    live = await world.lookup(f"/api/v1/stk/{opened['checkout_request_id']}")
    assert live.json() == {
        "checkout_request_id": opened["checkout_request_id"],
        "pending": False,
        "result_code": 0,
        "detail": "The service request is processed successfully.",
    }
    # Neither the buyer's nor the seller's number is kept or logged in clear.
    files = world.database.parent.glob(f"{world.database.name}*")
    kept = b"".join(f.read_bytes() for f in files) + world.oracle.log_path.read_bytes()
    for number in (phone, SELLER_PHONE):
        assert number[3:].encode() not in kept


@pytest.mark.parametrize("code", [1032, 1037, 2001, 1, 17, 1019])
async def test_each_failure_cancels_and_returns_the_escrow(world: TradingWorld, code: int) -> None:
    suffix = {1032: "32", 1037: "37", 2001: "01", 1: "11", 17: "17", 1019: "19"}[code]
    phone = world.phone(suffix)
    before = await world.client.offer(world.offer.address)
    opened = await bought(world, phone)
    payment = await world.final(opened["trade_id"])
    assert payment["state"] == "cancelled", payment["history"]
    assert payment["result_code"] == code
    offer = await world.client.offer(world.offer.address)
    assert (offer.unreserved_wh, offer.reserved_wh) == (before.unreserved_wh, before.reserved_wh)
    assert await world.market.balance(world.buyers[phone]) == 0
    trade = Pubkey.from_string(opened["trade_address"])
    assert await world.market.h.chain.account(trade) is None


async def test_a_duplicate_callback_is_acted_on_once(world: TradingWorld) -> None:
    duplicates = await world.metric("nishati_callbacks_total", kind="stk", result="duplicate")
    phone = world.phone("90")
    opened = await bought(world, phone)
    payment = await world.final(opened["trade_id"])
    assert [h["state"] for h in payment["history"]] == HAPPY_PATH
    sent = await world.sim_control(
        f"/simulator/callbacks?reference={opened['checkout_request_id']}"
    )
    assert [d["outcome"] for d in sent] == ["delivered", "delivered"]
    after = await world.metric("nishati_callbacks_total", kind="stk", result="duplicate")
    assert after == duplicates + 1
    await assert_settled(world, opened, phone)


async def test_a_lost_callback_is_found_by_query(world: TradingWorld) -> None:
    phone = world.phone("91")
    opened = await bought(world, phone)
    payment = await world.final(opened["trade_id"])
    assert payment["state"] == "payout_confirmed"
    assert "paid (STK Query)" in [h["detail"] for h in payment["history"]]
    assert payment["mpesa_receipt"] is None
    await assert_settled(world, opened, phone)


async def test_a_late_callback_only_adds_its_receipt(world: TradingWorld) -> None:
    phone = world.phone("92")
    opened = await bought(world, phone)
    payment = await world.final(opened["trade_id"])
    assert payment["state"] == "payout_confirmed"
    assert "paid (STK Query)" in [h["detail"] for h in payment["history"]]
    deadline = time.monotonic() + 20
    while payment["mpesa_receipt"] is None:
        assert time.monotonic() < deadline, payment["history"]
        await asyncio.sleep(0.3)
        payment = await world.payment(opened["trade_id"])
    assert payment["state"] == "payout_confirmed"
    assert f"receipt {payment['mpesa_receipt']} (callback)" in [
        h["detail"] for h in payment["history"]
    ]
    await assert_settled(world, opened, phone)


async def test_reordered_callbacks_each_find_their_trade(world: TradingWorld) -> None:
    held, prompt = world.phone("94"), world.phone()
    first = await bought(world, held)
    second = await bought(world, prompt)
    for opened, phone in ((first, held), (second, prompt)):
        payment = await world.final(opened["trade_id"])
        assert payment["state"] == "payout_confirmed", payment["history"]
        await assert_settled(world, opened, phone)


async def test_a_callback_before_the_push_answer_is_kept_and_matched(world: TradingWorld) -> None:
    phone = world.phone("93")
    opened = await bought(world, phone)
    checkout = opened["checkout_request_id"]
    sent = await world.sim_control(f"/simulator/callbacks?reference={checkout}")
    assert sent
    assert sent[0]["outcome"] == "delivered"
    payment = await world.final(opened["trade_id"])
    assert [h["state"] for h in payment["history"]] == HAPPY_PATH
    assert payment["mpesa_receipt"]
    await assert_settled(world, opened, phone)


async def test_a_forged_callback_never_settles(world: TradingWorld) -> None:
    phone = world.phone()
    # The buyer will cancel, but only after 4 s: long enough for a forger to get in first.
    rule = {"api": "stk", "phone": phone, "result_code": 1032, "decide_after_secs": 4, "count": 1}
    await world.sim_control("/simulator/scenario", rule)
    opened = await bought(world, phone)
    forged = forged_success(opened["checkout_request_id"], phone, opened["amount_kes"])
    answer = await world.post_callback("/api/v1/payments/callback", forged)
    assert answer.json() == {"ResultCode": 0, "ResultDesc": "Accepted"}
    payment = await world.final(opened["trade_id"])
    assert payment["state"] == "cancelled", payment["history"]
    assert payment["result_code"] == 1032
    assert await world.market.balance(world.buyers[phone]) == 0


async def test_callbacks_without_the_token_or_malformed_are_refused(world: TradingWorld) -> None:
    body = forged_success("ws_CO_unknown", world.phone(), 50)
    wrong = await world.post_callback("/api/v1/payments/callback", body, token="guess")  # noqa: S106
    assert wrong.status_code == 403
    malformed = await world.post_callback("/api/v1/payments/callback", {"Body": {}})
    assert malformed.status_code == 400
    assert malformed.json()["reason"] == "MalformedCallback"
    payout = await world.post_callback("/api/v1/payouts/result", {"Result": "no"})
    assert payout.status_code == 400


@pytest.mark.parametrize(
    ("suffix", "state"),
    [("01", "payout_failed"), ("96", "payout_confirmed"), ("91", "payout_confirmed")],
)
async def test_payout_outcomes(world: TradingWorld, suffix: str, state: str) -> None:
    """A refused payout stops for a person; a queue timeout and a lost result are settled by
    Transaction Status, without paying twice."""
    _, offer = await world.seller_with_offer(world.phone(suffix))
    opened = await bought(world, world.phone(), offer=offer)
    payment = await world.final(opened["trade_id"], within_secs=90)
    assert payment["state"] == state, payment["history"]
    payouts = (await world.sim_control("/simulator/transactions"))["payouts"]
    mine = [p for p in payouts if p["originator_conversation_id"] == opened["trade_id"]]
    assert len(mine) == 1
    assert mine[0]["paid"] is (state == "payout_confirmed")
