"""Child processes of local development: a service on a loopback port, its output in a log file,
waited for until it is ready, stopped by its PID.

The stack command, the demo, the tests and the benches start every process through here: the
local validator (:class:`nishati_dev.localnet.LocalValidator`), the broker
(:class:`nishati_dev.broker.Mosquitto`), the Daraja and SMS simulators and the oracle.

    with OracleService(env, tmp_path / "oracle.log") as oracle:
        httpx.get(f"{oracle.url}/healthz")

``async with`` does the same from async code, its waits in a thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx
from prometheus_client.parser import text_string_to_metric_families

HOST = "127.0.0.1"
POLL_SECS = 0.05
LOG_TAIL_CHARS = 3_000


class ServiceError(RuntimeError):
    """A service exited before it was ready, or was not ready in time."""


def free_port() -> int:
    """A TCP port nothing listens on now, on loopback."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def _temporary_log(name: str) -> Path:
    handle, path = tempfile.mkstemp(prefix=f"nishati-{name.replace(' ', '-')}-", suffix=".log")
    os.close(handle)
    return Path(path)


Ready = Callable[["Service"], bool]


def accepts_connections(service: Service) -> bool:
    """Ready once its port takes a TCP connection."""
    try:
        with socket.create_connection((HOST, service.port_number), timeout=0.2):
            return True
    except OSError:
        return False


def answers(path: str) -> Ready:
    """Ready once ``GET <url><path>`` answers 200."""

    def ready(service: Service) -> bool:
        try:
            return httpx.get(f"{service.url}{path}", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    return ready


def logged(pattern: re.Pattern[str]) -> Ready:
    """Ready once its log holds a line matching ``pattern``."""

    def ready(service: Service) -> bool:
        return pattern.search(service.log()) is not None

    return ready


class Service:
    """One child process: ``argv`` with ``env`` over this process's environment (less the
    variables starting with ``scrub_prefix``), stdout and stderr to ``log_path`` (a temporary
    file, removed when it stops, if none is given)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str | Path],
        *,
        log_path: Path | None = None,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        ready: Ready = accepts_connections,
        scrub_prefix: str = "",
        start_timeout_secs: float = 60.0,
        stop_timeout_secs: float = 15.0,
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.port = port
        self.env = dict(env or {})
        self.ready = ready
        self.scrub_prefix = scrub_prefix
        self.start_timeout_secs = start_timeout_secs
        self.stop_timeout_secs = stop_timeout_secs
        self._temporary_log = log_path is None
        self.log_path = log_path or _temporary_log(name)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def port_number(self) -> int:
        if self.port is None:
            raise ServiceError(f"the {self.name} has no fixed port")
        return self.port

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port_number}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise ServiceError(f"the {self.name} is not running")
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        """Everything it has written so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def environment(self) -> dict[str, str]:
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not (self.scrub_prefix and k.startswith(self.scrub_prefix))
        }
        return inherited | self.env

    def start(self) -> None:
        """Starts it and waits until it is ready; stops it and raises :class:`ServiceError`
        if it exits first or is not ready within ``start_timeout_secs``."""
        if self.running:
            raise ServiceError(f"the {self.name} is already running")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv, env=self.environment(), stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + self.start_timeout_secs
        while not self.ready(self):
            if self.process.poll() is not None:
                code, self.process = self.process.returncode, None
                raise ServiceError(f"the {self.name} exited ({code}):\n{self.tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise ServiceError(
                    f"the {self.name} was not ready in {self.start_timeout_secs:g} s:\n"
                    f"{self.tail()}"
                )
            time.sleep(POLL_SECS)

    def tail(self) -> str:
        return self.log()[-LOG_TAIL_CHARS:]

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``stop_timeout_secs``; waits for it to exit."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(self.stop_timeout_secs)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._temporary_log:
            self.log_path.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, as a power cut or an OOM kill would."""
        process, self.process = self.process, None
        if process is not None:
            process.send_signal(signal.SIGKILL)
            process.wait()

    def restart(self) -> None:
        """A new process with the same settings (on the same port)."""
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        starting = asyncio.ensure_future(asyncio.to_thread(self.start))
        try:
            await asyncio.shield(starting)
        except asyncio.CancelledError:
            # The thread goes on starting it: once it is done, stop it, so nothing is left.
            with contextlib.suppress(Exception):
                await starting
            await asyncio.to_thread(self.stop)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)


def samples(text: str) -> dict[str, float]:
    """Every sample of a Prometheus exposition, by name and labels (``name{k="v"}``, the labels
    sorted by name)."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            found[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return found


class OracleService(Service):
    """``python -m nishati_oracle`` configured by ``env`` (``NISHATI_*`` variables) on ``port``
    (a free one by default), ready once ``/healthz`` answers; ``wrapper`` goes in front of the
    command (``taskset -c 0``, which execs it: the PID stays the oracle's)."""

    def __init__(
        self,
        env: Mapping[str, str],
        log_path: Path | None = None,
        *,
        port: int | None = None,
        wrapper: Sequence[str] = (),
    ) -> None:
        port = port or free_port()
        super().__init__(
            "oracle",
            [*wrapper, sys.executable, "-m", "nishati_oracle"],
            log_path=log_path,
            port=port,
            env={**env, "NISHATI_HTTP_PORT": str(port)},
            ready=answers("/healthz"),
            start_timeout_secs=90.0,
            stop_timeout_secs=30.0,
        )

    async def metrics(self, client: httpx.AsyncClient) -> dict[str, float]:
        """Every sample of its ``/metrics``."""
        return samples((await client.get(f"{self.url}/metrics", timeout=60)).text)

    def unattested(self) -> int:
        """Readings it has stored and not yet attested (a blocking call)."""
        found = samples(httpx.get(f"{self.url}/metrics", timeout=10).text)
        return int(found["nishati_unattested_readings"])


def _env_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class DarajaSimService(Service):
    """``python -m nishati_dev.daraja_sim`` on ``port`` (a free one by default), its settings
    the :class:`~nishati_dev.daraja_sim.settings.DarajaSimSettings` fields in ``settings``
    (``callback_delay_secs=0.05``) and nothing inherited from ``DARAJA_SIM_*``; ready once
    ``/simulator/health`` answers."""

    def __init__(
        self,
        settings: Mapping[str, object] | None = None,
        log_path: Path | None = None,
        *,
        port: int | None = None,
    ) -> None:
        port = port or free_port()
        env = {f"DARAJA_SIM_{k.upper()}": _env_value(v) for k, v in (settings or {}).items()}
        super().__init__(
            "Daraja simulator",
            [sys.executable, "-m", "nishati_dev.daraja_sim"],
            log_path=log_path,
            port=port,
            env={**env, "DARAJA_SIM_HOST": HOST, "DARAJA_SIM_PORT": str(port)},
            ready=answers("/simulator/health"),
            scrub_prefix="DARAJA_SIM_",
            start_timeout_secs=20.0,
            stop_timeout_secs=10.0,
        )


class SmsSimService(Service):
    """``python -m nishati_dev.sms_sim`` on ``port`` (a free one by default), with its test
    username and API key and nothing inherited from ``SMS_SIM_*``; ready once
    ``/simulator/health`` answers."""

    def __init__(self, log_path: Path | None = None, *, port: int | None = None) -> None:
        port = port or free_port()
        super().__init__(
            "SMS simulator",
            [sys.executable, "-m", "nishati_dev.sms_sim"],
            log_path=log_path,
            port=port,
            env={"SMS_SIM_HOST": HOST, "SMS_SIM_PORT": str(port)},
            ready=answers("/simulator/health"),
            scrub_prefix="SMS_SIM_",
            start_timeout_secs=20.0,
            stop_timeout_secs=10.0,
        )

    def messages(self, to: str) -> list[dict[str, object]]:
        """Every message it took for ``to`` (a blocking call), oldest first."""
        found: list[dict[str, object]] = httpx.get(
            f"{self.url}/messages", params={"to": to}, timeout=10
        ).json()
        return found
