"""The meter simulator: its curves, its readings, its keys file, and both ways of sending."""

from __future__ import annotations

import json
import random
import stat
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

import httpx
import pytest
from solders.pubkey import Pubkey

from nishati_client.phone import normalise
from nishati_client.readings import Reading, SignedReading, verify_signature
from nishati_dev.broker import Mosquitto
from nishati_dev.daraja_sim.scenarios import B2C_BY_SUFFIX, STK_BY_SUFFIX
from nishati_dev.sandbox import Harness, fund, open_market
from nishati_dev.simulate import (
    DAY_SECS,
    NAIROBI_UTC_OFFSET_SECS,
    SUNRISE_SECS,
    SUNSET_SECS,
    Home,
    HttpTransport,
    MqttTransport,
    Plan,
    SimulatedMeter,
    Tally,
    drive,
    energy_mwh,
    load_meters,
    load_w,
    main,
    new_meter,
    pending,
    register,
    save_meters,
    simulated_phone,
    solar_w,
)
from nishati_oracle.readings.ingest import Reason
from nishati_oracle.readings.mqtt import MqttIngest
from tests.harness.oracle import start_world
from tests.oracle.test_mqtt import FakePipeline, eventually

# Local midnight in Nairobi, some day in 2026.
MIDNIGHT = 1_790_000_000 - (1_790_000_000 + NAIROBI_UTC_OFFSET_SECS) % DAY_SECS
HOUR = 3_600


def meters(count: int, market: Pubkey | None = None) -> list[SimulatedMeter]:
    rng = random.Random(7)  # noqa: S311 (home sizes, not keys)
    market = market or Pubkey.new_unique()
    return [new_meter(market, rng) for _ in range(count)]


# The curves


def test_a_3_kwp_home_exports_8_to_18_kwh_a_day() -> None:
    home = Home(pv_kwp=3.0, load_scale=1.0, seed="a home")
    daily = [
        energy_mwh(home, MIDNIGHT + d * DAY_SECS, MIDNIGHT + (d + 1) * DAY_SECS)[0]
        for d in range(60)
    ]
    assert all(8_000_000 <= wh <= 18_000_000 for wh in daily), daily
    # The weather changes from day to day.
    assert max(daily) - min(daily) > 2_000_000


def test_panels_export_nothing_at_night() -> None:
    home = Home(pv_kwp=5.0, load_scale=1.0, seed="night")
    night = (MIDNIGHT + SUNSET_SECS, MIDNIGHT + DAY_SECS + SUNRISE_SECS)
    assert energy_mwh(home, *night)[0] == 0
    assert all(solar_w(s, 5.0) == 0 for s in range(0, SUNRISE_SECS + 1, 600))
    assert all(solar_w(s, 5.0) == 0 for s in range(SUNSET_SECS, DAY_SECS, 600))
    assert solar_w(12 * HOUR + 1_800, 5.0) > solar_w(9 * HOUR, 5.0) > 0


def test_export_grows_with_the_panels() -> None:
    day = (MIDNIGHT, MIDNIGHT + DAY_SECS)
    small = energy_mwh(Home(1.0, 1.0, "same sky"), *day)[0]
    large = energy_mwh(Home(5.0, 1.0, "same sky"), *day)[0]
    assert large == pytest.approx(5 * small, rel=1e-6)


def test_a_household_imports_most_in_the_morning_and_evening() -> None:
    night, morning, evening = load_w(3 * HOUR), load_w(6 * HOUR + 2_700), load_w(19 * HOUR + 2_700)
    assert morning > 4 * night
    assert evening > morning
    home = Home(pv_kwp=3.0, load_scale=1.0, seed="a household")
    daily = energy_mwh(home, MIDNIGHT, MIDNIGHT + DAY_SECS)[1]
    assert 4_000_000 <= daily <= 15_000_000


# Readings


def test_readings_are_signed_with_rising_counters_and_totals() -> None:
    [meter] = meters(1)
    signed = [meter.read_at(MIDNIGHT + i * 300) for i in range(1, 289)]
    readings = [Reading.decode(s.message) for s in signed]
    for s in signed:
        verify_signature(s)
        assert s.meter == meter.public_key
    assert [r.counter for r in readings] == list(range(1, 289))
    assert all(r.is_for(meter.meter.market) for r in readings)
    for before, after in pairwise(readings):
        assert after.timestamp == before.timestamp + 300
        assert after.exported_wh >= before.exported_wh
        assert after.imported_wh >= before.imported_wh
    # What was read adds up to the day's energy: rounding to Wh loses nothing.
    exported, imported = energy_mwh(meter.home, MIDNIGHT + 300, MIDNIGHT + 288 * 300)
    assert readings[-1].exported_wh == pytest.approx(exported // 1_000, abs=2)
    assert readings[-1].imported_wh == pytest.approx(imported // 1_000, abs=2)
    with pytest.raises(ValueError, match="not after"):
        meter.read_at(MIDNIGHT + 288 * 300)


def test_the_keys_file_continues_each_meter(tmp_path: Path) -> None:
    market = Pubkey.new_unique()
    fleet = meters(3, market)
    for m in fleet:
        m.read_at(MIDNIGHT + 600)
        m.read_at(MIDNIGHT + 900)
    fleet[0].registered = True
    keys = tmp_path / "meters.json"
    save_meters(keys, market, fleet)
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600

    again = load_meters(keys, market)
    assert [m.public_key for m in again] == [m.public_key for m in fleet]
    assert [m.registered for m in again] == [True, False, False]
    for before, after in zip(fleet, again, strict=True):
        assert after.home == before.home
        assert after.owner == before.owner
        assert after.read_at(MIDNIGHT + 1_200) == before.read_at(MIDNIGHT + 1_200)
    next_reading = Reading.decode(again[0].read_at(MIDNIGHT + 1_500).message)
    assert next_reading.counter == 4

    with pytest.raises(ValueError, match="not"):
        load_meters(keys, Pubkey.new_unique())
    assert load_meters(tmp_path / "none.json", market) == []


def test_the_command_creates_meters_and_keeps_them(tmp_path: Path) -> None:
    keys, market = tmp_path / "m.json", Pubkey.new_unique()
    args = ["--market", str(market), "--keys", str(keys), "--hours", "0"]
    assert main([*args, "--meters", "4"]) == 0
    first = json.loads(keys.read_text())["meters"]
    assert len(first) == 4
    assert all(1.0 <= m["pv_kwp"] <= 5.0 for m in first)
    assert main([*args, "--meters", "6"]) == 0
    second = json.loads(keys.read_text())["meters"]
    assert second[:4] == first
    assert len(second) == 6


def test_made_up_phones_are_spread_and_pick_no_simulator_scenario() -> None:
    """A seller's number ending in, say, 01 made the simulator refuse the payout (2001): a
    demo trade failed by chance, depending on its meter's random key. The keys here are
    seeded: about 9e7 numbers remain, so 2,000 random keys share one about 2% of the time."""
    seeded = random.Random(2026)  # noqa: S311 - reproducible keys, not secrets
    phones = [simulated_phone(Pubkey(seeded.randbytes(32))) for _ in range(2_000)]
    assert len(set(phones)) == len(phones)
    for phone in phones:
        assert normalise(phone) == f"254{phone[1:]}"
        assert phone[-2:] not in STK_BY_SUFFIX
        assert phone[-2:] not in B2C_BY_SUFFIX
    assert len({phone[-2:] for phone in phones}) > 50


# Sending


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[SignedReading]] = []

    async def send(self, batch: Sequence[SignedReading]) -> None:
        self.batches.append(list(batch))

    async def close(self) -> None:
        pass


async def test_every_meter_reads_at_each_time_after_its_last() -> None:
    fleet = meters(7)
    fleet[3].read_at(MIDNIGHT + 2 * HOUR)  # this one already read part of the window
    recorder = Recorder()
    plan = Plan(MIDNIGHT, MIDNIGHT + 3 * HOUR, 900, batch=5, workers=3)
    assert [len(pending(m, plan)) for m in fleet] == [13, 13, 13, 4, 13, 13, 13]
    await drive(fleet, plan, recorder)
    assert all(len(b) <= 5 for b in recorder.batches)
    sent: dict[Pubkey, list[Reading]] = {}
    for signed in (s for b in recorder.batches for s in b):
        sent.setdefault(signed.meter, []).append(Reading.decode(signed.message))
    times = list(range(MIDNIGHT, MIDNIGHT + 3 * HOUR + 1, 900))
    for m in fleet:
        readings = sent[m.public_key]
        expected = [t for t in times if t > MIDNIGHT + 2 * HOUR] if m is fleet[3] else times
        assert [r.timestamp for r in readings] == expected
        assert list(pending(m, plan)) == []  # all read now
        counters = [r.counter for r in readings]
        assert counters == sorted(counters)


async def test_http_batches_are_tallied_from_the_oracles_answers() -> None:
    bodies: list[dict[str, list[dict[str, str]]]] = []

    def oracle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        if len(bodies) == 3:
            return httpx.Response(413, json={"reason": "BatchTooLarge", "detail": "at most 2"})
        results = [
            {"status": "accepted"},
            {"status": "duplicate"},
            {"status": "rejected", "reason": "UnknownMeter"},
        ][: len(body["readings"])]
        return httpx.Response(200, json={"results": results})

    tally = Tally()
    http = httpx.AsyncClient(transport=httpx.MockTransport(oracle), base_url="http://oracle")
    transport = HttpTransport(http, tally)
    [meter] = meters(1)
    for i in range(3):
        await transport.send([meter.read_at(MIDNIGHT + 300 * (3 * i + j + 1)) for j in range(3)])
    await transport.close()
    reading = bodies[0]["readings"][0]
    assert Reading.decode(bytes.fromhex(reading["message"])).counter == 1
    assert len(bytes.fromhex(reading["signature"])) == 64
    assert reading["meter"] == str(meter.public_key)
    assert (tally.sent, tally.accepted, tally.duplicates) == (9, 2, 2)
    assert tally.rejected == {"UnknownMeter": 2, "BatchTooLarge": 3}


async def test_http_failures_are_counted() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    tally = Tally()
    http = httpx.AsyncClient(transport=httpx.MockTransport(down), base_url="http://oracle")
    [meter] = meters(1)
    await HttpTransport(http, tally).send([meter.read_at(MIDNIGHT + 300)])
    assert (tally.sent, tally.failed) == (1, 1)


async def test_mqtt_readings_reach_the_ingest_and_rejections_come_back(
    mosquitto: Mosquitto,
) -> None:
    market = Pubkey.new_unique()
    settings = mosquitto.settings(market, f"sim{random.getrandbits(32):x}")
    pipeline = FakePipeline(lambda r: Reason.MeterWentBackwards if r.counter == 2 else None)
    ingest = MqttIngest(settings, pipeline, client_id=f"oracle-{random.getrandbits(32):x}")
    await ingest.start()
    fleet = meters(5, market)
    tally = Tally()
    transport = MqttTransport(settings, market, [m.public_key for m in fleet], tally)
    try:
        assert await ingest.wait_connected(10)
        await transport.connect()
        await drive(fleet, Plan(MIDNIGHT, MIDNIGHT + HOUR, 600, batch=7), transport)
        await eventually(lambda: ingest.stats.received == 35)
        assert await transport.drain()
        await eventually(lambda: sum(tally.rejected.values()) == 5)
    finally:
        await transport.close()
        await ingest.stop()
    assert tally.sent == tally.broker_acked == 35
    assert tally.unrouted == 0
    assert not transport.unrouted
    assert tally.rejected == {"MeterWentBackwards": 5}
    assert sorted((r.meter, r.counter, r.reason) for r in transport.rejections) == sorted(
        (str(m.public_key), 2, "MeterWentBackwards") for m in fleet
    )
    assert ingest.stats.accepted == 30
    for m in fleet:
        mine = [
            Reading.decode(s.message).counter
            for b in pipeline.batches
            for s in b
            if s.meter == m.public_key
        ]
        assert mine == list(range(1, 8))


async def test_readings_nobody_subscribes_to_are_counted_unrouted(mosquitto: Mosquitto) -> None:
    """The broker acknowledges them all the same, over MQTT 5 with reason 0x10."""
    market = Pubkey.new_unique()
    settings = mosquitto.settings(market, f"sim{random.getrandbits(32):x}")
    fleet = meters(2, market)
    tally = Tally()
    keys = [m.public_key for m in fleet]
    transport = MqttTransport(settings, market, keys, tally, settle_secs=0)
    try:
        await transport.connect()
        await drive(fleet, Plan(MIDNIGHT, MIDNIGHT + HOUR, 1_200, batch=3), transport)
        assert await transport.drain()
    finally:
        await transport.close()
    assert tally.sent == tally.broker_acked == tally.unrouted == 8
    unrouted = sorted((str(s.meter), Reading.decode(s.message).counter) for s in transport.unrouted)
    assert unrouted == sorted((str(k), c) for k in keys for c in range(1, 5))


async def test_new_meters_are_registered_once_and_their_readings_attest(
    litesvm: Harness,
) -> None:
    market = await open_market(litesvm)
    await fund(litesvm, market.oracle.pubkey(), 10**9)
    fleet = meters(3, market.address)
    client = litesvm.client
    assert await register(client, market.oracle, market.address, fleet) == 3
    for m in fleet:
        registered = await client.household(
            client.program.household_address(market.address, m.owner)
        )
        assert registered.meter == m.public_key
    assert all(m.registered for m in fleet)
    # A run that registered but stopped before saving: the households are found, not re-made.
    fleet[1].registered = False
    assert await register(client, market.oracle, market.address, fleet) == 0
    assert fleet[1].registered

    # The baselines when registered; three hours of chain time later, the readings since
    # (one reading of a meter an attestation: the export limit counts from the last).
    registered_at = await market.now()
    households = [client.program.household_address(market.address, m.owner) for m in fleet]
    for m, household in zip(fleet, households, strict=True):
        await client.meter_attest(
            payer=litesvm.payer,
            oracle=market.oracle,
            market=market.address,
            readings=[(m.read_at(registered_at), household)],
        )
    await market.elapse(3 * HOUR)
    now = await market.now()
    for m, household in zip(fleet, households, strict=True):
        await client.meter_attest(
            payer=litesvm.payer,
            oracle=market.oracle,
            market=market.address,
            readings=[(m.read_at(now), household)],
        )
        attested = await client.household(household)
        assert attested.last_reading is not None
        assert attested.last_reading.counter == 2
        assert attested.last_reading.exported_wh == m.exported_mwh // 1_000


async def test_simulated_meters_reach_the_oracle_over_http_and_mqtt(
    litesvm: Harness, tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """The simulator against the real pipeline: registered, signed and accepted, both ways."""
    world = await start_world(litesvm, f"sqlite+aiosqlite:///{tmp_path / 'oracle.db'}", tmp_path)
    async with world.app.router.lifespan_context(world.app), world.http:
        market = world.market
        fleet = meters(4, market.address)
        assert await register(litesvm.client, market.oracle, market.address, fleet) == 4
        registered_at = await market.now()
        # Two hours of readings since the meters were registered (none may be dated before).
        now = await world.elapse(2 * HOUR)
        plan = Plan(registered_at, now, 300, batch=10)

        over_http = Tally()
        await drive(fleet[:2], plan, HttpTransport(world.http, over_http))

        settings = mosquitto.settings(market.address, f"e2e{random.getrandbits(32):x}")
        ingest = MqttIngest(settings, world.services.pipeline, client_id=f"e2e-{market.address}")
        await ingest.start()
        over_mqtt = Tally()
        transport = MqttTransport(
            settings, market.address, [m.public_key for m in fleet], over_mqtt
        )
        try:
            assert await ingest.wait_connected(10)
            await transport.connect()
            await drive(fleet[2:], plan, transport)
            assert await transport.drain()
            await eventually(lambda: ingest.stats.accepted == over_mqtt.sent)
        finally:
            await transport.close()
            await ingest.stop()
    assert over_http.sent == over_http.accepted == 2 * 25
    assert over_mqtt.sent == 2 * 25
    assert not over_http.rejected
    assert not over_mqtt.rejected
