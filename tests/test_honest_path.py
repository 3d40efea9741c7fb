"""The honest path through the oracle, on a JSON-RPC validator: an installer the market's admin
approved registers a household's meter (the meter proving it holds its key), the meter's signed
readings reach the oracle over HTTP and its batcher attests them, the household offers part of
what it exported, a buyer orders through the oracle's trade API and pays through the Daraja
simulator, and the oracle's worker settles the trade on chain and pays the seller. Every figure
is checked to the Wh and the cent: the market mints exactly what the meter exported since its
baseline, and the Wh sold reach the buyer who paid and nobody else."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from nishati_client.config import ClientSettings
from nishati_client.phone import commitment
from nishati_client.readings import SignedReading, export_secs
from nishati_dev.localday import enrol
from nishati_dev.sandbox import Member, Meter
from nishati_oracle.readings.clock import trailing_secs
from nishati_oracle.readings.ingest import READINGS_PATH
from tests.harness.polling import eventually
from tests.harness.trading import HAPPY_PATH, PHONE_SALT, PRICE, TradingWorld, trading_world

pytestmark = pytest.mark.rpc

# What the meter had counted before it was installed: its baseline, which mints none of it.
COUNTED_BEFORE_WH = 7_000
# Exported since the baseline: over the oracle's default attest threshold (1 kWh), so its
# batcher attests it on its own.
EXPORTED_WH = 1_500
OFFER_WH = 1_200
BOUGHT_WH = 1_000
# 1 kWh at KES 25 per kWh is KES 25; the market's 1.5 % fee (37 cents) is rounded up to the
# shilling so that the seller's B2C payout is whole shillings: KES 24 paid, 100 cents kept.
TOTAL_CENTS = 2_500
FEE_CENTS = 100
PAYOUT_KES = 24
ATTESTED = "nishati_readings_attested_total"


@pytest.fixture
async def world(
    rpc_url: str, rpc_payer: Keypair, settings: ClientSettings, tmp_path: Path
) -> AsyncIterator[TradingWorld]:
    async with trading_world(rpc_url, rpc_payer, settings, tmp_path) as started:
        yield started


async def send(world: TradingWorld, signed: SignedReading) -> None:
    """One reading POSTed as the meter sends it; the oracle accepts it."""
    body = {
        "message": signed.message.hex(),
        "signature": signed.signature.hex(),
        "meter": str(signed.meter),
    }
    answer = await world.http.post(READINGS_PATH, json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 1, answer.text


async def attested(world: TradingWorld, member: Member, counter: int, oracle_count: float) -> None:
    """Until the chain holds ``member``'s reading ``counter`` and the oracle has counted its
    ``oracle_count``-th attestation: it counts one once it has read the chain time that the
    household's export limit now runs from (its bound of the attestation's own time)."""

    async def landed() -> bool:
        home = await world.market.household(member)
        return home.has_baseline and home.last_counter == counter

    async def counted() -> bool:
        return await world.metric(ATTESTED) >= oracle_count

    await eventually(landed, f"reading {counter} attested on chain")
    await eventually(counted, f"the oracle's attestation {oracle_count:g} counted")


async def test_a_meters_export_is_minted_once_sold_paid_for_and_settled(
    world: TradingWorld,
) -> None:
    market, client = world.market, world.client
    attestations = await world.metric(ATTESTED)
    supply = await client.energy_supply(market.energy_mint)

    # The market's admin approves an installer, who registers the household with its meter's
    # proof of possession: the meter's signature over the registration message.
    installer = Keypair()
    await client.installer_add(
        payer=market.h.payer,
        admin=market.admin,
        market=market.address,
        installer=installer.pubkey(),
    )
    seller_phone, buyer_phone = world.phone(), world.phone()
    meter = Meter(market.address)
    seller = await market.register(
        custodial=True,
        meter=meter,
        phone_commitment=commitment(PHONE_SALT, seller_phone),
        installer=installer,
    )
    home = await market.household(seller)
    assert (home.meter, home.installer, home.has_baseline) == (
        meter.public_key,
        installer.pubkey(),
        False,
    )
    await enrol(world.http, seller, seller_phone)

    # The meter's first reading, dated by the chain's clock (none before its registration is
    # taken), is its baseline: the oracle attests it and nothing is minted.
    baseline = meter.read(await market.now(), exported_wh=COUNTED_BEFORE_WH)
    await send(world, baseline)
    await attested(world, seller, 1, attestations + 1)
    home = await market.household(seller)
    assert (home.meter_exported_wh, home.total_exported_wh) == (COUNTED_BEFORE_WH, 0)
    assert await market.balance(seller) == 0
    assert await client.energy_supply(market.energy_mint) == supply

    # The export may mint no more than the market's max_export_watts over the chain time since
    # that attestation: the reading is dated once the chain, as the oracle reads it, allows it.
    watts = (await client.market(market.address)).config.max_export_watts
    await market.elapse(export_secs(EXPORTED_WH, watts) + trailing_secs())
    exported = meter.read(await market.now(), exported_wh=EXPORTED_WH)
    await send(world, exported)
    await attested(world, seller, 2, attestations + 2)
    home = await market.household(seller)
    assert (home.meter_exported_wh, home.total_exported_wh) == (
        COUNTED_BEFORE_WH + EXPORTED_WH,
        EXPORTED_WH,
    )
    assert await market.balance(seller) == EXPORTED_WH
    assert await client.energy_supply(market.energy_mint) == supply + EXPORTED_WH
    readings = (await world.http.get(f"/api/v1/meters/{meter.public_key}/readings")).json()
    assert [(r["counter"], r["status"]) for r in readings["readings"]] == [
        (2, "attested"),
        (1, "attested"),
    ]
    assert all(r["attest_signature"] for r in readings["readings"])

    # The seller offers part of it (escrowed on chain); a buyer orders over the oracle's API.
    offer = await market.offer(seller, OFFER_WH, PRICE)
    assert await market.balance(seller) == EXPORTED_WH - OFFER_WH
    assert await client.energy_balance(offer.escrow) == OFFER_WH
    answer = await world.buy(buyer_phone, BOUGHT_WH, offer)
    assert answer.status_code == 201, answer.text
    opened: dict[str, Any] = answer.json()
    assert (opened["wh"], opened["amount_kes"]) == (BOUGHT_WH, TOTAL_CENTS // 100)
    trade_id, checkout = opened["trade_id"], opened["checkout_request_id"]

    # The buyer accepts the STK Push; the simulator calls the oracle back; the worker settles
    # the trade on chain and pays the seller by B2C.
    payment = await world.final(trade_id)
    assert [h["state"] for h in payment["history"]] == HAPPY_PATH, payment["history"]
    sent = await world.sim_control(f"/simulator/callbacks?reference={checkout}")
    assert [s["outcome"] for s in sent] == ["delivered"]
    books = await world.sim_control("/simulator/transactions")
    (push,) = [p for p in books["stk"] if p["checkout_request_id"] == checkout]
    assert (push["phone"], push["amount"], push["result_code"]) == (
        buyer_phone,
        TOTAL_CENTS // 100,
        0,
    )
    assert payment["mpesa_receipt"] == push["receipt"]

    # The ledger: settled, and the seller paid the total less the fee.
    assert (payment["total_cents"], payment["fee_cents"], payment["payout_kes"]) == (
        TOTAL_CENTS,
        FEE_CENTS,
        PAYOUT_KES,
    )
    assert payment["payout_kes"] * 100 == payment["total_cents"] - payment["fee_cents"]
    (payout,) = [p for p in books["payouts"] if p["originator_conversation_id"] == trade_id]
    assert (payout["phone"], payout["amount"], payout["result_code"], payout["paid"]) == (
        seller_phone,
        PAYOUT_KES,
        0,
        True,
    )
    with sqlite3.connect(world.database) as db:
        row = db.execute(
            "SELECT state, chain_signature, payout_receipt FROM trades WHERE id = ?", (trade_id,)
        ).fetchone()
    assert row == ("payout_confirmed", payment["chain_signature"], payout["transaction_id"])
    assert row[1]

    # On chain: the trade closed, the escrow released to the buyer who paid, exactly the Wh
    # bought; the rest still offered; nothing minted since the export.
    assert await market.h.chain.account(Pubkey.from_string(opened["trade_address"])) is None
    after = await client.offer(offer.address)
    assert (after.unreserved_wh, after.reserved_wh) == (OFFER_WH - BOUGHT_WH, 0)
    assert await client.energy_balance(offer.escrow) == OFFER_WH - BOUGHT_WH
    buyer = world.buyers[buyer_phone]
    assert await market.balance(buyer) == BOUGHT_WH
    assert (await market.household(buyer)).open_trades == 0
    assert await market.balance(seller) == EXPORTED_WH - OFFER_WH
    assert await client.energy_supply(market.energy_mint) == supply + EXPORTED_WH
