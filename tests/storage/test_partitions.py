"""The readings' upkeep (``storage.partitions``): retention forgets attested readings past it and
never an unattested one, on both engines; on PostgreSQL the months are made ahead by any number
of replicas at once, emptied months are dropped whole, and the migration to partitions keeps
every row and the id sequence."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from sqlalchemy import func, insert, select, table, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from nishati_oracle.readings.store import Store
from nishati_oracle.storage.database import migrate
from nishati_oracle.storage.partitions import (
    DEFAULT_PARTITION,
    Month,
    forget_attested,
    make_months,
    partitions,
    upkeep,
)
from nishati_oracle.storage.schema import meters, readings

# A year of a meter's readings, a few a month, from January 2025.
FIRST = Month(2025, 1)
MONTHS = 12
PER_MONTH = 4


def reading(meter: str, counter: int, timestamp: int) -> dict[str, Any]:
    return {
        "meter": meter,
        "counter": counter,
        "timestamp": timestamp,
        "exported_wh": counter * 10,
        "imported_wh": counter,
        "message": b"m",
        "signature": b"s",
        "received_at": float(timestamp),
    }


def year_of(meter: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    month = FIRST
    for _ in range(MONTHS):
        for n in range(PER_MONTH):
            rows.append(reading(meter, len(rows) + 1, month.start + n * 86_400))
        month = month.next()
    return rows


async def store_year(engine: AsyncEngine, meter: str, attested_up_to: int) -> None:
    """A meter's year of readings, attested up to a counter (as the batcher leaves them)."""
    rows = year_of(meter)
    last = rows[-1]
    async with engine.begin() as conn:
        await conn.execute(
            insert(meters).values(
                meter=meter,
                household=meter,
                has_last=True,
                last_counter=last["counter"],
                last_timestamp=last["timestamp"],
                last_exported_wh=last["exported_wh"],
                last_imported_wh=last["imported_wh"],
            )
        )
        await conn.execute(insert(readings), rows)
        await conn.execute(
            update(readings)
            .where(readings.c.meter == meter, readings.c.counter <= attested_up_to)
            .values(attested_at=1.0, attest_signature="sig")
        )


async def counters(engine: AsyncEngine, meter: str) -> list[int]:
    query = select(readings.c.counter).where(readings.c.meter == meter).order_by("counter")
    async with engine.connect() as conn:
        return list((await conn.execute(query)).scalars())


async def test_retention_forgets_old_attested_readings_never_an_unattested_one(
    database_url: str,
) -> None:
    store = await Store.open(database_url)
    engine = store.engine
    try:
        # On PostgreSQL, the year's months made (as the upkeep would have over the year).
        await make_months(engine, FIRST.start, ahead=MONTHS)
        attested, waiting = secrets.token_hex(8), secrets.token_hex(8)
        await store_year(engine, attested, attested_up_to=MONTHS * PER_MONTH)
        # Attested through March only: from April on, its readings wait for the chain.
        await store_year(engine, waiting, attested_up_to=3 * PER_MONTH)
        july = Month(2025, 7)

        forgotten = await forget_attested(engine, july.start)

        before_july = 6 * PER_MONTH
        assert await counters(engine, attested) == list(range(before_july + 1, 49))
        assert await counters(engine, waiting) == list(range(3 * PER_MONTH + 1, 49))
        if engine.dialect.name == "postgresql":
            # January to March held attested readings only: dropped whole; April to June
            # hold unattested ones, so they stay, only their attested rows deleted.
            assert forgotten.dropped == [Month(2025, m).name for m in (1, 2, 3)]
            assert forgotten.deleted == 3 * PER_MONTH
            async with engine.connect() as conn:
                left = await partitions(conn)
            assert not {Month(2025, m).name for m in (1, 2, 3)} & left
            assert {Month(2025, m).name for m in range(4, 13)} <= left
        else:
            assert forgotten.deleted == 2 * before_july - 3 * PER_MONTH
        # Again: nothing more to forget.
        again = await forget_attested(engine, july.start)
        assert (again.dropped, again.deleted) == ([], 0)
    finally:
        await store.close()


async def test_without_a_retention_the_upkeep_forgets_nothing(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        await make_months(store.engine, FIRST.start, ahead=MONTHS)
        meter = secrets.token_hex(8)
        await store_year(store.engine, meter, attested_up_to=MONTHS * PER_MONTH)
        far_later = float(Month(2030, 1).start)
        forgotten = await upkeep(store.engine, far_later, retention_days=None)
        assert (forgotten.dropped, forgotten.deleted) == ([], 0)
        assert len(await counters(store.engine, meter)) == MONTHS * PER_MONTH
        # With one, everything attested before the retention goes.
        forgotten = await upkeep(store.engine, far_later, retention_days=90)
        assert await counters(store.engine, meter) == []
    finally:
        await store.close()


async def test_replicas_making_months_at_once_make_each_once(postgres_base: str) -> None:
    url = await fresh_database(postgres_base)
    await asyncio.to_thread(migrate, url)
    engines = [create_async_engine(url) for _ in range(4)]
    try:
        made = await asyncio.gather(*(make_months(e, Month(2031, 5).start) for e in engines))
        wanted = [Month(2031, 5).name, Month(2031, 6).name, Month(2031, 7).name]
        assert sorted(name for names in made for name in names) == wanted
        async with engines[0].connect() as conn:
            assert set(wanted) <= await partitions(conn)
        # Run again, every month is found: nothing made.
        assert await make_months(engines[0], Month(2031, 5).start) == []
    finally:
        for engine in engines:
            await engine.dispose()


async def test_a_month_the_default_partition_holds_stays_there(postgres_base: str) -> None:
    url = await fresh_database(postgres_base)
    await asyncio.to_thread(migrate, url)
    engine = create_async_engine(url)
    try:
        meter = secrets.token_hex(8)
        await store_year(engine, meter, attested_up_to=0)
        async with engine.connect() as conn:
            assert await in_default(conn) == MONTHS * PER_MONTH
        # Its rows are already in the default: the month is left to it, the rest made.
        made = await make_months(engine, Month(2025, 12).start)
        assert made == [Month(2026, 1).name, Month(2026, 2).name]
        assert len(await counters(engine, meter)) == MONTHS * PER_MONTH
    finally:
        await engine.dispose()


async def test_the_migration_to_partitions_keeps_every_row(postgres_base: str) -> None:
    url = await fresh_database(postgres_base)
    await asyncio.to_thread(migrate, url, "0015")
    engine = create_async_engine(url)
    meter = secrets.token_hex(8)
    try:
        await store_year(engine, meter, attested_up_to=10)
        async with engine.connect() as conn:
            ids_before: list[int] = list(
                (await conn.execute(select(readings.c.id).order_by("id"))).scalars()
            )
        await asyncio.to_thread(migrate, url)
        async with engine.connect() as conn:
            kind = await conn.execute(
                text("SELECT relkind::text FROM pg_class WHERE relname = 'readings'")
            )
            assert kind.scalar_one() == "p"
            names = await partitions(conn)
            ids: list[int] = list(
                (await conn.execute(select(readings.c.id).order_by("id"))).scalars()
            )
            attested = await conn.execute(
                select(func.count()).where(readings.c.attested_at.is_not(None))
            )
            assert attested.scalar_one() == 10
        assert ids == ids_before
        # Every month the rows fall in has its partition.
        assert {Month(2025, m).name for m in range(1, 13)} <= names
        async with engine.connect() as conn:
            assert await in_default(conn) == 0
        # The id sequence goes on from the copied rows.
        async with engine.begin() as conn:
            new = reading(meter, 1_000, Month(2025, 12).start + 3_600)
            await conn.execute(insert(readings).values(new))
            newest = await conn.execute(select(func.max(readings.c.id)))
            assert newest.scalar_one() == ids_before[-1] + 1
    finally:
        await engine.dispose()


async def in_default(conn: AsyncConnection) -> int:
    count = select(func.count()).select_from(table(DEFAULT_PARTITION))
    return int((await conn.execute(count)).scalar_one())


async def fresh_database(postgres_base: str) -> str:
    name = f"p{secrets.token_hex(6)}"
    admin = create_async_engine(postgres_base, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f"CREATE DATABASE {name}"))
    finally:
        await admin.dispose()
    return postgres_base.rsplit("/", 1)[0] + "/" + name
