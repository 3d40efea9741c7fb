"""Orders and callbacks sent more than once, end to end (RPC validator + oracle + Daraja
simulator): an order repeated with its Idempotency-Key opens one trade and asks for one payment,
whether the copies come one after the other, at once, or across an oracle restart; a repeat
without a key is refused within the window; a forged callback cannot crowd out the genuine one;
oversized callbacks are refused; the original platform's status routes answer."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from nishati_dev.processes import OracleService
from nishati_oracle.trading.ledger import MAX_BODIES_PER_KEY
from tests.harness.trading import SELLER_PHONE, TradingWorld, forged_success, module_world
from tests.oracle.proxy import CuttableProxy

pytestmark = pytest.mark.rpc

REPEAT_WINDOW_SECS = 10
STK_PUSH = "/mpesa/stkpush/v1/processrequest"


world = module_world(
    "repeats", oracle_env_changes={"NISHATI_ORDER_REPEAT_WINDOW_SECS": str(REPEAT_WINDOW_SECS)}
)


async def order(world: TradingWorld, phone: str, key: str | None, wh: int = 2_000) -> Any:
    await world.buyer(phone)
    body = {"offer": str(world.offer.address), "wh": wh, "phone": phone}
    headers = {} if key is None else {"Idempotency-Key": key}
    return await world.http.post("/api/v1/trades", json=body, headers=headers)


async def pushes(world: TradingWorld, phone: str) -> int:
    sent = await world.sim_control(f"/simulator/requests?path={STK_PUSH}")
    return sum(1 for r in sent if str(r["body"].get("PhoneNumber")) == phone)


def trades_of(world: TradingWorld, before: dict[str, str]) -> list[str]:
    return sorted(set(world.trade_rows()) - set(before))


async def test_an_order_repeated_with_its_key_is_one_trade_and_one_push(
    world: TradingWorld,
) -> None:
    phone = world.phone()
    before = world.trade_rows()
    first = await order(world, phone, "order-1")
    assert first.status_code == 201, first.text
    again = await order(world, phone, "order-1")
    assert (again.status_code, again.content) == (first.status_code, first.content)
    # Across a restart (a SIGKILL): the answer is kept with the trade.
    await asyncio.to_thread(world.oracle.kill)
    await asyncio.to_thread(world.oracle.start)
    restarted = await order(world, phone, "order-1")
    assert (restarted.status_code, restarted.content) == (first.status_code, first.content)
    assert trades_of(world, before) == [first.json()["trade_id"]]
    assert await pushes(world, phone) == 1
    payment = await world.final(first.json()["trade_id"])
    assert payment["state"] == "payout_confirmed", payment["history"]


async def test_copies_sent_at_once_share_one_order(world: TradingWorld) -> None:
    phone = world.phone()
    before = world.trade_rows()
    answers = await asyncio.gather(*(order(world, phone, "order-at-once") for _ in range(4)))
    assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
    assert len({a.content for a in answers}) == 1
    assert len(trades_of(world, before)) == 1
    assert await pushes(world, phone) == 1


async def test_a_key_used_for_another_order_is_refused(world: TradingWorld) -> None:
    phone = world.phone()
    first = await order(world, phone, "order-2")
    assert first.status_code == 201, first.text
    before = world.trade_rows()
    other = await order(world, phone, "order-2", wh=3_000)
    assert other.status_code == 422, other.text
    assert other.json()["reason"] == "IdempotencyKeyReused"
    assert trades_of(world, before) == []  # no trade stored (others may move on meanwhile)
    assert await pushes(world, phone) == 1
    malformed = await order(world, phone, "not a key: spaces")
    assert malformed.status_code == 400


async def test_the_original_platforms_order_is_idempotent_too(world: TradingWorld) -> None:
    phone = world.phone()
    await world.buyer(phone)
    legacy = {"type": "BUY", "amount": 2, "price": 30, "phone": phone, "seller_phone": SELLER_PHONE}
    headers = {"Idempotency-Key": "legacy-1"}
    before = world.trade_rows()
    answers = [
        await world.http.post("/api/execute_trade", json=legacy, headers=headers) for _ in range(2)
    ]
    assert [a.status_code for a in answers] == [201, 201], answers[0].text
    assert answers[0].content == answers[1].content
    assert len(trades_of(world, before)) == 1
    assert await pushes(world, phone) == 1


async def test_a_repeat_without_a_key_is_refused_within_the_window(world: TradingWorld) -> None:
    phone = world.phone()
    first = await order(world, phone, None)
    assert first.status_code == 201, first.text
    before = world.trade_rows()
    repeat = await order(world, phone, None)
    assert repeat.status_code == 409, repeat.text
    assert repeat.json()["reason"] == "ProbableRepeat"
    assert trades_of(world, before) == []  # no trade stored (others may move on meanwhile)
    assert await pushes(world, phone) == 1
    # Paid is no less a repeat. (Daraja takes one open prompt per phone: each order waits.)
    await world.final(first.json()["trade_id"])
    assert (await order(world, phone, None)).json()["reason"] == "ProbableRepeat"
    # Another amount is another order; a key says the same one is meant again.
    other = await order(world, phone, None, wh=3_000)
    assert other.status_code == 201, other.text
    await world.final(other.json()["trade_id"])
    again = await order(world, phone, "on-purpose")
    assert again.status_code == 201, again.text
    placed = time.monotonic()
    await world.final(again.json()["trade_id"])
    await asyncio.sleep(max(0.0, placed + REPEAT_WINDOW_SECS + 0.5 - time.monotonic()))
    later = await order(world, phone, None)
    assert later.status_code == 201, later.text
    assert await pushes(world, phone) == 4


async def genuine_receipt(world: TradingWorld, checkout: str) -> str:
    """The receipt in the simulator's own callback, once it has sent it."""
    deadline = time.monotonic() + 30
    while True:
        for sent in await world.sim_control(f"/simulator/callbacks?reference={checkout}"):
            items = sent["body"]["Body"]["stkCallback"].get("CallbackMetadata", {}).get("Item")
            for item in items or []:
                if item["Name"] == "MpesaReceiptNumber":
                    return str(item["Value"])
        assert time.monotonic() < deadline, "the simulator sent no successful callback"
        await asyncio.sleep(0.2)


async def test_a_forged_callback_first_does_not_crowd_out_the_genuine_one(
    world: TradingWorld,
) -> None:
    phone = world.phone()
    # The buyer pays after 3 s: a forger holding the token gets in first, with the trade's
    # own amount and phone (and a receipt of its own).
    rule = {"api": "stk", "phone": phone, "result_code": 0, "decide_after_secs": 3, "count": 1}
    await world.sim_control("/simulator/scenario", rule)
    opened = (await order(world, phone, None)).json()
    checkout = opened["checkout_request_id"]
    forged = forged_success(checkout, phone, opened["amount_kes"])
    for n in range(2):
        forged["Body"]["stkCallback"]["MerchantRequestID"] = f"forged-{n}"
        forged["Body"]["stkCallback"]["CallbackMetadata"]["Item"][1]["Value"] = f"FORGED000{n}"
        answer = await world.post_callback("/api/v1/payments/callback", forged)
        assert answer.json() == {"ResultCode": 0, "ResultDesc": "Accepted"}
    receipt = await genuine_receipt(world, checkout)
    delivered = await world.sim_control(f"/simulator/callbacks?reference={checkout}")
    assert [d["outcome"] for d in delivered] == ["delivered"]
    assert delivered[0]["http_status"] == 200
    payment = await world.final(opened["trade_id"])
    assert payment["state"] == "payout_confirmed", payment["history"]
    assert payment["mpesa_receipt"] == receipt
    assert not receipt.startswith("FORGED")


async def test_oversized_callbacks_are_refused(world: TradingWorld) -> None:
    huge = forged_success("ws_CO_" + "9" * 1024 * 1024, world.phone(), 50)
    answer = await world.post_callback("/api/v1/payments/callback", huge)
    assert (answer.status_code, answer.json()["reason"]) == (413, "BodyTooLarge")
    long_key = forged_success("ws_CO_" + "9" * 100, world.phone(), 50)
    answer = await world.post_callback("/api/v1/payments/callback", long_key)
    assert (answer.status_code, answer.json()["reason"]) == (413, "CallbackFieldTooLarge")
    long_text = forged_success("ws_CO_text", world.phone(), 50)
    long_text["Body"]["stkCallback"]["ResultDesc"] = "x" * 2_000
    answer = await world.post_callback("/api/v1/payments/callback", long_text)
    assert (answer.status_code, answer.json()["reason"]) == (413, "CallbackFieldTooLarge")
    result = {
        "Result": {
            "ResultType": 0,
            "ResultCode": 2001,
            "ResultDesc": "The initiator information is invalid.",
            "OriginatorConversationID": "x" * 100,
            "ConversationID": "AG_1",
            "TransactionID": "T1",
        }
    }
    for path in ("/api/v1/payouts/result", "/api/v1/payouts/timeout"):
        answer = await world.post_callback(path, result)
        assert (answer.status_code, answer.json()["reason"]) == (413, "CallbackFieldTooLarge")
    # A key takes a few distinct bodies (receipts of their own), then refuses more.
    for n in range(MAX_BODIES_PER_KEY + 1):
        body = forged_success("ws_CO_crowded", world.phone(), 50)
        body["Body"]["stkCallback"]["CallbackMetadata"]["Item"][1]["Value"] = f"CROWD{n:05d}"
        answer = await world.post_callback("/api/v1/payments/callback", body)
        if n < MAX_BODIES_PER_KEY:
            assert answer.status_code == 200, answer.text
    assert (answer.status_code, answer.json()["reason"]) == (429, "TooManyCallbacks")
    assert await world.metric("nishati_callbacks_total", kind="stk", result="over_limit") == 1


async def test_the_original_platforms_status_routes(world: TradingWorld) -> None:
    opened = (await order(world, world.phone(), None)).json()
    payment = await world.final(opened["trade_id"])
    legacy = await world.lookup(f"/api/payment/status/{opened['trade_id']}")
    assert legacy.status_code == 200
    assert legacy.json() == payment
    checkout = opened["checkout_request_id"]
    stk = await world.lookup(f"/api/stk/status/{checkout}")
    assert stk.json() == (await world.lookup(f"/api/v1/stk/{checkout}")).json()
    assert stk.json()["result_code"] == 0
    assert (await world.lookup("/api/payment/status/nope")).status_code == 404
    assert (await world.lookup("/api/stk/status/ws_CO_nope")).status_code == 404


async def ready(http: httpx.AsyncClient) -> httpx.Response:
    return await http.get("/readyz")


async def test_readiness_follows_daraja(world: TradingWorld) -> None:
    """/readyz tells Daraja's state from the last exchange with it (no call of its own per
    probe), and probes it in the background until it is back."""
    assert (await ready(world.http)).json()["daraja"] == "ok"
    requests = len(await world.sim_control("/simulator/requests"))
    for _ in range(5):
        assert (await ready(world.http)).status_code == 200
    assert len(await world.sim_control("/simulator/requests")) == requests
    world.sim.stop()
    try:
        refused = await order(world, world.phone(), None)
        assert (refused.status_code, refused.json()["reason"]) == (502, "PaymentRequestRefused")
        answer = await ready(world.http)
        assert answer.status_code == 503
        assert answer.json()["daraja"].startswith("down: ConnectError")
        assert answer.json()["chain"] == "ok"
    finally:
        world.sim.start()
    deadline = time.monotonic() + 60
    while (answer := await ready(world.http)).status_code != 200:
        assert time.monotonic() < deadline, answer.text
        await asyncio.sleep(0.5)
    assert answer.json()["daraja"] == "ok"


async def test_the_oracle_starts_and_serves_without_the_chain_then_catches_up(
    world: TradingWorld,
) -> None:
    """Last in the module: it replaces the world's oracle with one whose RPC node is cut off."""
    target = urlparse(world.oracle.env["NISHATI_RPC_URL"])
    assert target.hostname is not None
    assert target.port is not None
    proxy = CuttableProxy(target.hostname, target.port)
    world.oracle.stop()
    cut_off = OracleService(
        {**world.oracle.env, "NISHATI_RPC_URL": f"http://127.0.0.1:{proxy.port}"},
        world.oracle.log_path,
        port=world.oracle.port,
    )
    try:
        await asyncio.to_thread(cut_off.start)
        answer = await ready(world.http)
        assert answer.status_code == 503
        assert answer.json()["chain"].startswith("down")
        assert answer.json()["database"] == "ok"
        assert "chain down" in answer.json()["detail"]
        phone = world.phone()
        await world.buyer(phone)
        legacy = {
            "type": "BUY",
            "amount": 2,
            "price": 30,
            "phone": phone,
            "seller_phone": SELLER_PHONE,
        }
        refused = await world.http.post("/api/execute_trade", json=legacy)
        assert refused.status_code == 503, refused.text
        assert refused.json()["reason"] == "ChainUnavailable"
        assert refused.headers["Retry-After"].isdigit()
        refused = await order(world, phone, None)
        assert (refused.status_code, refused.json()["reason"]) == (503, "ChainUnavailable")
        assert refused.headers["Retry-After"].isdigit()
        proxy.start()
        deadline = time.monotonic() + 60
        while (answer := await ready(world.http)).status_code != 200:
            assert time.monotonic() < deadline, answer.text
            await asyncio.sleep(0.5)
        assert answer.json() == {"database": "ok", "chain": "ok", "daraja": "ok"}
        opened = await world.http.post("/api/execute_trade", json=legacy)
        assert opened.status_code == 201, opened.text
        payment = await world.final(opened.json()["trade_id"])
        assert payment["state"] == "payout_confirmed", payment["history"]
    finally:
        cut_off.stop()
        proxy.close()
