"""How commands print: rich tables for people, one JSON document with ``--json`` for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from nishati_client.codec import plain

stdout = Console(highlight=False)
stderr = Console(stderr=True, highlight=False)


def emit(as_json: bool, data: dict[str, Any], human: Callable[[], None]) -> None:
    """``data`` as JSON (integers stay integers), or what ``human`` prints."""
    if as_json:
        sys.stdout.write(json.dumps(plain(data), indent=2, sort_keys=True) + "\n")
    else:
        human()


def kes(cents: int) -> str:
    return f"KES {cents // 100:,}.{cents % 100:02d}"


def fields(title: str, rows: Sequence[tuple[str, object]]) -> None:
    """One record, a field per line."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for name, value in rows:
        table.add_row(name, str(value))
    stdout.print(table)


def rows(title: str, columns: Sequence[str], records: Sequence[Sequence[object]]) -> None:
    """Records, one per row."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")  # addresses whole, to copy
    for record in records:
        table.add_row(*(str(value) for value in record))
    stdout.print(table)
