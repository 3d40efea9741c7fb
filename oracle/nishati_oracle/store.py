"""The oracle's durable state: every verified reading, each meter's progress, and the market's
address lookup tables.

SQLite (WAL, synchronous=FULL: a commit survives a crash) by default, PostgreSQL by URL; the
schema is created and upgraded by Alembic (``migrations/``). All access is SQLAlchemy Core;
on SQLite, the statements that store accepted readings (and Daraja's callbacks) are compiled
from it once and run on the driver's connection (:class:`SqliteWriter`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence, Set
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    and_,
    bindparam,
    case,
    create_engine,
    event,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from nishati_oracle.core.metrics import WRITE_STEPS, Metrics, observe_steps

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")

metadata = MetaData()

# One row per meter the oracle has seen: the last reading it accepted (its next reading must
# follow it) and the last reading the chain has attested.
meters = Table(
    "meters",
    metadata,
    Column("meter", String(44), primary_key=True),
    Column("household", String(44), nullable=False),
    Column("has_last", Boolean, nullable=False),
    Column("last_counter", BigInteger, nullable=False),
    Column("last_timestamp", BigInteger, nullable=False),
    Column("last_exported_wh", BigInteger, nullable=False),
    Column("last_imported_wh", BigInteger, nullable=False),
    Column("attested_counter", BigInteger, nullable=True),
    Column("attested_exported_wh", BigInteger, nullable=True),
)

# Every accepted reading, exactly as the meter signed it.
readings = Table(
    "readings",
    metadata,
    # SQLite only auto-increments an INTEGER PRIMARY KEY.
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("meter", String(44), nullable=False),
    Column("counter", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("exported_wh", BigInteger, nullable=False),
    Column("imported_wh", BigInteger, nullable=False),
    Column("message", LargeBinary, nullable=False),
    Column("signature", LargeBinary, nullable=False),
    Column("received_at", Float, nullable=False),
    Column("attested_at", Float, nullable=True),
    Column("attest_signature", String(88), nullable=True),
    UniqueConstraint("meter", "counter", name="uq_readings_meter_counter"),
    # With the counter in it, a meter's first unattested reading is one index seek (``due``).
    Index("ix_readings_unattested", "attested_at", "meter", "counter"),
)


# The market's address lookup tables, each stored before the transaction creating it is sent:
# the address derives from the oracle and ``recent_slot``.
lookup_tables = Table(
    "lookup_tables",
    metadata,
    Column("address", String(44), primary_key=True),
    Column("market", String(44), nullable=False),
    Column("recent_slot", BigInteger, nullable=False),
)


@dataclass
class MeterState:
    """A meter's row: where its next reading must start from, and what the chain has."""

    meter: str
    household: str
    has_last: bool
    last_counter: int
    last_timestamp: int
    last_exported_wh: int
    last_imported_wh: int
    attested_counter: int | None = None
    attested_exported_wh: int | None = None


@dataclass(frozen=True)
class StoredReading:
    meter: str
    counter: int
    timestamp: int
    exported_wh: int
    imported_wh: int
    message: bytes
    signature: bytes
    received_at: float


@dataclass(frozen=True)
class Due:
    """A meter whose latest reading should be attested, and why."""

    meter: str
    household: str
    reading: StoredReading


# A meter's new last reading; executed with one parameter set per meter (``_advance_params``).
_ADVANCE = (
    update(meters)
    .where(meters.c.meter == bindparam("b_meter"))
    .values(
        has_last=bindparam("b_has_last"),
        last_counter=bindparam("b_last_counter"),
        last_timestamp=bindparam("b_last_timestamp"),
        last_exported_wh=bindparam("b_last_exported_wh"),
        last_imported_wh=bindparam("b_last_imported_wh"),
    )
)


def _advance_params(state: MeterState) -> dict[str, Any]:
    return {
        "b_meter": state.meter,
        "b_has_last": state.has_last,
        "b_last_counter": state.last_counter,
        "b_last_timestamp": state.last_timestamp,
        "b_last_exported_wh": state.last_exported_wh,
        "b_last_imported_wh": state.last_imported_wh,
    }


def _accept(
    conn: Connection,
    new_meters: list[dict[str, Any]],
    accepted: list[dict[str, Any]],
    advances: list[dict[str, Any]],
) -> None:
    if new_meters:
        conn.execute(meters.insert(), new_meters)
    if accepted:
        conn.execute(readings.insert(), accepted)
    if advances:
        conn.execute(_ADVANCE, advances)


# SQLite checkpoints in the commit that takes the WAL past 1,000 pages: with 10,000 meters
# that commit waits 20-50 ms (random pages written back and fsynced) about every 0.4 s at 500
# readings/s, and every reading behind it waits too. So no connection here checkpoints on
# commit; the writer's checkpointer thread does, beside the commits, this often, and the writer
# finishes each between two commits so that the WAL starts over (``_Checkpointer``). Small and
# often is what keeps commits fast: replaying the bench's load on its 10,000-meter database
# (single-reading commits at 500/s after a burst), the p99 was 15 ms and none over 50 ms with
# one every 0.25 s; 33 ms and 125 over 50 ms every second; 150-340 ms every 5 s, where each
# finish (or the RESTART below) had a few seconds of pages to copy and fsync.
CHECKPOINT_EVERY_SECS = 0.25
# Past this many frames (256 MB of 4 KiB pages: a reader kept the WAL from starting over) a
# RESTART checkpoint holds the writer back while it copies the last frames, so the WAL starts
# over; journal_size_limit then gives the space back.
WAL_RESTART_FRAMES = 65_536
WAL_SIZE_LIMIT_BYTES = 64 * 2**20


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    cursor = dbapi_connection.cursor()
    # First: setting the journal mode needs a lock, which waits only with a timeout set.
    cursor.execute("PRAGMA busy_timeout=5000")
    # WAL is kept in the file: set once, as setting it again takes that lock beside a writer
    # (and a checkpointer connecting while the writer commits was refused, "database is locked").
    cursor.execute("PRAGMA journal_mode")
    if cursor.fetchone()[0] != "wal":
        cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
    cursor.close()


def _observe_checkpoint(
    metrics: Metrics | None, slow_secs: float, mode: str, started: float, frames: int
) -> None:
    took = time.perf_counter() - started
    if metrics is not None:
        metrics.sqlite_checkpoint.labels(mode).observe(took)
    if took >= slow_secs:
        log.warning("slow SQLite checkpoint: %s, %.1f ms, %d frames", mode, took * 1e3, frames)


class _Checkpointer:
    """Copies the WAL back into the database every ``every_secs`` (a PASSIVE checkpoint: it
    waits for no reader or writer), on a thread and connection of its own.

    Commits go on meanwhile, so such a checkpoint never copies the whole WAL, and SQLite starts
    a WAL over only once all of it is copied: it grew without end, and starting it over took a
    RESTART checkpoint that held commits off (and a truncation): 300-600 ms without a commit.
    So ``finish`` is called after each one, to copy the few frames committed meanwhile between
    two commits (the writer's next transaction then starts the WAL over; the count a checkpoint
    reports is the WAL's when it began, so it cannot tell). A RESTART remains for a WAL past
    ``WAL_RESTART_FRAMES`` all the same (a reader kept it)."""

    def __init__(
        self,
        engine: Any,
        every_secs: float,
        metrics: Metrics | None,
        slow_secs: float,
        finish: Callable[[], object],
    ) -> None:
        self.engine = engine
        self.every_secs = every_secs
        self.metrics = metrics
        self.slow_secs = slow_secs
        self.finish = finish
        self.checkpoints = 0
        self.restarts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="store-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        connection = None
        try:
            while not self._stop.wait(self.every_secs):
                try:
                    connection = connection or self.engine.raw_connection()
                    cursor = connection.cursor()
                    started = time.perf_counter()
                    _, frames, _ = cursor.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    _observe_checkpoint(self.metrics, self.slow_secs, "passive", started, frames)
                    self.checkpoints += 1
                    if frames > WAL_RESTART_FRAMES:
                        started = time.perf_counter()
                        cursor.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
                        _observe_checkpoint(
                            self.metrics, self.slow_secs, "restart", started, frames
                        )
                        self.restarts += 1
                    else:
                        self.finish()
                    cursor.close()
                except Exception:
                    log.exception("SQLite checkpoint failed; trying again")
        finally:
            if connection is not None:
                connection.close()


T = TypeVar("T")


class SqliteWriter:
    """Writes to SQLite from a thread of its own: one hand-over per transaction. Through
    aiosqlite every statement (the pool's ping and reset, begin, each insert, commit) is a
    hand-over to its thread and back, each waiting for the event loop's thread to let go of the
    GIL; and SQLAlchemy's execution costs more than SQLite itself for a small transaction. So
    the statements are compiled from the Core tables once and run on one driver connection,
    kept by the thread: accepted readings here, Daraja's callbacks in ``trading.ledger``."""

    def __init__(
        self, url: str, metrics: Metrics | None = None, slow_secs: float = math.inf
    ) -> None:
        self.engine = create_engine(make_url(url).set(drivername="sqlite+pysqlite"))
        event.listen(self.engine, "connect", _sqlite_pragmas)
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="store-writer")
        self._connection: Any = None  # the driver's, made and used on the thread only
        self.metrics = metrics
        self.slow_secs = slow_secs
        self.checkpointer = _Checkpointer(
            self.engine,
            CHECKPOINT_EVERY_SECS,
            metrics,
            slow_secs,
            lambda: self.thread.submit(self._finish_checkpoint),
        )
        self._steps = (
            None if metrics is None else [metrics.sqlite_write.labels(step) for step in WRITE_STEPS]
        )
        dialect = self.engine.dialect
        self._insert_meter = _positional(
            meters.insert().values({c.name: bindparam(c.name) for c in meters.c}), dialect
        )
        fields = list(StoredReading.__dataclass_fields__)
        self._insert_reading = _positional(
            readings.insert().values({name: bindparam(name) for name in fields}), dialect
        )
        self._advance = _positional(_ADVANCE, dialect)

    async def accept(
        self,
        new_meters: Sequence[MeterState],
        accepted: Sequence[StoredReading],
        states: Sequence[MeterState],
    ) -> None:
        rows = [
            (self._insert_meter, [self._insert_meter.values(vars(m)) for m in new_meters]),
            (self._insert_reading, [self._insert_reading.values(vars(r)) for r in accepted]),
            (self._advance, [self._advance.values(_advance_params(s)) for s in states]),
        ]
        await self.run(partial(_execute_many, rows))

    def compile(self, statement: Any) -> Positional:
        return _positional(statement, self.engine.dialect)

    async def run(self, work: Callable[[Any], T]) -> T:
        """``work(cursor)`` on the thread, as one transaction: committed once it returns,
        rolled back if it raises."""
        submitted = time.perf_counter()
        done, *times = await asyncio.get_running_loop().run_in_executor(
            self.thread, self._transaction, work
        )
        answered = time.perf_counter()
        steps = observe_steps(self._steps, WRITE_STEPS, [submitted, *times, answered])
        if answered - submitted >= self.slow_secs:
            log.warning("slow SQLite write: %.1f ms (%s)", (answered - submitted) * 1e3, steps)
        return done

    def _finish_checkpoint(self) -> None:
        """On the thread, between two transactions: copies what the checkpointer left."""
        started = time.perf_counter()
        try:
            cursor = self._connect().cursor()
            try:
                _, frames, _ = cursor.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            finally:
                cursor.close()
        except Exception:
            # Nobody waits for this one's result: said here, or never. The next one tries again.
            log.exception("finishing a SQLite checkpoint failed")
            return
        _observe_checkpoint(self.metrics, self.slow_secs, "finish", started, frames)

    def _connect(self) -> Any:
        if self._connection is None:
            self._connection = self.engine.raw_connection()
        return self._connection

    def _transaction(self, work: Callable[[Any], T]) -> tuple[T, float, float, float]:
        """What ``work`` returned, and when it started, when its statements were done and when
        the commit was (``WRITE_STEPS``)."""
        started = time.perf_counter()
        connection = self._connect()
        cursor = connection.cursor()
        try:
            done = work(cursor)
            worked = time.perf_counter()
            connection.commit()
            return done, started, worked, time.perf_counter()
        except BaseException:
            connection.rollback()
            raise
        finally:
            cursor.close()

    async def close(self) -> None:
        await asyncio.to_thread(self.checkpointer.stop)
        await asyncio.get_running_loop().run_in_executor(self.thread, self._close)
        self.thread.shutdown()

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
        self.engine.dispose()


@dataclass(frozen=True)
class Positional:
    """A statement compiled for a positional driver, and the order of its parameters."""

    sql: str
    names: tuple[str, ...]

    def values(self, params: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(params[name] for name in self.names)


def _positional(statement: Any, dialect: Any) -> Positional:
    compiled = statement.compile(dialect=dialect)
    if compiled.positiontup is None:
        raise ValueError(f"{dialect.name} is not a positional driver")
    return Positional(str(compiled), tuple(compiled.positiontup))


def _execute_many(statements: list[tuple[Positional, list[tuple[Any, ...]]]], cursor: Any) -> None:
    for statement, rows in statements:
        if rows:
            cursor.executemany(statement.sql, rows)


class Store:
    """Async access to the oracle's tables."""

    def __init__(self, engine: AsyncEngine, writer: SqliteWriter | None = None) -> None:
        self.engine = engine
        # SQLite's writer thread; None on PostgreSQL, whose driver needs no thread.
        self.writer = writer

    @classmethod
    async def open(
        cls, url: str, metrics: Metrics | None = None, slow_log_secs: float = math.inf
    ) -> Store:
        """Connects, and brings the schema to the newest migration; SQLite's writes and
        checkpoints are timed into ``metrics``, and logged when slower than ``slow_log_secs``."""
        engine = create_async_engine(url, pool_pre_ping=True)
        writer = None
        if engine.dialect.name == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
            writer = SqliteWriter(url, metrics, slow_log_secs)
        await asyncio.to_thread(migrate, url)
        return cls(engine, writer)

    async def close(self) -> None:
        if self.writer is not None:
            await self.writer.close()
        await self.engine.dispose()

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def meter_states(self, keys: Iterable[str]) -> dict[str, MeterState]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(meters).where(meters.c.meter.in_(list(keys))))
            return {row.meter: MeterState(**row._asdict()) for row in rows}

    async def stored(self, meter: str, counter: int) -> StoredReading | None:
        query = select(*(readings.c[name] for name in StoredReading.__dataclass_fields__)).where(
            and_(readings.c.meter == meter, readings.c.counter == counter)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else StoredReading(**row._asdict())

    async def accept(
        self,
        new_meters: Sequence[MeterState],
        accepted: Sequence[StoredReading],
        states: Sequence[MeterState],
    ) -> None:
        """Stores accepted readings and the meters' new last readings in one transaction (one
        statement per table, each with many rows); returns once it is committed."""
        if self.writer is not None:
            await self.writer.accept(new_meters, accepted, states)
            return
        new_rows = [vars(m) for m in new_meters]
        reading_rows = [vars(r) for r in accepted]
        advances = [_advance_params(s) for s in states]
        async with self.engine.begin() as conn:
            await conn.run_sync(_accept, new_rows, reading_rows, advances)

    async def due(
        self, threshold_wh: int, oldest_before: float, limit: int, forced: Set[str] = frozenset()
    ) -> list[Due]:
        """Meters to attest now, oldest first: never attested yet, unattested export at or
        past the threshold, an unattested reading older than ``oldest_before``, or ``forced``.
        Each comes with its latest reading (its first, for a meter the chain has never seen).

        Readings are attested (or closed) as a prefix of a meter's counters, so its unattested
        ones run from the first found in ``ix_readings_unattested`` to its last accepted. The
        query costs a few index seeks a meter, however many readings wait: grouping every
        unattested reading took 1.2 s at 10,000 meters and 268,000 readings."""
        first = (
            select(func.min(readings.c.counter))
            .where(and_(readings.c.attested_at.is_(None), readings.c.meter == meters.c.meter))
            .scalar_subquery()
        )
        pending = select(meters, first.label("first")).subquery()
        oldest = readings.alias("oldest")
        latest = readings.alias("latest")
        never_attested = pending.c.attested_counter.is_(None)
        query = (
            select(pending.c.household, latest)
            .join(
                oldest, and_(oldest.c.meter == pending.c.meter, oldest.c.counter == pending.c.first)
            )
            .join(
                latest,
                and_(
                    latest.c.meter == pending.c.meter,
                    # A meter the chain has never seen starts from the first reading the oracle
                    # accepted (its baseline), so no export after that goes unminted.
                    latest.c.counter
                    == case((never_attested, pending.c.first), else_=pending.c.last_counter),
                ),
            )
            .where(
                or_(
                    never_attested,
                    latest.c.exported_wh - pending.c.attested_exported_wh >= threshold_wh,
                    oldest.c.received_at <= oldest_before,
                    pending.c.meter.in_(list(forced)),
                )
            )
            .order_by(oldest.c.received_at)
            .limit(limit)
        )
        names = StoredReading.__dataclass_fields__
        async with self.engine.connect() as conn:
            return [
                Due(row.meter, row.household, StoredReading(**{n: getattr(row, n) for n in names}))
                for row in await conn.execute(query)
            ]

    async def mark_attested(
        self, attested: Sequence[StoredReading], signature: str, at: float
    ) -> None:
        """Records that the chain holds these readings (and, cumulatively, all before them)."""
        async with self.engine.begin() as conn:
            for reading in attested:
                await conn.execute(
                    update(readings)
                    .where(
                        and_(
                            readings.c.meter == reading.meter,
                            readings.c.counter <= reading.counter,
                            readings.c.attested_at.is_(None),
                        )
                    )
                    .values(attested_at=at, attest_signature=signature)
                )
                await conn.execute(
                    update(meters)
                    .where(meters.c.meter == reading.meter)
                    .values(
                        attested_counter=reading.counter,
                        attested_exported_wh=reading.exported_wh,
                    )
                )

    async def close_meter(self, meter: str, reason: str, at: float) -> None:
        """Stops attesting a meter's readings: the chain will never take them (its meter was
        replaced). They stay stored, marked with ``reason``."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(readings)
                .where(and_(readings.c.meter == meter, readings.c.attested_at.is_(None)))
                .values(attested_at=at, attest_signature=reason)
            )

    async def record_lookup_table(self, market: str, address: str, recent_slot: int) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                lookup_tables.insert().values(
                    address=address, market=market, recent_slot=recent_slot
                )
            )

    async def lookup_tables(self, market: str) -> dict[str, int]:
        """The market's tables: address to the slot it derives from, by slot."""
        query = (
            select(lookup_tables.c.address, lookup_tables.c.recent_slot)
            .where(lookup_tables.c.market == market)
            .order_by(lookup_tables.c.recent_slot)
        )
        async with self.engine.connect() as conn:
            return {row.address: row.recent_slot for row in await conn.execute(query)}

    async def forget_lookup_table(self, address: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(lookup_tables.delete().where(lookup_tables.c.address == address))

    async def unattested_count(self) -> int:
        async with self.engine.connect() as conn:
            query = select(func.count()).where(readings.c.attested_at.is_(None))
            return int((await conn.execute(query.select_from(readings))).scalar_one())


def migrate(url: str) -> None:
    """Runs Alembic to the newest schema (blocking; Alembic drives its own event loop)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(config, "head")
