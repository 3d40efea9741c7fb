"""Requests per key (a phone's digest, a caller's address) in a sliding window, in this
process's memory: what a burst of sign-in attempts from one place or at one phone runs into.
Lockouts after wrong codes (``lockouts``) are kept in the database instead, so a restart does
not lift them."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

# Keys remembered at most: past it, the keys whose window is over are forgotten first.
MAX_KEYS = 100_000


class RateLimit:
    def __init__(
        self, limit: int, window_secs: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window_secs = window_secs
        self.clock = clock
        self._hits: dict[str, deque[float]] = {}

    def hit(self, key: str) -> float | None:
        """Counts a request for ``key``; ``None`` when within the limit, else the seconds until
        one more would be (the refused request is not counted)."""
        now = self.clock()
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= MAX_KEYS:
                self._forget(now)
            hits = self._hits[key] = deque()
        while hits and hits[0] <= now - self.window_secs:
            hits.popleft()
        if len(hits) >= self.limit:
            return hits[0] + self.window_secs - now
        hits.append(now)
        return None

    def _forget(self, now: float) -> None:
        over = [
            k for k, hits in self._hits.items() if not hits or hits[-1] <= now - self.window_secs
        ]
        for key in over or list(self._hits)[: MAX_KEYS // 10]:
            del self._hits[key]
