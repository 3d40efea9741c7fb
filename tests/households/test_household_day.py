"""A household's day read from the readings' table: a meter's long history outside the day
(weeks before, days after) changes neither its intervals nor their totals."""

from __future__ import annotations

import secrets
from datetime import date

from sqlalchemy import insert

from nishati_oracle.households.reads import HouseholdReads, day_bounds
from nishati_oracle.readings.store import Store
from nishati_oracle.storage.schema import meters, readings

DAY = date(2026, 12, 7)
READING_SECS = 900


def reading(
    meter: str, counter: int, timestamp: int, exported: int, imported: int
) -> dict[str, object]:
    return {
        "meter": meter,
        "counter": counter,
        "timestamp": timestamp,
        "exported_wh": exported,
        "imported_wh": imported,
        "message": b"",
        "signature": b"",
        "received_at": float(timestamp),
    }


def meter_row(meter: str, household: str, last: dict[str, object]) -> dict[str, object]:
    return {
        "meter": meter,
        "household": household,
        "has_last": True,
        "last_counter": last["counter"],
        "last_timestamp": last["timestamp"],
        "last_exported_wh": last["exported_wh"],
        "last_imported_wh": last["imported_wh"],
    }


async def test_a_long_history_outside_the_day_does_not_change_it(database_url: str) -> None:
    start, end = day_bounds(DAY)
    # The day as both meters saw it: the last reading before it (sharing its timestamp with
    # the one before that, which the counter orders), then three within it, two of them at
    # one second.
    before = [(start - 600, 1_000, 400), (start - 600, 1_010, 401)]
    within = [(start + 60, 1_300, 420), (start + 7_200, 1_800, 420), (start + 7_200, 1_805, 430)]
    expected = [
        (start - 600, start + 60, 290, 19),
        (start + 60, start + 7_200, 500, 0),
        (start + 7_200, start + 7_200, 5, 10),
    ]
    short, long = secrets.token_hex(8), secrets.token_hex(8)
    rows = [reading(short, n, *r) for n, r in enumerate(before + within, start=1)]
    # Thirty days of 15-minute readings before the day, the day's, then a week after.
    history = [
        (at, n // 10, n // 20)
        for n, at in enumerate(range(start - 30 * 86_400, start - 600, READING_SECS))
    ]
    after_day = [
        (at, 5_000 + n, 5_000) for n, at in enumerate(range(end, end + 7 * 86_400, READING_SECS))
    ]
    long_readings = history + before + within + after_day
    long_rows = [reading(long, n, *r) for n, r in enumerate(long_readings, start=1)]
    store = await Store.open(database_url)
    try:
        async with store.engine.begin() as conn:
            await conn.execute(
                insert(meters),
                [meter_row(short, "short", rows[-1]), meter_row(long, "long", long_rows[-1])],
            )
            await conn.execute(insert(readings), rows + long_rows)
        reads = HouseholdReads(store.engine)
        short_day, long_day = await reads.day("short", DAY), await reads.day("long", DAY)
    finally:
        await store.close()
    for day, meter in ((short_day, short), (long_day, long)):
        assert day.meters == [meter]
        assert [(i.start, i.end, i.exported_wh, i.imported_wh) for i in day.intervals] == expected
        assert (day.exported_wh, day.imported_wh) == (795, 29)
