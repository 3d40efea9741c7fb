"""Debian's Mosquitto, run for the stack, the demo and the tests: on loopback only, on a free port
unless given one, with a password file and no anonymous clients (as a deployment would meet it),
persistence off, and started and stopped by its own PID, so it can be restarted to show
ingestion recovering."""

from __future__ import annotations

import getpass
import secrets
import subprocess
from pathlib import Path

from pydantic import SecretStr
from solders.pubkey import Pubkey

from nishati_dev.processes import HOST, Service, free_port
from nishati_oracle.core.settings import MqttSettings, OracleSettings

MOSQUITTO = Path("/usr/sbin/mosquitto")
MOSQUITTO_PASSWD = Path("/usr/bin/mosquitto_passwd")
USERNAME = "nishati-oracle"


class Mosquitto(Service):
    """One broker in ``directory``: its config, password file and log live there. Its port is
    chosen once: a restarted broker listens where its clients reconnect."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.username = USERNAME
        self.password = secrets.token_urlsafe(16)
        super().__init__(
            "mosquitto",
            [MOSQUITTO, "-c", self.config],
            log_path=directory / "mosquitto.log",
            port=port or free_port(),
            start_timeout_secs=10.0,
            stop_timeout_secs=10.0,
        )

    @property
    def config(self) -> Path:
        return self.directory / "mosquitto.conf"

    @property
    def mqtt_url(self) -> str:
        return f"mqtt://{HOST}:{self.port_number}"

    def _write_config(self) -> None:
        passwords = self.directory / "passwords"
        passwords.unlink(missing_ok=True)
        subprocess.run(
            [MOSQUITTO_PASSWD, "-b", "-c", passwords, self.username, self.password],
            check=True,
            capture_output=True,
        )
        lines = [
            f"listener {self.port_number} {HOST}",
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
        """Writes its config and starts it; ready once it accepts connections."""
        if not MOSQUITTO.is_file():
            raise FileNotFoundError(f"{MOSQUITTO} is missing: scripts/bootstrap.sh installs it")
        self.directory.mkdir(parents=True, exist_ok=True)
        self._write_config()
        super().start()

    def mqtt_settings(self, topic_root: str) -> MqttSettings:
        """The oracle's MQTT settings for this broker."""
        return MqttSettings(
            enabled=True,
            host=HOST,
            port=self.port_number,
            username=self.username,
            password=SecretStr(self.password),
            topic_root=topic_root,
        )

    def settings(self, market: Pubkey, topic_root: str) -> OracleSettings:
        """Oracle settings pointing at this broker."""
        return OracleSettings(market=str(market), mqtt=self.mqtt_settings(topic_root))
