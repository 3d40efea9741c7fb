"""Attester failover: how long a market goes without an attester when the one attesting dies.

Candidates are processes of their own, each keeping the market's attester lease
(``nishati_oracle.readings.lease``) with the oracle's default settings, on one database. The
holder is SIGKILLed (it releases nothing) and the time until another takes the lease over is
measured; then the holder is stopped the way a replica stops (SIGTERM: it releases its lease).
Killed, a takeover waits out the lease and at most one renewal interval; stopped, at most one
renewal interval.

Run: ``.venv/bin/python -m bench.failover [--quick] [--database-url URL]`` (by default a
SQLite file; pass a PostgreSQL URL, e.g. ``postgresql+asyncpg://...``, for replicas' own).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from solders.pubkey import Pubkey
from sqlalchemy.ext.asyncio import create_async_engine

from bench.stats import Report
from nishati_oracle.core.logs import configure as configure_logs
from nishati_oracle.core.settings import ReadingSettings
from nishati_oracle.readings.lease import AttesterLease
from nishati_oracle.storage.database import migrate

# A market without an attester this long after its attester died is a miss.
TARGET_KILLED_SECS = 15.0
MARKET = str(Pubkey.new_unique())
TAKEN = "taken"


async def candidate(url: str, market: str, name: str) -> None:
    """One candidate: keeps the lease until SIGTERM, printing ``taken <unix time> <token>``
    each time it takes it."""
    configure_logs()  # to stderr: stdout is the lines above
    settings = ReadingSettings()
    engine = create_async_engine(url)
    lease = AttesterLease(
        engine, market, settings.attest_lease_secs, settings.attest_lease_renew_secs, name
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    def taken() -> None:
        token = None if lease.fence is None else lease.fence.token
        print(TAKEN, time.time(), token, flush=True)

    print("ready", flush=True)
    try:
        if await lease.try_hold():
            taken()
        await lease.keep(stop, taken)
    finally:
        await engine.dispose()


class Candidate:
    """A candidate process and the lines it prints."""

    def __init__(self, process: asyncio.subprocess.Process, name: str) -> None:
        self.process = process
        self.name = name

    @classmethod
    async def start(cls, url: str, name: str) -> Candidate:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.failover",
            "--candidate",
            name,
            "--database-url",
            url,
            "--market",
            MARKET,
            stdout=asyncio.subprocess.PIPE,
        )
        started = cls(process, name)
        if await started.line() != ["ready"]:
            raise RuntimeError(f"candidate {name} did not start (its stderr has why)")
        return started

    async def line(self) -> list[str]:
        assert self.process.stdout is not None
        return (await self.process.stdout.readline()).decode().split()

    async def taken_at(self, within_secs: float) -> float:
        """When (Unix time) this candidate next takes the lease."""
        words = await asyncio.wait_for(self.line(), within_secs)
        if words[:1] != [TAKEN]:
            raise RuntimeError(f"candidate {self.name} said {words} (its stderr has why)")
        return float(words[1])

    async def stop(self, sig: signal.Signals) -> float:
        """Sends ``sig`` (to this candidate's PID); when it was sent."""
        sent = time.time()
        self.process.send_signal(sig)
        await self.process.wait()
        return sent


async def failovers(url: str, rounds: int, sig: signal.Signals, renew_secs: float) -> list[float]:
    """Seconds from ``sig`` to the holder until the next candidate holds the lease, per round."""
    times: list[float] = []
    holder = await Candidate.start(url, "c0")
    await holder.taken_at(30)
    try:
        for n in range(1, rounds + 1):
            waiting = await Candidate.start(url, f"c{n}")
            # Asking at every renewal while the holder renews; stopped at a random point of
            # both candidates' renewal intervals (a fixed wait would stop it in one phase).
            await asyncio.sleep(random.uniform(renew_secs, renew_secs * 2))  # noqa: S311
            died = await holder.stop(sig)
            taken = await waiting.taken_at(TARGET_KILLED_SECS * 4)
            times.append(taken - died)
            holder = waiting
    finally:
        with contextlib.suppress(ProcessLookupError):
            await holder.stop(signal.SIGTERM)
    return times


async def run(url: str, quick: bool) -> Report:
    settings = ReadingSettings()
    report = Report("Attester failover (one market, candidates in processes of their own)")
    report.step("database", url.split("://", 1)[0])
    report.step(
        "lease",
        f"{settings.attest_lease_secs:g} s, renewed every {settings.attest_lease_renew_secs:g} s",
    )
    await asyncio.to_thread(migrate, url)
    rounds = 1 if quick else 3
    renew = settings.attest_lease_renew_secs
    killed = await failovers(url, rounds, signal.SIGKILL, renew)
    report.add(
        "failover, attester SIGKILLed",
        f"max {max(killed):.1f} s, mean {statistics.mean(killed):.1f} s ({rounds} kills)",
        f"< {TARGET_KILLED_SECS:g} s",
        max(killed) < TARGET_KILLED_SECS,
        "the lease runs out unrenewed, then the next ask takes it",
    )
    stopped = await failovers(url, rounds, signal.SIGTERM, renew)
    report.add(
        "failover, attester stopped (releases its lease)",
        f"max {max(stopped):.1f} s, mean {statistics.mean(stopped):.1f} s ({rounds} stops)",
        f"< {renew + 1:g} s",
        max(stopped) < renew + 1,
        "taken at the next ask, at most one renewal interval later",
    )
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one kill and one stop")
    parser.add_argument("--database-url", help="the database the candidates share")
    parser.add_argument("--candidate", help=argparse.SUPPRESS)
    parser.add_argument("--market", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.candidate is not None:
        asyncio.run(candidate(args.database_url, args.market, args.candidate))
        return
    with tempfile.TemporaryDirectory(prefix="nishati-failover-") as directory:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(directory) / 'oracle.db'}"
        asyncio.run(run(url, args.quick)).print()


if __name__ == "__main__":
    main()
