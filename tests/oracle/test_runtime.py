"""The oracle's runtime watch: event-loop lateness and garbage-collection pauses as metrics."""

from __future__ import annotations

import asyncio
import gc
import time

from nishati_oracle.core.metrics import Metrics
from nishati_oracle.core.runtime import LAG_PROBE_SECS, RuntimeWatch


def sample(metrics: Metrics, name: str, labels: dict[str, str] | None = None) -> float:
    value = metrics.registry.get_sample_value(name, labels or {})
    return 0.0 if value is None else value


async def test_a_blocked_loop_shows_as_lag() -> None:
    metrics = Metrics()
    watch = RuntimeWatch(metrics)
    watch.start()
    late = {"le": "0.1"}

    def stalls() -> float:
        count = sample(metrics, "nishati_event_loop_lag_seconds_count")
        return count - sample(metrics, "nishati_event_loop_lag_seconds_bucket", late)

    try:
        await asyncio.sleep(LAG_PROBE_SECS * 3)
        assert sample(metrics, "nishati_event_loop_lag_seconds_count") >= 1
        before = stalls()
        time.sleep(0.15)  # noqa: ASYNC251 - the stall under test, as a slow synchronous call
        await asyncio.sleep(LAG_PROBE_SECS * 2)
        assert stalls() >= before + 1
        assert sample(metrics, "nishati_event_loop_lag_seconds_sum") >= 0.1
    finally:
        await watch.close()


async def test_collections_are_timed_by_generation_until_closed() -> None:
    metrics = Metrics()
    full = {"generation": "2"}
    watch = RuntimeWatch(metrics)
    watch.start()
    gc.collect()
    gc.collect(0)
    assert sample(metrics, "nishati_gc_pause_seconds_count", full) == 1
    assert sample(metrics, "nishati_gc_pause_seconds_count", {"generation": "0"}) >= 1
    assert sample(metrics, "nishati_gc_pause_seconds_sum", full) > 0
    await watch.close()
    gc.collect()
    assert sample(metrics, "nishati_gc_pause_seconds_count", full) == 1
