"""Debian's Mosquitto, run for the stack, the demo and the tests: on loopback only, on a free port
unless given one, with a password file, the deployment's ACL and no anonymous clients (as a
deployment would meet it), over TLS 1.3 if given a certificate, persistence off unless asked
for, and started and stopped by its own PID, so it can be restarted to show ingestion recovering.

Its ACL is the deployment's (``nishati_oracle.readings.broker_logins.acl``) for any one-level
topic root, since tests each take their own, with one line more: the oracle's user may also
publish readings, for the simulator and the benchmarks, which stand in for many meters under it.
A meter of its own gets a login from :meth:`Mosquitto.meter_login`."""

from __future__ import annotations

import getpass
import os
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr
from solders.pubkey import Pubkey

from nishati_dev.processes import HOST, POLL_SECS, Service, ServiceError, free_port
from nishati_oracle.core.settings import MqttSettings, OracleSettings
from nishati_oracle.readings.broker_logins import acl, meter_username, new_password, set_login

MOSQUITTO = Path("/usr/sbin/mosquitto")
USERNAME = "nishati-oracle"
# The ACL's topic root: any one level.
ANY_ROOT = "+"
# What Mosquitto logs as a SIGHUP's reload begins.
RELOADING = "Reloading config."
RELOAD_TIMEOUT_SECS = 10.0


@dataclass(frozen=True)
class TlsFiles:
    """A TLS listener's certificate and key (PEM)."""

    certificate: Path
    key: Path


class Mosquitto(Service):
    """One broker in ``directory``: its config, password file and log live there. Its port is
    chosen once: a restarted broker listens where its clients reconnect. A ``persistent`` one
    keeps its clients' sessions and their queued messages across a restart (in
    ``mosquitto.db``, written as it stops), as a deployment's broker does: a subscriber that
    reconnects after the broker's restart gets what was published to it meanwhile."""

    def __init__(
        self,
        directory: Path,
        port: int | None = None,
        persistent: bool = False,
        tls: TlsFiles | None = None,
    ) -> None:
        self.directory = directory
        self.persistent = persistent
        self.tls = tls
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

    @property
    def passwords(self) -> Path:
        return self.directory / "passwords"

    def meter_login(self, meter: Pubkey) -> str:
        """A new password for ``meter``, its user name its key; a running broker rereads its
        password file before this returns."""
        password = new_password()
        set_login(self.passwords, meter_username(str(meter)), password)
        if self.running:
            self.reload()
        return password

    def reload(self) -> None:
        """SIGHUP: Mosquitto rereads its password and ACL files; returns once it has begun,
        after which it serves no connection before it has finished."""
        reloads = self.log().count(RELOADING)
        os.kill(self.pid, signal.SIGHUP)
        deadline = time.monotonic() + RELOAD_TIMEOUT_SECS
        while self.log().count(RELOADING) == reloads:
            if time.monotonic() > deadline:
                raise ServiceError(f"the mosquitto did not reload:\n{self.tail()}")
            time.sleep(POLL_SECS)

    def _write_config(self) -> None:
        set_login(self.passwords, self.username, self.password)
        access = self.directory / "acl"
        # Still in the oracle's user section, which the ACL ends with.
        access.write_text(
            acl(ANY_ROOT, self.username)
            + "# Here only: the simulator and the benchmarks publish as the oracle.\n"
            + f"topic write {ANY_ROOT}/+/meters/+/readings\n"
        )
        lines = [
            f"listener {self.port_number} {HOST}",
            "allow_anonymous false",
            f"password_file {self.passwords}",
            f"acl_file {access}",
            *(
                []
                if self.tls is None
                else [
                    f"certfile {self.tls.certificate}",
                    f"keyfile {self.tls.key}",
                    "tls_version tlsv1.3",
                ]
            ),
            *(
                ["persistence true", f"persistence_location {self.directory}/"]
                if self.persistent
                else ["persistence false"]
            ),
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
        """The oracle's MQTT settings for this broker (over TLS if it listens so, trusting its
        own certificate)."""
        return MqttSettings(
            enabled=True,
            host=HOST,
            port=self.port_number,
            username=self.username,
            password=SecretStr(self.password),
            topic_root=topic_root,
            tls=self.tls is not None,
            ca_file=None if self.tls is None else self.tls.certificate,
        )

    def settings(self, market: Pubkey, topic_root: str) -> OracleSettings:
        """Oracle settings pointing at this broker."""
        return OracleSettings(market=str(market), mqtt=self.mqtt_settings(topic_root))
