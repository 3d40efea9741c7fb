"""Forecast rounds at market scale: 10,000 homes spread over greater Nairobi, against the local
Open-Meteo (``nishati_dev.open_meteo``, answering in the documented JSON shape), on SQLite.

The homes lie at random over 0.6 by 0.6 degrees around Nairobi (169 weather cells at the default
0.05 degree grid), 1 to 10 kWp each; most face the installers' default (10 degrees, north, an
inverter the array's size), the rest one of three other orientations or a smaller inverter.
Each meter has reported a day of readings every 15 minutes before the first round; between
rounds each reports one more. The rounds run in this process, as the oracle runs them: the
first (cold: it buckets the whole day) and then ``--rounds`` more, 15 minutes of clock apart;
the fifth round scores the hour-ahead forecasts of the first.

Rows: the cold round's time and the slowest steady round's (target below 60 s, a fifteenth of
the 15-minute round, so a round never runs into the next); the longest the event loop went
without running a timer during a round (the oracle answers readings meanwhile; what setup made
is frozen out of the garbage collector's way first, as the oracle freezes what its startup
made); weather requests per round against the cells (one each, the cache expired); the
process's peak RSS (target 1 GiB, setup included: it is the whole process's high-water mark);
the database's size.

Run: ``python -m bench.forecast_round`` (``--quick``: 1,000 homes, 3 rounds).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import resource
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np

from bench.stats import Report
from nishati_dev.open_meteo import OpenMeteoStub
from nishati_oracle.core.metrics import Metrics
from nishati_oracle.core.settings import ForecastSettings
from nishati_oracle.forecast.service import ForecastService, RoundReport
from nishati_oracle.forecast.store import ForecastStore
from nishati_oracle.forecast.systems import NAIROBI_LATITUDE, NAIROBI_LONGITUDE, PvSystem
from nishati_oracle.forecast.weather import STEP_SECS, OpenMeteo, cell_of
from nishati_oracle.readings.store import Store
from nishati_oracle.storage.schema import meters, pv_systems, readings

# 2026-12-03 09:00 UTC, noon in Nairobi.
NOON = 1_796_288_400
REGION_DEGREES = 0.6
ORIENTATIONS = ((10.0, 0.0), (15.0, 0.0), (10.0, 90.0), (10.0, 270.0))
ORIENTATION_WEIGHTS = (0.7, 0.1, 0.1, 0.1)
HISTORY_STEPS = 96
ROUND_TARGET_SECS = 60.0
STALL_TARGET_SECS = 0.2
MEMORY_TARGET_BYTES = 1 << 30
CHUNK = 20_000


def homes(count: int, rng: random.Random) -> list[tuple[str, PvSystem]]:
    found = []
    for n in range(count):
        capacity = rng.randrange(1_000, 10_001, 100)
        tilt, azimuth = rng.choices(ORIENTATIONS, ORIENTATION_WEIGHTS)[0]
        inverter = capacity if rng.random() < 0.8 else round(capacity * 0.8)
        system = PvSystem(
            latitude=NAIROBI_LATITUDE + rng.uniform(-0.3, 0.3),
            longitude=NAIROBI_LONGITUDE + rng.uniform(-0.3, 0.3),
            capacity_wp=capacity,
            tilt_deg=tilt,
            azimuth_deg=azimuth,
            inverter_limit_w=inverter,
        )
        found.append((f"home-{n:05d}", system))
    return found


def net_wh(capacity_wp: int, ends: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A home's export and import per step: a sunny day's bell less an evening-heavy load."""
    local_hours = ((ends - STEP_SECS / 2) / 3_600 + 3) % 24
    sun = np.clip(np.sin((local_hours - 6.3) / 12.4 * np.pi), 0, None) ** 1.5
    made = capacity_wp * 0.2 * sun * rng.uniform(0.5, 1.0, len(ends))
    load = 60 + 140 * ((local_hours > 18) & (local_hours < 23)) + rng.uniform(0, 60, len(ends))
    return np.stack([np.clip(made - load, 0, None), np.clip(load - made, 0, None)])


async def add_readings(
    store: Store, rows: list[dict[str, object]], flush: bool = False
) -> list[dict[str, object]]:
    if rows and (flush or len(rows) >= CHUNK):
        async with store.engine.begin() as conn:
            await conn.execute(readings.insert(), rows)
        return []
    return rows


async def populate(store: Store, count: int) -> dict[str, list[int]]:
    """The homes, their systems and meters, and a day of readings: each meter's cumulative
    export and import, by home."""
    systems = homes(count, random.Random(2026))  # noqa: S311 - the same market every run
    rng = np.random.default_rng(2026)
    async with store.engine.begin() as conn:
        await conn.execute(
            meters.insert(),
            [
                {
                    "meter": f"meter-{household}",
                    "household": household,
                    "has_last": False,
                    "last_counter": 0,
                    "last_timestamp": 0,
                    "last_exported_wh": 0,
                    "last_imported_wh": 0,
                }
                for household, _ in systems
            ],
        )
        await conn.execute(
            pv_systems.insert(),
            [
                {"household": household, **system.model_dump(), "updated_at": 0.0}
                for household, system in systems
            ],
        )
    ends = NOON - HISTORY_STEPS * STEP_SECS + STEP_SECS * np.arange(HISTORY_STEPS + 1)
    totals: dict[str, list[int]] = {}
    pending: list[dict[str, object]] = []
    for household, system in systems:
        flows = net_wh(system.capacity_wp, ends, rng)
        cumulative = np.cumsum(np.rint(flows).astype(np.int64), axis=1)
        for i, end in enumerate(ends.tolist()):
            pending.append(
                reading(household, i + 1, end, int(cumulative[0, i]), int(cumulative[1, i]))
            )
        totals[household] = [len(ends), int(cumulative[0, -1]), int(cumulative[1, -1])]
        pending = await add_readings(store, pending)
    await add_readings(store, pending, flush=True)
    return totals


def reading(
    household: str, counter: int, at: int, exported: int, imported: int
) -> dict[str, object]:
    return {
        "meter": f"meter-{household}",
        "counter": counter,
        "timestamp": at,
        "exported_wh": exported,
        "imported_wh": imported,
        "message": b"",
        "signature": b"",
        "received_at": float(at),
    }


async def report_more(store: Store, totals: dict[str, list[int]], at: int) -> None:
    """One more reading of every meter, 15 minutes on."""
    rng = np.random.default_rng(at)
    rows: list[dict[str, object]] = []
    for household, total in totals.items():
        flows = net_wh(3_000, np.array([at]), rng)
        total[0] += 1
        total[1] += int(flows[0, 0])
        total[2] += int(flows[1, 0])
        rows.append(reading(household, total[0], at, total[1], total[2]))
    await add_readings(store, rows, flush=True)


@asynccontextmanager
async def stall_watch(every_secs: float = 0.01) -> AsyncIterator[list[float]]:
    """The longest gaps between a timer's due time and its run while the block runs."""
    stalls = [0.0]
    done = asyncio.Event()

    async def tick() -> None:
        while not done.is_set():
            due = time.perf_counter() + every_secs
            await asyncio.sleep(every_secs)
            stalls[0] = max(stalls[0], time.perf_counter() - due)

    task = asyncio.create_task(tick())
    try:
        yield stalls
    finally:
        done.set()
        await task


async def run(count: int, rounds: int, directory: Path) -> Report:
    report = Report(f"Forecast rounds: {count:,} homes, {rounds + 1} rounds")
    database = directory / "oracle.db"
    store = await Store.open(f"sqlite+aiosqlite:///{database}")
    clock = [float(NOON)]
    try:
        started = time.perf_counter()
        totals = await populate(store, count)
        readings_stored = sum(total[0] for total in totals.values())
        report.step(
            "homes, systems, a day of readings",
            f"{readings_stored:,} readings in {time.perf_counter() - started:,.1f} s",
        )
        # What setup made lives on, as the oracle's startup does (services.start): frozen, a
        # full collection does not walk it.
        gc.collect()
        gc.freeze()
        systems = await ForecastStore(store.engine).homes()
        cells = len(
            {cell_of(s.latitude, s.longitude, 0.05) for s in systems.values() if s is not None}
        )
        with OpenMeteoStub(lambda: clock[0]) as stub:
            settings = ForecastSettings(weather_url=stub.url)
            weather = OpenMeteo(settings, clock=lambda: clock[0])
            service = ForecastService(
                settings, ForecastStore(store.engine), weather, Metrics(), clock=lambda: clock[0]
            )
            reports: list[RoundReport] = []
            stalls: list[float] = []
            try:
                for n in range(rounds + 1):
                    if n:
                        clock[0] += STEP_SECS
                        await report_more(store, totals, int(clock[0]))
                    async with stall_watch() as stall:
                        reports.append(await service.round())
                    stalls.append(stall[0])
            finally:
                await weather.close()
        cold, steady = reports[0], reports[1:]
        report.add(
            "cold round (buckets the day's readings)",
            f"{cold.seconds:,.1f} s",
            f"< {ROUND_TARGET_SECS:g} s",
            cold.seconds < ROUND_TARGET_SECS,
        )
        slowest = max(r.seconds for r in steady)
        report.add(
            "slowest steady round",
            f"{slowest:,.1f} s",
            f"< {ROUND_TARGET_SECS:g} s",
            slowest < ROUND_TARGET_SECS,
            f"rounds {', '.join(f'{r.seconds:.1f}' for r in steady)} s; scored "
            f"{sum(r.scored for r in steady):,} daylight steps",
        )
        report.add(
            "longest event-loop stall in a round",
            f"{max(stalls) * 1e3:,.0f} ms",
            f"< {STALL_TARGET_SECS * 1e3:g} ms",
            max(stalls) < STALL_TARGET_SECS,
        )
        requests = [r.weather_requests for r in reports]
        report.add(
            "weather requests per round",
            ", ".join(str(r) for r in requests),
            f"= {cells} cells",
            all(r == cells for r in requests),
            f"the local Open-Meteo answered {stub.requests} in all",
        )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        report.add(
            "peak RSS of the process",
            f"{peak / 2**20:,.0f} MiB",
            f"< {MEMORY_TARGET_BYTES >> 20} MiB",
            peak < MEMORY_TARGET_BYTES,
        )
        report.add(
            "database after the rounds",
            f"{database.stat().st_size / 2**20:,.0f} MiB",
            note="readings included; the forecasts keep one outlook a home and two steps a "
            "home per round until scored",
        )
        report.notes.append(
            f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores at the end: "
            "anything else running shares them (the stall row above all)"
        )
        sources = cold.by_source
        report.notes.append(
            f"sources in the cold round: {', '.join(f'{s.value} {n}' for s, n in sources.items())}"
        )
    finally:
        await store.close()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1,000 homes, 3 rounds")
    parser.add_argument("--homes", type=int, default=None, help="homes (default 10,000)")
    parser.add_argument("--rounds", type=int, default=None, help="steady rounds (default 5)")
    args = parser.parse_args()
    count = args.homes or (1_000 if args.quick else 10_000)
    rounds = args.rounds or (2 if args.quick else 5)
    with tempfile.TemporaryDirectory(prefix="nishati-bench-forecast-") as directory:
        report = asyncio.run(run(count, rounds, Path(directory)))
    report.print()


if __name__ == "__main__":
    main()
