"""The guide's Mosquitto files (docs/deploy/mosquitto.conf and mosquitto.acl) run as written, with
only their paths and ports moved to the test's: meters over TLS with the certificate the guide
makes, the oracle in plain MQTT on loopback, and each meter kept to its own topics."""

from __future__ import annotations

import getpass
import queue
import shlex
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from solders.keypair import Keypair

from nishati_dev.broker import MOSQUITTO
from nishati_dev.processes import HOST, Service, free_port
from nishati_oracle.readings.broker_logins import set_login
from nishati_oracle.readings.mqtt import readings_topic, rejected_topic

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "deploy"
ORACLE_USER = "nishati-oracle"
ROOT = "nishati"
MARKET = str(Keypair().pubkey())


@dataclass
class Broker:
    tls_port: int
    plain_port: int
    certificate: Path
    passwords: dict[str, str]


def runnable(config: str, directory: Path, tls_port: int, plain_port: int) -> str:
    """The example config with its listeners on the test's ports and its files in
    ``directory``; fails if the example lacks a line the guide describes."""
    moved = {
        ("listener", "8883"): f"listener {tls_port} {HOST}",
        ("listener", "1883"): f"listener {plain_port} {HOST}",
        ("certfile",): f"certfile {directory / 'broker.crt'}",
        ("keyfile",): f"keyfile {directory / 'broker.key'}",
        ("password_file",): f"password_file {directory / 'nishati.passwords'}",
        ("acl_file",): f"acl_file {directory / 'nishati.acl'}",
        ("persistence_location",): f"persistence_location {directory}/",
    }
    lines, missing = [], set(moved)
    for line in config.splitlines():
        words = tuple(line.split())
        directive = next((d for d in moved if words[: len(d)] == d), None)
        if directive is not None:
            line = moved[directive]
            missing.discard(directive)
        lines.append(line)
    assert not missing, f"the example has no {sorted(missing)}"
    # As root Mosquitto would switch to its own user, who cannot read the test's directory.
    return "\n".join([*lines, f"user {getpass.getuser()}", "log_dest stderr", ""])


def guide_certificate(directory: Path) -> Path:
    """The broker certificate made by the guide's own command (P-256, self-signed), in
    ``directory``, with loopback as its address so that a client can check it."""
    guide = (EXAMPLES.parent / "deploy.md").read_text().replace("\\\n", " ")
    command = next(line for line in guide.splitlines() if line.strip().startswith("openssl req"))
    argv = [*shlex.split(command), "-addext", f"subjectAltName=IP:{HOST}"]
    subprocess.run(argv, cwd=directory, check=True, capture_output=True)
    return directory / "broker.crt"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    meters = [str(Keypair().pubkey()) for _ in range(2)]
    passwords = {user: f"password-of-{user}" for user in [ORACLE_USER, *meters]}
    password_file = tmp_path / "nishati.passwords"
    for user, password in passwords.items():
        set_login(password_file, user, password)
    (tmp_path / "nishati.acl").write_text((EXAMPLES / "mosquitto.acl").read_text())
    certificate = guide_certificate(tmp_path)
    tls_port, plain_port = free_port(), free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(
        runnable((EXAMPLES / "mosquitto.conf").read_text(), tmp_path, tls_port, plain_port)
    )

    def both_listening(_: Service) -> bool:
        for port in (tls_port, plain_port):
            try:
                socket.create_connection((HOST, port), timeout=0.2).close()
            except OSError:
                return False
        return True

    service = Service("mosquitto", [MOSQUITTO, "-c", config], port=tls_port, ready=both_listening)
    service.start()
    try:
        yield Broker(tls_port, plain_port, certificate, passwords)
    finally:
        service.stop()


class Client:
    """A connected paho client: a meter (MQTT 3.1.1 over TLS, as the firmware) or the oracle
    (MQTT 5 in plain MQTT, as the oracle)."""

    def __init__(self, broker: Broker, user: str | None, meter: bool) -> None:
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self.connected: queue.Queue[int] = queue.Queue()
        self.subscribed: queue.Queue[int] = queue.Queue()
        version = MQTTProtocolVersion.MQTTv311 if meter else MQTTProtocolVersion.MQTTv5
        self.paho = paho.Client(CallbackAPIVersion.VERSION2, client_id=user or "", protocol=version)
        if user is not None:
            self.paho.username_pw_set(user, broker.passwords[user])
        if meter:
            self.paho.tls_set(ca_certs=str(broker.certificate))
        self.paho.on_connect = lambda c, u, f, code, p: self.connected.put(code.value)
        self.paho.on_subscribe = lambda c, u, mid, codes, p: self.subscribed.put(codes[0].value)
        self.paho.on_message = lambda c, u, message: self.messages.put(message)
        self.paho.connect(HOST, broker.tls_port if meter else broker.plain_port)
        self.paho.loop_start()
        self.code = self.connected.get(timeout=10)

    def subscribe(self, topic: str) -> None:
        self.paho.subscribe(topic, qos=1)
        assert self.subscribed.get(timeout=5) < 0x80, f"subscription to {topic} refused"

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.paho.publish(topic, payload, qos=1)
        info.wait_for_publish(5)

    def next_topic(self) -> str:
        return str(self.messages.get(timeout=5).topic)

    def close(self) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()


@pytest.fixture
def clients(broker: Broker) -> Iterator[Any]:
    made: list[Client] = []

    def connect(user: str | None, meter: bool = True) -> Client:
        made.append(Client(broker, user, meter))
        return made[-1]

    yield connect
    for client in made:
        client.close()


def test_a_meter_publishes_its_own_readings_and_no_other_meters(
    broker: Broker, clients: Any
) -> None:
    mine, theirs = (user for user in broker.passwords if user != ORACLE_USER)
    oracle = clients(ORACLE_USER, meter=False)
    assert oracle.code == 0
    oracle.subscribe(readings_topic(ROOT, MARKET, "+"))
    meter = clients(mine)
    assert meter.code == 0
    # Over MQTT 3.1.1 the broker acknowledges a refused publication and drops it, so the next
    # one's arrival shows that the first never came.
    meter.publish(readings_topic(ROOT, MARKET, theirs), b"forged")
    meter.publish(readings_topic(ROOT, MARKET, mine), b"signed")
    assert oracle.next_topic() == readings_topic(ROOT, MARKET, mine)
    assert oracle.messages.empty()


def test_a_meter_reads_only_its_own_rejections(broker: Broker, clients: Any) -> None:
    mine, theirs = (user for user in broker.passwords if user != ORACLE_USER)
    meter = clients(mine)
    meter.subscribe(rejected_topic(ROOT, "+", "+"))
    oracle = clients(ORACLE_USER, meter=False)
    oracle.publish(rejected_topic(ROOT, MARKET, theirs), b'{"reason": "Replay"}')
    oracle.publish(rejected_topic(ROOT, MARKET, mine), b'{"reason": "Replay"}')
    assert meter.next_topic() == rejected_topic(ROOT, MARKET, mine)
    assert meter.messages.empty()


def test_no_anonymous_client_and_no_wrong_password(broker: Broker, clients: Any) -> None:
    assert clients(None).code != 0
    broker.passwords["stranger"] = "guess"
    assert clients("stranger").code != 0
