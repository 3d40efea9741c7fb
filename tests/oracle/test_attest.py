"""The batcher: due readings reach the chain exactly once, in as few transactions as fit."""

from __future__ import annotations

import pytest
from solders.pubkey import Pubkey

from nishati_client.errors import TransactionFailed
from nishati_client.program import NishatiClient
from tests.oracle.world import OracleWorld


async def test_due_readings_are_attested_once(world: OracleWorld) -> None:
    members = [await world.member() for _ in range(4)]
    now = await world.market.now()
    for m in members:
        assert (await world.post(m.meter.read(now))).json()["accepted"] == 1
        assert (await world.post(m.meter.read(now + 30, exported_wh=100))).json()["accepted"] == 1
    attester = world.services.attester
    groups = attester.pack(await world.services.store.due(0, 0, 100))
    assert [len(g) for g in groups] == [3, 1]

    # A meter new to the chain starts from the first reading the oracle took: its baseline.
    assert await attester.run_once() == 4
    for m in members:
        assert (await world.market.household(m)).last_counter == 1
        assert await world.market.balance(m) == 0
    world.settings.attest_threshold_wh = 0
    assert await attester.run_once() == 4
    for m in members:
        assert (await world.market.household(m)).last_counter == 2
        assert await world.market.balance(m) == 100
    assert await world.services.store.unattested_count() == 0
    assert await attester.run_once() == 0


async def test_the_threshold_and_the_age_decide_when(world: OracleWorld) -> None:
    world.settings.attest_threshold_wh = 500
    member = await world.member()
    now = await world.market.now()
    await world.post(member.meter.read(now))
    attester = world.services.attester
    assert await attester.run_once() == 1  # a meter's first reading: its baseline
    await world.post(member.meter.read(now + 100, exported_wh=300))
    assert await attester.run_once() == 0  # 300 Wh < 500 Wh and not old yet
    await world.post(member.meter.read(now + 200, exported_wh=300))
    assert await attester.run_once() == 1
    assert await world.market.balance(member) == 600
    await world.post(member.meter.read(now + 290, exported_wh=5))
    attester.request(member.meter.public_key)
    assert await attester.run_once() == 1
    assert await world.market.balance(member) == 605
    world.settings.attest_max_age_secs = 0
    await world.post(member.meter.read(now + 295, exported_wh=1))
    assert await attester.run_once() == 1


async def test_a_lost_confirmation_never_mints_twice(
    world: OracleWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    member = await world.member()
    now = await world.market.now()
    await world.post(member.meter.read(now))
    attester = world.services.attester
    await attester.run_once()
    await world.post(member.meter.read(now + 100, exported_wh=500))

    real = NishatiClient.meter_attest

    async def lands_then_loses_the_answer(self: NishatiClient, **kwargs: object) -> object:
        await real(self, **kwargs)  # type: ignore[arg-type]
        raise TransactionFailed("confirmation lost")

    monkeypatch.setattr(NishatiClient, "meter_attest", lands_then_loses_the_answer)
    attester.request(member.meter.public_key)
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
    household = await world.market.household(member)
    await world.market.h.client.household_set_meter(
        payer=world.market.h.payer,
        authority=world.market.admin,
        household=household,
        meter=Pubkey.new_unique(),
    )
    world.services.pipeline.registry._cache.clear()
    assert await world.services.attester.run_once() == 0
    assert await world.services.store.unattested_count() == 0
