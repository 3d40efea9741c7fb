"""The readings' side of the database: each meter's progress, every verified reading (exactly
as its meter signed it), and the market's address lookup tables. Tables in
``storage.schema``. The attester's writes each carry its lease's fence (``readings.lease``),
checked in their transaction: a deposed attester's are refused.

The database is the arbiter of each meter's counter, whichever oracle replica stores: a
meter's row moves only from the state its readings were checked against (a compare-and-set),
and a counter is stored once; :meth:`Store.accept` raises :class:`MeterMoved` when another
replica got there first, and nothing of the transaction stays."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import and_, bindparam, case, delete, func, or_, select, text, true, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.expression import FromClause

from nishati_oracle.core.metrics import Metrics
from nishati_oracle.readings.lease import Fence
from nishati_oracle.storage.database import close_database, dialect_insert, open_database
from nishati_oracle.storage.schema import (
    READINGS_PARTITION_KEY,
    attest_requests,
    lookup_tables,
    meters,
    readings,
)
from nishati_oracle.storage.writer import Positional, SqliteWriter, execute_many


class MeterMoved(Exception):
    """Another oracle replica stored readings of these meters (or registered one of them)
    since they were read: nothing was stored; check the readings again against the
    database's rows."""


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
class ReadingRow:
    """A stored reading as the readings route shows it: where it stands with the chain."""

    counter: int
    timestamp: int
    exported_wh: int
    imported_wh: int
    received_at: float
    attested_at: float | None
    attest_signature: str | None
    refused: str | None


@dataclass(frozen=True)
class Due:
    """A meter whose latest reading should be attested, and why."""

    meter: str
    household: str
    reading: StoredReading


# The columns of a meter's first waiting reading (``schema.meters``), and the reading's own.
_FIRST_WAITING = {
    "first_waiting_counter": "counter",
    "first_waiting_timestamp": "timestamp",
    "first_waiting_received_at": "received_at",
}
_NOTHING_WAITING = dict.fromkeys(_FIRST_WAITING)


def _first_waiting(reading: StoredReading | None) -> dict[str, Any]:
    """A meter row's ``first_waiting_*`` values for its first waiting reading (or none)."""
    if reading is None:
        return dict(_NOTHING_WAITING)
    return {column: getattr(reading, field) for column, field in _FIRST_WAITING.items()}


def _firsts(accepted: Iterable[StoredReading]) -> dict[str, StoredReading]:
    """Each meter's lowest-counter reading among ``accepted``."""
    firsts: dict[str, StoredReading] = {}
    for reading in accepted:
        first = firsts.get(reading.meter)
        if first is None or reading.counter < first.counter:
            firsts[reading.meter] = reading
    return firsts


# Nothing waiting until now: the first reading stored now is the first waiting.
_NONE_WAITED = meters.c.first_waiting_counter.is_(None)

# A meter's new last reading, from the one its readings were checked against (compare-and-set);
# executed with one parameter set per meter (``_advance_params``). A meter with nothing waiting
# until now waits from its first reading stored now; one already waiting keeps its first.
_ADVANCE = (
    update(meters)
    .where(
        and_(
            meters.c.meter == bindparam("b_meter"),
            meters.c.has_last == bindparam("b_was_has_last"),
            meters.c.last_counter == bindparam("b_was_last_counter"),
        )
    )
    .values(
        has_last=bindparam("b_has_last"),
        last_counter=bindparam("b_last_counter"),
        last_timestamp=bindparam("b_last_timestamp"),
        last_exported_wh=bindparam("b_last_exported_wh"),
        last_imported_wh=bindparam("b_last_imported_wh"),
        **{
            column: case(
                (_NONE_WAITED, bindparam(f"b_{column}", type_=meters.c[column].type)),
                else_=meters.c[column],
            )
            for column in _FIRST_WAITING
        },
    )
)


def _advance_params(
    state: MeterState, was: MeterState, first: StoredReading | None
) -> dict[str, Any]:
    return {
        "b_meter": state.meter,
        "b_was_has_last": was.has_last,
        "b_was_last_counter": was.last_counter,
        "b_has_last": state.has_last,
        "b_last_counter": state.last_counter,
        "b_last_timestamp": state.last_timestamp,
        "b_last_exported_wh": state.last_exported_wh,
        "b_last_imported_wh": state.last_imported_wh,
        **{f"b_{column}": value for column, value in _first_waiting(first).items()},
    }


def _accept(
    conn: Connection,
    new_meters: list[dict[str, Any]],
    accepted: list[dict[str, Any]],
    advances: list[dict[str, Any]],
) -> None:
    """On PostgreSQL (whose driver counts no rows of an executemany): the moving meters' rows
    locked, in one order, and compared with what their readings were checked against first."""
    if advances:
        locked = conn.execute(
            select(meters.c.meter, meters.c.has_last, meters.c.last_counter)
            .where(meters.c.meter.in_([a["b_meter"] for a in advances]))
            .order_by(meters.c.meter)
            .with_for_update()
        )
        now = {row.meter: (row.has_last, row.last_counter) for row in locked}
        was = {a["b_meter"]: (a["b_was_has_last"], a["b_was_last_counter"]) for a in advances}
        if now != was:
            raise MeterMoved(sorted(m for m in was if now.get(m) != was[m]))
    try:
        if new_meters:
            conn.execute(meters.insert(), new_meters)
        if accepted:
            conn.execute(readings.insert(), accepted)
    except IntegrityError as e:
        raise MeterMoved(str(e.orig)) from e
    if advances:
        conn.execute(_ADVANCE, advances)


def _accept_on_writer(
    inserts: list[tuple[Positional, list[tuple[Any, ...]]]],
    advance: tuple[Positional, list[tuple[Any, ...]]],
    cursor: Any,
) -> None:
    """On SQLite's writer (its one writer): the inserts, then the compare-and-set of each
    meter's row, every one of which must move."""
    try:
        execute_many(inserts, cursor)
    except sqlite3.IntegrityError as e:
        raise MeterMoved(str(e)) from e
    statement, rows = advance
    if rows:
        cursor.executemany(statement.sql, rows)
        if cursor.rowcount != len(rows):
            raise MeterMoved(f"{len(rows) - cursor.rowcount} of {len(rows)} meters moved")


@dataclass(frozen=True)
class _AcceptStatements:
    """:meth:`Store.accept`'s statements, compiled for SQLite's writer."""

    insert_meter: Positional
    insert_reading: Positional
    advance: Positional

    @classmethod
    def compile(cls, writer: SqliteWriter) -> _AcceptStatements:
        fields = list(StoredReading.__dataclass_fields__)
        return cls(
            writer.compile(meters.insert().values({c.name: bindparam(c.name) for c in meters.c})),
            writer.compile(readings.insert().values({name: bindparam(name) for name in fields})),
            writer.compile(_ADVANCE),
        )

    def work(
        self,
        new_meters: Sequence[dict[str, Any]],
        accepted: Sequence[StoredReading],
        advances: Sequence[dict[str, Any]],
    ) -> partial[None]:
        inserts = [
            (self.insert_meter, [self.insert_meter.values(m) for m in new_meters]),
            (self.insert_reading, [self.insert_reading.values(vars(r)) for r in accepted]),
        ]
        advance = (self.advance, [self.advance.values(a) for a in advances])
        return partial(_accept_on_writer, inserts, advance)


async def _lock_meters(conn: AsyncConnection, keys: Set[str]) -> None:
    """Locks the meters' rows until the transaction ends, in one order (as :func:`_accept`
    does), before their readings are attested or closed: a replica storing readings of them
    meanwhile waits, then finds their first waiting reading moved (or none) and sets it if it
    is the first to wait; without the lock it could set nothing (one was waiting) and the
    attester then record none (it saw no newer reading), leaving a waiting reading never due.
    On SQLite the fence's write lock, taken first, already keeps every other writer out."""
    if conn.dialect.name != "postgresql" or not keys:
        return
    await conn.execute(
        select(meters.c.meter)
        .where(meters.c.meter.in_(sorted(keys)))
        .order_by(meters.c.meter)
        .with_for_update()
    )


async def _move_first_waiting(conn: AsyncConnection, meter: str, **values: Any) -> None:
    """Sets the meter's first waiting reading to its lowest unattested one (or none), and
    ``values``, after some of its readings were attested or closed (under
    :func:`_lock_meters`' lock)."""
    fields = [readings.c[field] for field in _FIRST_WAITING.values()]
    first = (
        await conn.execute(
            select(*fields)
            .where(readings.c.meter == meter, readings.c.attested_at.is_(None))
            .order_by(readings.c.counter)
            .limit(1)
        )
    ).first()
    values |= _NOTHING_WAITING if first is None else dict(zip(_FIRST_WAITING, first, strict=True))
    await conn.execute(update(meters).where(meters.c.meter == meter).values(values))


class Store:
    """Async access to the readings' tables. :meth:`open` opens the database for the whole
    oracle: its ``engine`` and ``writer`` serve the trades' ledger too."""

    def __init__(self, engine: AsyncEngine, writer: SqliteWriter | None = None) -> None:
        self.engine = engine
        # SQLite's writer thread; None on PostgreSQL, whose driver needs no thread.
        self.writer = writer
        # On SQLite, accepted readings are stored by the writer thread, their statements
        # compiled once.
        self._on_writer = None if writer is None else (writer, _AcceptStatements.compile(writer))

    @classmethod
    async def open(
        cls, url: str, metrics: Metrics | None = None, slow_log_secs: float = math.inf
    ) -> Store:
        """Connects, and brings the schema to the newest migration; SQLite's writes and
        checkpoints are timed into ``metrics``, and logged when slower than ``slow_log_secs``."""
        return cls(*await open_database(url, metrics, slow_log_secs))

    async def close(self) -> None:
        await close_database(self.engine, self.writer)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def meter_states(self, keys: Iterable[str]) -> dict[str, MeterState]:
        async with self.engine.connect() as conn:
            columns = (meters.c[name] for name in MeterState.__dataclass_fields__)
            rows = await conn.execute(select(*columns).where(meters.c.meter.in_(list(keys))))
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
        was: Sequence[MeterState],
    ) -> None:
        """Stores accepted readings and the meters' new last readings (``states``, each moving
        from the row in ``was`` its readings were checked against) in one transaction (one
        statement per table, each with many rows); returns once it is committed. Raises
        :class:`MeterMoved`, having stored nothing, if a row is not as in ``was`` any more or
        a reading's counter (a new meter) is stored already. Each meter's first reading stored
        now is its first waiting one if none waited (``schema.meters``)."""
        firsts = _firsts(accepted)
        advances = [
            _advance_params(s, w, firsts.get(s.meter)) for s, w in zip(states, was, strict=True)
        ]
        new_rows = [vars(m) | _first_waiting(firsts.get(m.meter)) for m in new_meters]
        if self._on_writer is not None:
            writer, statements = self._on_writer
            await writer.run(statements.work(new_rows, accepted, advances))
            return
        reading_rows = [vars(r) for r in accepted]
        async with self.engine.begin() as conn:
            await conn.run_sync(_accept, new_rows, reading_rows, advances)

    async def due(
        self, threshold_wh: int, oldest_before: float, limit: int, forced: Set[str] = frozenset()
    ) -> list[Due]:
        """Meters to attest now, oldest first: never attested yet, unattested export at or
        past the threshold, an unattested reading older than ``oldest_before``, or ``forced``.
        Each comes with its latest reading (its first, for a meter the chain has never seen).

        Read from ``meters`` (``ix_meters_first_waiting``: the meters with a reading waiting,
        the longest waiting first), then one seek a meter for the reading to attest, by its
        counter and timestamp: on PostgreSQL a LATERAL join, so each seek is pruned to the one
        month holding it. Found in ``readings`` instead, each meter's first waiting reading
        is a seek in every month's index (``docs/storage.md``)."""
        never_attested = meters.c.attested_counter.is_(None)
        # A meter the chain has never seen starts from the first reading the oracle accepted
        # (its baseline), so no export after that goes unminted; the others from their last.
        chosen = (
            select(
                meters.c.meter,
                meters.c.household,
                meters.c.first_waiting_received_at.label("waiting_since"),
                case(
                    (never_attested, meters.c.first_waiting_counter), else_=meters.c.last_counter
                ).label("counter"),
                case(
                    (never_attested, meters.c.first_waiting_timestamp),
                    else_=meters.c.last_timestamp,
                ).label("timestamp"),
            )
            .where(
                meters.c.first_waiting_counter.is_not(None),
                or_(
                    never_attested,
                    # The last accepted reading's export is the meter row's.
                    meters.c.last_exported_wh - meters.c.attested_exported_wh >= threshold_wh,
                    meters.c.first_waiting_received_at <= oldest_before,
                    meters.c.meter.in_(list(forced)),
                ),
            )
            .order_by(meters.c.first_waiting_received_at, meters.c.meter)
            .limit(limit)
            .subquery("chosen")
        )
        names = list(StoredReading.__dataclass_fields__)
        the_reading = and_(
            readings.c.meter == chosen.c.meter,
            readings.c.counter == chosen.c.counter,
            readings.c[READINGS_PARTITION_KEY] == chosen.c.timestamp,
        )
        found: FromClause = readings
        joined = chosen.join(readings, the_reading)
        if self.engine.dialect.name == "postgresql":
            # Its LIMIT (the key is unique) keeps the planner from flattening it into a join
            # of every partition: each meter's seek is run with its timestamp known.
            found = (
                select(*(readings.c[n] for n in names)).where(the_reading).limit(1).lateral("found")
            )
            joined = chosen.join(found, true())
        query = (
            select(chosen.c.household, *(found.c[n] for n in names))
            .select_from(joined)
            .order_by(chosen.c.waiting_since, chosen.c.meter)
        )
        async with self.engine.connect() as conn:
            return [
                Due(row.meter, row.household, StoredReading(**{n: getattr(row, n) for n in names}))
                for row in await conn.execute(query)
            ]

    async def mark_attested(
        self, fence: Fence, attested: Sequence[StoredReading], signature: str, at: float
    ) -> None:
        """Records that the chain holds these readings (and, cumulatively, all before them)."""
        async with self.engine.begin() as conn:
            await fence.check(conn)
            await _lock_meters(conn, {reading.meter for reading in attested})
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
                    .values(attested_at=at, attest_signature=signature, refused=None)
                )
                await _move_first_waiting(
                    conn,
                    reading.meter,
                    attested_counter=reading.counter,
                    attested_exported_wh=reading.exported_wh,
                )

    async def close_readings(
        self, fence: Fence, meter: str, reason: str, at: float, up_to_counter: int | None = None
    ) -> None:
        """Stops attesting a meter's readings (all, or up to a counter): the chain will never
        take them (it refused the last of them for good, or the meter was replaced). They
        stay stored, refused for ``reason``."""
        unattested = and_(readings.c.meter == meter, readings.c.attested_at.is_(None))
        if up_to_counter is not None:
            unattested = and_(unattested, readings.c.counter <= up_to_counter)
        async with self.engine.begin() as conn:
            await fence.check(conn)
            await _lock_meters(conn, {meter})
            await conn.execute(
                update(readings)
                .where(unattested)
                .values(attested_at=at, attest_signature=None, refused=reason)
            )
            await _move_first_waiting(conn, meter)

    async def note_refused(self, fence: Fence, meter: str, counter: int, reason: str) -> None:
        """Records why the chain refused a reading it may still take later (it stays due)."""
        async with self.engine.begin() as conn:
            await fence.check(conn)
            await conn.execute(
                update(readings)
                .where(
                    and_(
                        readings.c.meter == meter,
                        readings.c.counter == counter,
                        readings.c.attested_at.is_(None),
                    )
                )
                .values(refused=reason)
            )

    async def readings_of(
        self, meter: str, limit: int, before: int | None = None
    ) -> list[ReadingRow]:
        """A meter's stored readings, newest first (those below counter ``before``, if given)."""
        where = readings.c.meter == meter
        if before is not None:
            where = and_(where, readings.c.counter < before)
        names = ReadingRow.__dataclass_fields__
        query = (
            select(*(readings.c[name] for name in names))
            .where(where)
            .order_by(readings.c.counter.desc())
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [ReadingRow(**row._asdict()) for row in await conn.execute(query)]

    async def record_lookup_table(self, fence: Fence, address: str, recent_slot: int) -> None:
        """Stores a table of the fence's market before the transaction creating it is sent."""
        async with self.engine.begin() as conn:
            await fence.check(conn)
            await conn.execute(
                lookup_tables.insert().values(
                    address=address, market=fence.market, recent_slot=recent_slot
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

    async def forget_lookup_table(self, fence: Fence, address: str) -> None:
        async with self.engine.begin() as conn:
            await fence.check(conn)
            await conn.execute(lookup_tables.delete().where(lookup_tables.c.address == address))

    async def request_attest(self, meter: str, at: float) -> None:
        """Asks the attester, whichever replica it is on, to attest ``meter`` at its next round."""
        insert = dialect_insert(self.engine)(attest_requests)
        async with self.engine.begin() as conn:
            await conn.execute(
                insert.values(meter=meter, requested_at=at).on_conflict_do_nothing(
                    index_elements=["meter"]
                )
            )

    async def take_attest_requests(self, fence: Fence) -> set[str]:
        """The meters asked to be attested at once, taken (removed) by the attester's round."""
        async with self.engine.begin() as conn:
            await fence.check(conn)
            taken = await conn.execute(delete(attest_requests).returning(attest_requests.c.meter))
            return set(taken.scalars())

    async def unattested_count(self) -> int:
        async with self.engine.connect() as conn:
            query = select(func.count()).where(readings.c.attested_at.is_(None))
            return int((await conn.execute(query.select_from(readings))).scalar_one())
