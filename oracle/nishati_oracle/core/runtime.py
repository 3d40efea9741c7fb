"""What stalls the oracle's one event loop, measured into its metrics: how late a timer runs
(every request waits that long on top of its own work) and the garbage collector's pauses
(which stop every thread). A latency tail that the pipeline's own histogram does not show is
usually one of these."""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

from nishati_oracle.core.metrics import Metrics

# How often the loop's lateness is sampled: often enough to catch a 20 ms stall in a busy
# second, rare enough to cost nothing (one timer, one observation).
LAG_PROBE_SECS = 0.05


class RuntimeWatch:
    """Started in the app's lifespan, closed at its end."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._gc_started = 0.0
        self._probe: asyncio.Task[None] | None = None

    def start(self) -> None:
        gc.callbacks.append(self._on_gc)
        self._probe = asyncio.create_task(self._probe_lag())

    async def close(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self._probe is not None:
            self._probe.cancel()
            await asyncio.gather(self._probe, return_exceptions=True)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            pause = time.perf_counter() - self._gc_started
            self.metrics.gc_pause.labels(str(info["generation"])).observe(pause)

    async def _probe_lag(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + LAG_PROBE_SECS
            await asyncio.sleep(LAG_PROBE_SECS)
            self.metrics.loop_lag.observe(max(0.0, loop.time() - due))
