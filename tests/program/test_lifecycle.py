"""A market's life, on LiteSVM and JSON-RPC: installers, households, readings, an offer, a trade,
redemption.

Minting needs chain time (a meter exports at most the market's ``max_export_watts``), which
LiteSVM is moved through and a validator is waited for: these markets allow the program's
highest export, 100 MW, so a validator's wait stays seconds."""

from __future__ import annotations

from math import ceil

import pytest

from nishati_client.errors import AccountNotFound, NishatiProgramError
from nishati_dev.sandbox import Harness, local_installer
from tests.program.scenario import (
    FAST_EXPORT,
    PAYMENT_DEADLINE_SECS,
    Member,
    Meter,
    OpenMarket,
    digest,
    fund,
    lamports,
    open_market,
)


async def market_on(harness: Harness) -> OpenMarket:
    return await open_market(harness, config=FAST_EXPORT)


def total_cents(wh: int, price_cents_per_kwh: int) -> int:
    """What M-Pesa takes: whole shillings, rounded up."""
    return ceil(wh * price_cents_per_kwh / 100_000) * 100


async def test_registration_creates_household_energy_account_and_meter_record(
    harness: Harness,
) -> None:
    market = await market_on(harness)
    seller = await market.register()
    buyer = await market.register(custodial=True)

    for member, custodial in ((seller, False), (buyer, True)):
        household = await market.household(member)
        assert household.market == market.address
        assert household.owner == member.owner
        assert household.meter == member.meter.public_key
        assert household.installer == market.installer.pubkey()
        assert household.energy_account == member.energy_account
        assert household.custodial is custodial
        assert household.has_baseline is False
        assert household.last_reading is None
        assert household.next_offer_id == 0
        assert household.open_trades == 0
        assert household.meter_since == household.last_attested_at <= await market.now()
        assert await market.balance(member) == 0
        record = await harness.client.meter_record(
            harness.client.program.meter_record_address(market.address, member.meter.public_key)
        )
        assert record.household == member.address
        assert record.retired is False


async def test_an_installer_is_approved_and_withdrawn(harness: Harness) -> None:
    market = await market_on(harness)
    client = harness.client
    record = await client.installer_record(
        client.program.installer_record_address(market.address, market.installer.pubkey())
    )
    assert (record.market, record.installer) == (market.address, market.installer.pubkey())
    assert record.rent_payer == harness.payer.pubkey()
    assert record.added_at <= await market.now()
    assert local_installer().pubkey() == market.installer.pubkey()

    await fund(harness, market.admin.pubkey(), 10**8)
    rent = await lamports(harness, record.address)
    payer_before = await lamports(harness, harness.payer.pubkey())
    outcome = await client.installer_remove(
        payer=market.admin,
        admin=market.admin,
        market=market.address,
        installer=market.installer.pubkey(),
        rent_receiver=record.rent_payer,
    )
    [removed] = client.program.events(outcome.logs)
    assert removed.name == "InstallerRemoved"
    assert (removed.data.installer, removed.data.admin) == (
        market.installer.pubkey(),
        market.admin.pubkey(),
    )
    assert await harness.chain.account(record.address) is None
    assert await lamports(harness, harness.payer.pubkey()) == payer_before + rent
    with pytest.raises(NishatiProgramError) as refused:
        await market.register()
    assert refused.value.name == "InstallerNotApproved"

    created = await client.installer_add(
        payer=harness.payer,
        admin=market.admin,
        market=market.address,
        installer=market.installer.pubkey(),
    )
    assert created.address == record.address
    [added] = client.program.events(created.outcome.logs)
    assert added.name == "InstallerAdded"
    assert (await market.household(await market.register())).installer == (
        market.installer.pubkey()
    )


async def test_market_lifecycle(harness: Harness) -> None:
    client = harness.client
    market = await market_on(harness)
    assert (await client.market(market.address)).energy_mint == market.energy_mint
    seller = await market.register()
    buyer = await market.register(custodial=True)

    # The first reading is the meter's baseline; the second mints what was exported since, as
    # long as the meter could have exported it in the chain time between them.
    now = await market.now()
    outcome = await market.attest((seller, seller.meter.read(now, exported_wh=10_000)))
    [attested] = client.program.events(outcome.logs)
    assert attested.name == "MeterAttested"
    assert attested.data.household == seller.address
    assert attested.data.meter == seller.meter.public_key
    assert attested.data.exported_wh == 10_000
    assert attested.data.minted_wh == 0
    assert await market.balance(seller) == 0

    await market.until_exportable(seller, 2_500)
    now = await market.now()
    outcome = await market.attest(
        (seller, seller.meter.read(now, exported_wh=2_500, imported_wh=400))
    )
    [attested] = client.program.events(outcome.logs)
    assert attested.data.counter == 2
    assert attested.data.minted_wh == 2_500
    assert await market.balance(seller) == 2_500
    assert await client.energy_supply(market.energy_mint) == 2_500
    household = await market.household(seller)
    assert household.has_baseline is True
    assert household.total_exported_wh == 2_500
    assert household.last_reading is not None
    assert household.last_reading.counter == 2
    assert household.last_reading.exported_wh == 12_500
    assert household.last_reading.imported_wh == 400
    assert household.last_attested_at == now
    assert (await client.market(market.address)).minted_today_wh == 2_500

    # The seller offers 2,000 Wh; they move into the offer's escrow.
    created = await client.offer_create(
        payer=harness.payer,
        authority=seller.authority,
        household=household,
        wh=2_000,
        price_cents_per_kwh=2_500,
        expires_at=now + 3_600,
    )
    offer = await client.offer(created.address)
    assert offer.seller == seller.address
    assert offer.market == market.address
    assert offer.offer_id == 0
    assert offer.unreserved_wh == 2_000
    assert offer.reserved_wh == 0
    assert offer.rent_payer == harness.payer.pubkey()
    assert offer.escrow == client.program.escrow(offer.address)
    assert await client.energy_balance(offer.escrow) == 2_000
    assert await market.balance(seller) == 500
    assert (await market.household(seller)).next_offer_id == 1
    [offered] = client.program.events(created.outcome.logs)
    assert offered.name == "OfferCreated"
    assert offered.data.wh == 2_000

    # The oracle opens a trade for its custodial buyer.
    reference = digest("M-Pesa QK7X2P9ABC")
    created = await client.trade_open(
        payer=harness.payer,
        authority=market.oracle,
        market=market.address,
        offer=offer.address,
        buyer=buyer.address,
        wh=1_234,
        payment_ref_hash=reference,
    )
    trade = await client.trade(created.address)
    assert created.address == client.program.trade_address(offer.address, 0)
    assert trade.trade_index == 0
    assert trade.buyer == buyer.address
    assert trade.buyer_energy_account == buyer.energy_account
    assert trade.payment_ref_hash == reference
    assert trade.wh == 1_234
    assert trade.total_cents == total_cents(1_234, 2_500) == 3_100
    assert trade.deadline == trade.created_at + PAYMENT_DEADLINE_SECS
    assert trade.rent_payer == harness.payer.pubkey()
    [opened] = client.program.events(created.outcome.logs)
    assert opened.name == "TradeOpened"
    assert opened.data.seller == seller.address
    assert bytes(opened.data.payment_ref_hash) == reference
    assert opened.data.trade_index == 0
    offer = await client.offer(offer.address)
    assert (offer.unreserved_wh, offer.reserved_wh) == (766, 1_234)
    assert offer.next_trade_index == 1
    assert (await market.household(buyer)).open_trades == 1

    # Paid: the oracle settles. It pays its own fee, so the payer gets exactly the trade's rent.
    await fund(harness, market.oracle.pubkey(), 10**8)
    trade_rent = await lamports(harness, trade.address)
    payer_before = await lamports(harness, harness.payer.pubkey())
    receipt = digest("receipt QK7X2P9ABC")
    outcome = await client.trade_settle(
        payer=market.oracle,
        oracle=market.oracle,
        trade=trade,
        receipt_hash=receipt,
        buyer=buyer.address,
        wh=1_234,
        total_cents=3_100,
    )
    [settled] = client.program.events(outcome.logs)
    assert settled.name == "TradeSettled"
    assert settled.data.trade == trade.address
    assert settled.data.buyer == buyer.address
    assert settled.data.wh == 1_234
    assert settled.data.total_cents == 3_100
    assert bytes(settled.data.receipt_hash) == receipt
    assert await market.balance(buyer) == 1_234
    assert await client.energy_balance(offer.escrow) == 766
    offer = await client.offer(offer.address)
    assert (offer.unreserved_wh, offer.reserved_wh) == (766, 0)
    assert await harness.chain.account(trade.address) is None
    assert await lamports(harness, harness.payer.pubkey()) == payer_before + trade_rent
    assert (await market.household(buyer)).open_trades == 0

    # The seller withdraws the rest: offer and escrow close, their rent back to the payer.
    seller_keys = seller.authority
    await fund(harness, seller_keys.pubkey(), 10**8)
    rents = await lamports(harness, offer.address) + await lamports(harness, offer.escrow)
    payer_before = await lamports(harness, harness.payer.pubkey())
    outcome = await client.offer_cancel(payer=seller_keys, caller=seller_keys, offer=offer)
    [cancelled] = client.program.events(outcome.logs)
    assert cancelled.name == "OfferCancelled"
    assert cancelled.data.returned_wh == 766
    assert cancelled.data.closed is True
    assert await harness.chain.account(offer.address) is None
    assert await harness.chain.account(offer.escrow) is None
    assert await market.balance(seller) == 500 + 766
    assert await lamports(harness, harness.payer.pubkey()) == payer_before + rents

    # The buyer uses 1,000 Wh: they are burnt.
    outcome = await client.energy_redeem(
        payer=harness.payer,
        authority=buyer.authority,
        market=market.address,
        household=buyer.address,
        wh=1_000,
    )
    [redeemed] = client.program.events(outcome.logs)
    assert redeemed.name == "EnergyRedeemed"
    assert redeemed.data.household == buyer.address
    assert redeemed.data.wh == 1_000
    assert await market.balance(buyer) == 234
    assert (await market.household(buyer)).redeemed_wh == 1_000
    assert await client.energy_supply(market.energy_mint) == 2_500 - 1_000


async def sell(market: OpenMarket, wh: int) -> tuple[Member, Member]:
    """A seller holding ``wh`` energy and a custodial buyer."""
    seller = await market.register()
    await market.mint(seller, wh)
    return seller, await market.register(custodial=True)


async def test_the_oracle_cancels_an_unpaid_trade(harness: Harness) -> None:
    market = await market_on(harness)
    seller, buyer = await sell(market, 1_000)
    offer = await market.offer(seller, 1_000)
    trade = await market.open_trade(offer, buyer, 600)
    await fund(harness, market.oracle.pubkey(), 10**8)
    payer_before = await lamports(harness, harness.payer.pubkey())
    trade_rent = await lamports(harness, trade.address)

    outcome = await harness.client.trade_cancel(
        payer=market.oracle, caller=market.oracle, trade=trade
    )
    [cancelled] = harness.client.program.events(outcome.logs)
    assert cancelled.name == "TradeCancelled"
    assert cancelled.data.wh == 600
    assert cancelled.data.after_deadline is False
    offer = await harness.client.offer(offer.address)
    assert (offer.unreserved_wh, offer.reserved_wh) == (1_000, 0)
    assert await harness.chain.account(trade.address) is None
    assert await lamports(harness, harness.payer.pubkey()) == payer_before + trade_rent
    assert await market.balance(buyer) == 0
    assert (await market.household(buyer)).open_trades == 0


async def test_cancelling_an_offer_with_a_pending_trade_keeps_it_until_the_trade_ends(
    harness: Harness,
) -> None:
    market = await market_on(harness)
    seller, buyer = await sell(market, 1_000)
    offer = await market.offer(seller, 1_000)
    trade = await market.open_trade(offer, buyer, 300)

    await fund(harness, seller.authority.pubkey(), 10**8)
    outcome = await harness.client.offer_cancel(
        payer=seller.authority, caller=seller.authority, offer=offer
    )
    [cancelled] = harness.client.program.events(outcome.logs)
    assert cancelled.data.returned_wh == 700
    assert cancelled.data.closed is False
    offer = await harness.client.offer(offer.address)
    assert offer.cancelled is True
    assert (offer.unreserved_wh, offer.reserved_wh) == (0, 300)
    assert await market.balance(seller) == 700

    await market.settle(trade)
    assert await market.balance(buyer) == 300
    outcome = await harness.client.offer_cancel(
        payer=seller.authority, caller=seller.authority, offer=offer
    )
    [cancelled] = harness.client.program.events(outcome.logs)
    assert cancelled.data.returned_wh == 0
    assert cancelled.data.closed is True
    with pytest.raises(AccountNotFound):
        await harness.client.offer(offer.address)


async def test_several_readings_in_one_transaction(harness: Harness) -> None:
    market = await market_on(harness)
    first, second = await market.register(), await market.register(custodial=True)
    now = await market.now()
    await market.attest((first, first.meter.read(now)), (second, second.meter.read(now)))
    await market.until_exportable(first, 70)
    now = await market.now()
    outcome = await market.attest(
        (first, first.meter.read(now, exported_wh=70)),
        (second, second.meter.read(now, exported_wh=30)),
    )
    events = harness.client.program.events(outcome.logs)
    assert [(e.data.household, e.data.minted_wh) for e in events] == [
        (first.address, 70),
        (second.address, 30),
    ]
    assert (await market.balance(first), await market.balance(second)) == (70, 30)


async def test_a_new_meter_starts_with_a_baseline(harness: Harness) -> None:
    market = await market_on(harness)
    seller = await market.register()
    await market.mint(seller, 100)
    old_meter = seller.meter.public_key
    new_meter = Meter(market.address)

    outcome = await market.set_meter(seller, new_meter)
    [changed] = harness.client.program.events(outcome.logs)
    assert changed.name == "MeterChanged"
    assert (changed.data.old_meter, changed.data.new_meter) == (old_meter, new_meter.public_key)
    assert changed.data.installer == market.installer.pubkey()
    household = await market.household(seller)
    assert household.meter == new_meter.public_key
    assert household.has_baseline is False
    assert household.meter_since == household.last_attested_at <= await market.now()
    program = harness.client.program
    retired = await harness.client.meter_record(
        program.meter_record_address(market.address, old_meter)
    )
    assert retired.retired is True

    now = await market.now()
    outcome = await market.attest((seller, new_meter.read(now, exported_wh=5_000)))
    assert harness.client.program.events(outcome.logs)[0].data.minted_wh == 0
    await market.until_exportable(seller, 40)
    outcome = await market.attest((seller, new_meter.read(await market.now(), exported_wh=40)))
    assert harness.client.program.events(outcome.logs)[0].data.minted_wh == 40
    assert await market.balance(seller) == 140


async def test_pause_and_resume(harness: Harness) -> None:
    market = await market_on(harness)
    outcome = await harness.client.market_pause(
        payer=harness.payer, admin=market.admin, market=market.address
    )
    [paused] = harness.client.program.events(outcome.logs)
    assert paused.name == "MarketPaused"
    assert paused.data.admin == market.admin.pubkey()
    assert (await harness.client.market(market.address)).paused is True

    outcome = await harness.client.market_resume(
        payer=harness.payer, admin=market.admin, market=market.address
    )
    [resumed] = harness.client.program.events(outcome.logs)
    assert resumed.name == "MarketResumed"
    assert (await harness.client.market(market.address)).paused is False

    with pytest.raises(NishatiProgramError) as refused:
        await harness.client.market_resume(
            payer=harness.payer, admin=market.admin, market=market.address
        )
    assert refused.value.name == "MarketNotPaused"
