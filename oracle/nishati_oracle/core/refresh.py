"""A value read from the chain now and then, in the background: :class:`Refreshed`."""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Generic, TypeVar

import structlog

from nishati_client.errors import NishatiClientError

log = structlog.get_logger(__name__)

T = TypeVar("T")


class Refreshed(ABC, Generic[T]):
    """A value read from the chain, answered from memory and read again once it is older
    than ``refresh_secs``: only the first use waits for the chain. Later reads run in the
    background, one at a time (on a busy validator one takes a hundred milliseconds or more,
    and every caller meanwhile would wait for it, and send its own); a failed one is tried
    again after ``retry_secs``, the last value answering meanwhile. :meth:`fresh` waits for a
    read (the one in flight, if any)."""

    # What the log says a failed background read was reading.
    what = "a value"

    def __init__(
        self,
        refresh_secs: float,
        retry_secs: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.refresh_secs = refresh_secs
        self.retry_secs = retry_secs
        self.monotonic = monotonic
        self._value: T | None = None
        self._next_read = 0.0
        self._reading: asyncio.Task[None] | None = None

    @abstractmethod
    async def _fetch(self) -> T:
        """Reads the value from the chain."""

    def _merge(self, held: T | None, read: T) -> T:
        """The value to hold after ``read``; by default the read."""
        return read

    async def get(self) -> T:
        """The value; while the chain is unreachable, the last one read."""
        if self._value is None:
            # Nothing read yet: wait for the chain, and fail with it. Shielded, so one caller
            # giving up does not cancel the read the others wait for.
            await asyncio.shield(self._read())
        elif self.monotonic() >= self._next_read:
            self._read()
        assert self._value is not None
        return self._value

    async def fresh(self) -> T:
        """The value read now (the read in flight, if one is); fails with the chain."""
        await asyncio.shield(self._read())
        assert self._value is not None
        return self._value

    def forget(self) -> None:
        """The next :meth:`get` reads again (in the background, if a value is held)."""
        self._next_read = 0.0

    async def close(self) -> None:
        """Cancels a read still in flight."""
        if self._reading is not None:
            self._reading.cancel()
            await asyncio.gather(self._reading, return_exceptions=True)

    def _read(self) -> asyncio.Task[None]:
        """The read in flight, or a new one."""
        if self._reading is None:
            self._reading = asyncio.create_task(self._read_now())
            self._reading.add_done_callback(self._done)
        return self._reading

    async def _read_now(self) -> None:
        self._next_read = self.monotonic() + self.retry_secs
        read = await self._fetch()
        self._value = self._merge(self._value, read)
        self._next_read = self.monotonic() + self.refresh_secs

    def _done(self, task: asyncio.Task[None]) -> None:
        self._reading = None
        if task.cancelled():
            return
        error = task.exception()  # retrieved here; a first read's callers raise it themselves
        if error is None or self._value is None:
            return
        if isinstance(error, NishatiClientError):
            log.warning(f"{self.what} unreachable, keeping the last reading", error=str(error))
        else:
            log.error(f"reading {self.what} failed", exc_info=error)
