"""The cluster's clock, as the program sees it: what the pipeline checks each reading's
timestamp against."""

from __future__ import annotations

import asyncio
import time

import structlog

from nishati_client.chain import AccountReader, cluster_time
from nishati_client.errors import NishatiClientError

log = structlog.get_logger(__name__)

# How soon a failed read of the cluster's clock is tried again.
RETRY_CLOCK_SECS = 1.0


class ChainClock:
    """The cluster's clock, as the program sees it: read from the Clock sysvar now and then
    and carried forward on the local monotonic clock in between. Checking skew against it
    (not the oracle's wall clock) accepts exactly the readings the chain will accept.

    Only the first reading waits for the chain. Later reads run in the background, one at a
    time: on a busy validator one takes a hundred milliseconds or more, and every reading
    submitted meanwhile would wait for it (and send its own)."""

    def __init__(
        self, chain: AccountReader, refresh_secs: float = 30, retry_secs: float = RETRY_CLOCK_SECS
    ) -> None:
        self.chain = chain
        self.refresh_secs = refresh_secs
        self.retry_secs = retry_secs
        self._read_at: float | None = None
        self._cluster_time = 0
        self._next_read = 0.0
        self._reading: asyncio.Task[None] | None = None

    async def now(self) -> int:
        """The cluster's time; while the chain is unreachable, the last reading carried on."""
        if self._read_at is None:
            # Nothing to carry forward yet: wait for the chain, and fail with it. Shielded, so
            # one caller giving up does not cancel the read the others wait for.
            await asyncio.shield(self._read())
        elif time.monotonic() >= self._next_read:
            self._read()
        assert self._read_at is not None
        return self._cluster_time + int(time.monotonic() - self._read_at)

    async def close(self) -> None:
        """Cancels a read still in flight."""
        if self._reading is not None:
            self._reading.cancel()
            await asyncio.gather(self._reading, return_exceptions=True)

    def _read(self) -> asyncio.Task[None]:
        """The read in flight, or a new one."""
        if self._reading is None:
            self._reading = asyncio.create_task(self._read_clock())
            self._reading.add_done_callback(self._done)
        return self._reading

    async def _read_clock(self) -> None:
        self._next_read = time.monotonic() + self.retry_secs
        self._cluster_time = await cluster_time(self.chain)
        self._read_at = time.monotonic()
        self._next_read = self._read_at + self.refresh_secs

    def _done(self, task: asyncio.Task[None]) -> None:
        self._reading = None
        if task.cancelled():
            return
        error = task.exception()  # retrieved here; a first read's callers raise it themselves
        if error is None or self._read_at is None:
            return
        if isinstance(error, NishatiClientError):
            log.warning("cluster clock unreachable, carrying the last reading on", error=str(error))
        else:
            log.error("reading the cluster clock failed", exc_info=error)
