"""The batcher: due readings reach the chain exactly once, in as few transactions as fit, each
looking up one of the market's lookup tables."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from solders.address_lookup_table_account import (
    LOOKUP_TABLE_MAX_ADDRESSES,
    AddressLookupTableAccount,
    derive_lookup_table_address,
)
from solders.pubkey import Pubkey

from nishati_client.chain import PACKET_DATA_SIZE, transaction_size
from nishati_client.errors import TransactionFailed
from nishati_client.lookup import LookupTable, attest_accounts, fetch_lookup_table
from nishati_client.program import NishatiClient
from nishati_client.readings import (
    ED25519_OFFSETS_LEN,
    READING_LEN,
    SIGNATURE_LEN,
    SIGNED_READING_LEN,
    SignedReading,
)
from nishati_dev.sandbox import Harness, Member
from nishati_oracle.app import create_app
from nishati_oracle.readings.batcher import Attester
from tests.harness.oracle import OracleWorld


@dataclass
class Sent:
    """One ``meter_attest`` the batcher sent: its readings and the tables it looked up."""

    households: list[Pubkey]
    lookup_tables: list[AddressLookupTableAccount]


def recorded(monkeypatch: pytest.MonkeyPatch) -> list[Sent]:
    """Every attestation sent from now on, as it is sent."""
    sent: list[Sent] = []
    real = NishatiClient.meter_attest

    async def recording(self: NishatiClient, **kwargs: object) -> object:
        readings: Sequence[tuple[SignedReading, Pubkey]] = kwargs["readings"]  # type: ignore[assignment]
        tables: Sequence[AddressLookupTableAccount] = kwargs.get("lookup_tables", ())  # type: ignore[assignment]
        sent.append(Sent([h for _, h in readings], list(tables)))
        return await real(self, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(NishatiClient, "meter_attest", recording)
    return sent


def tables_of(attester: Attester) -> dict[Pubkey, LookupTable]:
    """The lookup tables the attester keeps under its lease (it took one at startup)."""
    assert attester.tables is not None
    return attester.tables.tables


def readings_per_transaction(attester: Attester, household: Pubkey) -> int:
    """How many readings one transaction looking up a table that holds every account carries,
    from the reading format's sizes: each reading adds its Ed25519 entry (offsets, signature,
    key, message) and two accounts, each an index in the instruction and one in the table's."""
    per_reading = ED25519_OFFSETS_LEN + SIGNED_READING_LEN + 2 * 2
    reading = SignedReading(bytes(READING_LEN), bytes(SIGNATURE_LEN), Pubkey.default())
    ixs = attester.client.program.attest_readings(
        oracle=attester.oracle.pubkey(), market=attester.market, readings=[(reading, household)]
    )
    held = attest_accounts(attester.client.program, attester.market, [household])
    table = AddressLookupTableAccount(Pubkey.new_unique(), held)
    one = transaction_size(ixs, [attester.oracle], attester.policy, [table])
    return 1 + (PACKET_DATA_SIZE - one) // per_reading


async def post_round(world: OracleWorld, members: Sequence[Member], exported_wh: int) -> None:
    """Each member's next reading, dated 60 s of chain time after the round before: at
    10 kW, time enough to mint 166 Wh."""
    now = await world.elapse(60)
    readings = [m.meter.read(now, exported_wh) for m in members]
    assert (await world.post(*readings)).json()["accepted"] == len(members)


async def test_due_readings_are_attested_once(world: OracleWorld) -> None:
    members = [await world.member() for _ in range(4)]
    now = await world.market.now()
    for m in members:
        assert (await world.post(m.meter.read(now))).json()["accepted"] == 1
        assert (await world.post(m.meter.read(now + 30, exported_wh=100))).json()["accepted"] == 1
    attester = world.services.attester

    # A meter new to the chain starts from the first reading the oracle took: its baseline.
    assert await attester.run_once() == 4
    for m in members:
        assert (await world.market.household(m)).last_counter == 1
        assert await world.market.balance(m) == 0
    world.settings.readings.attest_threshold_wh = 0
    # The baseline's attestation is where the export limit counts from: 100 Wh at 10 kW
    # needs 36 s of chain time after it.
    assert await attester.run_once() == 0
    assert {h.reason for h in attester.holds.values()} == {"ExportAboveMeterLimit"}
    await world.elapse(36)
    assert await attester.run_once() == 4
    for m in members:
        assert (await world.market.household(m)).last_counter == 2
        assert await world.market.balance(m) == 100
    assert await world.services.store.unattested_count() == 0
    assert await attester.run_once() == 0


async def test_with_a_table_readings_land_in_as_few_transactions_as_fit(
    world: OracleWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.settings.readings.attest_threshold_wh = 0
    attester = world.services.attester
    per_tx = readings_per_transaction(attester, Pubkey.new_unique())
    assert per_tx >= 5
    members = [await world.member() for _ in range(2 * per_tx + 1)]
    await post_round(world, members, 0)
    sent = recorded(monkeypatch)

    # No table holds the households yet: their accounts are named in full, then added.
    assert await attester.run_once() == len(members)
    assert all(len(s.households) < per_tx for s in sent)
    (table,) = tables_of(attester).values()
    market_accounts = attest_accounts(attester.client.program, world.market.address)
    assert table.addresses == attest_accounts(
        attester.client.program, world.market.address, [m.address for m in members]
    )
    ((address, slot),) = (
        await world.services.store.lookup_tables(str(world.market.address))
    ).items()
    oracle = world.market.oracle.pubkey()
    assert (address, table.address) == (
        str(table.address),
        derive_lookup_table_address(oracle, slot)[0],
    )

    sent.clear()
    await post_round(world, members, 10)
    assert await attester.run_once() == len(members)

    assert len(sent) == math.ceil(len(members) / per_tx)
    assert [len(s.households) for s in sent] == [per_tx, per_tx, 1]
    for s in sent:
        (looked_up,) = s.lookup_tables
        assert looked_up.key == table.address
        assert set(market_accounts) | set(s.households) <= set(looked_up.addresses)
    for m in members:
        assert await world.market.balance(m) == 10
    assert await world.services.store.unattested_count() == 0


async def test_the_threshold_and_the_age_decide_when(world: OracleWorld) -> None:
    world.settings.readings.attest_threshold_wh = 500
    member = await world.member()
    now = await world.market.now()
    await world.post(member.meter.read(now))
    attester = world.services.attester
    assert await attester.run_once() == 1  # a meter's first reading: its baseline
    now = await world.elapse(300)
    await world.post(member.meter.read(now, exported_wh=300))
    assert await attester.run_once() == 0  # 300 Wh < 500 Wh and not old yet
    now = await world.elapse(100)
    await world.post(member.meter.read(now, exported_wh=300))
    assert await attester.run_once() == 1
    assert await world.market.balance(member) == 600
    now = await world.elapse(10)
    await world.post(member.meter.read(now, exported_wh=5))
    await attester.request(member.meter.public_key)
    assert await attester.run_once() == 1
    assert await world.market.balance(member) == 605
    world.settings.readings.attest_max_age_secs = 0
    now = await world.elapse(10)
    await world.post(member.meter.read(now, exported_wh=1))
    assert await attester.run_once() == 1


async def test_due_meters_come_oldest_first_each_with_the_reading_to_attest(
    world: OracleWorld,
) -> None:
    members = [await world.member() for _ in range(3)]
    keys = [str(m.meter.public_key) for m in members]
    now = await world.market.now()
    for member in reversed(members):
        await world.post(member.meter.read(now))
        await world.post(member.meter.read(now + 30, exported_wh=5))
    store = world.services.store
    never_attested = await store.due(10**9, 0.0, 2)
    # Oldest first, up to the limit; a meter the chain has never seen from its first reading.
    assert [(d.meter, d.reading.counter) for d in never_attested] == [(keys[2], 1), (keys[1], 1)]
    assert await world.services.attester.run_once() == 3
    assert await store.due(10**9, 0.0, 10) == []
    now = await world.elapse(60)  # chain time to mint in after the baselines
    await world.post(members[0].meter.read(now, exported_wh=4))
    await world.post(members[0].meter.read(now + 30, exported_wh=6))
    assert await store.due(10**9, 0.0, 10) == []  # under the threshold, not old, not asked
    for due in (
        await store.due(15, 0.0, 10),  # 5 + 4 + 6 Wh unattested reach 15
        await store.due(10**9, 0.0, 10, {keys[0]}),  # its household is selling
    ):
        assert [(d.meter, d.reading.counter) for d in due] == [(keys[0], 4)]
    assert await store.due(16, 0.0, 10) == []
    # Waiting since before now: every meter, by its oldest unattested reading.
    aged = await store.due(10**9, time.time(), 10)
    assert [(d.meter, d.reading.counter) for d in aged] == [
        (keys[2], 2),
        (keys[1], 2),
        (keys[0], 4),
    ]


async def test_a_lost_confirmation_never_mints_twice(
    world: OracleWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    member = await world.member()
    now = await world.market.now()
    await world.post(member.meter.read(now))
    attester = world.services.attester
    await attester.run_once()
    now = await world.elapse(180)  # 500 Wh at 10 kW
    await world.post(member.meter.read(now, exported_wh=500))

    real = NishatiClient.meter_attest

    async def lands_then_loses_the_answer(self: NishatiClient, **kwargs: object) -> object:
        assert kwargs["lookup_tables"]
        await real(self, **kwargs)  # type: ignore[arg-type]
        raise TransactionFailed("confirmation lost")

    monkeypatch.setattr(NishatiClient, "meter_attest", lands_then_loses_the_answer)
    await attester.request(member.meter.public_key)
    assert await attester.run_once() == 1  # reconciled from the chain, not sent again
    monkeypatch.undo()
    assert await world.market.balance(member) == 500
    assert await world.services.store.unattested_count() == 0
    assert await attester.run_once() == 0
    assert await world.market.balance(member) == 500


async def test_a_replaced_meter_stops_being_retried(world: OracleWorld) -> None:
    member = await world.member()
    now = await world.market.now()
    await world.post(member.meter.read(now))
    await world.post(member.meter.read(now + 30, exported_wh=50))
    await world.market.set_meter(member, authority=world.market.admin)
    world.services.pipeline.registry._cache.clear()
    assert await world.services.attester.run_once() == 0
    assert await world.services.store.unattested_count() == 0
    refused = world.services.metrics.registry.get_sample_value(
        "nishati_attest_refused_total", {"reason": "MeterReplaced"}
    )
    assert refused == 1


async def test_a_household_registered_later_is_added_and_then_attested_compactly(
    world: OracleWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.settings.readings.attest_threshold_wh = 0
    attester = world.services.attester
    first = [await world.member() for _ in range(3)]
    await post_round(world, first, 0)
    await attester.run_once()
    late = await world.member()
    sent = recorded(monkeypatch)

    await post_round(world, [*first, late], 0)
    assert await attester.run_once() == 4
    # Its accounts were named in full, beside the others' looked up in the table.
    (attestation,) = sent
    (looked_up,) = attestation.lookup_tables
    assert late.address not in looked_up.addresses
    (table,) = tables_of(attester).values()
    assert table.addresses[-2:] == [late.address, late.energy_account]

    sent.clear()
    await post_round(world, [late], 25)
    assert await attester.run_once() == 1
    (attestation,) = sent
    (looked_up,) = attestation.lookup_tables
    assert {late.address, late.energy_account} <= set(looked_up.addresses)
    assert await world.market.balance(late) == 25


async def test_a_full_table_is_followed_by_a_new_one(world: OracleWorld) -> None:
    world.settings.readings.attest_threshold_wh = 0
    attester = world.services.attester
    market_accounts = len(attest_accounts(attester.client.program, world.market.address))
    per_table = (LOOKUP_TABLE_MAX_ADDRESSES - market_accounts) // 2
    members = [await world.member() for _ in range(per_table + 3)]
    await post_round(world, members, 0)

    assert await attester.run_once() == len(members)

    full, second = tables_of(attester).values()
    assert len(full.addresses) == LOOKUP_TABLE_MAX_ADDRESSES
    assert len(second.addresses) == market_accounts + 2 * 3
    assert second.addresses[-2:] == [members[-1].address, members[-1].energy_account]
    stored = await world.services.store.lookup_tables(str(world.market.address))
    assert set(stored) == {str(full.address), str(second.address)}


async def test_tables_outlive_a_restart_and_half_made_ones_are_settled(
    world: OracleWorld, litesvm: Harness, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    world.settings.readings.attest_threshold_wh = 0
    store, oracle = world.services.store, world.market.oracle.pubkey()
    market = str(world.market.address)
    members = [await world.member() for _ in range(4)]
    await post_round(world, members, 0)
    await world.services.attester.run_once()
    (table,) = tables_of(world.services.attester)
    (table_slot,) = (await store.lookup_tables(market)).values()
    # Stored before their creation was sent, then the oracle stopped: one at a slot still
    # recent, one at a slot SlotHashes no longer holds (so no create of it can land).
    recent, _ = derive_lookup_table_address(oracle, 1)
    stale, _ = derive_lookup_table_address(oracle, 99_999)
    fence = world.services.attester.lease.fence
    assert fence is not None
    await store.record_lookup_table(fence, str(recent), 1)
    await store.record_lookup_table(fence, str(stale), 99_999)
    await post_round(world, members, 40)
    await world.services.attester.lease.release()

    restarted = create_app(world.settings, chain=litesvm.litesvm)
    async with restarted.router.lifespan_context(restarted):
        sent = recorded(monkeypatch)
        attester: Attester = restarted.state.services.attester
        assert await attester.run_once() == len(members)
        assert set(tables_of(attester)) == {table, recent}
        assert await fetch_lookup_table(litesvm.chain, recent) is not None
        assert await restarted.state.services.store.lookup_tables(market) == {
            str(table): table_slot,
            str(recent): 1,
        }
        (attestation,) = sent
        assert [t.key for t in attestation.lookup_tables] == [table]
    for m in members:
        assert await world.market.balance(m) == 40
