"""The simulator's books in SQLite, so that killing it and starting it again loses nothing, as
with the real Daraja: payments, payouts, reversals, tokens, callbacks held back or waiting to be
sent, work waiting for its time (an outcome to decide, a status to answer), the B2C account,
the rules and settings changed at run time, and the request and delivery records.

Each entity is one row of JSON keyed by its id. The engine keeps its working copy in memory and
writes every change through; :meth:`Books.step` commits a group of changes at once, so a kill
between two steps leaves the books as they were after the first. Work is at least once: a
callback posted just before a kill is posted again after the restart (Daraja, too, sends a
callback twice now and then).

``path`` None keeps the books in memory (``:memory:``), gone with the process.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS entities (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    due REAL NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


class Books:
    """One SQLite database (WAL, so a committed step survives a SIGKILL of this process)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(":memory:" if path is None else str(path), isolation_level=None)
        if path is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._depth = 0

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def step(self) -> Iterator[None]:
        """Commits everything written inside at once (nested steps join the outer one)."""
        if self._depth == 0:
            self._db.execute("BEGIN IMMEDIATE")
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                self._db.execute("ROLLBACK")
            raise
        self._depth -= 1
        if self._depth == 0:
            self._db.execute("COMMIT")

    # --- entities: stk, payout, reversal, token, held ------------------------------------

    def put(self, kind: str, key: str, data: str) -> None:
        with self.step():
            self._db.execute(
                "INSERT INTO entities (kind, id, data) VALUES (?, ?, ?) "
                "ON CONFLICT (kind, id) DO UPDATE SET data = excluded.data",
                (kind, key, data),
            )

    def remove(self, kind: str, key: str) -> None:
        with self.step():
            self._db.execute("DELETE FROM entities WHERE kind = ? AND id = ?", (kind, key))

    def all(self, kind: str) -> list[tuple[str, str]]:
        """``(id, data)`` of every entity of ``kind``, in the order they were first written."""
        rows = self._db.execute(
            "SELECT id, data FROM entities WHERE kind = ? ORDER BY rowid", (kind,)
        )
        return [(str(k), str(d)) for k, d in rows]

    def forget(self, *kinds: str) -> None:
        with self.step():
            for kind in kinds:
                self._db.execute("DELETE FROM entities WHERE kind = ?", (kind,))

    # --- jobs: work waiting for its time ---------------------------------------------------

    def add_job(self, due: float, kind: str, data: dict[str, Any]) -> int:
        with self.step():
            cursor = self._db.execute(
                "INSERT INTO jobs (due, kind, data) VALUES (?, ?, ?)",
                (due, kind, json.dumps(data)),
            )
        job_id = cursor.lastrowid
        assert job_id is not None
        return job_id

    def finish_job(self, job_id: int) -> None:
        with self.step():
            self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def finish_jobs_about(self, kind: str, field: str, value: str) -> None:
        """Removes the ``kind`` jobs whose ``field`` is ``value`` (their work was done early)."""
        with self.step():
            self._db.execute(
                "DELETE FROM jobs WHERE kind = ? AND json_extract(data, ?) = ?",
                (kind, f"$.{field}", value),
            )

    def jobs(self) -> list[tuple[int, float, str, dict[str, Any]]]:
        rows = self._db.execute("SELECT id, due, kind, data FROM jobs ORDER BY due, id")
        return [(int(i), float(due), str(kind), json.loads(data)) for i, due, kind, data in rows]

    def forget_jobs(self) -> None:
        with self.step():
            self._db.execute("DELETE FROM jobs")

    # --- records: requests and deliveries, appended ------------------------------------------

    def record(self, kind: str, data: str) -> None:
        with self.step():
            self._db.execute("INSERT INTO records (kind, data) VALUES (?, ?)", (kind, data))

    def records(self, kind: str) -> list[str]:
        rows = self._db.execute("SELECT data FROM records WHERE kind = ? ORDER BY id", (kind,))
        return [str(d) for (d,) in rows]

    def forget_records(self) -> None:
        with self.step():
            self._db.execute("DELETE FROM records")

    # --- meta: the account, rules, settings changes, faults ----------------------------------

    def set(self, key: str, value: Any) -> None:
        with self.step():
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)),
            )

    def get(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def unset(self, *keys: str) -> None:
        with self.step():
            for key in keys:
                self._db.execute("DELETE FROM meta WHERE key = ?", (key,))
