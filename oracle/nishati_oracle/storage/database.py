"""Opening the oracle's database: one engine for readings and trades alike, its schema brought to
the newest migration first.

SQLite (WAL, synchronous=FULL: a commit survives a crash) by default, PostgreSQL by URL. All
access is SQLAlchemy Core; on SQLite, the busiest writes go through :class:`SqliteWriter`.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Float, Table, cast, event, func, literal_column
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.elements import ColumnElement

from nishati_oracle.core.metrics import Metrics
from nishati_oracle.storage.checkpoint import BUSY_TIMEOUT_MS, sqlite_pragmas
from nishati_oracle.storage.writer import SqliteWriter

T = TypeVar("T")

MIGRATIONS = Path(__file__).with_name("migrations")
# SQLSTATE classes of a server that cannot serve now, not of a wrong statement: connection
# exception, insufficient resources, operator intervention, system error.
UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57", "58")
# The modules an OSError comes out of when it is the database's: asyncpg raises its connect's
# OSError (refused, timed out) as it is, through SQLAlchemy's pool.
_DRIVER_MODULES = ("asyncpg.", "sqlalchemy.")
# SQLite's julianday() of 1970-01-01 00:00 UTC.
JULIAN_DAY_AT_UNIX_EPOCH = 2_440_587.5


async def open_database(
    url: str, metrics: Metrics | None = None, slow_log_secs: float = math.inf
) -> tuple[AsyncEngine, SqliteWriter | None]:
    """Connects, and brings the schema to the newest migration. On SQLite, also starts its
    writer thread (``None`` on PostgreSQL, whose driver needs no thread), whose writes and
    checkpoints are timed into ``metrics`` and logged when slower than ``slow_log_secs``."""
    engine = create_async_engine(url, pool_pre_ping=True)
    await asyncio.to_thread(migrate, url)
    writer = None
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", sqlite_pragmas)
        # After the migrations: the writer's checkpoint thread connects at once, and beside
        # their lock it could not switch a new file to WAL ("database is locked").
        writer = SqliteWriter(url, metrics, slow_log_secs)
    return engine, writer


def dialect_insert(engine: AsyncEngine) -> Callable[[Table], sqlite.Insert | postgresql.Insert]:
    """The engine's dialect's INSERT, which has ON CONFLICT (an upsert)."""
    return postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert


def database_now(engine: AsyncEngine) -> ColumnElement[float]:
    """The database's own clock in Unix seconds, as an expression: what every replica on one
    database measures a deadline they share by (their own clocks may disagree)."""
    if engine.dialect.name == "postgresql":
        return cast(func.extract("epoch", func.clock_timestamp()), Float)
    return cast(
        (func.julianday(literal_column("'now'")) - JULIAN_DAY_AT_UNIX_EPOCH) * 86_400.0, Float
    )


async def close_database(engine: AsyncEngine, writer: SqliteWriter | None) -> None:
    if writer is not None:
        await writer.close()
    await engine.dispose()


async def in_transaction(engine: AsyncEngine, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """``work`` in one transaction, committed; what it returns. On SQLite, a transaction that
    two connections start at once can be refused "database is locked" at once, without its busy
    timeout (SQLite does so when waiting could deadlock): it is rolled back, so it is run again,
    until the busy timeout has passed."""
    loop = asyncio.get_running_loop()
    retry_until = loop.time() + BUSY_TIMEOUT_MS / 1_000
    pause = 0.001
    while True:
        try:
            async with engine.begin() as conn:
                return await work(conn)
        except OperationalError as e:
            if not _sqlite_busy(e) or loop.time() >= retry_until:
                raise
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.05)


def _sqlite_busy(error: OperationalError) -> bool:
    """Whether SQLite refused for a lock another connection holds (SQLITE_BUSY, or one of its
    extended codes such as SQLITE_BUSY_SNAPSHOT)."""
    code = getattr(error.orig, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF == sqlite3.SQLITE_BUSY


def unavailable(error: BaseException) -> bool:
    """Whether ``error`` says the database is down, locked or out of reach, rather than that a
    statement is wrong: SQLAlchemy's ``OperationalError`` (SQLite's "database is locked", a file
    it cannot open) and ``InterfaceError``, a connection found broken, a pool that gave no
    connection in time, a PostgreSQL refusal of the classes above, or an ``OSError`` raised
    from within the driver."""
    if isinstance(error, OperationalError | InterfaceError | PoolTimeout):
        return True
    if isinstance(error, DBAPIError):
        state = getattr(error.orig, "sqlstate", None)
        return error.connection_invalidated or (
            isinstance(state, str) and state[:2] in UNAVAILABLE_SQLSTATE_CLASSES
        )
    if isinstance(error, OSError):
        return any(
            frame.f_globals.get("__name__", "").startswith(_DRIVER_MODULES)
            for frame, _ in traceback.walk_tb(error.__traceback__)
        )
    return False


def migrate(url: str, revision: str = "head") -> None:
    """Runs Alembic to the newest schema, or to ``revision`` (blocking; Alembic drives its own
    event loop)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(config, revision)
