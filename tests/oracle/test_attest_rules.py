"""The batcher never sends what the chain would refuse now, and keeps what the chain refuses
anyway: held back readings (export limit, daily mint cap, ahead of the clock) and refusals,
each with the program's error, in the metrics and the readings route."""

from __future__ import annotations

import time
from typing import Any

import pytest

from nishati_client.market import MarketUpdate
from nishati_client.readings import MAX_CLOCK_SKEW_SECS, Reading, sign
from nishati_dev.sandbox import Member
from nishati_oracle.readings.batcher import Attester
from nishati_oracle.readings.rules import SECS_PER_DAY, MeterOnChain
from nishati_oracle.readings.store import Due, StoredReading
from tests.harness.oracle import OracleWorld


def metric(world: OracleWorld, name: str, labels: dict[str, str]) -> float:
    return world.services.metrics.registry.get_sample_value(name, labels) or 0.0


async def readings_of(world: OracleWorld, member: Member) -> dict[str, Any]:
    response = await world.http.get(f"/api/v1/meters/{member.meter.public_key}/readings")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def baselined(world: OracleWorld, *members: Member) -> int:
    """Each member's baseline attested; the chain's time then."""
    now = await world.market.now()
    for m in members:
        assert (await world.post(m.meter.read(now))).json()["accepted"] == 1
    assert await world.services.attester.run_once() == len(members)
    return now


async def update_market(world: OracleWorld, **changes: int) -> None:
    await world.market.h.client.market_update(
        payer=world.market.h.payer,
        admin=world.market.admin,
        market=world.market.address,
        update=MarketUpdate(**changes),  # type: ignore[arg-type]
    )


async def test_a_second_reading_waits_for_chain_time_and_the_latest_is_attested(
    world: OracleWorld,
) -> None:
    """Readings accepted against the chain as it was (before the baseline landed) may need
    more chain time once it has: held back, shown, then attested as one latest reading."""
    world.settings.readings.attest_threshold_wh = 0
    member = await world.member()
    now = await world.elapse(600)
    # Accepted while the chain has no baseline: the first is to be the baseline, the two
    # after it carry 1,000 Wh, which at 10 kW needs 360 s after the baseline's attestation.
    for offset, wh in ((0, 0), (150, 250), (300, 750)):
        assert (await world.post(member.meter.read(now + offset, wh))).json()["accepted"] == 1
    attester = world.services.attester
    assert await attester.run_once() == 1  # the baseline alone
    assert await attester.run_once() == 0
    hold = attester.holds[str(member.meter.public_key)]
    assert hold.reason == "ExportAboveMeterLimit"
    assert hold.until == now + 360
    assert metric(world, "nishati_attest_held", {"reason": "ExportAboveMeterLimit"}) == 1
    shown = await readings_of(world, member)
    assert shown["held"]["reason"] == "ExportAboveMeterLimit"
    assert [(r["counter"], r["status"]) for r in shown["readings"]] == [
        (3, "pending"),
        (2, "pending"),
        (1, "attested"),
    ]
    await world.elapse(359)
    assert await attester.run_once() == 0
    await world.elapse(1)
    assert await attester.run_once() == 1
    household = await world.market.household(member)
    assert household.last_counter == 3  # the latest only: one reading of a meter a transaction
    assert await world.market.balance(member) == 1_000
    assert metric(world, "nishati_attest_held", {"reason": "ExportAboveMeterLimit"}) == 0
    shown = await readings_of(world, member)
    assert shown["held"] is None
    assert {r["status"] for r in shown["readings"]} == {"attested"}


async def test_the_daily_cap_holds_readings_until_it_is_raised_or_the_day_turns(
    world: OracleWorld,
) -> None:
    world.settings.readings.attest_threshold_wh = 0
    members = [await world.member() for _ in range(3)]
    await baselined(world, *members)
    await update_market(world, daily_mint_cap_wh=1_000)
    now = await world.elapse(180)  # 500 Wh each at 10 kW
    for m in members:
        assert (await world.post(m.meter.read(now, 500))).json()["accepted"] == 1
    attester = world.services.attester
    # Two fit the day's cap; the third waits, and is not sent to fail.
    assert await attester.run_once() == 2
    (waiting,) = [m for m in members if str(m.meter.public_key) in attester.holds]
    assert attester.holds[str(waiting.meter.public_key)].reason == "MintCeilingReached"
    assert metric(world, "nishati_attest_held", {"reason": "MintCeilingReached"}) == 1
    assert metric(world, "nishati_attest_batches_total", {"result": "failed"}) == 0
    assert await attester.run_once() == 0
    await update_market(world, daily_mint_cap_wh=1_500)
    assert await attester.run_once() == 1
    assert [await world.market.balance(m) for m in members] == [500, 500, 500]

    # The day's cap is spent: nothing more today. The next day the count starts again.
    now = await world.elapse(216)  # 600 Wh each
    for m in members:
        assert (await world.post(m.meter.read(now, 600))).json()["accepted"] == 1
    assert await attester.run_once() == 0
    assert metric(world, "nishati_attest_held", {"reason": "MintCeilingReached"}) == 3
    await world.elapse(SECS_PER_DAY - now % SECS_PER_DAY)
    assert await attester.run_once() == 2
    assert await attester.run_once() == 0
    balances = sorted([await world.market.balance(m) for m in members])
    assert balances == [500, 1_100, 1_100]
    assert metric(world, "nishati_attest_batches_total", {"result": "failed"}) == 0


async def test_a_reading_ahead_of_the_chain_is_held_not_sent(world: OracleWorld) -> None:
    member = await world.member()
    now = await world.market.now()
    attester: Attester = world.services.attester
    ahead = now + MAX_CLOCK_SKEW_SECS + 60
    reading = Reading.for_market(world.market.address, 1, ahead, 0, 0)
    signed = sign(reading, member.meter.key)
    stored = StoredReading(
        str(member.meter.public_key), 1, ahead, 0, 0, signed.message, signed.signature, 0.0
    )
    due = Due(str(member.meter.public_key), str(member.address), stored)
    assert await attester.screen([due]) == []
    hold = attester.holds[str(member.meter.public_key)]
    assert (hold.reason, hold.until) == ("ReadingFromTheFuture", now + 60)


async def test_a_reading_the_chain_refuses_for_now_is_kept_and_tried_again_later(
    world: OracleWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The oracle's view of the chain was wrong (here, made so): the chain refuses the reading
    as above the export limit. It is kept, named, counted, waits, and lands once it can."""
    world.settings.readings.attest_threshold_wh = 0
    member = await world.member()
    await baselined(world, member)
    now = await world.elapse(36)  # 100 Wh at 10 kW
    assert (await world.post(member.meter.read(now, 200))).json()["accepted"] == 0
    member.meter.counter -= 1
    member.meter.exported_wh -= 200
    assert (await world.post(member.meter.read(now, 100))).json()["accepted"] == 1
    registry = world.services.pipeline.registry
    known = registry.on_chain(member.meter.public_key)
    assert known is not None
    # As if the oracle believed the last attestation an hour earlier than it was.
    registry._chain[member.meter.public_key] = MeterOnChain(
        known.meter_since, known.attested_at - 3_600, known.counter, known.exported_wh
    )
    assert (await world.post(member.meter.read(now + 60, 100))).json()["accepted"] == 1
    attester = world.services.attester
    assert await attester.run_once() == 0
    key = str(member.meter.public_key)
    assert attester.holds[key].reason == "ExportAboveMeterLimit"
    assert metric(world, "nishati_attest_refused_total", {"reason": "ExportAboveMeterLimit"}) == 1
    shown = await readings_of(world, member)
    assert shown["readings"][0]["status"] == "pending"
    assert shown["readings"][0]["reason"] == "ExportAboveMeterLimit"
    # The chain's view was read back: the round's checks now see why, and wait for it.
    await world.elapse(36)
    assert await attester.run_once() == 0  # within the wait after a refusal
    monkeypatch.setattr(attester, "clock", lambda: time.time() + 61)
    assert await attester.run_once() == 1
    assert await world.market.balance(member) == 200
    shown = await readings_of(world, member)
    assert [(r["status"], r["reason"]) for r in shown["readings"][:2]] == [
        ("attested", None),
        ("attested", None),
    ]


async def test_a_reading_the_chain_refuses_for_good_is_closed_with_its_reason(
    world: OracleWorld,
) -> None:
    """Another attestation landed meanwhile (here, straight to the chain) with a later time:
    the oracle's stored reading is out of order there. Closed, with every unattested reading
    before it, kept with the program's error, counted."""
    member = await world.member()
    now = await world.elapse(60)
    member.meter.counter = 9
    assert (await world.post(member.meter.read(now))).json()["accepted"] == 1
    direct = sign(Reading.for_market(world.market.address, 2, now + 100, 0, 0), member.meter.key)
    await world.market.attest((member, direct))
    attester = world.services.attester
    assert await attester.run_once() == 0
    assert metric(world, "nishati_attest_refused_total", {"reason": "ReadingOutOfOrder"}) == 1
    assert await world.services.store.unattested_count() == 0
    shown = await readings_of(world, member)
    (reading,) = shown["readings"]
    assert (reading["counter"], reading["status"], reading["reason"]) == (
        10,
        "refused",
        "ReadingOutOfOrder",
    )
    assert await attester.run_once() == 0


async def test_the_readings_route_refuses_a_malformed_meter(world: OracleWorld) -> None:
    response = await world.http.get("/api/v1/meters/not-a-key/readings")
    assert response.status_code == 400
    assert response.json()["reason"] == "MalformedSubmission"
