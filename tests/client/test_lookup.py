"""Address lookup tables: created, extended and read back; v0 attestations that look their
accounts up in them, sized and sent on both chains."""

from __future__ import annotations

import pytest
from solders.address_lookup_table_account import AddressLookupTableAccount
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.sysvar import INSTRUCTIONS
from spl.token.constants import TOKEN_PROGRAM_ID

from nishati_client.chain import (
    SendPolicy,
    fits_in_packet,
    transaction_size,
)
from nishati_client.errors import AccountTypeMismatch, TransactionFailed
from nishati_client.lookup import (
    attest_accounts,
    extend_lookup_table,
    fetch_lookup_table,
)
from nishati_client.program import NishatiProgram
from nishati_dev.sandbox import (
    FAST_EXPORT,
    Harness,
    Meter,
    fund,
    new_table,
    open_market,
    slot_after,
)
from tests.client.test_sending import unreliable


async def test_a_table_is_created_extended_and_read_back(litesvm: Harness) -> None:
    payer = litesvm.payer.pubkey()
    first = [Pubkey.new_unique() for _ in range(3)]
    table = await new_table(litesvm, first)
    assert table.addresses == first
    assert table.authority == payer
    assert table.room == 256 - 3

    slot = await slot_after(litesvm, table)
    more = [Pubkey.new_unique() for _ in range(2)]
    extend = extend_lookup_table(table=table.address, authority=payer, payer=payer, addresses=more)
    await litesvm.chain.send([extend], [litesvm.payer])
    extended = await fetch_lookup_table(litesvm.chain, table.address)

    assert extended is not None
    assert extended.addresses == first + more
    # What was added in this slot can be looked up from the next one.
    assert extended.usable(slot).addresses == first
    assert extended.usable(slot + 1).addresses == first + more
    assert await fetch_lookup_table(litesvm.chain, Pubkey.new_unique()) is None
    with pytest.raises(AccountTypeMismatch):
        await fetch_lookup_table(litesvm.chain, payer)


def test_a_market_s_tables_hold_what_meter_attest_names() -> None:
    program = NishatiProgram(Pubkey.new_unique())
    market, households = Pubkey.new_unique(), [Pubkey.new_unique(), Pubkey.new_unique()]

    assert attest_accounts(program, market) == [
        market,
        program.energy_mint(market),
        INSTRUCTIONS,
        TOKEN_PROGRAM_ID,
    ]
    assert attest_accounts(program, market, households)[4:] == [
        households[0],
        program.energy_account(households[0]),
        households[1],
        program.energy_account(households[1]),
    ]


def test_each_account_a_table_holds_costs_one_byte() -> None:
    program = NishatiProgram(Pubkey.new_unique())
    market, household, signer = Pubkey.new_unique(), Pubkey.new_unique(), Keypair()
    ixs = program.attest_readings(
        oracle=signer.pubkey(),
        market=market,
        readings=[(Meter(market).read(1_790_000_000), household)],
    )
    held = attest_accounts(program, market, [household])
    table = AddressLookupTableAccount(Pubkey.new_unique(), held)
    for policy in (SendPolicy(compute_budget=False), SendPolicy(priority_fee_micro_lamports=1)):
        legacy = transaction_size(ixs, [signer], policy)
        v0 = transaction_size(ixs, [signer], policy, [table])
        # Each held key becomes a one-byte index; the table adds its key, two index-list
        # lengths, and v0 its version byte and the count of tables.
        assert legacy - v0 == 31 * len(held) - (32 + 2 + 2)


async def test_an_attestation_looks_its_accounts_up_in_a_table(harness: Harness) -> None:
    h = harness
    program = h.client.program
    market = await open_market(h, config=FAST_EXPORT)
    policy = h.chain.policy
    now = await market.now()
    # The most readings of distinct households one transaction carries: with a table holding
    # their accounts, and without.
    households = [Pubkey.new_unique() for _ in range(12)]
    pairs = [(Meter(market.address).read(now), household) for household in households]
    held = AddressLookupTableAccount(
        Pubkey.new_unique(), attest_accounts(program, market.address, households)
    )

    def most(tables: list[AddressLookupTableAccount]) -> int:
        def fits(n: int) -> bool:
            ixs = program.attest_readings(
                oracle=market.oracle.pubkey(), market=market.address, readings=pairs[:n]
            )
            return fits_in_packet(ixs, [market.oracle], policy, tables)

        return max(n for n in range(1, len(pairs) + 1) if fits(n))

    count = most([held])
    assert count >= 5
    assert most([]) < count
    members = [await market.register(custodial=True) for _ in range(count)]
    addresses = attest_accounts(program, market.address, [m.address for m in members])
    table = await new_table(h, addresses)
    lookups = [table.usable(await slot_after(h, table))]
    await fund(h, market.oracle.pubkey(), 10**9)

    # Readings are dated from their meters' registration on.
    now = await market.now()
    await h.client.meter_attest(
        payer=market.oracle,
        oracle=market.oracle,
        market=market.address,
        readings=[(m.meter.read(now), m.address) for m in members],
        lookup_tables=lookups,
    )
    await market.until_exportable(members[-1], 10 * (count - 1))
    now = await market.now()
    chain, shaky = unreliable(h, lose_confirmations=1)
    outcome = await shaky.client.meter_attest(
        payer=market.oracle,
        oracle=market.oracle,
        market=market.address,
        readings=[
            (m.meter.read(now, exported_wh=10 * i), m.address) for i, m in enumerate(members)
        ],
        lookup_tables=lookups,
    )

    # Found after its confirmation was lost, not sent again.
    assert chain.submitted == [outcome.signature]
    for i, m in enumerate(members):
        assert (await market.household(m)).last_counter == 2
        assert await market.balance(m) == 10 * i


async def test_what_a_table_got_in_this_slot_is_not_looked_up_yet(litesvm: Harness) -> None:
    market = await open_market(litesvm)
    member = await market.register(custodial=True)
    program = litesvm.client.program
    table = await new_table(litesvm, attest_accounts(program, market.address, [member.address]))
    reading = member.meter.read(await market.now())
    # Back in the slot the table was extended in: LiteSVM ended it with that transaction.
    slot = table.state.meta.last_extended_slot
    assert litesvm.litesvm is not None
    litesvm.litesvm.svm.warp_to_slot(slot)

    async def attest(tables: list[AddressLookupTableAccount]) -> None:
        await litesvm.client.meter_attest(
            payer=litesvm.payer,
            oracle=market.oracle,
            market=market.address,
            readings=[(reading, member.address)],
            lookup_tables=tables,
        )

    with pytest.raises(TransactionFailed, match="InvalidAddressLookupTableIndex"):
        await attest([AddressLookupTableAccount(table.address, table.addresses)])
    # Looking up only what is usable in this slot, the accounts are named in full.
    await attest([table.usable(slot)])
    assert (await market.household(member)).last_counter == 1
