"""The cluster's clock, as the program sees it: what the pipeline and the batcher check each
reading against."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from nishati_client.chain import AccountReader, cluster_time
from nishati_oracle.core.refresh import Refreshed

# How soon a failed read of the cluster's clock is tried again.
RETRY_CLOCK_SECS = 1.0
# How old the last read may be before another is made (in the background).
REFRESH_CLOCK_SECS = 1.0


def trailing_secs(refresh_secs: float = REFRESH_CLOCK_SECS) -> int:
    """The most whole seconds the oracle's chain time trails the cluster's: one refresh
    interval, and a second for the read itself. A caller that needs the oracle to have seen a
    cluster time waits this long past it."""
    return math.ceil(refresh_secs) + 1


class ChainClock(Refreshed[int]):
    """The cluster's clock, as the program sees it: the Clock sysvar, read now and then
    (:class:`~nishati_oracle.core.refresh.Refreshed`: only the first use waits for the chain).

    :meth:`now` is the latest time read, never carried forward on the oracle's own clock: a
    cluster's clock may lag real time (a local validator's did, by minutes), and a transaction
    sent now runs at this time or later. So a check that passes against it passes on chain:
    a reading is never "too far ahead" there when it was not here, and the chain time since a
    meter's last attestation is never more than the program counts. The cost is a clock up to
    ``refresh_secs`` (and a read's latency) behind, which only makes the checks stricter. An
    answer from behind (a lagging RPC node's) never moves it back."""

    what = "cluster clock"

    def __init__(
        self,
        chain: AccountReader,
        refresh_secs: float = REFRESH_CLOCK_SECS,
        retry_secs: float = RETRY_CLOCK_SECS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(refresh_secs, retry_secs, monotonic)
        self.chain = chain

    async def now(self) -> int:
        """The latest cluster time read; while the chain is unreachable, the last one."""
        return await self.get()

    def observe(self, cluster_time: int) -> None:
        """Takes in a cluster time read elsewhere (the batcher's, after an attestation)."""
        if self._value is not None:
            self._value = max(self._value, cluster_time)

    async def _fetch(self) -> int:
        return await cluster_time(self.chain)

    def _merge(self, held: int | None, read: int) -> int:
        # A cluster's clock does not go back.
        return read if held is None else max(held, read)
