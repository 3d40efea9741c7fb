"""market_initialize and market_update through the anchorpy client, on LiteSVM and JSON-RPC."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import replace

import pytest
from solders.account import Account
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID

from nishati_client.errors import AccountNotFound, AccountTypeMismatch, NishatiProgramError
from nishati_client.market import MarketConfig, MarketUpdate
from nishati_client.pda import market_address
from nishati_dev.sandbox import Harness

CONFIG = MarketConfig(
    oracle_authority=Keypair().pubkey(),
    fee_bps=150,
    min_price_cents_per_kwh=1_500,
    max_price_cents_per_kwh=4_000,
    payment_deadline_secs=900,
    cancel_grace_secs=600,
    max_export_watts=10_000,
    daily_mint_cap_wh=10_000_000,
    max_open_trades_per_buyer=8,
)


def new_market_id() -> int:
    return secrets.randbits(64)


async def initialized(h: Harness, admin: Keypair | None = None) -> tuple[Pubkey, Keypair]:
    admin = admin or Keypair()
    market_id = new_market_id()
    await h.client.market_initialize(payer=h.payer, admin=admin, market_id=market_id, config=CONFIG)
    return market_address(h.client.program.program_id, market_id)[0], admin


async def raw(h: Harness, address: Pubkey) -> bytes | None:
    account = await h.chain.account(address)
    return None if account is None else bytes(account.data)


async def test_initialize_creates_the_market_and_emits_its_event(harness: Harness) -> None:
    admin = Keypair()
    market_id = new_market_id()
    outcome = await harness.client.market_initialize(
        payer=harness.payer, admin=admin, market_id=market_id, config=CONFIG
    )
    address, bump = market_address(harness.client.program.program_id, market_id)

    market = await harness.client.market(address)
    assert market.admin == admin.pubkey()
    assert market.market_id == market_id
    assert market.config == CONFIG
    assert market.paused is False
    assert market.bump == bump
    assert market.minted_today_wh == 0

    account = await harness.chain.account(address)
    assert account is not None
    assert account.owner == harness.client.program.program_id
    assert len(account.data) == 208

    [event] = harness.client.program.events(outcome.logs)
    assert event.name == "MarketInitialized"
    assert event.data.market == address
    assert event.data.admin == admin.pubkey()
    assert event.data.market_id == market_id
    assert event.data.config.fee_bps == CONFIG.fee_bps
    assert event.data.config.max_export_watts == CONFIG.max_export_watts


async def test_update_changes_only_the_given_fields(harness: Harness) -> None:
    address, admin = await initialized(harness)
    new_oracle = Keypair().pubkey()
    outcome = await harness.client.market_update(
        payer=harness.payer,
        admin=admin,
        market=address,
        update=MarketUpdate(
            oracle_authority=new_oracle,
            fee_bps=10_000,
            payment_deadline_secs=60,
            max_export_watts=5_000,
            max_open_trades_per_buyer=2,
        ),
    )
    market = await harness.client.market(address)
    expected = replace(
        CONFIG,
        oracle_authority=new_oracle,
        fee_bps=10_000,
        payment_deadline_secs=60,
        max_export_watts=5_000,
        max_open_trades_per_buyer=2,
    )
    assert market.config == expected
    assert market.admin == admin.pubkey()

    [event] = harness.client.program.events(outcome.logs)
    assert event.name == "MarketUpdated"
    assert event.data.old.fee_bps == CONFIG.fee_bps
    assert event.data.new.fee_bps == 10_000
    assert event.data.new.oracle_authority == new_oracle


async def test_update_by_a_non_admin_is_refused(harness: Harness) -> None:
    address, _ = await initialized(harness)
    before = await raw(harness, address)
    with pytest.raises(NishatiProgramError) as refused:
        await harness.client.market_update(
            payer=harness.payer, admin=Keypair(), market=address, update=MarketUpdate(fee_bps=1)
        )
    assert refused.value.name == "NotMarketAdmin"
    assert refused.value.code == 6009
    assert any("Error Code: NotMarketAdmin" in line for line in refused.value.logs)
    assert await raw(harness, address) == before


@pytest.mark.parametrize(
    ("config", "error"),
    [
        (replace(CONFIG, fee_bps=10_001), "FeeTooHigh"),
        (replace(CONFIG, min_price_cents_per_kwh=4_001), "PriceBoundsReversed"),
        (replace(CONFIG, min_price_cents_per_kwh=0), "ZeroPrice"),
        (replace(CONFIG, payment_deadline_secs=59), "InvalidPaymentDeadline"),
        (replace(CONFIG, oracle_authority=Pubkey.default()), "InvalidOracleAuthority"),
        (replace(CONFIG, cancel_grace_secs=59), "InvalidCancelGrace"),
        (replace(CONFIG, cancel_grace_secs=86_401), "InvalidCancelGrace"),
        (replace(CONFIG, max_export_watts=0), "InvalidMaxExport"),
        (replace(CONFIG, max_export_watts=100_000_001), "InvalidMaxExport"),
        (replace(CONFIG, daily_mint_cap_wh=0), "InvalidMintCap"),
        (replace(CONFIG, max_open_trades_per_buyer=0), "InvalidOpenTradeLimit"),
    ],
)
async def test_initialize_with_bad_settings_creates_nothing(
    litesvm: Harness, config: MarketConfig, error: str
) -> None:
    market_id = new_market_id()
    with pytest.raises(NishatiProgramError) as refused:
        await litesvm.client.market_initialize(
            payer=litesvm.payer, admin=litesvm.payer, market_id=market_id, config=config
        )
    assert refused.value.name == error
    address, _ = market_address(litesvm.client.program.program_id, market_id)
    assert await litesvm.chain.account(address) is None


@pytest.mark.parametrize(
    ("update", "error"),
    [
        (MarketUpdate(fee_bps=10_001), "FeeTooHigh"),
        (MarketUpdate(min_price_cents_per_kwh=5_000), "PriceBoundsReversed"),
        (MarketUpdate(max_price_cents_per_kwh=1_000), "PriceBoundsReversed"),
        (MarketUpdate(payment_deadline_secs=86_401), "InvalidPaymentDeadline"),
        (MarketUpdate(cancel_grace_secs=0), "InvalidCancelGrace"),
        (MarketUpdate(max_export_watts=0), "InvalidMaxExport"),
        (MarketUpdate(daily_mint_cap_wh=0), "InvalidMintCap"),
        (MarketUpdate(max_open_trades_per_buyer=0), "InvalidOpenTradeLimit"),
        (MarketUpdate(), "EmptyUpdate"),
    ],
)
async def test_update_with_bad_settings_leaves_the_market_unchanged(
    litesvm: Harness, update: MarketUpdate, error: str
) -> None:
    address, admin = await initialized(litesvm)
    before = await raw(litesvm, address)
    with pytest.raises(NishatiProgramError) as refused:
        await litesvm.client.market_update(
            payer=litesvm.payer, admin=admin, market=address, update=update
        )
    assert refused.value.name == error
    assert await raw(litesvm, address) == before


async def test_initialize_at_a_wrong_pda_is_refused(litesvm: Harness) -> None:
    program = litesvm.client.program
    ix = program.market_initialize(
        payer=litesvm.payer.pubkey(), admin=litesvm.payer.pubkey(), market_id=1, config=CONFIG
    )
    wrong, _ = market_address(program.program_id, 2)
    accounts = list(ix.accounts)
    accounts[2] = AccountMeta(wrong, is_signer=False, is_writable=True)
    ix.accounts = accounts
    with pytest.raises(NishatiProgramError) as refused:
        await litesvm.chain.send([ix], [litesvm.payer])
    assert refused.value.name == "InvalidMarketAddress"
    assert await litesvm.chain.account(wrong) is None


async def test_initialize_twice_is_refused(litesvm: Harness) -> None:
    market_id = new_market_id()
    await litesvm.client.market_initialize(
        payer=litesvm.payer, admin=litesvm.payer, market_id=market_id, config=CONFIG
    )
    address, _ = market_address(litesvm.client.program.program_id, market_id)
    before = await raw(litesvm, address)
    with pytest.raises(NishatiProgramError) as refused:
        await litesvm.client.market_initialize(
            payer=litesvm.payer, admin=Keypair(), market_id=market_id, config=CONFIG
        )
    assert refused.value.name == "AccountAlreadyInUse"
    assert await raw(litesvm, address) == before


async def test_initialize_at_a_prefunded_address_still_creates_the_market(litesvm: Harness) -> None:
    market_id = new_market_id()
    address, _ = market_address(litesvm.client.program.program_id, market_id)
    assert litesvm.litesvm is not None
    litesvm.litesvm.fund(address, 1_000)
    await litesvm.client.market_initialize(
        payer=litesvm.payer, admin=litesvm.payer, market_id=market_id, config=CONFIG
    )
    assert (await litesvm.client.market(address)).config == CONFIG


async def copy_market_to(litesvm: Harness, source: Pubkey, owner: Pubkey) -> Pubkey:
    """Puts a byte-for-byte copy of a market at a fresh address owned by ``owner``."""
    original = await litesvm.chain.account(source)
    assert original is not None
    assert litesvm.litesvm is not None
    forged = Keypair().pubkey()
    litesvm.litesvm.svm.set_account(
        forged,
        Account(
            lamports=original.lamports, data=bytes(original.data), owner=owner, executable=False
        ),
    )
    return forged


async def test_update_of_a_copied_market_at_another_address_is_refused(litesvm: Harness) -> None:
    address, admin = await initialized(litesvm)
    forged = await copy_market_to(litesvm, address, litesvm.client.program.program_id)
    before = await raw(litesvm, forged)
    with pytest.raises(NishatiProgramError) as refused:
        await litesvm.client.market_update(
            payer=litesvm.payer, admin=admin, market=forged, update=MarketUpdate(fee_bps=1)
        )
    assert refused.value.name == "InvalidMarketAddress"
    assert await raw(litesvm, forged) == before


async def test_update_of_a_market_owned_by_another_program_is_refused(litesvm: Harness) -> None:
    address, admin = await initialized(litesvm)
    forged = await copy_market_to(litesvm, address, SYSTEM_PROGRAM_ID)
    with pytest.raises(NishatiProgramError) as refused:
        await litesvm.client.market_update(
            payer=litesvm.payer, admin=admin, market=forged, update=MarketUpdate(fee_bps=1)
        )
    assert refused.value.name == "InvalidAccountOwner"
    with pytest.raises(AccountTypeMismatch):
        await litesvm.client.market(forged)


@pytest.mark.parametrize(
    ("mangle", "error"),
    [
        (lambda data: data[:-1], "InvalidInstructionData"),
        (lambda data: data + b"\x00", "InvalidInstructionData"),
        (lambda data: data[:12], "InvalidInstructionData"),
        (lambda data: bytes(8) + data[8:], "UnknownInstruction"),
        (lambda data: data[:5], "UnknownInstruction"),
        (lambda data: b"", "UnknownInstruction"),
    ],
    ids=["truncated", "trailing-byte", "args-cut", "unknown-discriminator", "short", "empty"],
)
async def test_malformed_instruction_data_is_refused(
    litesvm: Harness, mangle: Callable[[bytes], bytes], error: str
) -> None:
    address, admin = await initialized(litesvm)
    before = await raw(litesvm, address)
    ix = litesvm.client.program.market_update(
        admin=admin.pubkey(), market=address, update=MarketUpdate(fee_bps=10)
    )
    ix = Instruction(ix.program_id, mangle(bytes(ix.data)), ix.accounts)
    with pytest.raises(NishatiProgramError) as refused:
        await litesvm.chain.send([ix], [litesvm.payer, admin])
    assert refused.value.name == error
    assert await raw(litesvm, address) == before


async def test_update_with_a_read_only_market_is_refused(litesvm: Harness) -> None:
    address, admin = await initialized(litesvm)
    ix = litesvm.client.program.market_update(
        admin=admin.pubkey(), market=address, update=MarketUpdate(fee_bps=10)
    )
    ix.accounts = [ix.accounts[0], AccountMeta(address, is_signer=False, is_writable=False)]
    with pytest.raises(NishatiProgramError) as refused:
        await litesvm.chain.send([ix], [litesvm.payer, admin])
    assert refused.value.name == "AccountNotWritable"


async def test_fetching_a_missing_market_raises(litesvm: Harness) -> None:
    with pytest.raises(AccountNotFound):
        await litesvm.client.market(Keypair().pubkey())
