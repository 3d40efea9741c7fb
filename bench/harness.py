"""What the oracle and trading benches share: the two cores and what runs on each, the oracle as a
measured process, a kept-alive HTTP connection as a meter gateway or Daraja holds one, and the
command line every bench takes.

The oracle runs alone on ORACLE_CORE (``taskset``); the bench itself, the load it sends, the
validator, the broker and the Daraja simulator share LOAD_CORE.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]  # no types-psutil in the venv

from bench.stats import Report
from nishati_dev.processes import OracleService

ORACLE_CORE = 0
LOAD_CORE = 1


def pin(pid: int, cores: set[int]) -> None:
    """Moves every thread of ``pid`` to ``cores`` (threads it starts later inherit them)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError, FileNotFoundError):
            os.sched_setaffinity(int(task.name), cores)


def tree_cpu_secs(pid: int) -> float:
    """CPU seconds (user and system) spent so far by ``pid`` and every process under it,
    those that have exited included (in their parent's counts once it has waited for them):
    a server forking a process a connection, as PostgreSQL does."""
    root = psutil.Process(pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
    return total


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


class BenchOracle(OracleService):
    """The oracle under ``taskset -c ORACLE_CORE`` (which execs Python: the PID is the
    oracle's), with what the benches read of it: its CPU time, memory and cores, and py-spy
    profiles of a phase when ``profiles`` names a directory."""

    def __init__(
        self, env: Mapping[str, str], log_path: Path, profiles: Path | None = None
    ) -> None:
        super().__init__(env, log_path, wrapper=["taskset", "-c", str(ORACLE_CORE)])
        self.profiles = profiles
        self.peak_rss = 0

    @contextlib.contextmanager
    def profiled(self, name: str) -> Iterator[None]:
        """Samples the oracle with py-spy while the block runs, into ``<profiles>/<name>.txt``
        (collapsed stacks), if profiling was asked for."""
        if self.profiles is None or self.process is None:
            yield
            return
        spy = Path(sys.executable).with_name("py-spy")
        command = [str(spy), "record", "--pid", str(self.pid), "--format", "raw"]
        command += ["--rate", "200", "--nolineno", "--output", str(self.profiles / f"{name}.txt")]
        sampler = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            yield
        finally:
            sampler.send_signal(signal.SIGINT)
            try:
                sampler.wait(timeout=30)
            except subprocess.TimeoutExpired:
                sampler.kill()
                sampler.wait()

    @property
    def ps(self) -> psutil.Process:
        return psutil.Process(self.pid)

    def rss(self) -> int:
        value: int = self.ps.memory_info().rss
        self.peak_rss = max(self.peak_rss, value)
        return value

    def cpu_secs(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def cores(self) -> list[int]:
        """The cores any thread of the oracle may run on."""
        cores: set[int] = set()
        for thread in self.ps.threads():
            cores.update(os.sched_getaffinity(thread.id))
        return sorted(cores)


@contextlib.asynccontextmanager
async def sampling_rss(oracle: BenchOracle, every_secs: float = 0.5) -> AsyncIterator[None]:
    """Keeps ``oracle.peak_rss`` up to date while the block runs."""

    async def sample() -> None:
        while True:
            with contextlib.suppress(psutil.Error):
                oracle.rss()
            await asyncio.sleep(every_secs)

    task = asyncio.create_task(sample())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Connection:
    """One keep-alive HTTP/1.1 connection, as a meter gateway holds. A few lines of asyncio
    rather than httpx, whose pool rescans every waiting request for each one it assigns and
    so, thousands of requests deep, becomes the bottleneck it should be measuring."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def close(self) -> None:
        streams, self.streams = self.streams, None
        if streams is not None:
            streams[1].close()
            with contextlib.suppress(OSError):
                await streams[1].wait_closed()

    async def post(self, path: str, content: bytes) -> tuple[int, bytes]:
        """The status and body of the answer. A kept connection the server has closed since
        (uvicorn closes idle ones after 5 s) is opened again, and the request sent again."""
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(content)}\r\n\r\n"
        ).encode()
        while True:
            fresh = self.streams is None
            if self.streams is None:
                self.streams = await asyncio.open_connection(self.host, self.port)
            reader, writer = self.streams
            try:
                writer.write(head + content)
                await writer.drain()
                status_line = await reader.readline()
                if not status_line:
                    raise ConnectionResetError("closed by the server")
                length, close = 0, False
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                    elif name.strip().lower() == b"connection":
                        close = value.strip().lower() == b"close"
                data = await reader.readexactly(length)
            except (OSError, asyncio.IncompleteReadError):
                await self.close()
                if fresh:
                    raise
                continue
            if close:
                await self.close()
            return int(status_line.split()[1]), data


Answer = tuple[int, bytes] | Exception


@dataclass
class OpenLoop:
    """What an open-loop run saw: each answered request's latency from when it was due, the
    time each given-up one had waited, how late the sender was at most, and the seconds from
    the first due time to the last answer."""

    latencies: list[float] = field(default_factory=list)
    unanswered: list[float] = field(default_factory=list)
    lag: float = 0.0
    secs: float = 0.0


async def open_loop(
    url: str,
    path: str,
    bodies: Sequence[bytes],
    interval: float,
    connections: int,
    grace_secs: float,
    take: Callable[[int, Answer], None],
) -> OpenLoop:
    """``bodies`` POSTed to ``path``, one due every ``interval`` seconds, over ``connections``
    kept connections, open loop: each request is due at its time whatever the ones before are
    doing, and its latency counts from then (waiting for a free connection included).
    ``take(i, answer)`` sees the answer to ``bodies[i]``, or the error that took its place.
    Requests still unanswered ``grace_secs`` after the last was due are given up, and counted
    in ``unanswered`` with the time they had waited (a lower bound of their latency)."""
    run = OpenLoop()
    loop = asyncio.get_running_loop()
    due_now: asyncio.Queue[tuple[float, int] | None] = asyncio.Queue()
    waiting: dict[int, float] = {}
    last = 0.0

    async def sender() -> None:
        nonlocal last
        connection = Connection(url)
        try:
            while (item := await due_now.get()) is not None:
                due, i = item
                waiting[id(item)] = due
                try:
                    answer: Answer = await connection.post(path, bodies[i])
                except (OSError, asyncio.IncompleteReadError) as error:
                    answer = error
                finally:
                    del waiting[id(item)]
                last = loop.time()
                if not isinstance(answer, Exception):
                    run.latencies.append(last - due)
                take(i, answer)
        finally:
            await connection.close()

    senders = [asyncio.create_task(sender()) for _ in range(connections)]
    start = loop.time() + 0.05
    for i in range(len(bodies)):
        due = start + i * interval
        wait = due - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        run.lag = max(run.lag, loop.time() - due)
        due_now.put_nowait((due, i))
    for _ in senders:
        due_now.put_nowait(None)
    _, late = await asyncio.wait(senders, timeout=grace_secs)
    if late:
        now = loop.time()
        queued = [item for item in iter(due_now.get_nowait, None) if item is not None]
        run.unanswered = [now - due for due in waiting.values()] + [now - q[0] for q in queued]
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
    run.secs = last - start
    return run


# A bench's run: (its work directory, where py-spy profiles go or None) -> its report.
Run = Callable[[Path, Path | None], Coroutine[Any, Any, Report]]


def arguments(description: str, profiled: str) -> argparse.ArgumentParser:
    """The options every bench takes; ``profiled`` says which phases ``--profile`` samples."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a short run for CI")
    parser.add_argument("--keep", action="store_true", help="keep the logs and databases")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help=f"sample the oracle with py-spy (pip install py-spy) in {profiled}, into DIR",
    )
    return parser


def bench_main(name: str, args: argparse.Namespace, run: Run) -> None:
    """Checks the cores and py-spy, runs ``run`` in a temporary directory (kept with
    ``--keep``) and prints its report with the machine's load before and after."""
    if args.profile is not None:
        if not Path(sys.executable).with_name("py-spy").exists():
            sys.exit("--profile needs py-spy in the virtual environment: pip install py-spy")
        args.profile.mkdir(parents=True, exist_ok=True)
    if not {ORACLE_CORE, LOAD_CORE} <= os.sched_getaffinity(0):
        sys.exit(f"bench.{name} needs cores {ORACLE_CORE} and {LOAD_CORE}")
    started = time.perf_counter()
    load = os.getloadavg()[0]
    directory = Path(tempfile.mkdtemp(prefix=f"nishati-bench-{name}-"))
    try:
        report = asyncio.run(run(directory, args.profile))
    finally:
        if args.keep:
            print(f"logs and databases kept in {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)
    report.notes.append(
        f"load average {load:.2f} before the run, {os.getloadavg()[0]:.2f} after, on "
        f"{os.cpu_count()} cores: anything else running shares them"
    )
    report.notes.append(f"the whole run took {time.perf_counter() - started:,.0f} s")
    report.print()
