"""SQLite's writer: the oracle's busiest writes (accepted readings, Daraja's callbacks) run on a
thread of their own, as statements compiled once from the Core tables."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from sqlalchemy import create_engine, event
from sqlalchemy.engine import make_url

from nishati_oracle.core.metrics import WRITE_STEPS, Metrics, observe_steps, steps_ms
from nishati_oracle.storage.checkpoint import (
    BUSY_TIMEOUT_MS,
    RESTART_WAIT_MS,
    Checkpointer,
    observe_checkpoint,
    sqlite_pragmas,
)

log = structlog.get_logger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Positional:
    """A statement compiled for a positional driver, and the order of its parameters."""

    sql: str
    names: tuple[str, ...]

    def values(self, params: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(params[name] for name in self.names)


def execute_many(statements: list[tuple[Positional, list[tuple[Any, ...]]]], cursor: Any) -> None:
    """Each statement once for each of its rows (a ``work`` for :meth:`SqliteWriter.run`)."""
    for statement, rows in statements:
        if rows:
            cursor.executemany(statement.sql, rows)


class SqliteWriter:
    """Writes to SQLite from a thread of its own: one hand-over per transaction. Through
    aiosqlite every statement (the pool's ping and reset, begin, each insert, commit) is a
    hand-over to its thread and back, each waiting for the event loop's thread to let go of the
    GIL; and SQLAlchemy's execution costs more than SQLite itself for a small transaction. So
    the statements are compiled from the Core tables once (:meth:`compile`) and run on one
    driver connection, kept by the thread: accepted readings in ``readings.store``, Daraja's
    callbacks in ``trading.ledger``."""

    def __init__(
        self, url: str, metrics: Metrics | None = None, slow_secs: float = math.inf
    ) -> None:
        self.engine = create_engine(make_url(url).set(drivername="sqlite+pysqlite"))
        event.listen(self.engine, "connect", sqlite_pragmas)
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="store-writer")
        self._connection: Any = None  # the driver's, made and used on the thread only
        self.metrics = metrics
        self.slow_secs = slow_secs
        self.checkpointer = Checkpointer(
            self.engine,
            metrics,
            slow_secs,
            lambda restart: self.thread.submit(self._finish_checkpoint, restart),
        )
        self._steps = (
            None if metrics is None else [metrics.sqlite_write.labels(step) for step in WRITE_STEPS]
        )

    def compile(self, statement: Any) -> Positional:
        compiled = statement.compile(dialect=self.engine.dialect)
        if compiled.positiontup is None:
            raise ValueError(f"{self.engine.dialect.name} is not a positional driver")
        return Positional(str(compiled), tuple(compiled.positiontup))

    async def run(self, work: Callable[[Any], T]) -> T:
        """``work(cursor)`` on the thread, as one transaction: committed once it returns,
        rolled back if it raises."""
        submitted = time.perf_counter()
        done, *times = await asyncio.get_running_loop().run_in_executor(
            self.thread, self._transaction, work
        )
        answered = time.perf_counter()
        steps = observe_steps(self._steps, [submitted, *times, answered])
        if answered - submitted >= self.slow_secs:
            log.warning(
                "slow sqlite write",
                ms=round((answered - submitted) * 1e3, 1),
                steps=steps_ms(WRITE_STEPS, steps),
            )
        return done

    def _finish_checkpoint(self, restart: bool) -> None:
        """On the thread, between two transactions: copies what the checkpointer left, and
        with ``restart`` waits for the readers (``RESTART_WAIT_MS`` at most) so that the WAL
        starts over."""
        started = time.perf_counter()
        try:
            cursor = self._connect().cursor()
            try:
                if restart:
                    cursor.execute(f"PRAGMA busy_timeout={RESTART_WAIT_MS}")
                    try:
                        _, frames, _ = cursor.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
                    finally:
                        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                else:
                    _, frames, _ = cursor.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            finally:
                cursor.close()
        except Exception:
            # Nobody waits for this one's result: said here, or never. The next one tries again.
            log.exception("finishing a sqlite checkpoint failed")
            return
        mode = "restart" if restart else "finish"
        observe_checkpoint(self.metrics, self.slow_secs, mode, started, frames)

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
