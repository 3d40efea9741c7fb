"""Waiting for what another process does: polled, within a bound, never a fixed sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

POLL_SECS = 0.2


async def eventually(check: Callable[[], Awaitable[T]], what: str, within_secs: float = 60) -> T:
    """The first truthy result of ``await check()``; fails naming ``what`` after
    ``within_secs``."""
    deadline = time.monotonic() + within_secs
    while not (found := await check()):
        assert time.monotonic() < deadline, f"{what} within {within_secs:g} s"
        await asyncio.sleep(POLL_SECS)
    return found
