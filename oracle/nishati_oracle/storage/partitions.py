"""The readings' upkeep: on PostgreSQL, the months of ``readings`` made ahead of time; on both
engines, attested readings older than the retention forgotten (``docs/storage.md``).

On PostgreSQL ``readings`` is partitioned by month (UTC) of the meter's signed ``timestamp``:
one partition a month, ``readings_yYYYYmMM``, and ``readings_default`` for a timestamp no month
holds yet (a chain clock ahead of the oracle's, a month not made yet). The upkeep runs at start
and daily, on every replica: each step holds a transaction-scoped advisory lock, so replicas
running it at once take turns, and each step finds what is already there before it makes or
drops anything.

Retention forgets only readings the chain holds, or never can (``attested_at`` set): an
unattested reading is never deleted. A month wholly past the retention and with no unattested
reading is dropped whole; otherwise its old attested rows are deleted, a batch at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from sqlalchemy import and_, column, delete, literal, select, table, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from nishati_oracle.storage.schema import READINGS_PARTITION_KEY, readings

log = structlog.get_logger(__name__)

SECS_PER_DAY = 86_400
# Months made ahead of the current one: a month's partition exists weeks before its first
# reading, so a replica whose upkeep fails for days still finds it.
MONTHS_AHEAD = 2
DEFAULT_PARTITION = "readings_default"
# The advisory lock every replica's upkeep step takes (any constant the oracle uses once).
UPKEEP_LOCK = 0x4E495348_52454144  # "NISHREAD"
# A step waits at most this long for a table lock (behind a long query) before it gives up
# until the next round, rather than holding every reading's insert waiting behind it.
LOCK_TIMEOUT = "5s"
# Attested rows deleted per statement when a month cannot be dropped whole.
DELETE_BATCH = 10_000
# SQLSTATE: the default partition holds rows of the month being made.
CHECK_VIOLATION = "23514"


@dataclass(frozen=True)
class Month:
    """A calendar month (UTC) and the range of Unix seconds its partition holds."""

    year: int
    month: int

    @classmethod
    def of(cls, unix_secs: float) -> Month:
        at = datetime.fromtimestamp(unix_secs, UTC)
        return cls(at.year, at.month)

    def next(self) -> Month:
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    @property
    def name(self) -> str:
        return f"readings_y{self.year:04d}m{self.month:02d}"

    @property
    def start(self) -> int:
        return int(datetime(self.year, self.month, 1, tzinfo=UTC).timestamp())

    @property
    def end(self) -> int:
        return self.next().start


@dataclass(frozen=True)
class Forgotten:
    """What one retention pass forgot."""

    dropped: list[str]
    deleted: int


def partitioned(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql"


async def _lock(conn: AsyncConnection) -> None:
    await conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": UPKEEP_LOCK})


async def partitions(conn: AsyncConnection) -> set[str]:
    """The names of ``readings``' partitions."""
    rows = await conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'readings'::regclass"
        )
    )
    return {row[0] for row in rows}


def create_month(month: Month) -> str:
    """The DDL making a month's partition (its indexes follow from the parent's)."""
    return (
        f"CREATE TABLE IF NOT EXISTS {month.name} PARTITION OF readings "
        f"FOR VALUES FROM ({month.start}) TO ({month.end})"
    )


CREATE_DEFAULT = f"CREATE TABLE IF NOT EXISTS {DEFAULT_PARTITION} PARTITION OF readings DEFAULT"


async def make_months(engine: AsyncEngine, now: float, ahead: int = MONTHS_AHEAD) -> list[str]:
    """Makes the partitions of ``now``'s month and the ``ahead`` after it that are missing;
    returns those made. Nothing on SQLite. A month the default partition already holds rows
    of is left to the default (its readings are stored and indexed there all the same)."""
    if not partitioned(engine):
        return []
    month = Month.of(now)
    wanted = [month]
    for _ in range(ahead):
        month = month.next()
        wanted.append(month)
    made: list[str] = []
    for month in wanted:
        try:
            async with engine.begin() as conn:
                await _lock(conn)
                if month.name in await partitions(conn):
                    continue
                await conn.execute(text(create_month(month)))
            made.append(month.name)
            log.info("readings partition made", partition=month.name)
        except DBAPIError as error:
            if getattr(error.orig, "sqlstate", None) != CHECK_VIOLATION:
                raise
            log.warning("readings month left to the default partition", partition=month.name)
    return made


async def forget_attested(engine: AsyncEngine, before: int) -> Forgotten:
    """Forgets the attested readings dated before ``before`` (Unix seconds); see the module."""
    dropped = await _drop_months(engine, before) if partitioned(engine) else []
    deleted = 0
    old_and_attested = and_(
        readings.c[READINGS_PARTITION_KEY] < before, readings.c.attested_at.is_not(None)
    )
    batch = select(readings.c.id).where(old_and_attested).limit(DELETE_BATCH).scalar_subquery()
    # The timestamp bound again outside the batch lets PostgreSQL prune to the old months.
    statement = delete(readings).where(
        and_(readings.c.id.in_(batch), readings.c[READINGS_PARTITION_KEY] < before)
    )
    while True:
        async with engine.begin() as conn:
            count = (await conn.execute(statement)).rowcount
        deleted += count
        if count < DELETE_BATCH:
            break
    if dropped or deleted:
        log.info("attested readings forgotten", dropped=dropped, deleted=deleted, before=before)
    return Forgotten(dropped, deleted)


async def _drop_months(engine: AsyncEngine, before: int) -> list[str]:
    """Drops each month wholly before ``before`` that holds no unattested reading. The parent is
    locked first (inserts wait a moment), so no unattested reading arrives between the check
    and the drop."""
    async with engine.connect() as conn:
        names = await partitions(conn)
    months = sorted(
        (Month(int(name[10:14]), int(name[15:17])) for name in names if name != DEFAULT_PARTITION),
        key=lambda m: m.start,
    )
    dropped: list[str] = []
    for month in months:
        if month.end > before:
            break
        async with engine.begin() as conn:
            await _lock(conn)
            await conn.execute(text("LOCK TABLE readings IN ACCESS EXCLUSIVE MODE"))
            if month.name not in await partitions(conn):
                continue
            waiting = await conn.execute(
                select(literal(1))
                .select_from(table(month.name))
                .where(column("attested_at").is_(None))
                .limit(1)
            )
            if waiting.first() is not None:
                continue
            await conn.execute(text(f"DROP TABLE {month.name}"))
        dropped.append(month.name)
    return dropped


async def upkeep(engine: AsyncEngine, now: float, retention_days: int | None) -> Forgotten:
    """One round: the months ahead made, and (with a retention) old attested readings
    forgotten."""
    await make_months(engine, now)
    if retention_days is None:
        return Forgotten([], 0)
    return await forget_attested(engine, int(now) - retention_days * SECS_PER_DAY)


async def run_upkeep(
    engine: AsyncEngine,
    retention_days: int | None,
    stop: asyncio.Event,
    every_secs: float = SECS_PER_DAY,
) -> None:
    """A round now and every ``every_secs`` until ``stop``; a failed round is logged and the
    next one tries again."""
    while not stop.is_set():
        try:
            await upkeep(engine, datetime.now(UTC).timestamp(), retention_days)
        except Exception:
            log.exception("readings upkeep failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_secs)


def is_partition(name: str | None) -> bool:
    """Whether a table's name is one of ``readings``' partitions, which the schema does not
    list (the upkeep makes them): schema comparisons leave them out."""
    return name is not None and (
        name == DEFAULT_PARTITION or (name.startswith("readings_y") and len(name) == 17)
    )
