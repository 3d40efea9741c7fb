"""The readings' queries stay index-served on PostgreSQL's partitioned table: a year of readings
of some meters across twelve monthly partitions, analysed, and the exact statements the batcher,
the web app's household pages and the forecasts issue, each explained: no sequential scan of a
readings partition, and a day's readings (and each meter due's reading) read from its month's
partition only.

A year of 10,000 meters (about a billion rows) cannot be stored in test time; this shape (a few
hundred thousand rows, tens of thousands a partition) already makes a sequential scan the worse
plan for every statement, and the real table only more so. ``bench/readings_growth.py`` times
them on a larger set."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from nishati_oracle.forecast.store import ForecastStore
from nishati_oracle.households.reads import HouseholdReads
from nishati_oracle.readings.lease import AttesterLease
from nishati_oracle.readings.store import Store
from nishati_oracle.storage.partitions import Month, make_months
from tests.storage.test_partitions import fresh_database

METERS = 100
FIRST = Month(2025, 1)
MONTHS = 12
PER_MONTH = 250
# The newest readings of each meter wait for the chain, as they do between batches.
WAITING = 3
DAY = date(2025, 6, 15)


def year_of_readings(meters: int, per_month: int) -> list[str]:
    """The statements storing a year (from ``FIRST``) of ``per_month`` readings a month of each
    of ``meters`` meters (``meter1``..., of households ``home1``...), every month's evenly
    spaced; all attested but each meter's last ``WAITING`` (the first of them on its ``meters``
    row, as the store keeps it)."""
    total = MONTHS * per_month
    attested = total - WAITING
    step = (28 * 86_400) // per_month
    load = f"""
INSERT INTO meters (meter, household, has_last, last_counter, last_timestamp, last_exported_wh,
                    last_imported_wh, attested_counter, attested_exported_wh)
SELECT 'meter' || m, 'home' || m, true, {total}, 0, {total * 10},
       {total}, {attested}, {attested * 10}
FROM generate_series(1, {meters}) AS m;
INSERT INTO readings (meter, counter, timestamp, exported_wh, imported_wh, message, signature,
                      received_at, attested_at, attest_signature)
SELECT 'meter' || m, c, t, c * 10, c, decode(repeat('ab', 101), 'hex'),
       decode(repeat('cd', 64), 'hex'), t + 1.0,
       CASE WHEN c <= {attested} THEN t + 60.0 END,
       CASE WHEN c <= {attested} THEN 'sig' END
FROM generate_series(1, {meters}) AS m,
     generate_series(1, {total}) AS c,
     LATERAL (SELECT extract(epoch FROM make_timestamptz(
         {FIRST.year}, 1 + (c - 1) / {per_month}, 1, 0, 0, 0, 'UTC'))::bigint
         + ((c - 1) % {per_month}) * {step} AS t) AS at;
UPDATE meters SET last_timestamp = (
    SELECT max(timestamp) FROM readings WHERE readings.meter = meters.meter);
UPDATE meters SET first_waiting_counter = w.counter, first_waiting_timestamp = w.timestamp,
                  first_waiting_received_at = w.received_at
FROM readings AS w WHERE w.meter = meters.meter AND w.counter = {attested + 1};
"""  # noqa: S608 (only integers go in)
    return [statement for statement in load.split(";\n") if statement.strip()]


def months_loaded() -> list[Month]:
    months = [FIRST]
    while len(months) < MONTHS:
        months.append(months[-1].next())
    return months


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


async def test_the_batchers_and_web_apps_queries_are_index_served(postgres_base: str) -> None:
    url = await fresh_database(postgres_base)
    store = await Store.open(url)
    engine = store.engine
    try:
        await make_months(engine, FIRST.start, ahead=MONTHS)
        async with engine.begin() as conn:
            for statement in year_of_readings(METERS, PER_MONTH):
                await conn.execute(text(statement))
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE readings"))
            await conn.execute(text("VACUUM ANALYZE meters"))

        loaded = {month.name for month in months_loaded()}
        issued = await statements_issued(engine, store)
        assert len(issued) >= 8
        days_read = sought = 0
        async with engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            for statement, parameters in issued:
                explained = await raw.fetchval(f"EXPLAIN (FORMAT JSON) {statement}", *parameters)
                # SQLAlchemy's asyncpg connection decodes json as it comes.
                plan = explained[0]["Plan"]
                scanned = [
                    (node["Node Type"], node["Relation Name"])
                    for node in nodes(plan)
                    if node.get("Relation Name", "").startswith("readings")
                ]
                assert scanned, statement
                # The months made ahead are empty: scanning one costs nothing, whatever the way.
                sequential = [n for kind, n in scanned if kind == "Seq Scan" and n in loaded]
                assert not sequential, (statement, sequential)
                if "timestamp >=" in statement and "timestamp <" in statement:
                    # The day's rows: its month's partition only.
                    assert {name for _, name in scanned} == {Month(2025, 6).name}, scanned
                    days_read += 1
                if "JOIN LATERAL" in statement:
                    # Meters due: each meter's reading sought in the one month holding it
                    # (every meter's waits in December), the other months never run.
                    analysed = await raw.fetchval(
                        f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", *parameters
                    )
                    run = {
                        node["Relation Name"]
                        for node in nodes(analysed[0]["Plan"])
                        if node.get("Relation Name", "").startswith("readings")
                        and node["Actual Loops"] > 0
                    }
                    assert run == {Month(2025, 12).name}, run
                    sought += 1
        assert days_read == 1
        assert sought == 1
    finally:
        await store.close()


async def statements_issued(engine: AsyncEngine, store: Store) -> list[tuple[str, tuple[Any, ...]]]:
    """The statements on ``readings`` that the batcher, the attester, the household pages and
    the forecasts send, as sent (text and parameters)."""
    issued: list[tuple[str, tuple[Any, ...]]] = []

    def record(*args: Any) -> None:
        statement, parameters = args[2], args[3]
        if "readings" in statement:
            issued.append((statement, tuple(parameters or ())))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        # The batcher: meters due, its queue's depth; the readings route; a stored reading.
        due = await store.due(1_000, float(Month(2026, 1).start), 500)
        assert len(due) == METERS
        await store.unattested_count()
        assert len(await store.readings_of("meter7", 50)) == 50
        await store.readings_of("meter7", 50, before=1_000)
        assert await store.stored("meter7", 1_234) is not None
        # A household's day and its meters' health.
        reads = HouseholdReads(engine)
        day = await reads.day("home7", DAY)
        assert day.intervals
        health = await reads.meter_health("home7")
        assert health[0].unattested == WAITING
        # The forecasts' readings since their last round, within their window.
        since = Month(2025, 11).start
        assert await ForecastStore(engine).readings_after(0, since, batch=1_000)
        # The attester recording a meter's first waiting reading attested, and closing the
        # next: each moves the meter's first waiting reading on.
        lease = AttesterLease(engine, "market", 60.0, 1.0, holder="attester")
        assert await lease.try_hold()
        assert lease.fence is not None
        first = due[0].reading
        await store.mark_attested(lease.fence, [first], "sig", 1.0)
        await store.close_readings(lease.fence, first.meter, "Final", 2.0, first.counter + 1)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    return issued
