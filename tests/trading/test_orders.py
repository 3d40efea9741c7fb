"""Orders the oracle refuses: each a clear 4xx with its reason, and nothing half-done (no trade
stored, nothing reserved on chain, no payment asked for)."""

from __future__ import annotations

from typing import Any

import pytest
from solders.pubkey import Pubkey

from tests.harness.trading import SELLER_PHONE, TradingWorld, module_world

pytestmark = pytest.mark.rpc


world = module_world("orders")


async def refused(
    world: TradingWorld, path: str, body: dict[str, Any], status: int, reason: str
) -> None:
    offer_before = await world.client.offer(world.offer.address)
    stk_before = len(await world.sim_control("/simulator/requests"))
    answer = await world.http.post(path, json=body)
    assert answer.status_code == status, answer.text
    assert answer.json()["reason"] == reason
    assert answer.json()["detail"]
    offer = await world.client.offer(world.offer.address)
    assert (offer.unreserved_wh, offer.reserved_wh) == (
        offer_before.unreserved_wh,
        offer_before.reserved_wh,
    )
    assert world.trade_rows() == {}
    assert len(await world.sim_control("/simulator/requests")) == stk_before


async def test_orders_for_a_trade_that_cannot_be(world: TradingWorld) -> None:
    phone = world.phone()
    await world.buyer(phone)
    offer = str(world.offer.address)
    path = "/api/v1/trades"
    await refused(
        world,
        path,
        {"offer": str(Pubkey.default()), "wh": 2_000, "phone": phone},
        404,
        "UnknownOffer",
    )
    await refused(
        world, path, {"offer": "not-base58!", "wh": 2_000, "phone": phone}, 404, "UnknownOffer"
    )
    await refused(
        world, path, {"offer": offer, "wh": 300_000, "phone": phone}, 409, "NotEnoughEnergy"
    )
    await refused(world, path, {"offer": offer, "wh": 2_000, "phone": "12345"}, 422, "InvalidPhone")
    await refused(
        world, path, {"offer": offer, "wh": 2_000, "phone": world.phone()}, 404, "UnknownBuyer"
    )
    # KES 250,001 and more is over M-Pesa's STK Push limit.
    await refused(
        world, path, {"offer": offer, "wh": 10_000_001, "phone": phone}, 422, "AmountTooLarge"
    )
    # 100 Wh cost KES 3: the seller's KES 2 is under B2C's minimum of 10.
    await refused(
        world, path, {"offer": offer, "wh": 100, "phone": phone}, 422, "PayoutBelowMinimum"
    )


async def test_malformed_orders(world: TradingWorld) -> None:
    for body in ({"offer": str(world.offer.address)}, {"offer": 1, "wh": "x", "phone": None}):
        answer = await world.http.post("/api/v1/trades", json=body)
        assert answer.status_code == 400, answer.text
    answer = await world.http.post("/api/v1/trades", content=b"{not json")
    assert answer.status_code == 400
    assert world.trade_rows() == {}


async def test_the_original_platforms_order_shape(world: TradingWorld) -> None:
    phone = world.phone()
    await world.buyer(phone)
    legacy = {
        "type": "BUY",
        "amount": 2.5,
        "price": 30.0,
        "phone": phone,
        "seller_phone": SELLER_PHONE,
    }
    path = "/api/execute_trade"
    await refused(world, path, {**legacy, "price": 60.0}, 422, "PriceOutOfBounds")
    await refused(world, path, {**legacy, "amount": 0.0001}, 422, "AmountRoundsToZero")
    await refused(world, path, {**legacy, "price": 20.0}, 409, "NoMatchingOffer")
    await refused(world, path, {**legacy, "seller_phone": world.phone()}, 404, "UnknownSeller")
    answer = await world.http.post(path, json={**legacy, "type": "SELL"})
    assert answer.status_code == 400
    answer = await world.http.post(path, json=legacy)
    assert answer.status_code == 201, answer.text
    opened = answer.json()
    # The seller's offer at KES 25/kWh: 2.5 kWh cost KES 62.50, charged as 63.
    assert (opened["offer"], opened["wh"], opened["amount_kes"]) == (
        str(world.offer.address),
        2_500,
        63,
    )
    payment = await world.final(opened["trade_id"])
    assert payment["state"] == "payout_confirmed", payment["history"]
    assert await world.market.balance(world.buyers[phone]) == 2_500


async def test_an_unknown_trade(world: TradingWorld) -> None:
    answer = await world.lookup("/api/v1/payments/nope")
    assert answer.status_code == 404
    assert answer.json()["reason"] == "UnknownTrade"
    answer = await world.lookup("/api/v1/stk/ws_CO_nope")
    assert answer.status_code == 404


async def test_enrolling_a_phone_that_is_not_the_households(world: TradingWorld) -> None:
    answer = await world.http.put(
        f"/api/v1/households/{world.seller.address}/phone", json={"phone": world.phone()}
    )
    assert answer.status_code == 422
    assert answer.json()["reason"] == "PhoneMismatch"
