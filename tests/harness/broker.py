"""Brokers for the tests (:class:`nishati_dev.broker.Mosquitto`): one for the session and one a
test may restart or stop, and a small paho client for a test to talk to either."""

from __future__ import annotations

import asyncio
import queue
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from nishati_dev.broker import Mosquitto
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


@contextmanager
def broker_client(broker: Mosquitto, *subscriptions: str) -> Iterator[BrokerClient]:
    """A connected client subscribed to ``subscriptions``, disconnected afterwards."""
    client = BrokerClient(broker)
    client.connect(subscriptions)
    try:
        yield client
    finally:
        client.close()


class BrokerClient:
    """A test's own publisher and subscriber (a meter, or a dead-letter reader).

    Its waits are async: the oracle under test shares the event loop."""

    def __init__(self, broker: Mosquitto) -> None:
        self.broker = broker
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self._subacks: queue.Queue[tuple[int, ReasonCode]] = queue.Queue()
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-{secrets.token_hex(6)}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self._client.username_pw_set(broker.username, broker.password)
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self.messages.put(message)

    def _on_subscribe(
        self, client: paho.Client, userdata: Any, mid: int, codes: list[ReasonCode], props: Any
    ) -> None:
        self._subacks.put((mid, codes[0]))

    def connect(self, subscriptions: tuple[str, ...]) -> None:
        """Connects and subscribes, waiting for each SUBACK (nothing here needs the loop)."""
        self._client.connect(HOST, self.broker.port_number)
        self._client.loop_start()
        for topic in subscriptions:
            _, mid = self._client.subscribe(topic, qos=1)
            got, granted = self._subacks.get(timeout=5)
            assert got == mid, f"SUBACK for {got}, expected {mid}"
            assert not granted.is_failure, f"subscription to {topic} refused: {granted}"

    async def publish(self, topic: str, payload: bytes) -> None:
        """Publishes at QoS 1 and waits for the broker's PUBACK."""
        info = self._client.publish(topic, payload, qos=1)
        await asyncio.to_thread(info.wait_for_publish, 5)
        assert info.is_published(), f"no PUBACK for {topic}"

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
