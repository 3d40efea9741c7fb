"""MQTT ingestion through a real Mosquitto, with a pipeline that records what it is given.

Each test has its own topic root and client ids, so they share the session's broker; the one
that restarts a broker has its own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from solders.pubkey import Pubkey
from structlog.testing import capture_logs

from nishati_client.readings import Reading, SignedReading
from nishati_dev.broker import Mosquitto
from nishati_dev.sandbox import Meter
from nishati_oracle.readings.ingest import Outcome, Reason, Status, Submission
from nishati_oracle.readings.mqtt import (
    PAYLOAD_LEN,
    BatchReport,
    MalformedMessage,
    MqttIngest,
    decode_message,
    encode_payload,
    meter_segment,
    meters_topic,
    readings_topic,
    rejected_topic,
)
from tests.harness.broker import broker_client, self_signed

T0 = 1_790_000_000


class FakePipeline:
    """Records every batch; accepts each reading unless ``reject`` names a reason for it.
    While ``hold`` is set, ``submit`` waits for it to clear, as a slow database would."""

    def __init__(self, reject: Callable[[Reading], Reason | None] = lambda _: None) -> None:
        self.reject = reject
        self.batches: list[list[Submission]] = []
        self.returned = 0
        self.failures_left = 0
        self.released = asyncio.Event()
        self.released.set()

    @property
    def counters(self) -> list[int]:
        return [Reading.decode(s.message).counter for b in self.batches for s in b]

    async def submit(self, batch: Sequence[Submission]) -> list[Outcome]:
        self.batches.append(list(batch))
        await self.released.wait()
        if self.failures_left:
            self.failures_left -= 1
            raise ConnectionError("database away")
        outcomes = []
        for submission in batch:
            reading = Reading.decode(submission.message)
            reason = self.reject(reading)
            if reason is None:
                outcomes.append(Outcome(Status.accepted, counter=reading.counter))
            else:
                outcomes.append(Outcome(Status.rejected, reason, reading.counter, "by the rule"))
        self.returned += 1
        return outcomes


async def eventually(condition: Callable[[], bool], timeout_secs: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_secs
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout_secs} s")
        await asyncio.sleep(0.01)


@dataclass
class Scene:
    """A market's topics on a broker, a meter, and the oracles started in a test."""

    broker: Mosquitto
    market: Pubkey = field(default_factory=Pubkey.new_unique)
    root: str = field(default_factory=lambda: f"t{secrets.token_hex(4)}")
    client_id: str = field(default_factory=lambda: f"oracle-{secrets.token_hex(4)}")
    ingests: list[MqttIngest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.meter = Meter(self.market)

    def topic(self, meter: Pubkey | str | None = None) -> str:
        return readings_topic(self.root, self.market, meter or self.meter.public_key)

    def reading(self) -> SignedReading:
        return self.meter.read(T0 + self.meter.counter * 60, exported_wh=10)

    async def oracle(self, pipeline: FakePipeline, **options: object) -> MqttIngest:
        """An ingest under this scene's client id, started and subscribed."""
        ingest = MqttIngest(
            self.broker.settings(self.market, self.root),
            pipeline,
            client_id=self.client_id,
            reconnect_delay_secs=(1, 2),
            **options,  # type: ignore[arg-type]
        )
        self.ingests.append(ingest)
        await ingest.start()
        assert await ingest.wait_connected(10), "the ingest did not subscribe"
        return ingest


@pytest.fixture
async def scene(mosquitto: Mosquitto) -> AsyncIterator[Scene]:
    scene = Scene(mosquitto)
    try:
        yield scene
    finally:
        for ingest in scene.ingests:
            await ingest.stop()


# Topics and payloads, without a broker


def test_a_payload_is_the_signature_then_the_reading() -> None:
    meter = Meter(Pubkey.new_unique())
    signed = meter.read(T0, exported_wh=5)
    prefix = meters_topic("nishati", signed.meter)
    payload = encode_payload(signed)
    assert len(payload) == PAYLOAD_LEN == 101
    submission = decode_message(prefix, f"{prefix}/{signed.meter}/readings", payload)
    assert submission == Submission(signed.message, signed.signature, signed.meter)


@pytest.mark.parametrize(
    ("topic", "payload_len", "segment", "detail"),
    [
        ("p/m/meters/not-a-key/readings", PAYLOAD_LEN, "not-a-key", "not a base58 key"),
        ("p/m/meters/{meter}/readings", 10, "{meter}", "payload is 10 bytes"),
        ("p/m/meters/{meter}/readings", PAYLOAD_LEN + 1, "{meter}", "102 bytes"),
        ("p/m/meters/a/b/readings", PAYLOAD_LEN, None, "is not p/m/meters/<meter>/readings"),
        ("p/other/meters/{meter}/readings", PAYLOAD_LEN, None, "is not"),
    ],
)
def test_malformed_messages_are_named(
    topic: str, payload_len: int, segment: str | None, detail: str
) -> None:
    meter = str(Pubkey.new_unique())
    with pytest.raises(MalformedMessage, match=detail) as raised:
        decode_message("p/m/meters", topic.format(meter=meter), bytes(payload_len))
    assert raised.value.meter == (None if segment is None else segment.format(meter=meter))


def test_only_readings_topics_have_a_meter_segment() -> None:
    assert meter_segment("r/m/meters", "r/m/meters/abc/readings") == "abc"
    assert meter_segment("r/m/meters", "r/m/meters/abc/rejected") is None
    assert meter_segment("r/m/meters", "r/m/meters//readings") == ""


# Through the broker


async def test_readings_arrive_in_order_and_in_batches(scene: Scene) -> None:
    pipeline = FakePipeline()
    reports: list[BatchReport] = []
    ingest = await scene.oracle(pipeline, observe=reports.append)
    pipeline.released.clear()
    with broker_client(scene.broker) as meter:
        for _ in range(30):
            await meter.publish(scene.topic(), encode_payload(scene.reading()))
        # The first reading is being stored; the rest wait in the queue.
        # The first reading or two are being stored; the rest wait in the queue.
        await eventually(
            lambda: len(pipeline.batches) == 1
            and len(pipeline.batches[0]) + ingest.queue_depth == 30
        )
        pipeline.released.set()
        await eventually(lambda: ingest.stats.accepted == 30)
    first = len(pipeline.batches[0])
    assert pipeline.counters == list(range(1, 31))
    assert [len(b) for b in pipeline.batches] == [first, 30 - first]
    assert ingest.stats.received == 30
    assert ingest.stats.batches == 2
    assert [len(r.outcomes) for r in reports] == [first, 30 - first]
    assert [r.received for r in reports] == [first, 30 - first]
    assert all(o.status is Status.accepted for r in reports for o in r.outcomes)
    assert all(latency >= 0 for r in reports for latency in r.latencies_secs)
    assert ingest.connected


async def test_a_clean_stop_logs_no_error(scene: Scene, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="nishati_oracle.readings.mqtt.paho")
    with capture_logs() as logged:
        ingest = await scene.oracle(FakePipeline())
        await ingest.stop()
    paho_said = [r for r in caplog.records if r.name == "nishati_oracle.readings.mqtt.paho"]
    assert any("Sending CONNECT" in r.getMessage() for r in paho_said)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert any(e["event"] == "connected to the broker" for e in logged)
    assert [e for e in logged if e["log_level"] in ("error", "critical")] == []


async def test_a_reading_is_acknowledged_only_once_stored(scene: Scene) -> None:
    """An oracle that dies while storing never acknowledged: the broker sends the reading to
    the next one (QoS 1 redelivery). Once stored, it is acknowledged and never comes back."""
    stuck = FakePipeline()
    stuck.released.clear()
    first = await scene.oracle(stuck, stop_timeout_secs=0.1)
    reading = scene.reading()
    with broker_client(scene.broker) as meter:
        await meter.publish(scene.topic(), encode_payload(reading))
        await eventually(lambda: len(stuck.batches) == 1)
        await first.stop()
        assert stuck.returned == 0

        second_pipeline = FakePipeline()
        second = await scene.oracle(second_pipeline)
        await eventually(lambda: second.stats.accepted == 1)
        assert second_pipeline.counters == [reading_counter(reading)]
        await second.stop()

        third_pipeline = FakePipeline()
        third = await scene.oracle(third_pipeline)
        later = scene.reading()
        await meter.publish(scene.topic(), encode_payload(later))
        await eventually(lambda: third.stats.accepted == 1)
        assert third_pipeline.counters == [reading_counter(later)]


async def test_readings_published_while_the_oracle_is_away_wait_for_it(scene: Scene) -> None:
    ingest = await scene.oracle(FakePipeline())
    await ingest.stop()
    with broker_client(scene.broker) as meter:
        for _ in range(5):
            await meter.publish(scene.topic(), encode_payload(scene.reading()))
    pipeline = FakePipeline()
    back = await scene.oracle(pipeline)
    await eventually(lambda: back.stats.accepted == 5)
    assert pipeline.counters == [1, 2, 3, 4, 5]


async def test_rejected_readings_go_to_the_dead_letter_topic(scene: Scene) -> None:
    pipeline = FakePipeline(lambda r: Reason.ReadingReplayed if r.counter == 2 else None)
    ingest = await scene.oracle(pipeline)
    with (
        broker_client(scene.broker, rejected_topic(scene.root, scene.market, "+")) as dead_letters,
        broker_client(scene.broker) as meter,
    ):
        for _ in range(3):
            await meter.publish(scene.topic(), encode_payload(scene.reading()))
        letter = await dead_letters.receive()
        await eventually(lambda: ingest.stats.received == 3)
        assert dead_letters.messages.empty()
    assert letter.topic == rejected_topic(scene.root, scene.market, scene.meter.public_key)
    assert json.loads(letter.payload) == {
        "reason": "ReadingReplayed",
        "counter": 2,
        "detail": "by the rule",
    }
    assert ingest.stats.accepted == 2
    assert ingest.stats.rejected == {Reason.ReadingReplayed: 1}
    assert ingest.stats.dead_letters == 1


async def test_malformed_messages_are_dead_lettered_and_never_submitted(scene: Scene) -> None:
    pipeline = FakePipeline()
    ingest = await scene.oracle(pipeline)
    with (
        broker_client(scene.broker, rejected_topic(scene.root, scene.market, "+")) as dead_letters,
        broker_client(scene.broker) as meter,
    ):
        await meter.publish(scene.topic(), b"\x00" * 10)
        short = await dead_letters.receive()
        await meter.publish(scene.topic("not-a-meter"), encode_payload(scene.reading()))
        unknown = await dead_letters.receive()
        good = scene.reading()
        await meter.publish(scene.topic(), encode_payload(good))
        await eventually(lambda: ingest.stats.accepted == 1)
    assert short.topic == rejected_topic(scene.root, scene.market, scene.meter.public_key)
    assert json.loads(short.payload)["reason"] == "MalformedSubmission"
    assert json.loads(short.payload)["counter"] is None
    assert "payload is 10 bytes" in json.loads(short.payload)["detail"]
    assert unknown.topic == rejected_topic(scene.root, scene.market, "not-a-meter")
    assert json.loads(unknown.payload)["reason"] == "MalformedSubmission"
    assert pipeline.counters == [reading_counter(good)]
    assert ingest.stats.rejected == {Reason.MalformedSubmission: 2}


async def test_a_failing_pipeline_is_retried_before_anything_is_acknowledged(
    scene: Scene,
) -> None:
    pipeline = FakePipeline()
    pipeline.failures_left = 1
    ingest = await scene.oracle(pipeline)
    with broker_client(scene.broker) as meter:
        await meter.publish(scene.topic(), encode_payload(scene.reading()))
        await eventually(lambda: ingest.stats.accepted == 1)
    assert ingest.stats.submit_failures == 1
    assert pipeline.counters == [1, 1]


async def test_a_transient_refusal_is_submitted_again_not_dead_lettered(scene: Scene) -> None:
    attempts: list[int] = []

    def chain_down_at_first(reading: Reading) -> Reason | None:
        attempts.append(reading.counter)
        return Reason.ChainUnavailable if len(attempts) == 1 else None

    pipeline = FakePipeline(chain_down_at_first)
    ingest = await scene.oracle(pipeline)
    with (
        broker_client(scene.broker, rejected_topic(scene.root, scene.market, "+")) as dead_letters,
        broker_client(scene.broker) as meter,
    ):
        await meter.publish(scene.topic(), encode_payload(scene.reading()))
        await eventually(lambda: ingest.stats.accepted == 1)
        assert dead_letters.messages.empty()
    assert attempts == [1, 1]
    assert ingest.stats.retried == 1
    assert ingest.stats.received == 1
    assert not ingest.stats.rejected


# Replicas in one share group


def another_replica(scene: Scene) -> str:
    """Gives the scene's next oracle a client id of its own; the one it had."""
    previous, scene.client_id = scene.client_id, f"oracle-{secrets.token_hex(4)}"
    return previous


async def test_replicas_in_one_share_group_each_take_a_part_and_together_all(
    scene: Scene,
) -> None:
    first, second = FakePipeline(), FakePipeline()
    one = await scene.oracle(first)
    another_replica(scene)
    two = await scene.oracle(second)
    assert one.subscription == two.subscription == f"$share/nishati-oracle/{scene.topic('+')}"
    with broker_client(scene.broker) as meter:
        for _ in range(40):
            await meter.publish(scene.topic(), encode_payload(scene.reading()))
    await eventually(lambda: one.stats.accepted + two.stats.accepted == 40)
    assert first.counters
    assert second.counters
    assert not set(first.counters) & set(second.counters)
    assert sorted(first.counters + second.counters) == list(range(1, 41))
    assert (one.stats.received, two.stats.received) == (len(first.counters), len(second.counters))


async def test_a_replicas_unacknowledged_share_waits_for_it_not_for_another(
    scene: Scene,
) -> None:
    """A replica stops with readings in hand, unstored: they are not handed to the other one.
    While it is down the broker keeps dealing it its turns. Back under its client id, it gets
    all of them; nothing is lost or taken twice."""
    stuck = FakePipeline()
    stuck.released.clear()
    one = await scene.oracle(stuck, stop_timeout_secs=0.1)
    steady = FakePipeline()
    its_id = another_replica(scene)
    await scene.oracle(steady)
    with broker_client(scene.broker) as meter:
        for _ in range(10):
            await meter.publish(scene.topic(), encode_payload(scene.reading()))
        # The stuck replica holds its first batch in the pipeline and the rest in its queue.
        await eventually(lambda: len(stuck.counters) + one.queue_depth + len(steady.counters) == 10)
        assert stuck.counters
        assert not one.stats.accepted
        await one.stop()
        for _ in range(10):
            await meter.publish(scene.topic(), encode_payload(scene.reading()))
        # Mosquitto deals turns one by one: half of each round went to the stopped replica.
        await eventually(lambda: len(steady.counters) == 10)
    scene.client_id = its_id
    back = FakePipeline()
    again = await scene.oracle(back)
    await eventually(lambda: again.stats.accepted == 10)
    assert len(steady.counters) == 10
    assert not set(back.counters) & set(steady.counters)
    assert sorted(back.counters + steady.counters) == list(range(1, 21))
    assert set(stuck.counters) < set(back.counters)


async def test_ingestion_resumes_after_the_broker_restarts(own_mosquitto: Mosquitto) -> None:
    scene = Scene(own_mosquitto)
    pipeline = FakePipeline()
    ingest = await scene.oracle(pipeline)
    try:
        with broker_client(own_mosquitto) as meter:
            await meter.publish(scene.topic(), encode_payload(scene.reading()))
            await eventually(lambda: ingest.stats.accepted == 1)

        await asyncio.to_thread(own_mosquitto.restart)
        await eventually(lambda: ingest.stats.disconnects >= 1)
        # The restarted broker has no session: on_connect must subscribe again.
        await eventually(lambda: ingest.stats.connects >= 2, timeout_secs=15)
        assert await ingest.wait_connected(10)

        with broker_client(own_mosquitto) as meter:
            await meter.publish(scene.topic(), encode_payload(scene.reading()))
            await eventually(lambda: ingest.stats.accepted == 2)
        assert pipeline.counters == [1, 2]
    finally:
        await ingest.stop()


async def test_the_ingest_is_not_ready_while_the_broker_is_down(own_mosquitto: Mosquitto) -> None:
    scene = Scene(own_mosquitto)
    ingest = await scene.oracle(FakePipeline())
    try:
        await asyncio.to_thread(own_mosquitto.stop)
        await eventually(lambda: not ingest.connected)
        await asyncio.to_thread(own_mosquitto.start)
        assert await ingest.wait_connected(15)
    finally:
        await ingest.stop()


async def test_the_oracle_reads_over_tls_only_from_a_broker_it_trusts(tmp_path: Path) -> None:
    with Mosquitto(tmp_path / "mosquitto", tls=self_signed(tmp_path / "tls")) as broker:
        scene = Scene(broker)
        settings = broker.settings(scene.market, scene.root)
        # In the clear to a TLS listener; over TLS trusting the system's CAs only.
        for change in ({"tls": False}, {"ca_file": None}):
            mqtt = settings.mqtt.model_copy(update=change)
            refused = MqttIngest(
                settings.model_copy(update={"mqtt": mqtt}),
                FakePipeline(),
                client_id=f"refused-{scene.client_id}",
                reconnect_delay_secs=(1, 1),
            )
            await refused.start()
            try:
                assert not await refused.wait_connected(1.5)
            finally:
                await refused.stop()
        ingest = await scene.oracle(FakePipeline())
        try:
            with broker_client(broker) as meter:
                await meter.publish(scene.topic(), encode_payload(scene.reading()))
            await eventually(lambda: ingest.stats.accepted == 1)
        finally:
            await ingest.stop()


async def test_a_wrong_password_never_connects(mosquitto: Mosquitto) -> None:
    settings = mosquitto.settings(Pubkey.new_unique(), "wrong")
    settings.mqtt.password = None
    ingest = MqttIngest(settings, FakePipeline(), reconnect_delay_secs=(1, 1))
    await ingest.start()
    try:
        assert not await ingest.wait_connected(1.5)
        assert not ingest.connected
    finally:
        started = time.monotonic()
        await ingest.stop()
        assert time.monotonic() - started < 5


def reading_counter(signed: SignedReading) -> int:
    return Reading.decode(signed.message).counter
