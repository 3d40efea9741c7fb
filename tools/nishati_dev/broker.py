"""Debian's Mosquitto, run for the demo and the tests: on loopback only, on a free port, with a
password file and no anonymous clients (as a deployment would meet it), persistence off, and
started and stopped by its own PID, so it can be restarted to show ingestion recovering."""

from __future__ import annotations

import getpass
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr
from solders.pubkey import Pubkey

from nishati_oracle.core.settings import MqttSettings, OracleSettings


def free_port() -> int:
    """A TCP port nothing listens on now, on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


MOSQUITTO = Path("/usr/sbin/mosquitto")
MOSQUITTO_PASSWD = Path("/usr/bin/mosquitto_passwd")
HOST = "127.0.0.1"
START_TIMEOUT_SECS = 10.0
STOP_TIMEOUT_SECS = 10.0


def _listening(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass
class Mosquitto:
    """One broker in ``directory``: its config, password file and log live there."""

    directory: Path
    # Chosen once: a restarted broker listens where its clients reconnect.
    port: int = field(default_factory=free_port)
    username: str = "nishati-oracle"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    process: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.directory / "mosquitto.conf"

    @property
    def log(self) -> Path:
        return self.directory / "mosquitto.log"

    def _write_config(self) -> None:
        passwords = self.directory / "passwords"
        passwords.unlink(missing_ok=True)
        subprocess.run(
            [MOSQUITTO_PASSWD, "-b", "-c", passwords, self.username, self.password],
            check=True,
            capture_output=True,
        )
        lines = [
            f"listener {self.port} {HOST}",
            "allow_anonymous false",
            f"password_file {passwords}",
            "persistence false",
            # As root Mosquitto would switch to its own user, who cannot read this directory.
            f"user {getpass.getuser()}",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            # Room for a benchmark's burst while the oracle is away.
            "max_queued_messages 100000",
        ]
        self.config.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        """Starts the broker and waits until it accepts connections."""
        if self.process is not None:
            raise RuntimeError("mosquitto is already running")
        if not MOSQUITTO.is_file():
            raise FileNotFoundError(f"{MOSQUITTO} is missing: scripts/bootstrap.sh installs it")
        self.directory.mkdir(parents=True, exist_ok=True)
        self._write_config()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [MOSQUITTO, "-c", self.config], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_TIMEOUT_SECS
        while not _listening(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mosquitto did not start:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stops the broker by its PID (SIGTERM, then SIGKILL) and waits for it."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT_SECS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def restart(self) -> None:
        """A new broker process on the same port: every session and queued message is gone."""
        self.stop()
        self.start()

    def settings(self, market: Pubkey, topic_root: str) -> OracleSettings:
        """Oracle settings pointing at this broker."""
        return OracleSettings(
            market=str(market),
            mqtt=MqttSettings(
                enabled=True,
                host=HOST,
                port=self.port,
                username=self.username,
                password=SecretStr(self.password),
                topic_root=topic_root,
            ),
        )


@contextmanager
def running_mosquitto(directory: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(directory)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
