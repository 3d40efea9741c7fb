"""Brokers for the tests (:class:`nishati_dev.broker.Mosquitto`): one for the session and one a
test may restart or stop, a certificate for one that listens over TLS, and a small paho client
for a test to talk to any of them (as the oracle's user, or a meter's)."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import queue
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from nishati_dev.broker import Mosquitto, TlsFiles
from nishati_dev.processes import HOST


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """A broker shared by the session; tests keep apart by topic root and client id."""
    with Mosquitto(tmp_path_factory.mktemp("mosquitto")) as broker:
        yield broker


@pytest.fixture
def own_mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker for one test, which may restart or stop it."""
    with Mosquitto(tmp_path / "mosquitto") as broker:
        yield broker


def self_signed(directory: Path) -> TlsFiles:
    """A P-256 certificate for 127.0.0.1, as a meter's pinned broker would have."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(directory / "broker.crt", directory / "broker.key")
    files.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


@dataclass(frozen=True)
class Login:
    username: str
    password: str


@contextmanager
def broker_client(
    broker: Mosquitto,
    *subscriptions: str,
    login: Login | None = None,
    protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5,
) -> Iterator[BrokerClient]:
    """A connected client subscribed to ``subscriptions``, disconnected afterwards; it logs in
    as the oracle's user unless given a ``login``."""
    client = BrokerClient(broker, login, protocol)
    client.connect(subscriptions)
    try:
        yield client
    finally:
        client.close()


class ConnectionRefused(Exception):
    """The broker's CONNACK refused the login."""

    def __init__(self, reason: ReasonCode) -> None:
        super().__init__(f"the broker refused the connection: {reason}")
        self.reason = reason


class BrokerClient:
    """A test's own publisher and subscriber (a meter, or a dead-letter reader).

    Its waits are async: the oracle under test shares the event loop."""

    def __init__(
        self,
        broker: Mosquitto,
        login: Login | None = None,
        protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5,
    ) -> None:
        self.broker = broker
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self._subacks: queue.Queue[tuple[int, ReasonCode]] = queue.Queue()
        self._connacks: queue.Queue[ReasonCode] = queue.Queue()
        # PUBACK reason codes by packet id (MQTT 3.1.1's PUBACK has none: always Success).
        self.pubacks: dict[int, ReasonCode] = {}
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"test-{secrets.token_hex(6)}", protocol=protocol
        )
        if broker.tls is not None:
            self._client.tls_set(ca_certs=str(broker.tls.certificate))
        login = login or Login(broker.username, broker.password)
        self._client.username_pw_set(login.username, login.password)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._client.on_publish = self._on_publish

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, code: ReasonCode, props: Any
    ) -> None:
        self._connacks.put(code)

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, code: ReasonCode, props: Any
    ) -> None:
        self.pubacks[mid] = code

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self.messages.put(message)

    def _on_subscribe(
        self, client: paho.Client, userdata: Any, mid: int, codes: list[ReasonCode], props: Any
    ) -> None:
        self._subacks.put((mid, codes[0]))

    def connect(self, subscriptions: tuple[str, ...]) -> None:
        """Connects and subscribes, waiting for the CONNACK and each SUBACK (nothing here needs
        the loop); raises :class:`ConnectionRefused` if the broker refuses the login."""
        self._client.connect(HOST, self.broker.port_number)
        self._client.loop_start()
        connack = self._connacks.get(timeout=5)
        if connack.is_failure:
            self.close()
            raise ConnectionRefused(connack)
        for topic in subscriptions:
            _, mid = self._client.subscribe(topic, qos=1)
            got, granted = self._subacks.get(timeout=5)
            assert got == mid, f"SUBACK for {got}, expected {mid}"
            assert not granted.is_failure, f"subscription to {topic} refused: {granted}"

    async def publish(self, topic: str, payload: bytes) -> ReasonCode:
        """Publishes at QoS 1 and waits for the broker's PUBACK; its reason code."""
        info = self._client.publish(topic, payload, qos=1)
        await asyncio.to_thread(info.wait_for_publish, 5)
        assert info.is_published(), f"no PUBACK for {topic}"
        return self.pubacks[info.mid]

    async def receive(self, timeout_secs: float = 5.0) -> paho.MQTTMessage:
        """The next message on a subscription; raises ``TimeoutError`` after ``timeout_secs``."""
        deadline = time.monotonic() + timeout_secs
        while True:
            try:
                return self.messages.get_nowait()
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"nothing arrived in {timeout_secs} s") from None
                await asyncio.sleep(0.01)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
