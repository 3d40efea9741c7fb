"""``nishati-oracle operator add``: an operator who can then sign in, kept as an argon2id hash;
a taken name, a short password and a name that is not one refused."""

from __future__ import annotations

import asyncio
import io
import sqlite3
from pathlib import Path

import pytest

from nishati_oracle.accounts.lockouts import Lockouts
from nishati_oracle.accounts.operators import Operators
from nishati_oracle.accounts.secrets import Keyed
from nishati_oracle.cli import main
from nishati_oracle.readings.store import Store


def add(monkeypatch: pytest.MonkeyPatch, name: str, password: str) -> int:
    """``nishati-oracle operator add NAME --password-stdin``: its exit status."""
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    try:
        main(["operator", "add", name, "--password-stdin"])
    except SystemExit as exit:
        return int(exit.code or 0)
    return 0


async def signs_in(database: Path, name: str, password: str) -> None:
    store = await Store.open(f"sqlite+aiosqlite:///{database}")
    try:
        operators = Operators(store.engine, Keyed(b"k" * 32), Lockouts(store.engine, 5, 60))
        await operators.verify(name, password)
    finally:
        await store.close()


def test_an_operator_added_on_the_command_line_signs_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "oracle.db"
    monkeypatch.setenv("NISHATI_DATABASE_URL", f"sqlite+aiosqlite:///{database}")
    assert add(monkeypatch, "amina", "correct horse battery") == 0
    assert "operator amina added" in capsys.readouterr().out
    assert add(monkeypatch, "amina", "another long password") == 1
    assert "OperatorExists" in capsys.readouterr().err
    assert add(monkeypatch, "baraka", "short") == 1
    assert "WeakPassword" in capsys.readouterr().err
    assert add(monkeypatch, "Not A Name", "correct horse battery") == 2
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT username, password_hash FROM operators").fetchall()
    assert [name for name, _ in rows] == ["amina"]
    assert rows[0][1].startswith("$argon2id$")
    asyncio.run(signs_in(database, "amina", "correct horse battery"))
