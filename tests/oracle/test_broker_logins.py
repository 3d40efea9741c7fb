"""Meters' broker logins and the ACL, through a real Mosquitto and the oracle's real pipeline:
a meter publishes to its own topic and nowhere else, and only a meter with a login connects."""

from __future__ import annotations

import base64
import hashlib
import random
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from paho.mqtt.enums import MQTTProtocolVersion

from nishati_dev.broker import Mosquitto
from nishati_dev.sandbox import Harness, Member
from nishati_oracle.cli import main
from nishati_oracle.readings.broker_logins import (
    NotAMeterKey,
    acl,
    meter_username,
    password_hash,
    remove_login,
    set_login,
)
from nishati_oracle.readings.mqtt import MqttIngest, encode_payload, readings_topic, rejected_topic
from tests.harness.broker import BrokerClient, ConnectionRefused, Login, broker_client
from tests.harness.oracle import OracleWorld, start_world
from tests.harness.polling import eventually

EXAMPLES = Path(__file__).parents[2] / "docs" / "deploy"
NOT_AUTHORIZED = "Not authorized"


# The password file and the ACL, without a broker


def test_a_password_is_kept_as_mosquittos_pbkdf2_sha512() -> None:
    salt = bytes(range(12))
    _, version, iterations, encoded_salt, digest = password_hash("s3cret", salt).split("$")
    assert (version, iterations) == ("7", "101")
    assert base64.b64decode(encoded_salt) == salt
    expected = hashlib.pbkdf2_hmac("sha512", b"s3cret", salt, 101)
    assert base64.b64decode(digest) == expected
    assert password_hash("s3cret") != password_hash("s3cret")


def test_a_login_replaces_its_own_entry_and_keeps_the_others(tmp_path: Path) -> None:
    passwords = tmp_path / "passwords"
    set_login(passwords, "oracle", "one")
    set_login(passwords, "meter", "two")
    first = passwords.read_text().splitlines()
    set_login(passwords, "meter", "three")
    second = passwords.read_text().splitlines()
    assert [line.split(":")[0] for line in second] == ["oracle", "meter"]
    assert second[0] == first[0]
    assert second[1] != first[1]
    assert stat.S_IMODE(passwords.stat().st_mode) == 0o640
    assert remove_login(passwords, "meter")
    assert not remove_login(passwords, "meter")
    assert passwords.read_text().splitlines() == [first[0]]


def test_only_a_meter_key_gets_a_login() -> None:
    with pytest.raises(NotAMeterKey):
        meter_username("nishati-oracle")
    with pytest.raises(NotAMeterKey):
        meter_username("a/b")


def test_the_example_acl_is_the_one_the_oracle_prints(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (EXAMPLES / "mosquitto.acl").read_text() == acl("nishati", "nishati-oracle")
    monkeypatch.setenv("NISHATI_MQTT_USERNAME", "nishati-oracle")
    monkeypatch.setenv("NISHATI_MQTT_TOPIC_ROOT", "nishati")
    main(["broker-acl"])
    assert capsys.readouterr().out == (EXAMPLES / "mosquitto.acl").read_text()


# Through the broker


@dataclass
class Fleet:
    world: OracleWorld
    broker: Mosquitto
    ingest: MqttIngest
    root: str
    a: Member
    b: Member
    login_a: Login

    def topic(self, member: Member) -> str:
        return readings_topic(self.root, self.world.market.address, member.meter.public_key)

    async def accepted(self, count: int) -> None:
        """Waits until the oracle has accepted ``count`` readings, and fails if it took more."""

        async def reached() -> bool:
            return self.ingest.stats.accepted >= count

        await eventually(reached, f"{count} readings accepted", within_secs=10)
        assert self.ingest.stats.accepted == count

    async def stored(self, member: Member) -> list[int]:
        store = self.world.services.store
        return [r.counter for r in await store.readings_of(str(member.meter.public_key), 10)]


@pytest.fixture
async def fleet(litesvm: Harness, tmp_path: Path, mosquitto: Mosquitto) -> AsyncIterator[Fleet]:
    """A market's oracle on the real pipeline, taking readings from the broker; meters A and B
    registered, A with a broker login of its own."""
    world = await start_world(litesvm, f"sqlite+aiosqlite:///{tmp_path / 'oracle.db'}", tmp_path)
    async with world.app.router.lifespan_context(world.app), world.http:
        root = f"acl{random.getrandbits(32):x}"
        settings = mosquitto.settings(world.market.address, root)
        ingest = MqttIngest(settings, world.services.pipeline, client_id=f"acl-{root}")
        await ingest.start()
        try:
            assert await ingest.wait_connected(10)
            a, b = await world.member(), await world.member()
            login = Login(str(a.meter.public_key), mosquitto.meter_login(a.meter.public_key))
            yield Fleet(world, mosquitto, ingest, root, a, b, login)
        finally:
            await ingest.stop()


async def test_a_meter_publishes_to_its_own_topic_and_its_reading_is_stored(fleet: Fleet) -> None:
    now = await fleet.world.market.now()
    with broker_client(fleet.broker, login=fleet.login_a) as meter:
        reason = await meter.publish(fleet.topic(fleet.a), encode_payload(fleet.a.meter.read(now)))
    assert str(reason) == "Success"
    await fleet.accepted(1)
    assert await fleet.stored(fleet.a) == [1]


@pytest.mark.parametrize("protocol", [MQTTProtocolVersion.MQTTv5, MQTTProtocolVersion.MQTTv311])
async def test_another_meters_topic_is_refused_by_the_broker(
    fleet: Fleet, protocol: MQTTProtocolVersion
) -> None:
    """A signs a reading as itself and publishes it on B's topic: MQTT 5's PUBACK says it was
    not authorized, MQTT 3.1.1's says nothing (it has no reason code); either way the broker
    drops it. A's next reading, on its own topic, comes through behind it: the oracle saw that
    one and nothing before it."""
    now = await fleet.world.market.now()
    with broker_client(fleet.broker, login=fleet.login_a, protocol=protocol) as meter:
        refused = await meter.publish(fleet.topic(fleet.b), encode_payload(fleet.a.meter.read(now)))
        own = await meter.publish(fleet.topic(fleet.a), encode_payload(fleet.a.meter.read(now)))
    assert str(refused) == (NOT_AUTHORIZED if protocol is MQTTProtocolVersion.MQTTv5 else "Success")
    assert str(own) == "Success"
    await fleet.accepted(1)
    assert fleet.ingest.stats.received == 1
    assert await fleet.stored(fleet.a) == [2]
    assert await fleet.stored(fleet.b) == []


async def test_a_reading_counts_only_for_the_meter_its_topic_names(fleet: Fleet) -> None:
    """The oracle does not lean on the ACL: B's reading on A's topic (as a broker without the ACL
    would pass it) is verified under A's key, refused, and its reason sent to A's own rejected
    topic, which A may read."""
    now = await fleet.world.market.now()
    forged = replace(fleet.b.meter.read(now), meter=fleet.a.meter.public_key)
    rejected = rejected_topic(fleet.root, fleet.world.market.address, fleet.a.meter.public_key)
    with broker_client(fleet.broker, rejected, login=fleet.login_a) as meter:
        await meter.publish(fleet.topic(fleet.a), encode_payload(forged))
        dead_letter = await meter.receive()
    assert b'"reason":"InvalidSignature"' in dead_letter.payload
    assert await fleet.stored(fleet.a) == []
    assert await fleet.stored(fleet.b) == []


async def test_a_meter_reads_no_other_meters_rejections(fleet: Fleet) -> None:
    market = fleet.world.market.address
    theirs = rejected_topic(fleet.root, market, fleet.b.meter.public_key)
    with broker_client(fleet.broker, theirs, login=fleet.login_a) as meter:
        with broker_client(fleet.broker) as oracle:
            await oracle.publish(theirs, b'{"reason":"ReadingReplayed"}')
        with pytest.raises(TimeoutError):
            await meter.receive(timeout_secs=1.0)


@pytest.mark.parametrize("protocol", [MQTTProtocolVersion.MQTTv5, MQTTProtocolVersion.MQTTv311])
async def test_only_a_meter_with_its_own_login_connects(
    fleet: Fleet, protocol: MQTTProtocolVersion
) -> None:
    unknown = Login(str(fleet.b.meter.public_key), fleet.login_a.password)
    right = fleet.login_a.password
    wrong_password = replace(
        fleet.login_a, password=right[:-1] + ("y" if right[-1] == "x" else "x")
    )
    for login in (unknown, wrong_password):
        with pytest.raises(ConnectionRefused) as refused:
            BrokerClient(fleet.broker, login, protocol).connect(())
        assert str(refused.value.reason) == NOT_AUTHORIZED
    with broker_client(fleet.broker, login=fleet.login_a, protocol=protocol):
        pass


async def test_a_login_issued_and_revoked_by_the_cli_holds_once_the_broker_reloads(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    meter = str(fleet.b.meter.public_key)
    main(["meter", "login", meter, "--password-file", str(fleet.broker.passwords)])
    console_line, _ = capsys.readouterr().out.splitlines()
    command, user, password = console_line.split()
    assert (command, user) == ("broker-user", meter)
    fleet.broker.reload()
    login = Login(user, password)
    with broker_client(fleet.broker, login=login) as client:
        reason = await client.publish(
            fleet.topic(fleet.b), encode_payload(fleet.b.meter.read(await fleet.world.market.now()))
        )
    assert str(reason) == "Success"
    await fleet.accepted(1)
    main(["meter", "logout", meter, "--password-file", str(fleet.broker.passwords)])
    fleet.broker.reload()
    with pytest.raises(ConnectionRefused):
        BrokerClient(fleet.broker, login).connect(())
