"""SQLite's WAL is copied back into the database by the writer's checkpointer thread, beside
the commits, never by a commit."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import text
from structlog.testing import capture_logs

from nishati_oracle.core.metrics import WRITE_STEPS, Metrics
from nishati_oracle.readings.store import Store
from nishati_oracle.storage import checkpoint

BALLAST = 2**20


def add_ballast(cursor: Any) -> None:
    cursor.execute("CREATE TABLE ballast (data BLOB)")
    cursor.execute("INSERT INTO ballast VALUES (?)", (bytes(BALLAST),))


async def test_the_checkpointer_and_not_a_commit_moves_the_wal_into_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "oracle.db"
    monkeypatch.setattr(checkpoint, "CHECKPOINT_EVERY_SECS", 3_600.0)
    store = await Store.open(f"sqlite+aiosqlite:///{database}")
    try:
        async with store.engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA wal_autocheckpoint"))).scalar_one() == 0
        assert store.writer is not None
        before = database.stat().st_size
        await store.writer.run(add_ballast)
        # Committed, in the WAL only: no commit checkpointed it.
        assert database.stat().st_size == before
        assert database.with_name(f"{database.name}-wal").stat().st_size > BALLAST
    finally:
        await store.close()

    database = tmp_path / "checkpointed.db"
    monkeypatch.setattr(checkpoint, "CHECKPOINT_EVERY_SECS", 0.05)
    store = await Store.open(f"sqlite+aiosqlite:///{database}")
    try:
        assert store.writer is not None
        before = database.stat().st_size
        await store.writer.run(add_ballast)
        for _ in range(100):
            checkpointed = store.writer.checkpointer.checkpoints
            if checkpointed and database.stat().st_size > before + BALLAST // 2:
                break
            await asyncio.sleep(0.02)
        assert database.stat().st_size > before + BALLAST // 2
        assert store.writer.checkpointer.checkpoints >= 1
    finally:
        await store.close()


def add_page(cursor: Any) -> None:
    cursor.execute("INSERT INTO ballast VALUES (?)", (bytes(4_096),))


class OverlappingReaders:
    """Two connections reading in turn, each opening a read transaction before the other
    ends its own: there is always a reader, so the WAL never starts over by itself."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> OverlappingReaders:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        readers = [sqlite3.connect(self.database, isolation_level=None) for _ in range(2)]
        try:
            for reader in readers:
                reader.execute("BEGIN")
                reader.execute("SELECT count(*) FROM ballast").fetchone()
            turn = 0
            while not self._stop.wait(0.002):
                reader = readers[turn]
                reader.execute("COMMIT")
                reader.execute("BEGIN")
                reader.execute("SELECT count(*) FROM ballast").fetchone()
                turn = 1 - turn
        finally:
            for reader in readers:
                reader.close()


async def wal_after_steady_writes(
    database: Path, secs: float, pages: int, readers: bool = False
) -> tuple[int, int, int]:
    """Writes a page a transaction, back to back, for ``secs`` and at least ``pages`` pages
    (with ``readers``, beside :class:`OverlappingReaders`): the WAL's size at the end, the bytes
    written, and the checkpointer's restarts. Both bounds: a fast machine gives the checkpointer
    its time, and a slow one writes as much."""
    store = await Store.open(f"sqlite+aiosqlite:///{database}")
    try:
        assert store.writer is not None
        await store.writer.run(lambda cursor: cursor.execute("CREATE TABLE ballast (data BLOB)"))
        with OverlappingReaders(database) if readers else contextlib.nullcontext():
            loop = asyncio.get_running_loop()
            deadline = loop.time() + secs
            written = 0
            while written < pages or loop.time() < deadline:
                await store.writer.run(add_page)
                written += 1
        wal = database.with_name(f"{database.name}-wal").stat().st_size
        return wal, written * 4_096, store.writer.checkpointer.restarts
    finally:
        await store.close()


async def test_the_writer_finishes_each_checkpoint_so_the_wal_starts_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PASSIVE checkpoint beside a writer that never pauses is always overtaken, and SQLite
    starts a WAL over only once all of it is copied: replaying the bench's load, it grew to
    2 GB in 50 s, and then a RESTART stalled commits for 300-600 ms. The writer copies what
    each checkpoint left, between two commits, and no RESTART is needed."""
    monkeypatch.setattr(checkpoint, "CHECKPOINT_EVERY_SECS", 0.02)
    wal, written, restarts = await wal_after_steady_writes(tmp_path / "oracle.db", 2.0, 512)
    assert restarts == 0
    assert wal < written / 4


@pytest.mark.parametrize("restart_frames", [128, 2**40])
async def test_a_wal_that_readers_keep_is_restarted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restart_frames: int
) -> None:
    """Readers that always overlap keep the WAL from starting over, finished checkpoints or
    not; past WAL_RESTART_FRAMES the writer's RESTART checkpoint starts it over all the same.
    Without one (``2**40``) it grows with every write."""
    monkeypatch.setattr(checkpoint, "CHECKPOINT_EVERY_SECS", 0.02)
    monkeypatch.setattr(checkpoint, "WAL_SIZE_LIMIT_BYTES", 2**20)
    monkeypatch.setattr(checkpoint, "WAL_RESTART_FRAMES", restart_frames)
    wal, written, restarts = await wal_after_steady_writes(
        tmp_path / "oracle.db", 3.0, 768, readers=True
    )
    if restart_frames == 128:
        assert restarts >= 1
        # The size limit, and what the writes added since the last RESTART.
        assert wal < 2 * 2**20
    else:
        assert restarts == 0
        assert wal > written


async def test_writes_and_checkpoints_are_timed_by_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where a slow write spent its time shows in the metrics and the log: here, in its
    statements."""
    monkeypatch.setattr(checkpoint, "CHECKPOINT_EVERY_SECS", 0.02)
    metrics = Metrics()
    url = f"sqlite+aiosqlite:///{tmp_path / 'oracle.db'}"
    store = await Store.open(url, metrics, slow_log_secs=0.05)

    def slow_statements(cursor: Any) -> None:
        add_ballast(cursor)
        time.sleep(0.06)

    def observed(name: str, step: str, le: str = "+Inf") -> float:
        labels = {("mode" if "checkpoint" in name else "step"): step, "le": le}
        return metrics.registry.get_sample_value(f"{name}_bucket", labels) or 0.0

    try:
        assert store.writer is not None
        with capture_logs() as logged:
            await store.writer.run(slow_statements)
        for _ in range(100):
            if observed("nishati_sqlite_checkpoint_seconds", "passive"):
                break
            await asyncio.sleep(0.02)
    finally:
        await store.close()
    for step in WRITE_STEPS:
        assert observed("nishati_sqlite_write_seconds", step) == 1
    assert observed("nishati_sqlite_write_seconds", "statements", "0.05") == 0
    assert observed("nishati_sqlite_checkpoint_seconds", "passive") >= 1
    [slow] = [e for e in logged if e["event"] == "slow sqlite write"]
    assert list(slow["steps"]) == list(WRITE_STEPS)
    assert slow["steps"]["statements"] >= 60


async def test_a_finish_that_fails_is_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody waits for a finish's result, so its failure is logged where it happens."""
    store = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'oracle.db'}")
    try:
        writer = store.writer
        assert writer is not None

        def locked() -> Any:
            raise sqlite3.OperationalError("database is locked")

        monkeypatch.setattr(writer, "_connect", locked)
        # The traceback as the JSON log renders it.
        with capture_logs([structlog.processors.format_exc_info]) as logged:
            await asyncio.get_running_loop().run_in_executor(
                writer.thread, writer._finish_checkpoint, False
            )
    finally:
        monkeypatch.undo()
        await store.close()
    [failed] = [e for e in logged if e["event"] == "finishing a sqlite checkpoint failed"]
    assert failed["log_level"] == "error"
    assert "database is locked" in failed["exception"]
