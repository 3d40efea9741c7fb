"""Readings as they grow, on PostgreSQL's monthly partitions: a year of readings of many meters
stored, then the batcher's, the household pages' and the forecasts' queries timed.

The shape is ``tests/storage/test_plans.py``'s (a year across twelve months, each meter's last
readings waiting for the chain), larger: ``--quick`` 1,000 meters and 1.2 million readings, the
full run 2,000 meters and 12 million. A throwaway PostgreSQL server (Debian's) is started and
stopped by the bench.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from datetime import date

from sqlalchemy import text

from bench.stats import Report, ms, percentile
from nishati_oracle.forecast.store import ForecastStore
from nishati_oracle.households.reads import HouseholdReads
from nishati_oracle.readings.store import Store
from nishati_oracle.storage.partitions import Month, make_months
from tests.harness.postgres import postgres_server
from tests.storage.test_partitions import fresh_database
from tests.storage.test_plans import FIRST, MONTHS, year_of_readings

QUICK = (1_000, 100)  # meters, readings a month each
FULL = (2_000, 500)
ASKED = 50
# A household page's query, as bench/web.py holds them on SQLite.
PAGE_TARGET_MS = 50.0
# The batcher's queries run every round (2 s): each well within it.
BATCHER_TARGET_MS = 500.0
DAY = date(2025, 6, 15)


async def timed(call: Callable[[], Awaitable[object]], times: int) -> list[float]:
    secs = []
    for _ in range(times):
        started = time.perf_counter()
        await call()
        secs.append(time.perf_counter() - started)
    return secs


def row(report: Report, what: str, secs: list[float], target_ms: float, note: str) -> None:
    p99 = percentile(secs, 99)
    report.add(
        what,
        f"p50 {ms(percentile(secs, 50))}, p99 {ms(p99)}",
        f"p99 < {target_ms:g} ms",
        p99 * 1e3 < target_ms,
        note,
    )


async def run(quick: bool) -> None:
    meters, per_month = QUICK if quick else FULL
    report = Report("readings on PostgreSQL's monthly partitions: the queries at a year")
    with postgres_server() as base:
        store = await Store.open(await fresh_database(base))
        engine = store.engine
        try:
            started = time.perf_counter()
            await make_months(engine, FIRST.start, ahead=MONTHS)
            async with engine.begin() as conn:
                for statement in year_of_readings(meters, per_month):
                    await conn.execute(text(statement))
            async with engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text("VACUUM ANALYZE readings"))
                await conn.execute(text("VACUUM ANALYZE meters"))
            stored = meters * per_month * MONTHS
            report.step(
                f"{meters:,} meters' year stored",
                f"{stored:,} readings in {time.perf_counter() - started:.1f} s",
            )
            rng = random.Random(19)  # noqa: S311 (which households are asked)
            asked = [rng.randrange(1, meters + 1) for _ in range(ASKED)]
            reads = HouseholdReads(engine)
            oldest_before = float(Month(2026, 1).start)
            note = f"{meters:,} meters, {stored:,} readings in {MONTHS} months"
            batcher: list[tuple[str, Callable[[], Awaitable[object]]]] = [
                ("batcher: meters due (500)", lambda: store.due(1_000, oldest_before, 500)),
                ("batcher: queue depth", store.unattested_count),
            ]
            for what, call in batcher:
                row(report, what, await timed(call, 5), BATCHER_TARGET_MS, note)
            pages: list[tuple[str, Callable[[int], Awaitable[object]]]] = [
                ("household: day", lambda n: reads.day(f"home{n}", DAY)),
                ("household: meter health", lambda n: reads.meter_health(f"home{n}")),
                ("readings route: newest 50", lambda n: store.readings_of(f"meter{n}", 50)),
            ]
            for what, ask in pages:
                secs = []
                for n in asked:
                    started = time.perf_counter()
                    await ask(n)
                    secs.append(time.perf_counter() - started)
                row(report, what, secs, PAGE_TARGET_MS, f"{ASKED} households; {note}")
            since = Month(2025, 12).start
            forecasts = ForecastStore(engine)
            row(
                report,
                "forecasts: readings since (20,000)",
                await timed(lambda: forecasts.readings_after(0, since), 3),
                BATCHER_TARGET_MS,
                note,
            )
        finally:
            await store.close()
    report.print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="1,000 meters, 1.2 million readings")
    asyncio.run(run(parser.parse_args().quick))


if __name__ == "__main__":
    main()
