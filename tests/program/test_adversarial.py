"""Attacks and mistakes on LiteSVM: each is refused with its named error and changes nothing."""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest
from solders.account import Account
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from spl.token.constants import TOKEN_PROGRAM_ID

from nishati_client.errors import (
    AccountNotFound,
    AccountTypeMismatch,
    NishatiProgramError,
    TransactionFailed,
)
from nishati_client.household import Household
from nishati_client.market import MarketUpdate
from nishati_client.readings import (
    ED25519_PROGRAM_ID,
    READING_LEN,
    Reading,
    ed25519_instruction,
    market_tag,
    sign,
)
from nishati_client.trading import Trade
from nishati_dev.sandbox import Harness
from tests.program.scenario import (
    MAX_PRICE,
    MIN_PRICE,
    OFFER_WH,
    PRICE,
    SELLER_WH,
    TRADE_WH,
    Member,
    Meter,
    World,
    config_with,
    digest,
    open_market,
    refused,
    set_time,
    snapshot,
    world_in,
)


@pytest.fixture
async def world(litesvm: Harness) -> World:
    return await world_in(litesvm, World)


def swap_account(ix: Instruction, old: Pubkey, new: Pubkey) -> Instruction:
    """``ix`` with account ``old`` replaced by ``new``, flags kept."""
    metas = [
        AccountMeta(new, m.is_signer, m.is_writable) if m.pubkey == old else m for m in ix.accounts
    ]
    return Instruction(ix.program_id, bytes(ix.data), metas)


# Who may sign


@pytest.mark.parametrize("instruction", ["market_update", "market_pause", "market_resume"])
async def test_only_the_admin_manages_the_market(world: World, instruction: str) -> None:
    h, market = world.h, world.market.address
    if instruction == "market_resume":
        await h.client.market_pause(payer=h.payer, admin=world.market.admin, market=market)
    actions: dict[str, Callable[[], Awaitable[object]]] = {
        "market_update": lambda: h.client.market_update(
            payer=h.payer, admin=world.stranger, market=market, update=MarketUpdate(fee_bps=1)
        ),
        "market_pause": lambda: h.client.market_pause(
            payer=h.payer, admin=world.stranger, market=market
        ),
        "market_resume": lambda: h.client.market_resume(
            payer=h.payer, admin=world.market.oracle, market=market
        ),
    }
    await world.expect("NotMarketAdmin", actions[instruction])


async def test_only_the_oracle_attests(world: World) -> None:
    reading = world.seller.meter.read(await world.market.now(), exported_wh=100)
    await world.expect(
        "NotOracle",
        lambda: world.h.client.meter_attest(
            payer=world.h.payer,
            oracle=world.stranger,
            market=world.market.address,
            readings=[(reading, world.seller.address)],
        ),
    )


@pytest.mark.parametrize("who", ["stranger", "admin", "seller"])
async def test_only_the_oracle_settles(world: World, who: str) -> None:
    signer = {
        "stranger": world.stranger,
        "admin": world.market.admin,
        "seller": world.seller.authority,
    }[who]
    await world.expect("NotOracle", lambda: settle(world, oracle=signer))


@pytest.mark.parametrize("who", ["stranger", "oracle"])
async def test_only_the_owner_offers_a_wallet_households_energy(world: World, who: str) -> None:
    """The oracle acts only for custodial households."""
    signer = world.stranger if who == "stranger" else world.market.oracle
    household = await world.market.household(world.seller)
    expires_at = await world.market.now() + 3_600
    await world.expect(
        "NotHouseholdAuthority",
        lambda: world.h.client.offer_create(
            payer=world.h.payer,
            authority=signer,
            household=household,
            wh=100,
            price_cents_per_kwh=PRICE,
            expires_at=expires_at,
        ),
    )


async def test_a_stranger_cannot_redeem_a_households_energy(world: World) -> None:
    await world.expect(
        "NotHouseholdAuthority",
        lambda: world.h.client.energy_redeem(
            payer=world.h.payer,
            authority=world.stranger,
            market=world.market.address,
            household=world.seller.address,
            wh=1,
        ),
    )


async def test_a_stranger_cannot_open_a_trade_for_a_buyer(world: World) -> None:
    await world.expect(
        "NotHouseholdAuthority",
        lambda: world.h.client.trade_open(
            payer=world.h.payer,
            authority=world.stranger,
            market=world.market.address,
            offer=world.offer.address,
            buyer=world.buyer.address,
            wh=10,
            payment_ref_hash=digest("stranger"),
        ),
    )


async def test_a_stranger_cannot_change_a_households_meter(world: World) -> None:
    """Even with an approved installer and the new meter's proof."""
    await world.expect(
        "NotHouseholdAuthority",
        lambda: world.market.set_meter(world.seller, Meter(world.market.address), world.stranger),
    )


async def test_a_stranger_cannot_register_a_custodial_household(world: World) -> None:
    """The owner signs, but only the owner or the oracle may be its authority."""
    owner, meter = Keypair(), Meter(world.market.address)
    household = world.h.client.program.household_address(world.market.address, owner.pubkey())
    await world.expect(
        "NotHouseholdAuthority",
        lambda: world.h.client.household_register(
            payer=world.h.payer,
            owner=owner,
            authority=world.stranger,
            installer=world.market.installer,
            market=world.market.address,
            meter=meter.public_key,
            meter_proof=meter.prove(household),
            phone_commitment=digest("phone"),
        ),
    )


# Readings


def next_reading(world: World, now: int) -> Reading:
    """The seller's next good reading: one Wh more, at ``now``."""
    meter = world.seller.meter
    return Reading.for_market(
        world.market.address, meter.counter + 1, now, meter.exported_wh + 1, meter.imported_wh
    )


def different_market(reading: Reading, _: World) -> Reading:
    return replace(reading, market_tag=market_tag(Pubkey.new_unique()))


def replayed_counter(reading: Reading, world: World) -> Reading:
    return replace(reading, counter=world.seller.meter.counter)


def before_the_last(reading: Reading, _: World) -> Reading:
    return replace(reading, timestamp=reading.timestamp - 1)


def from_the_future(reading: Reading, _: World) -> Reading:
    return replace(reading, timestamp=reading.timestamp + 301)


def export_backwards(reading: Reading, world: World) -> Reading:
    return replace(reading, exported_wh=world.seller.meter.exported_wh - 1)


@pytest.mark.parametrize(
    ("mangle", "error"),
    [
        (different_market, "ReadingForAnotherMarket"),
        (replayed_counter, "ReadingReplayed"),
        (before_the_last, "ReadingOutOfOrder"),
        (from_the_future, "ReadingFromTheFuture"),
        (export_backwards, "MeterWentBackwards"),
    ],
    ids=["another-market", "replayed-counter", "out-of-order", "future", "export-backwards"],
)
async def test_a_reading_breaking_a_rule_is_refused(
    world: World, mangle: Callable[[Reading, World], Reading], error: str
) -> None:
    # The seller's last reading was taken at the cluster's current time.
    reading = mangle(next_reading(world, await world.market.now()), world)
    signed = sign(reading, world.seller.meter.key)
    await world.expect(error, lambda: world.market.attest((world.seller, signed)))


async def test_a_reading_at_the_skew_limit_is_accepted(world: World) -> None:
    await world.market.until_exportable(world.seller, 1)
    now = await world.market.now()
    signed = sign(replace(next_reading(world, now), timestamp=now + 300), world.seller.meter.key)
    await world.market.attest((world.seller, signed))
    assert await world.market.balance(world.seller) == SELLER_WH - OFFER_WH + 1


async def test_a_replayed_reading_is_refused(world: World) -> None:
    await world.market.until_exportable(world.seller, 100)
    signed = world.seller.meter.read(await world.market.now(), exported_wh=100)
    await world.market.attest((world.seller, signed))
    await world.expect("ReadingReplayed", lambda: world.market.attest((world.seller, signed)))


async def test_a_reading_signed_by_another_households_meter_is_refused(world: World) -> None:
    signed = sign(next_reading(world, await world.market.now()), world.buyer.meter.key)
    await world.expect("MeterMismatch", lambda: world.market.attest((world.seller, signed)))


async def test_a_reading_credited_to_another_household_is_refused(world: World) -> None:
    signed = world.seller.meter.read(await world.market.now(), exported_wh=100)
    await world.expect("MeterMismatch", lambda: world.market.attest((world.buyer, signed)))


async def test_a_tampered_reading_fails_in_the_ed25519_program(world: World) -> None:
    signed = world.seller.meter.read(await world.market.now(), exported_wh=100)
    forged = replace(
        Reading.decode(signed.message), exported_wh=world.seller.meter.exported_wh + 10**6
    )
    tampered = replace(signed, message=forged.encode())
    before = await snapshot(world.h, world.accounts)
    with pytest.raises(TransactionFailed) as failure:
        await world.market.attest((world.seller, tampered))
    assert not isinstance(failure.value, NishatiProgramError)
    assert failure.value.reason.startswith("instruction 0 (Ed25519SigVerify")
    assert await snapshot(world.h, world.accounts) == before


def attest_instruction(world: World, households: list[Pubkey], index: int) -> Instruction:
    return world.h.client.program.meter_attest(
        oracle=world.market.oracle.pubkey(),
        market=world.market.address,
        households=households,
        ed25519_instruction_index=index,
    )


async def test_signatures_read_from_another_instruction_are_refused(world: World) -> None:
    """An Ed25519 instruction whose offsets point into another instruction's data verifies on
    its own; the program must insist on the offsets of docs/reading-format.md."""
    signed = world.seller.meter.read(await world.market.now(), exported_wh=100)
    carrier = ed25519_instruction([signed])
    start = 2 + 14
    pointer = Instruction(
        ED25519_PROGRAM_ID,
        bytes([1, 0]) + struct.pack("<7H", start, 1, start + 64, 1, start + 96, READING_LEN, 1),
        [],
    )
    attest = attest_instruction(world, [world.seller.address], 0)
    await world.expect(
        "InvalidEd25519Instruction",
        lambda: world.send([pointer, carrier, attest], world.market.oracle),
    )


@pytest.mark.parametrize("layout", ["no-ed25519", "index-at-attest", "index-past-the-end"])
async def test_attesting_without_the_ed25519_instruction_is_refused(
    world: World, layout: str
) -> None:
    signed = world.seller.meter.read(await world.market.now(), exported_wh=100)
    households = [world.seller.address]
    instructions = {
        "no-ed25519": [attest_instruction(world, households, 0)],
        "index-at-attest": [
            ed25519_instruction([signed]),
            attest_instruction(world, households, 1),
        ],
        "index-past-the-end": [
            ed25519_instruction([signed]),
            attest_instruction(world, households, 2),
        ],
    }[layout]
    await world.expect(
        "MissingEd25519Instruction", lambda: world.send(instructions, world.market.oracle)
    )


async def test_readings_and_households_must_pair_up(world: World) -> None:
    now = await world.market.now()
    readings = [world.seller.meter.read(now, exported_wh=1), world.buyer.meter.read(now)]
    instructions = [
        ed25519_instruction(readings),
        attest_instruction(world, [world.seller.address], 0),
    ]
    await world.expect(
        "AttestAccountsMismatch", lambda: world.send(instructions, world.market.oracle)
    )


async def test_a_reading_for_a_foreign_energy_account_is_refused(world: World) -> None:
    signed = world.seller.meter.read(await world.market.now(), exported_wh=100)
    instructions = world.h.client.program.attest_readings(
        oracle=world.market.oracle.pubkey(),
        market=world.market.address,
        readings=[(signed, world.seller.address)],
    )
    instructions[1] = swap_account(
        instructions[1], world.seller.energy_account, world.buyer.energy_account
    )
    await world.expect(
        "InvalidEnergyAccount", lambda: world.send(instructions, world.market.oracle)
    )


async def test_a_read_only_energy_account_is_refused(world: World) -> None:
    signed = world.seller.meter.read(await world.market.now(), exported_wh=100)
    instructions = world.h.client.program.attest_readings(
        oracle=world.market.oracle.pubkey(),
        market=world.market.address,
        readings=[(signed, world.seller.address)],
    )
    attest = instructions[1]
    accounts = [
        AccountMeta(meta.pubkey, meta.is_signer, False)
        if meta.pubkey == world.seller.energy_account
        else meta
        for meta in attest.accounts
    ]
    instructions[1] = Instruction(attest.program_id, attest.data, accounts)
    await world.expect("AccountNotWritable", lambda: world.send(instructions, world.market.oracle))


async def test_minting_with_another_markets_mint_is_refused(world: World) -> None:
    other = await open_market(world.h)
    signed = world.seller.meter.read(await world.market.now(), exported_wh=100)
    instructions = world.h.client.program.attest_readings(
        oracle=world.market.oracle.pubkey(),
        market=world.market.address,
        readings=[(signed, world.seller.address)],
    )
    instructions[1] = swap_account(instructions[1], world.market.energy_mint, other.energy_mint)
    await world.expect("InvalidEnergyMint", lambda: world.send(instructions, world.market.oracle))


# Meters


async def test_a_meter_key_belongs_to_one_household(world: World) -> None:
    await world.expect(
        "MeterAlreadyRegistered",
        lambda: world.market.register(meter=world.seller.meter),
    )


async def test_a_replaced_meter_no_longer_counts_and_never_returns(world: World) -> None:
    old_meter = world.seller.meter
    unsent = old_meter.read(await world.market.now(), exported_wh=100)
    await world.market.set_meter(world.seller)
    await world.expect("MeterMismatch", lambda: world.market.attest((world.seller, unsent)))
    await world.expect("MeterAlreadyRegistered", lambda: world.market.register(meter=old_meter))


async def test_the_admin_may_change_a_households_meter(world: World) -> None:
    new_meter = Meter(world.market.address)
    await world.market.set_meter(world.seller, new_meter, world.market.admin)
    assert (await world.market.household(world.seller)).meter == new_meter.public_key


# Trades


async def settle(world: World, trade: Trade | None = None, oracle: Keypair | None = None) -> object:
    """The trade settled for the terms it was opened with, as the oracle's ledger holds them."""
    opened = world.trade
    return await world.h.client.trade_settle(
        payer=world.h.payer,
        oracle=oracle or world.market.oracle,
        trade=trade or opened,
        receipt_hash=digest("paid"),
        buyer=opened.buyer,
        wh=opened.wh,
        total_cents=opened.total_cents,
    )


async def cancel(world: World, caller: Keypair | None = None) -> object:
    return await world.h.client.trade_cancel(
        payer=world.h.payer, caller=caller or world.market.oracle, trade=world.trade
    )


async def test_a_trade_settles_once(world: World) -> None:
    await settle(world)
    await world.expect("TradeNotFound", lambda: settle(world))


async def test_a_cancelled_trade_cannot_settle(world: World) -> None:
    await cancel(world)
    await world.expect("TradeNotFound", lambda: settle(world))


async def test_a_settled_trade_cannot_be_cancelled(world: World) -> None:
    await settle(world)
    await world.expect("TradeNotFound", lambda: cancel(world))
    await world.expect("TradeNotFound", lambda: cancel(world, world.stranger))


async def test_only_the_oracle_cancels_before_the_deadline_and_its_grace_then_anyone(
    world: World,
) -> None:
    set_time(world.h, world.trade.deadline - 1)
    await world.expect("TradeDeadlineNotReached", lambda: cancel(world, world.stranger))
    await world.expect("TradeDeadlineNotReached", lambda: cancel(world, world.seller.authority))

    grace = (await world.h.client.market(world.market.address)).config.cancel_grace_secs
    set_time(world.h, world.trade.deadline + grace + 1)
    outcome = await world.h.client.trade_cancel(
        payer=world.h.payer, caller=world.stranger, trade=world.trade
    )
    [cancelled] = world.h.client.program.events(outcome.logs)
    assert cancelled.data.after_deadline is True
    offer = await world.h.client.offer(world.offer.address)
    assert (offer.unreserved_wh, offer.reserved_wh) == (OFFER_WH, 0)


async def test_settling_into_another_energy_account_is_refused(world: World) -> None:
    ix = world.h.client.program.trade_settle(
        oracle=world.market.oracle.pubkey(),
        trade=world.trade,
        receipt_hash=digest("paid"),
        buyer=world.trade.buyer,
        wh=world.trade.wh,
        total_cents=world.trade.total_cents,
    )
    ix = swap_account(ix, world.buyer.energy_account, world.seller.energy_account)
    await world.expect("InvalidEnergyAccount", lambda: world.send([ix], world.market.oracle))


async def test_the_trade_rent_goes_back_to_its_payer_only(world: World) -> None:
    diverted = replace(world.trade, rent_payer=world.stranger.pubkey())
    await world.expect("InvalidRentReceiver", lambda: settle(world, diverted))


async def open_trade(
    world: World, wh: int, buyer: Member | None = None, trade_index: int | None = None
) -> object:
    buyer = buyer or world.buyer
    return await world.h.client.trade_open(
        payer=world.h.payer,
        authority=buyer.authority,
        market=world.market.address,
        offer=world.offer.address,
        buyer=buyer.address,
        wh=wh,
        payment_ref_hash=digest(f"trade {wh}"),
        trade_index=trade_index,
    )


async def test_a_trade_cannot_exceed_what_the_offer_has_left(world: World) -> None:
    await world.expect("NotEnoughOfferedEnergy", lambda: open_trade(world, OFFER_WH - TRADE_WH + 1))


async def test_a_seller_cannot_buy_its_own_offer(world: World) -> None:
    await world.expect("SelfTrade", lambda: open_trade(world, 10, world.seller))


async def test_an_expired_offer_takes_no_trade(world: World) -> None:
    set_time(world.h, world.offer.expires_at + 1)
    await world.expect("OfferExpired", lambda: open_trade(world, 10))


async def test_a_buyer_from_another_market_is_refused(world: World) -> None:
    other = await open_market(world.h)
    outsider = await other.register(custodial=True)
    await world.expect(
        "WrongMarket",
        lambda: world.h.client.trade_open(
            payer=world.h.payer,
            authority=world.market.oracle,
            market=world.market.address,
            offer=world.offer.address,
            buyer=outsider.address,
            wh=10,
            payment_ref_hash=digest("outsider"),
        ),
    )


async def test_a_trade_whose_price_overflows_is_refused(litesvm: Harness) -> None:
    """Wh x price past u64. A meter cannot mint that much energy (its export limit over the
    time a reading can name), so the price does it: a market whose admin allows any price."""
    price = 2**64 - 1
    market = await open_market(litesvm, config=config_with(max_price_cents_per_kwh=price))
    whale = await market.register()
    await market.mint(whale, SELLER_WH)
    offer = await market.offer(whale, SELLER_WH, price)
    buyer = await market.register(custodial=True)
    watched = [market.address, offer.address, offer.escrow, buyer.address]
    await refused(
        litesvm,
        "ArithmeticOverflow",
        watched,
        lambda: market.open_trade(offer, buyer, 2),
    )


# Offers


async def create_offer(
    world: World,
    wh: int = 100,
    price: int = PRICE,
    expires_in: int = 3_600,
    household: Household | None = None,
) -> object:
    return await world.h.client.offer_create(
        payer=world.h.payer,
        authority=world.seller.authority,
        household=household or await world.market.household(world.seller),
        wh=wh,
        price_cents_per_kwh=price,
        expires_at=await world.market.now() + expires_in,
    )


@pytest.mark.parametrize(
    ("wh", "price", "expires_in", "error"),
    [
        (100, MIN_PRICE - 1, 3_600, "PriceOutOfBounds"),
        (100, MAX_PRICE + 1, 3_600, "PriceOutOfBounds"),
        (0, PRICE, 3_600, "ZeroAmount"),
        (SELLER_WH - OFFER_WH + 1, PRICE, 3_600, "InsufficientEnergy"),
        (100, PRICE, 0, "InvalidExpiry"),
    ],
    ids=["below-min-price", "above-max-price", "zero", "more-than-held", "expired"],
)
async def test_a_bad_offer_is_refused(
    world: World, wh: int, price: int, expires_in: int, error: str
) -> None:
    await world.expect(error, lambda: create_offer(world, wh, price, expires_in))


async def test_only_the_seller_cancels_an_offer_before_it_expires(world: World) -> None:
    await world.expect(
        "OfferNotExpired",
        lambda: world.h.client.offer_cancel(
            payer=world.h.payer, caller=world.stranger, offer=world.offer
        ),
    )
    set_time(world.h, world.offer.expires_at + 1)
    await world.h.client.offer_cancel(payer=world.h.payer, caller=world.stranger, offer=world.offer)
    assert (await world.h.client.offer(world.offer.address)).cancelled is True


async def test_a_cancelled_offer_takes_no_trade(world: World) -> None:
    await world.h.client.offer_cancel(
        payer=world.h.payer, caller=world.seller.authority, offer=world.offer
    )
    await world.expect("OfferCancelled", lambda: open_trade(world, 10))


async def test_offering_from_another_households_energy_account_is_refused(world: World) -> None:
    program = world.h.client.program
    household = await world.market.household(world.seller)
    ix = program.offer_create(
        payer=world.h.payer.pubkey(),
        authority=world.seller.authority.pubkey(),
        household=household,
        wh=10,
        price_cents_per_kwh=PRICE,
        expires_at=await world.market.now() + 3_600,
    )
    ix = swap_account(ix, world.seller.energy_account, world.buyer.energy_account)
    await world.expect("InvalidEnergyAccount", lambda: world.send([ix], world.seller.authority))


async def test_offering_with_another_markets_mint_is_refused(world: World) -> None:
    other = await open_market(world.h)
    ix = world.h.client.program.offer_create(
        payer=world.h.payer.pubkey(),
        authority=world.seller.authority.pubkey(),
        household=await world.market.household(world.seller),
        wh=10,
        price_cents_per_kwh=PRICE,
        expires_at=await world.market.now() + 3_600,
    )
    ix = swap_account(ix, world.market.energy_mint, other.energy_mint)
    await world.expect("InvalidEnergyMint", lambda: world.send([ix], world.seller.authority))


# Energy


@pytest.mark.parametrize(("wh", "error"), [(0, "ZeroAmount"), (10**9, "InsufficientEnergy")])
async def test_a_bad_redemption_is_refused(world: World, wh: int, error: str) -> None:
    await world.expect(
        error,
        lambda: world.h.client.energy_redeem(
            payer=world.h.payer,
            authority=world.seller.authority,
            market=world.market.address,
            household=world.seller.address,
            wh=wh,
        ),
    )


async def test_redeeming_from_another_households_account_is_refused(world: World) -> None:
    await settle(world)
    ix = world.h.client.program.energy_redeem(
        authority=world.seller.authority.pubkey(),
        market=world.market.address,
        household=world.seller.address,
        wh=1,
    )
    ix = swap_account(ix, world.seller.energy_account, world.buyer.energy_account)
    await world.expect("InvalidEnergyAccount", lambda: world.send([ix], world.seller.authority))


# Forged accounts


async def forge_owner(world: World, address: Pubkey, owner: Pubkey) -> None:
    """Leaves ``address``'s bytes as they are but hands the account to another program."""
    original = await world.h.chain.account(address)
    assert original is not None
    assert world.h.litesvm is not None
    world.h.litesvm.svm.set_account(
        address,
        Account(
            lamports=original.lamports, data=bytes(original.data), owner=owner, executable=False
        ),
    )


async def test_an_offer_owned_by_another_program_is_refused(world: World) -> None:
    # The trade's index given: the client reads no offer the program would refuse.
    index = (await world.h.client.offer(world.offer.address)).next_trade_index
    await forge_owner(world, world.offer.address, SYSTEM_PROGRAM_ID)
    await world.expect("InvalidAccountOwner", lambda: open_trade(world, 10, trade_index=index))


async def test_a_household_owned_by_another_program_is_refused(world: World) -> None:
    household = await world.market.household(world.seller)
    await forge_owner(world, world.seller.address, TOKEN_PROGRAM_ID)
    with pytest.raises(AccountTypeMismatch):
        await world.market.household(world.seller)
    await world.expect("InvalidAccountOwner", lambda: create_offer(world, household=household))


# Paused market


async def test_a_paused_market_takes_no_offer_or_trade_but_settles(world: World) -> None:
    await world.h.client.market_pause(
        payer=world.h.payer, admin=world.market.admin, market=world.market.address
    )
    await world.expect("MarketPaused", lambda: create_offer(world))
    await world.expect("MarketPaused", lambda: open_trade(world, 10))
    await settle(world)
    assert await world.market.balance(world.buyer) == TRADE_WH


async def test_energy_balance_reads_only_token_accounts(world: World) -> None:
    with pytest.raises(AccountTypeMismatch):
        await world.h.client.energy_balance(world.seller.address)
    with pytest.raises(AccountTypeMismatch):
        await world.h.client.energy_balance(world.market.energy_mint)
    with pytest.raises(AccountNotFound):
        await world.h.client.energy_balance(Keypair().pubkey())
