"""Two oracle replicas' pipelines on one database (SQLite and PostgreSQL), each with its own
store and its own memory of the meters: the database decides each meter's counter, so a
counter is accepted once and no stored counter goes back, whichever replica a reading reaches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from nishati_client.readings import Reading, SignedReading
from nishati_oracle.core.metrics import Metrics
from nishati_oracle.readings.ingest import Status, Submission
from nishati_oracle.readings.pipeline import ReadingPipeline
from nishati_oracle.readings.store import Store
from nishati_oracle.storage.schema import meters, readings
from tests.harness.oracle import OracleWorld


def submission(signed: SignedReading) -> Submission:
    return Submission(signed.message, signed.signature, signed.meter)


def counter(signed: SignedReading) -> int:
    return Reading.decode(signed.message).counter


@pytest.fixture
async def second(world: OracleWorld) -> AsyncIterator[ReadingPipeline]:
    """Another replica's pipeline: its own engine (and SQLite writer) on the same database."""
    first = world.services.pipeline
    store = await Store.open(world.settings.storage.database_url)
    try:
        yield ReadingPipeline(
            world.settings,
            first.market,
            store,
            first.registry,
            Metrics(),
            first.chain_clock,
        )
    finally:
        await store.close()


async def stored_counters(world: OracleWorld, meter: str) -> list[int]:
    """A meter's stored counters in the order they were stored."""
    query = select(readings.c.counter).where(readings.c.meter == meter).order_by(readings.c.id)
    async with world.services.store.engine.connect() as conn:
        return [row.counter for row in await conn.execute(query)]


async def last_counter(world: OracleWorld, meter: str) -> int:
    query = select(meters.c.last_counter).where(meters.c.meter == meter)
    async with world.services.store.engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def test_a_replica_behind_on_a_meter_never_stores_an_older_counter(
    world: OracleWorld, second: ReadingPipeline
) -> None:
    first = world.services.pipeline
    member = await world.member()
    now = await world.market.now()
    one, two, three = (member.meter.read(now + 60 * i) for i in range(3))
    [accepted] = await first.submit([submission(one)])
    # The second replica learns the meter too (a duplicate of the first reading).
    [again] = await second.submit([submission(one)])
    assert (accepted.status, again.status) == (Status.accepted, Status.duplicate)
    # The first replica moves the meter on to counter 3; the second still remembers counter 1.
    [third] = await first.submit([submission(three)])
    assert third.status is Status.accepted
    [late] = await second.submit([submission(two)])
    assert late.status is Status.rejected
    key = str(member.meter.public_key)
    assert await stored_counters(world, key) == [counter(one), counter(three)]
    assert await last_counter(world, key) == counter(three)
    # And the second replica now knows where the meter is: the third reading is a duplicate.
    [seen] = await second.submit([submission(three)])
    assert seen.status is Status.duplicate


async def test_two_replicas_racing_one_meter_accept_each_counter_once(
    world: OracleWorld, second: ReadingPipeline
) -> None:
    first = world.services.pipeline
    member = await world.member()
    now = await world.market.now()
    signed = [member.meter.read(now + 20 * i) for i in range(12)]
    # Each reading reaches both replicas at once (MQTT redelivered, a client retrying
    # elsewhere), in order.
    outcomes = []
    for reading in signed:
        outcomes.append(
            await asyncio.gather(
                first.submit([submission(reading)]), second.submit([submission(reading)])
            )
        )
    for (a,), (b,) in outcomes:
        assert sorted([a.status, b.status]) == sorted([Status.accepted, Status.duplicate]), (a, b)
    key = str(member.meter.public_key)
    counters = [counter(s) for s in signed]
    assert await stored_counters(world, key) == counters
    assert await last_counter(world, key) == counters[-1]


async def test_two_replicas_racing_one_meter_out_of_order_store_no_regression(
    world: OracleWorld, second: ReadingPipeline
) -> None:
    first = world.services.pipeline
    member = await world.member()
    now = await world.market.now()
    signed = [member.meter.read(now + 20 * i) for i in range(10)]
    # Odd readings to one replica, even ones to the other, all at once: whichever order the
    # database takes them in, what it stores only goes up.
    await asyncio.gather(
        *(
            (first if i % 2 else second).submit([submission(reading)])
            for i, reading in enumerate(signed)
        )
    )
    key = str(member.meter.public_key)
    stored = await stored_counters(world, key)
    assert stored == sorted(set(stored))
    assert await last_counter(world, key) == stored[-1]
