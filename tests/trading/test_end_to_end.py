"""Trades end to end: RPC validator + oracle + Daraja simulator + client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from nishati_client.config import ClientSettings
from tests.trading.world import FEE_BPS, TradingWorld, trading_world

pytestmark = pytest.mark.rpc


@pytest.fixture
async def world(
    rpc_url: str, rpc_payer: Keypair, settings: ClientSettings, tmp_path: Path
) -> AsyncIterator[TradingWorld]:
    async with trading_world(rpc_url, rpc_payer, settings, tmp_path) as started:
        yield started


async def test_a_paid_trade_settles_and_pays_the_seller(world: TradingWorld) -> None:
    phone = "254708374149"
    answer = await world.buy(phone, 2_000)
    assert answer.status_code == 201, answer.text
    opened = answer.json()
    assert opened["checkout_request_id"].startswith("ws_CO_")
    assert opened["amount_kes"] == 50  # 2 kWh at KES 25/kWh
    payment = await world.final(opened["trade_id"])
    assert payment["state"] == "payout_confirmed", payment["history"]
    buyer = world.buyers[phone]
    assert await world.market.balance(buyer) == 2_000
    offer = await world.client.offer(world.offer.address)
    assert offer.unreserved_wh == world.offer.unreserved_wh - 2_000
    assert offer.reserved_wh == 0
    # The trade account is closed on chain.
    assert await world.market.h.chain.account(Pubkey.from_string(opened["trade_address"])) is None
    fee = 5_000 * FEE_BPS // 10_000
    assert payment["payout_kes"] == (5_000 - fee) // 100
    assert payment["fee_cents"] == 5_000 - payment["payout_kes"] * 100
    assert payment["mpesa_receipt"]
    states = [h["state"] for h in payment["history"]]
    assert states == [
        "created",
        "opened",
        "stk_sent",
        "paid",
        "settled",
        "payout_sent",
        "payout_confirmed",
    ]
