"""Each meter's first waiting reading on its ``meters`` row (``first_waiting_*``), which the
batcher's meters due are read from: right after readings are stored, attested and closed, after
the migration's backfill, and when a replica stores readings of a meter while the attester
attests or closes some of them (PostgreSQL's row lock keeps it right); and the meters due
found from it, with the reading to attest."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
from sqlalchemy import event, insert, select, text, update
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.util import await_only

from nishati_oracle.readings.lease import AttesterLease, Fence
from nishati_oracle.readings.store import MeterState, Store, StoredReading
from nishati_oracle.storage.database import migrate
from nishati_oracle.storage.partitions import Month
from nishati_oracle.storage.schema import meters, readings
from tests.harness.oracle import new_postgres_database

MARKET = "market-of-first-waiting"
# Readings a day apart from March 2025, across months (partitions, on PostgreSQL).
START = Month(2025, 3).start
DAY = 86_400
# Each reading's export: 10 Wh a counter.
WH = 10


def reading(meter: str, counter: int) -> StoredReading:
    at = START + counter * DAY
    return StoredReading(
        meter, counter, at, counter * WH, counter, b"message", b"signature", float(at + 5)
    )


def state(meter: str, last: StoredReading | None) -> MeterState:
    """A meter's row with ``last`` as its last accepted reading, the chain having none."""
    return MeterState(
        meter=meter,
        household=f"home-{meter}",
        has_last=last is not None,
        last_counter=0 if last is None else last.counter,
        last_timestamp=0 if last is None else last.timestamp,
        last_exported_wh=0 if last is None else last.exported_wh,
        last_imported_wh=0 if last is None else last.imported_wh,
    )


async def store_readings(store: Store, meter: str, counters: range) -> None:
    """Stores a meter's readings ``counters`` (after its stored ones) as a replica's pipeline
    does: a new meter's row, or the compare-and-set of its row from the one stored."""
    batch = [reading(meter, c) for c in counters]
    was = (await store.meter_states([meter])).get(meter)
    new = state(meter, batch[-1])
    if was is None:
        await store.accept([new], batch, [], [])
    else:
        new.attested_counter, new.attested_exported_wh = (
            was.attested_counter,
            was.attested_exported_wh,
        )
        await store.accept([], batch, [new], [was])


async def first_waiting(store: Store, meter: str) -> int | None:
    """The meter row's first waiting counter, checked against the reading it names."""
    query = select(
        meters.c.first_waiting_counter,
        meters.c.first_waiting_timestamp,
        meters.c.first_waiting_received_at,
    ).where(meters.c.meter == meter)
    async with store.engine.connect() as conn:
        row = (await conn.execute(query)).one()
    counter: int | None = row.first_waiting_counter
    timestamp, received_at = row.first_waiting_timestamp, row.first_waiting_received_at
    if counter is None:
        assert (timestamp, received_at) == (None, None)
        return None
    first = reading(meter, counter)
    assert (timestamp, received_at) == (first.timestamp, first.received_at)
    return counter


async def waiting_counters(store: Store, meter: str) -> list[int]:
    query = (
        select(readings.c.counter)
        .where(readings.c.meter == meter, readings.c.attested_at.is_(None))
        .order_by(readings.c.counter)
    )
    async with store.engine.connect() as conn:
        return list((await conn.execute(query)).scalars())


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(database_url)
    try:
        yield opened
    finally:
        await opened.close()


async def attester_fence(store: Store) -> Fence:
    lease = AttesterLease(store.engine, MARKET, 60.0, 1.0, holder="attester")
    assert await lease.try_hold()
    assert lease.fence is not None
    return lease.fence


async def test_stored_readings_set_the_first_waiting_once(store: Store) -> None:
    meter, silent = secrets.token_hex(8), secrets.token_hex(8)
    await store_readings(store, meter, range(1, 4))
    assert await first_waiting(store, meter) == 1
    # More readings wait behind the first: it stays.
    await store_readings(store, meter, range(4, 6))
    assert await first_waiting(store, meter) == 1
    # A meter stored with no reading (every one refused) has none waiting.
    await store.accept([state(silent, None)], [], [], [])
    assert await first_waiting(store, silent) is None


async def test_attesting_moves_the_first_waiting_on(store: Store) -> None:
    fence = await attester_fence(store)
    meter, other = secrets.token_hex(8), secrets.token_hex(8)
    await store_readings(store, meter, range(1, 6))
    await store_readings(store, other, range(1, 3))
    await store.mark_attested(fence, [reading(meter, 2), reading(other, 2)], "sig", 1.0)
    assert await first_waiting(store, meter) == 3
    assert await first_waiting(store, other) is None
    await store.mark_attested(fence, [reading(meter, 5)], "sig", 2.0)
    assert await first_waiting(store, meter) is None
    # From nothing waiting to something waiting again.
    await store_readings(store, meter, range(6, 8))
    assert await first_waiting(store, meter) == 6
    assert await waiting_counters(store, meter) == [6, 7]


async def test_closing_moves_the_first_waiting_on(store: Store) -> None:
    fence = await attester_fence(store)
    meter = secrets.token_hex(8)
    await store_readings(store, meter, range(1, 6))
    await store.close_readings(fence, meter, "Final", 1.0, up_to_counter=3)
    assert await first_waiting(store, meter) == 4
    await store.close_readings(fence, meter, "MeterReplaced", 2.0)
    assert await first_waiting(store, meter) is None
    assert await waiting_counters(store, meter) == []


async def test_the_meters_due_come_from_the_first_waiting(store: Store) -> None:
    fence = await attester_fence(store)
    fresh, old, exporting, quiet, done = (secrets.token_hex(8) for _ in range(5))
    # Each waits from a later counter than the one before it (so a later reception), but
    # ``fresh``, which the chain has never seen; ``done`` has nothing waiting.
    stored_and_attested = {old: (3, 1), exporting: (4, 3), quiet: (5, 4), done: (3, 3)}
    await store_readings(store, fresh, range(1, 4))
    for meter, (last, attested) in stored_and_attested.items():
        await store_readings(store, meter, range(1, last + 1))
        await store.mark_attested(fence, [reading(meter, attested)], "sig", 1.0)
    # 510 Wh unattested; the others 20 or 10.
    await store_readings(store, exporting, range(5, 55))
    threshold = 100
    waited_from = reading(old, 2).received_at
    never = reading(fresh, 1).received_at - 1

    due = await store.due(threshold, waited_from, 10)
    # The longest waiting first; never attested, its first reading (its baseline), the
    # others their last.
    assert [d.reading for d in due] == [
        reading(fresh, 1),
        reading(old, 3),
        reading(exporting, 54),
    ]
    assert due[0].household == f"home-{fresh}"
    # None old enough: the one never attested and the one past the threshold; forced, the
    # quiet one too; the limit takes the longest waiting.
    assert [d.meter for d in await store.due(threshold, never, 10)] == [fresh, exporting]
    forced = await store.due(threshold, never, 10, forced={quiet, done})
    assert [d.meter for d in forced] == [fresh, exporting, quiet]
    assert [d.meter for d in await store.due(threshold, waited_from, 2)] == [fresh, old]


async def test_the_migration_fills_it_from_the_stored_readings(database_url: str) -> None:
    await asyncio.to_thread(migrate, database_url, "0018")
    engine = create_async_engine(database_url)
    waiting, attested, closed = (secrets.token_hex(8) for _ in range(3))
    try:
        async with engine.begin() as conn:
            for meter in (waiting, attested, closed):
                last = reading(meter, 4)
                row = vars(state(meter, last))
                if meter == waiting:
                    row |= {"attested_counter": 2, "attested_exported_wh": 2 * WH}
                await conn.execute(insert(meters).values(row))
                await conn.execute(insert(readings), [vars(reading(meter, c)) for c in range(1, 5)])
            await conn.execute(
                update(readings)
                .where(readings.c.meter == waiting, readings.c.counter <= 2)
                .values(attested_at=1.0, attest_signature="sig")
            )
            await conn.execute(
                update(readings)
                .where(readings.c.meter == attested)
                .values(attested_at=1.0, attest_signature="sig")
            )
            await conn.execute(
                update(readings)
                .where(readings.c.meter == closed)
                .values(attested_at=1.0, refused="MeterReplaced")
            )
    finally:
        await engine.dispose()
    store = await Store.open(database_url)
    try:
        assert await first_waiting(store, waiting) == 3
        assert await first_waiting(store, attested) is None
        assert await first_waiting(store, closed) is None
        assert [d.reading for d in await store.due(0, 0.0, 10)] == [reading(waiting, 4)]
    finally:
        await store.close()


Settle = Callable[[Store, Fence, str], Coroutine[Any, Any, None]]


async def attest_to_3(store: Store, fence: Fence, meter: str) -> None:
    await store.mark_attested(fence, [reading(meter, 3)], "sig", 1.0)


async def close_to_3(store: Store, fence: Fence, meter: str) -> None:
    await store.close_readings(fence, meter, "Final", 1.0, up_to_counter=3)


@pytest.mark.parametrize("settle", [attest_to_3, close_to_3], ids=["attest", "close"])
async def test_a_replica_storing_while_the_attester_settles_leaves_it_right(
    postgres_base: str, settle: Settle
) -> None:
    """A replica stores reading 4 of a meter whose 1 to 3 wait (so it sets nothing) and, before
    its commit, the attester attests or closes 1 to 3 and runs until it finishes or waits for
    a lock. With the attester's row lock it waits, then sees 4: the first waiting is 4.
    Without it, it saw nothing after 3 and would leave none waiting, 4 never due."""
    url = new_postgres_database(postgres_base)
    attester = await Store.open(url)
    replica = await Store.open(url)
    observer = create_async_engine(url)
    meter = secrets.token_hex(8)
    try:
        fence = await attester_fence(attester)
        await store_readings(attester, meter, range(1, 4))
        settling: list[asyncio.Task[None]] = []

        async def attester_settles_meanwhile() -> None:
            task = asyncio.create_task(settle(attester, fence, meter))
            settling.append(task)
            waiting_for_lock = text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            while not task.done():
                async with observer.connect() as conn:
                    if (await conn.execute(waiting_for_lock)).scalar_one():
                        break
                await asyncio.sleep(0.01)

        def before_commit(_: Any) -> None:
            await_only(attester_settles_meanwhile())

        event.listen(replica.engine.sync_engine, "commit", before_commit, once=True)
        await store_readings(replica, meter, range(4, 5))
        await settling[0]
        assert await waiting_counters(attester, meter) == [4]
        assert await first_waiting(attester, meter) == 4
        assert [d.reading for d in await attester.due(0, 0.0, 10)] == [reading(meter, 4)]
    finally:
        await observer.dispose()
        await replica.close()
        await attester.close()
