"""How commands print: rich tables for people, one JSON document with ``--json`` for scripts.

People read times as ISO-8601 UTC dates (``2026-12-03T05:40:00Z``); JSON keeps Unix seconds.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from nishati_client.codec import plain

stdout = Console(highlight=False)
stderr = Console(stderr=True, highlight=False)

# The fields of the program's accounts and events that hold Unix seconds.
UNIX_TIME_FIELDS = frozenset(
    {
        "added_at",
        "created_at",
        "deadline",
        "expires_at",
        "last_attested_at",
        "last_timestamp",
        "meter_since",
        "timestamp",
    }
)


def emit(as_json: bool, data: dict[str, Any], human: Callable[[], None]) -> None:
    """``data`` as JSON (integers stay integers), or what ``human`` prints."""
    if as_json:
        sys.stdout.write(json.dumps(plain(data), indent=2, sort_keys=True) + "\n")
    else:
        human()


def kes(cents: int) -> str:
    return f"KES {cents // 100:,}.{cents % 100:02d}"


def utc(unix_secs: int) -> str:
    """Unix seconds as an ISO-8601 UTC date; a time no calendar holds stays a number."""
    try:
        return datetime.fromtimestamp(unix_secs, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError, OSError):
        return str(unix_secs)


def details(data: Mapping[str, Any]) -> str:
    """An event's fields on one line, ``name=value``, times as dates."""
    return ", ".join(
        f"{name}={utc(value) if name in UNIX_TIME_FIELDS else value}"
        for name, value in data.items()
    )


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
