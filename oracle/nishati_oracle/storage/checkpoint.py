"""SQLite's write-ahead log: the settings every connection takes, and the checkpointer thread
that copies the log back into the database beside the commits, never in one."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import structlog

from nishati_oracle.core.metrics import Metrics

log = structlog.get_logger(__name__)

# SQLite checkpoints in the commit that takes the WAL past 1,000 pages: with 10,000 meters
# that commit waits 20-50 ms (random pages written back and fsynced) about every 0.4 s at 500
# readings/s, and every reading behind it waits too. So no connection here checkpoints on
# commit; the writer's checkpointer thread does, beside the commits, this often, and the writer
# finishes each between two commits so that the WAL starts over (:class:`Checkpointer`). Small
# and often is what keeps commits fast: replaying the bench's load on its 10,000-meter database
# (single-reading commits at 500/s after a burst), the p99 was 15 ms and none over 50 ms with
# one every 0.25 s; 33 ms and 125 over 50 ms every second; 150-340 ms every 5 s, where each
# finish (or the RESTART below) had a few seconds of pages to copy and fsync.
CHECKPOINT_EVERY_SECS = 0.25
# Past this many frames (256 MB of 4 KiB pages: readers kept the WAL from starting over) the
# writer runs a RESTART checkpoint between two commits, which waits for the readers, up to
# RESTART_WAIT_MS, so the WAL starts over; journal_size_limit then gives the space back. On the
# writer's own thread it never waits for a writer: from another connection, a writer that
# never pauses starved its busy handler for over a second while the WAL grew by 40 MB.
WAL_RESTART_FRAMES = 65_536
RESTART_WAIT_MS = 200
WAL_SIZE_LIMIT_BYTES = 64 * 2**20
BUSY_TIMEOUT_MS = 5_000


def sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    """Sets up each new SQLite connection (a ``connect`` listener): WAL, every commit durable,
    no checkpoint on commit."""
    cursor = dbapi_connection.cursor()
    # First: setting the journal mode needs a lock, which waits only with a timeout set.
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    # WAL is kept in the file: set once, as setting it again takes that lock beside a writer
    # (and a checkpointer connecting while the writer commits was refused, "database is locked").
    cursor.execute("PRAGMA journal_mode")
    if cursor.fetchone()[0] != "wal":
        cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
    cursor.close()


def observe_checkpoint(
    metrics: Metrics | None, slow_secs: float, mode: str, started: float, frames: int
) -> None:
    took = time.perf_counter() - started
    if metrics is not None:
        metrics.sqlite_checkpoint.labels(mode).observe(took)
    if took >= slow_secs:
        log.warning("slow sqlite checkpoint", mode=mode, ms=round(took * 1e3, 1), frames=frames)


class Checkpointer:
    """Copies the WAL back into the database every ``CHECKPOINT_EVERY_SECS`` (a PASSIVE
    checkpoint: it waits for no reader or writer), on a thread and connection of its own.

    Commits go on meanwhile, so such a checkpoint never copies the whole WAL, and SQLite starts
    a WAL over only once all of it is copied: it grew without end, and starting it over took a
    RESTART checkpoint that held commits off (and a truncation): 300-600 ms without a commit.
    So ``finish(restart=False)`` is called after each one, for the writer to copy the few frames
    committed meanwhile between two commits (its next transaction then starts the WAL over; the
    count a checkpoint reports is the WAL's when it began, so it cannot tell). Past
    ``WAL_RESTART_FRAMES`` (readers kept it) it is ``finish(restart=True)``: a RESTART there."""

    def __init__(
        self,
        engine: Any,
        metrics: Metrics | None,
        slow_secs: float,
        finish: Callable[[bool], object],
    ) -> None:
        self.engine = engine
        self.every_secs = CHECKPOINT_EVERY_SECS
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
                    observe_checkpoint(self.metrics, self.slow_secs, "passive", started, frames)
                    self.checkpoints += 1
                    cursor.close()
                    restart = frames > WAL_RESTART_FRAMES
                    self.restarts += restart
                    self.finish(restart)
                except Exception:
                    log.exception("sqlite checkpoint failed, trying again")
        finally:
            if connection is not None:
                connection.close()
