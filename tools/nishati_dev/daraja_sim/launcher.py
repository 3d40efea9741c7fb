"""The simulator as a child process for tests and the demo: ``python -m nishati_dev.daraja_sim`` on
a free loopback port, waited for until it answers, and stopped by its own PID.

    with running_daraja_sim(callback_delay_secs=0.05) as sim:
        httpx.get(f"{sim.url}/simulator/health")

``running_daraja_sim_async`` is the same for ``async with``, starting and stopping off the loop.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HOST = "127.0.0.1"
START_TIMEOUT_SECS = 20.0
STOP_TIMEOUT_SECS = 10.0
PACKAGE_PARENT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port nothing listens on now, on loopback."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def _env_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass
class DarajaSimProcess:
    """One simulator; ``settings`` are DarajaSimSettings fields (``callback_delay_secs=0.05``)."""

    settings: dict[str, object] = field(default_factory=dict)
    log_path: Path | None = None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DARAJA_SIM_")}
        env.update({f"DARAJA_SIM_{k.upper()}": _env_value(v) for k, v in self.settings.items()})
        env["DARAJA_SIM_HOST"] = HOST
        env["DARAJA_SIM_PORT"] = str(self.port)
        # Found even where the editable install predates the package.
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(PACKAGE_PARENT), env.get("PYTHONPATH", "")) if p
        )
        return env

    def start(self) -> None:
        """Starts the simulator and waits until ``/simulator/health`` answers."""
        if self.process is not None:
            raise RuntimeError("the Daraja simulator is already running")
        if self.log_path is None:
            handle, name = tempfile.mkstemp(prefix="daraja-sim-", suffix=".log")
            os.close(handle)
            self.log_path = Path(name)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "nishati_dev.daraja_sim"],
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT_SECS
        while True:
            if self.process.poll() is not None:
                log_text = self.log_path.read_text()[-2000:]
                self.process = None
                raise RuntimeError(f"the Daraja simulator exited:\n{log_text}")
            try:
                if httpx.get(f"{self.url}/simulator/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the Daraja simulator did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stops it by its PID (SIGTERM, then SIGKILL) and waits for it."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_SECS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def running_daraja_sim(
    log_path: Path | None = None, /, **settings: object
) -> Iterator[DarajaSimProcess]:
    """A started simulator for the ``with`` block; its settings as keyword arguments, its log
    to ``log_path`` (a temporary file by default)."""
    sim = DarajaSimProcess(settings=dict(settings), log_path=log_path)
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


@asynccontextmanager
async def running_daraja_sim_async(
    log_path: Path | None = None, /, **settings: object
) -> AsyncIterator[DarajaSimProcess]:
    """``running_daraja_sim`` for async code: the waits run in a thread, not on the loop."""
    sim = DarajaSimProcess(settings=dict(settings), log_path=log_path)
    await asyncio.to_thread(sim.start)
    try:
        yield sim
    finally:
        await asyncio.to_thread(sim.stop)
