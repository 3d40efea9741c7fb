"""Simulated meters for the demo and the benchmarks: ``python -m nishati_dev.simulate``.

N meters, each with its own Ed25519 key and counter, measure what a Nairobi home's rooftop PV
exports and what the home imports, every ``--interval`` seconds of simulated time, and send the
signed readings to the oracle: over HTTP (batches to ``POST /api/v1/readings``) or MQTT (one
QoS 1 message per reading on the meter's topic), at ``--rate`` readings a second or as fast as
they can. Simulated time ends at the wall clock's now (the oracle refuses readings from the
future), so a day of readings is a day back-dated.

Keys, counters and totals live in a JSON file (``--keys``), so a rerun continues each meter
where it stopped: counters only rise, and energy keeps accruing over the gap. The oracle accepts
only registered meters: ``--register`` first registers each new meter's custodial household on
chain, signed and paid for by the oracle's keypair, the household's own owner key and an
approved installer's (``--installer-keypair``, the test installer by default), with the meter's
proof that it holds its key. A registered meter's readings may not be dated before its
registration, and mint no more than the market's export limit over the chain's time since the
last attestation: back-dated days of readings are for an oracle's ingest, not for minting.

    python -m nishati_dev.simulate --market <address> --oracle-keypair oracle.json \\
        --register --meters 100 --hours 24 --transport mqtt --rate 1000
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import json
import math
import os
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
import paho.mqtt.client as paho
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from nishati_client.chain import RpcChain
from nishati_client.keys import load_keypair
from nishati_client.phone import commitment, salt_from_settings
from nishati_client.program import NishatiClient
from nishati_client.readings import SignedReading
from nishati_dev.daraja_sim.scenarios import ORDINARY_SUFFIXES
from nishati_dev.paths import INSTALLER_KEYPAIR
from nishati_dev.sandbox import Meter, digest
from nishati_oracle.core.logs import configure
from nishati_oracle.core.settings import OracleSettings
from nishati_oracle.readings.ingest import READINGS_PATH
from nishati_oracle.readings.mqtt import (
    encode_payload,
    meter_segment,
    meters_topic,
    readings_topic,
    rejected_topic,
)

log = structlog.get_logger(__name__)

# MQTT 5's PUBACK reason "No matching subscribers": the broker took the message and gave it to
# nobody.
NO_MATCHING_SUBSCRIBERS = 0x10

# The curves

NAIROBI_UTC_OFFSET_SECS = 3 * 3_600  # East Africa Time, no daylight saving
DAY_SECS = 86_400
SUNRISE_SECS = 6 * 3_600 + 1_800  # 06:30 near the equator, all year within ~20 minutes
SUNSET_SECS = 18 * 3_600 + 1_800
# AC output per kWp at a clear noon, after inverter, wiring and heat losses: a sin² bell with
# this peak gives ~4.1 kWh/kWp on an average day, what PVGIS shows for Nairobi.
PEAK_W_PER_KWP = 850.0
MIN_DAY_CLEARNESS = 0.65
# Passing clouds: in each 10-minute slot, a dip with a chance that grows as the day darkens.
CLOUD_SLOT_SECS = 600
MAX_CLOUD_CHANCE = 0.3
CLOUD_DEPTH = (0.2, 0.6)
# A household: fridge, router and lights always on; breakfast, lunch and the evening peak
# (cooking, TV, water heating) as bells, each scaled by the household's size.
BASE_LOAD_W = 120.0
LOAD_PEAKS = (  # (centre, width, height): local time in seconds, watts
    (6 * 3_600 + 2_700, 2_700.0, 700.0),
    (13 * 3_600, 2_400.0, 300.0),
    (19 * 3_600 + 2_700, 4_500.0, 1_100.0),
)
LOAD_NOISE = 0.15
MAX_STEP_SECS = 60
# The weather is the estate's, not the home's: neighbours see the same clouds.
SKY = "nairobi"


@dataclass(frozen=True)
class Home:
    """What shapes one meter's curves: panel size, household size, and its own noise seed."""

    pv_kwp: float
    load_scale: float
    seed: str


def seconds_of_day(unix: float) -> float:
    """Nairobi local time of day, in seconds since midnight."""
    return (unix + NAIROBI_UTC_OFFSET_SECS) % DAY_SECS


def solar_w(local_secs: float, pv_kwp: float, clearness: float = 1.0) -> float:
    """PV output (W) at a local time of day: a sin² bell from sunrise to sunset, zero at
    night, scaled by the panel size and the sky's clearness (0 to 1)."""
    if not SUNRISE_SECS < local_secs < SUNSET_SECS:
        return 0.0
    phase = math.pi * (local_secs - SUNRISE_SECS) / (SUNSET_SECS - SUNRISE_SECS)
    return pv_kwp * PEAK_W_PER_KWP * clearness * math.sin(phase) ** 2


def load_w(local_secs: float, load_scale: float = 1.0) -> float:
    """A household's use (W) at a local time of day, before noise: base load plus the
    morning, midday and evening bells."""
    watts = BASE_LOAD_W
    for centre, width, height in LOAD_PEAKS:
        z = (local_secs - centre) / width
        watts += height * math.exp(-0.5 * z * z)
    return load_scale * watts


_MASK64 = 2**64 - 1
# What a random number is for, so the day's clearness and a slot's cloud never coincide.
_DAY, _CLOUD, _DEPTH, _LOAD = 1, 2, 3, 4


@functools.cache
def _seed(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def _uniform(seed: str, purpose: int, n: int) -> float:
    """A number in [0, 1) fixed by its arguments: the same weather on every run and machine.
    splitmix64's mixer, cheap enough to call for every minute of every meter."""
    x = ((_seed(seed) ^ (purpose << 56) ^ n) + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (x ^ (x >> 31)) / 2**64


def clearness(unix: float, sky: str = SKY) -> float:
    """How much sun gets through (0 to 1): the day's overall clearness times a passing
    cloud's dip in this 10-minute slot."""
    return _sky(int(unix + NAIROBI_UTC_OFFSET_SECS) // CLOUD_SLOT_SECS, sky)


@functools.lru_cache(maxsize=4_096)
def _sky(slot: int, sky: str) -> float:
    # Cached: every meter of the estate asks about the same few slots.
    day = slot * CLOUD_SLOT_SECS // DAY_SECS
    day_clear = MIN_DAY_CLEARNESS + (1 - MIN_DAY_CLEARNESS) * _uniform(sky, _DAY, day)
    chance = MAX_CLOUD_CHANCE * (1 - day_clear) / (1 - MIN_DAY_CLEARNESS)
    if _uniform(sky, _CLOUD, slot) >= chance:
        return day_clear
    low, high = CLOUD_DEPTH
    return day_clear * (1 - low - (high - low) * _uniform(sky, _DEPTH, slot))


def power_w(home: Home, unix: float) -> tuple[float, float]:
    """What the meter sees at ``unix``: (export, import) in W. The meter keeps both
    registers: the panels' output counts as exported, the household's use as imported."""
    local = seconds_of_day(unix)
    noise = 1 + LOAD_NOISE * (2 * _uniform(home.seed, _LOAD, int(unix) // CLOUD_SLOT_SECS) - 1)
    return solar_w(local, home.pv_kwp, clearness(unix)), load_w(local, home.load_scale) * noise


def energy_mwh(home: Home, start: int, end: int) -> tuple[int, int]:
    """(exported, imported) mWh between two Unix times, by the midpoint rule in steps of at
    most a minute (coarser over long gaps, so a meter back after a month costs no more)."""
    if end <= start:
        return 0, 0
    steps = max(math.ceil((end - start) / MAX_STEP_SECS), 1)
    steps = min(steps, 10_000)
    width = (end - start) / steps
    exported = imported = 0.0
    for i in range(steps):
        out, used = power_w(home, start + (i + 0.5) * width)
        exported += out
        imported += used
    # W over `width` seconds: W·s / 3.6 = mWh.
    return round(exported * width / 3.6), round(imported * width / 3.6)


# The meters


@dataclass
class SimulatedMeter:
    """A meter on a home: it signs through :class:`nishati_dev.sandbox.Meter`; the energy
    it has measured is kept in mWh so rounding to whole Wh never loses any."""

    meter: Meter
    home: Home
    # The owner of its custodial household: it signs the registration; the oracle, the rest.
    owner_key: Keypair
    registered: bool = False
    timestamp: int = 0  # of its last reading; 0 before the first
    exported_mwh: int = 0
    imported_mwh: int = 0

    @property
    def public_key(self) -> Pubkey:
        return self.meter.public_key

    @property
    def owner(self) -> Pubkey:
        return self.owner_key.pubkey()

    def read_at(self, timestamp: int, signed_at: int | None = None) -> SignedReading:
        """The signed reading at ``timestamp``, with the energy since the last one. The
        meter's clock says ``timestamp`` unless ``signed_at`` says otherwise: a replay of
        simulated time (the demo's late morning) on a chain that refuses readings dated
        before a meter's registration."""
        if timestamp <= self.timestamp:
            raise ValueError(f"reading at {timestamp} is not after the last ({self.timestamp})")
        exported, imported = self.exported_mwh, self.imported_mwh
        if self.timestamp:
            more_exported, more_imported = energy_mwh(self.home, self.timestamp, timestamp)
            exported, imported = exported + more_exported, imported + more_imported
        signed = self.meter.read(
            timestamp if signed_at is None else signed_at,
            exported_wh=exported // 1_000 - self.exported_mwh // 1_000,
            imported_wh=imported // 1_000 - self.imported_mwh // 1_000,
        )
        self.timestamp, self.exported_mwh, self.imported_mwh = timestamp, exported, imported
        return signed


def new_meter(market: Pubkey, rng: random.Random, weather: str | None = None) -> SimulatedMeter:
    """A new meter on a home with 1 to 5 kWp of panels and a household of its own size; its
    sky varies with ``weather`` (by default, with the meter's key)."""
    key = Ed25519PrivateKey.generate()
    meter = Meter(market, key)
    home = Home(
        pv_kwp=round(rng.uniform(1.0, 5.0), 1),
        load_scale=round(rng.uniform(0.6, 1.5), 2),
        seed=weather or str(meter.public_key),
    )
    return SimulatedMeter(meter, home, Keypair())


KEYS_FORMAT = "nishati-simulated-meters/2"


def save_meters(path: Path, market: Pubkey, meters: Sequence[SimulatedMeter]) -> None:
    """Writes keys and totals readable by the owner only, replacing the file atomically so a
    crash mid-write keeps the last good one."""
    records = [
        {
            "meter": str(m.public_key),
            "secret": m.meter.key.private_bytes_raw().hex(),
            "owner": str(m.owner),
            "owner_secret": bytes(m.owner_key)[:32].hex(),
            "pv_kwp": m.home.pv_kwp,
            "load_scale": m.home.load_scale,
            "registered": m.registered,
            "counter": m.meter.counter,
            "timestamp": m.timestamp,
            "exported_mwh": m.exported_mwh,
            "imported_mwh": m.imported_mwh,
        }
        for m in meters
    ]
    text = json.dumps({"format": KEYS_FORMAT, "market": str(market), "meters": records}, indent=1)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text + "\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def load_meters(path: Path, market: Pubkey) -> list[SimulatedMeter]:
    """The meters in ``path`` (none if it does not exist); they must belong to ``market``,
    since their readings and registrations do."""
    if not path.exists():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format") != KEYS_FORMAT:
        raise ValueError(f"{path} is not a simulated meters file ({KEYS_FORMAT})")
    if data["market"] != str(market):
        raise ValueError(f"{path} holds meters of market {data['market']}, not {market}")
    meters = []
    for r in data["meters"]:
        key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(r["secret"]))
        exported, imported = int(r["exported_mwh"]), int(r["imported_mwh"])
        meter = Meter(market, key, int(r["counter"]), exported // 1_000, imported // 1_000)
        if str(meter.public_key) != r["meter"]:
            raise ValueError(f"{path}: meter {r['meter']} does not match its secret key")
        home = Home(float(r["pv_kwp"]), float(r["load_scale"]), r["meter"])
        owner = Keypair.from_seed(bytes.fromhex(r["owner_secret"]))
        if str(owner.pubkey()) != r["owner"]:
            raise ValueError(f"{path}: owner {r['owner']} does not match its secret key")
        meters.append(
            SimulatedMeter(
                meter, home, owner, bool(r["registered"]), int(r["timestamp"]), exported, imported
            )
        )
    return meters


def grid(start: int, end: int, interval: int) -> range:
    """The reading times: every ``interval`` seconds from ``start`` up to ``end``."""
    return range(start, end + 1, interval)


# Registration


def simulated_phone(meter: Pubkey) -> str:
    """A made-up Kenyan number per meter, the same every time. The Daraja simulator picks a
    failure by a number's last two digits, so this one ends in an ordinary pair."""
    n = int.from_bytes(bytes(meter)[:8], "little")
    ending = ORDINARY_SUFFIXES[(n // 10**6) % len(ORDINARY_SUFFIXES)]
    return f"07{n % 10**6:06d}{ending}"


def _phone_commitment(meter: Pubkey, salt: bytes | None) -> bytes:
    """The meter's number committed as the oracle would with its salt (a stand-in hash
    without one)."""
    number = simulated_phone(meter)
    return digest(f"simulated|{number}") if salt is None else commitment(salt, number)


async def register(
    client: NishatiClient,
    oracle: Keypair,
    market: Pubkey,
    meters: Sequence[SimulatedMeter],
    *,
    installer: Keypair | None = None,
    phone_salt: bytes | None = None,
    concurrency: int = 8,
    on_registered: Callable[[SimulatedMeter], None] | None = None,
) -> int:
    """Registers each meter's custodial household (the oracle signs and pays, the owner key
    signs, ``installer`` vouches: the test installer unless given), with the meter's proof; a
    household already on chain (a run that stopped before saving) is only marked. Returns how
    many new."""
    installer = installer or load_keypair(INSTALLER_KEYPAIR)
    gate = asyncio.Semaphore(concurrency)
    created = 0

    async def one(m: SimulatedMeter) -> None:
        nonlocal created
        async with gate:
            household = client.program.household_address(market, m.owner)
            if await client.chain.account(household) is None:
                await client.household_register(
                    payer=oracle,
                    owner=m.owner_key,
                    authority=oracle,
                    installer=installer,
                    market=market,
                    meter=m.public_key,
                    meter_proof=m.meter.prove(household),
                    phone_commitment=_phone_commitment(m.public_key, phone_salt),
                )
                created += 1
            m.registered = True
            if on_registered is not None:
                on_registered(m)

    await asyncio.gather(*(one(m) for m in meters if not m.registered))
    return created


# Sending


@dataclass
class Tally:
    """What happened to the readings sent. Over MQTT the oracle's verdicts come back only as
    rejections (on the dead-letter topics); ``broker_acked`` counts the broker's PUBACKs, and
    ``unrouted`` those of them that said no subscriber took the reading (MQTT 5's reason 0x10:
    the broker acknowledged it and dropped it, as Mosquitto does between its restart and the
    oracles subscribing again)."""

    sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    failed: int = 0
    broker_acked: int = 0
    unrouted: int = 0

    def line(self) -> str:
        rejected = sum(self.rejected.values())
        parts = [f"sent {self.sent:,}"]
        if self.broker_acked:
            parts.append(f"broker acked {self.broker_acked:,}")
        if self.unrouted:
            parts.append(f"unrouted {self.unrouted:,}")
        if self.accepted or self.duplicates:
            parts.append(f"accepted {self.accepted:,}, duplicates {self.duplicates:,}")
        reasons = ", ".join(f"{reason} {n:,}" for reason, n in sorted(self.rejected.items()))
        parts.append(f"rejected {rejected:,}" + (f" ({reasons})" if reasons else ""))
        if self.failed:
            parts.append(f"failed {self.failed:,}")
        return ", ".join(parts)


class Transport(Protocol):
    async def send(self, batch: Sequence[SignedReading]) -> None: ...

    async def close(self) -> None: ...


def reading_json(signed: SignedReading) -> dict[str, str]:
    """One reading as ``POST /api/v1/readings`` takes it."""
    return {
        "message": signed.message.hex(),
        "signature": signed.signature.hex(),
        "meter": str(signed.meter),
    }


class HttpTransport:
    """Batches to the oracle's HTTP API; the answer says what became of each reading."""

    def __init__(self, http: httpx.AsyncClient, tally: Tally) -> None:
        self.http = http
        self.tally = tally

    async def send(self, batch: Sequence[SignedReading]) -> None:
        self.tally.sent += len(batch)
        body = {"readings": [reading_json(s) for s in batch]}
        try:
            response = await self.http.post(READINGS_PATH, json=body)
            answer: Any = response.json()
        except (httpx.HTTPError, ValueError) as error:
            self.tally.failed += len(batch)
            log.warning("readings post failed", readings=len(batch), error=str(error))
            return
        results = answer.get("results") if isinstance(answer, dict) else None
        if isinstance(results, list):
            for result in results:
                status = result.get("status")
                if status == "accepted":
                    self.tally.accepted += 1
                elif status == "duplicate":
                    self.tally.duplicates += 1
                else:
                    self.tally.rejected[str(result.get("reason"))] += 1
        elif response.is_client_error and isinstance(answer, dict) and "reason" in answer:
            self.tally.rejected[str(answer["reason"])] += len(batch)
        else:
            self.tally.failed += len(batch)
            log.warning(
                "readings post refused",
                readings=len(batch),
                status=response.status_code,
                answer=str(answer)[:200],
            )

    async def close(self) -> None:
        await self.http.aclose()


@dataclass(frozen=True)
class Rejection:
    """A reading the oracle refused, as its dead letter told: the meter, the reading's counter
    (if it could be read) and the reason."""

    meter: str
    counter: int | None
    reason: str


class MqttTransport:
    """One connection publishing every meter's readings at QoS 1 (a gateway, as far as the
    broker can tell), listening on the meters' dead-letter topics for rejections. Over MQTT 5
    the broker's PUBACK says when no subscriber took a reading: those readings are counted as
    ``unrouted`` and kept in :attr:`unrouted`, oldest first; the oracle's rejections are kept
    in :attr:`rejections`."""

    def __init__(
        self,
        settings: OracleSettings,
        market: Pubkey,
        meters: Iterable[Pubkey],
        tally: Tally,
        *,
        window: int = 1_000,
        settle_secs: float = 1.0,
    ) -> None:
        self.root = settings.mqtt.topic_root
        self.market = market
        self.tally = tally
        self.window = window
        self.settle_secs = settle_secs
        self._settings = settings
        self._meters = {str(m) for m in meters}
        self.unrouted: list[SignedReading] = []
        self.rejections: list[Rejection] = []
        # Readings published and not yet acknowledged, by packet id, and the reason codes of
        # PUBACKs that came before their publish() had returned; paho's thread and the loop
        # both reach them, under the lock.
        self._in_flight: dict[int, SignedReading] = {}
        self._early_acks: dict[int, ReasonCode] = {}
        self._acks = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = asyncio.Event()
        self._subscribe_mid: int | None = None
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"nishati-simulator-{os.getpid()}-{random.getrandbits(32):08x}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        if settings.mqtt.username is not None:
            password = settings.mqtt.password
            self._client.username_pw_set(
                settings.mqtt.username, None if password is None else password.get_secret_value()
            )
        # paho rescans every queued message on each PUBACK once it limits what is in flight;
        # unlimited there, and bounded by `window` in send(), it keeps up with the broker.
        self._client.max_inflight_messages_set(0)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message

    async def connect(self, timeout_secs: float = 10.0) -> None:
        """Connects and subscribes to the dead letters; raises ``TimeoutError`` if the broker
        does not let it within ``timeout_secs``."""
        self._loop = asyncio.get_running_loop()
        self._client.connect_async(self._settings.mqtt.host, self._settings.mqtt.port)
        self._client.loop_start()
        try:
            await asyncio.wait_for(self._ready.wait(), timeout_secs)
        except TimeoutError:
            await self.close()
            raise TimeoutError(
                f"no MQTT connection to {self._settings.mqtt.host}:{self._settings.mqtt.port}"
            ) from None

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.error("broker refused the simulator", reason=str(reason_code))
            return
        topic = rejected_topic(self.root, self.market, "+")
        _, self._subscribe_mid = client.subscribe(topic, qos=1)

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        if mid == self._subscribe_mid and self._loop is not None:
            self._loop.call_soon_threadsafe(self._ready.set)

    def _on_publish(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._acks:
            signed = self._in_flight.pop(mid, None)
            if signed is None:
                self._early_acks[mid] = reason_code
            else:
                self._acknowledged(signed, reason_code)

    def _acknowledged(self, signed: SignedReading, reason_code: ReasonCode) -> None:
        """Counts one PUBACK (under the lock, so only one thread at a time writes the tally's
        broker counts)."""
        self.tally.broker_acked += 1
        if reason_code.value == NO_MATCHING_SUBSCRIBERS:
            self.tally.unrouted += 1
            self.unrouted.append(signed)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        if self._loop is not None:
            payload = bytes(message.payload)
            self._loop.call_soon_threadsafe(self._dead_letter, message.topic, payload)

    def _dead_letter(self, topic: str, payload: bytes) -> None:
        segment = meter_segment(meters_topic(self.root, self.market), topic, "rejected")
        if segment not in self._meters:
            return
        try:
            body = json.loads(payload)
            reason, counter = body.get("reason"), body.get("counter")
        except (ValueError, AttributeError):
            reason = counter = None
        self.tally.rejected[str(reason)] += 1
        self.rejections.append(
            Rejection(segment, counter if isinstance(counter, int) else None, str(reason))
        )

    async def send(self, batch: Sequence[SignedReading]) -> None:
        for signed in batch:
            topic = readings_topic(self.root, self.market, signed.meter)
            # Queued by paho if the broker is away, and sent once it is back.
            mid = self._client.publish(topic, encode_payload(signed), qos=1).mid
            with self._acks:
                early = self._early_acks.pop(mid, None)
                if early is None:
                    self._in_flight[mid] = signed
                else:
                    self._acknowledged(signed, early)
        self.tally.sent += len(batch)
        # Keep what the broker has not acknowledged bounded. PUBACKs are counted on paho's
        # thread: polling spares the loop a wake-up for each of them.
        while self.tally.sent - self.tally.broker_acked > self.window:  # noqa: ASYNC110
            await asyncio.sleep(0.002)

    async def drain(self, timeout_secs: float = 30.0) -> bool:
        """Waits until the broker acknowledged every reading; then a moment for rejections."""
        deadline = time.monotonic() + timeout_secs
        while self.tally.broker_acked < self.tally.sent:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        await asyncio.sleep(self.settle_secs)
        return True

    async def close(self) -> None:
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)


class Pace:
    """Spaces sends to ``rate`` readings a second overall (``None``: as fast as possible)."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.started = time.monotonic()
        self.granted = 0

    async def take(self, readings: int) -> None:
        if self.rate is None:
            return
        due = self.started + self.granted / self.rate
        self.granted += readings
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


@dataclass(frozen=True)
class Plan:
    """When readings are taken (a grid of simulated times) and how they are sent."""

    start: int
    end: int
    interval: int
    batch: int = 100
    rate: float | None = None
    workers: int = 4


def pending(meter: SimulatedMeter, plan: Plan) -> range:
    """The plan's reading times after the meter's last reading: the ones :func:`drive` sends."""
    times = grid(plan.start, plan.end, plan.interval)
    if meter.timestamp < plan.start:
        return times
    return times[(meter.timestamp - plan.start) // plan.interval + 1 :]


def _utc(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M UTC")


async def drive(meters: Sequence[SimulatedMeter], plan: Plan, transport: Transport) -> None:
    """Reads every meter at every grid time after its last reading and sends the readings.

    Each worker owns a share of the meters and sends in order, so one meter's readings never
    overtake each other (the oracle would refuse an older counter after a newer one)."""
    times = grid(plan.start, plan.end, plan.interval)
    pace = Pace(plan.rate)

    async def work(mine: Sequence[SimulatedMeter]) -> None:
        batch: list[SignedReading] = []
        for t in times:
            for m in mine:
                if t > m.timestamp:
                    batch.append(m.read_at(t))
                if len(batch) == plan.batch:
                    await pace.take(len(batch))
                    await transport.send(batch)
                    batch = []
            await asyncio.sleep(0)  # let the other workers, and the progress report, run
        if batch:
            await pace.take(len(batch))
            await transport.send(batch)

    workers = max(1, min(plan.workers, len(meters)))
    await asyncio.gather(*(work(meters[w::workers]) for w in range(workers)))


# The command


def _parser(settings: OracleSettings) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m nishati_dev.simulate",
        description="Simulated meters sending signed readings to the Nishati oracle.",
    )
    p.add_argument("--meters", type=int, default=10, help="how many meters (default 10)")
    p.add_argument("--keys", type=Path, default=Path("simulated-meters.json"))
    p.add_argument("--market", default=settings.market, help="market address (NISHATI_MARKET)")
    p.add_argument("--register", action="store_true", help="register new meters' households")
    p.add_argument("--oracle-keypair", type=Path, default=settings.oracle_keypair)
    p.add_argument(
        "--installer-keypair",
        type=Path,
        default=INSTALLER_KEYPAIR,
        help="an installer the market approves, to register meters (default: the test one)",
    )
    p.add_argument("--url", default=settings.chain.rpc_url, help="Solana RPC (NISHATI_RPC_URL)")
    p.add_argument("--transport", choices=["http", "mqtt"], default="http")
    p.add_argument("--oracle-url", default=f"http://{settings.http.host}:{settings.http.port}")
    p.add_argument("--interval", type=int, default=300, help="seconds between readings")
    p.add_argument("--hours", type=float, default=24.0, help="simulated hours (0: none)")
    p.add_argument("--start", type=int, help="Unix time of the first reading (now - hours)")
    p.add_argument("--rate", type=float, help="readings a second in all (default: as fast)")
    p.add_argument("--batch", type=int, default=100, help="readings per HTTP request")
    p.add_argument("--workers", type=int, default=4, help="HTTP requests in flight")
    p.add_argument("--progress", type=float, default=1.0, help="seconds between reports")
    p.add_argument("--seed", type=int, help="seed for new homes' panel and household sizes")
    return p


async def _report_progress(
    tally: Tally, started: float, every_secs: float, save: Callable[[], None]
) -> None:
    last_save = time.monotonic()
    while True:
        await asyncio.sleep(every_secs)
        elapsed = time.monotonic() - started
        print(f"{elapsed:7.1f} s  {tally.line()}  ({tally.sent / elapsed:,.0f} readings/s)")
        if time.monotonic() - last_save > 15:
            save()
            last_save = time.monotonic()


async def run(args: argparse.Namespace, settings: OracleSettings) -> int:
    if args.market is None:
        print("--market (or NISHATI_MARKET) is required", file=sys.stderr)
        return 2
    market = Pubkey.from_string(args.market)
    meters = load_meters(args.keys, market)
    rng = random.Random(args.seed)  # noqa: S311 (home sizes, not keys)
    meters += [new_meter(market, rng) for _ in range(args.meters - len(meters))]
    active = meters[: args.meters]

    def save() -> None:
        save_meters(args.keys, market, meters)

    save()
    print(f"{len(active)} meters ({args.keys}), market {market}")

    if args.register:
        if args.oracle_keypair is None:
            print("--register needs --oracle-keypair (or NISHATI_ORACLE_KEYPAIR)", file=sys.stderr)
            return 2
        oracle = load_keypair(args.oracle_keypair)
        chain = RpcChain(
            args.url, Pubkey.from_string(settings.chain.program_id), settings.chain.commitment
        )
        salt = salt_from_settings(settings.chain) if settings.chain.phone_salt is not None else None
        done = 0

        def registered(_: SimulatedMeter) -> None:
            nonlocal done
            done += 1
            if done % 100 == 0:
                print(f"  {done:,} of {len(active):,} households registered")

        try:
            created = await register(
                NishatiClient(chain, chain.program_id),
                oracle,
                market,
                active,
                installer=load_keypair(args.installer_keypair),
                phone_salt=salt,
                on_registered=registered,
            )
        finally:
            save()
            await chain.close()
        print(f"registered {created} households ({len(active) - created} were already)")

    if args.hours <= 0:
        return 0
    span = int(args.hours * 3_600)
    start = int(time.time()) - span if args.start is None else args.start
    end = start + span
    # On the interval's grid, so reruns and meters added later read at the same times.
    start -= start % args.interval
    plan = Plan(start, end, args.interval, args.batch, args.rate, args.workers)
    if end > time.time() + 60:
        print("warning: readings from the future; the oracle refuses them", file=sys.stderr)
    planned = sum(len(pending(m, plan)) for m in active)
    window = f"{_utc(plan.start)} to {_utc(plan.end)}, every {plan.interval} s"
    if not planned:
        print(f"nothing to send: every meter has already read {window} (see --start)")
        return 0
    print(f"sending {planned:,} readings over {args.transport}: {window}")

    tally = Tally()
    transport: HttpTransport | MqttTransport
    if args.transport == "http":
        transport = HttpTransport(httpx.AsyncClient(base_url=args.oracle_url, timeout=30), tally)
    else:
        transport = MqttTransport(settings, market, [m.public_key for m in active], tally)
        try:
            await transport.connect()
        except TimeoutError as error:
            print(error, file=sys.stderr)
            return 1
    started = time.monotonic()
    reporter = asyncio.create_task(_report_progress(tally, started, args.progress, save))
    try:
        await drive(active, plan, transport)
        if isinstance(transport, MqttTransport) and not await transport.drain():
            print("warning: the broker did not acknowledge every reading", file=sys.stderr)
    finally:
        reporter.cancel()
        await asyncio.gather(reporter, return_exceptions=True)
        await transport.close()
        save()
    elapsed = time.monotonic() - started
    print(f"done in {elapsed:.1f} s: {tally.line()}")
    print(f"  {tally.sent / elapsed:,.0f} readings/s sent")
    for reason, count in tally.rejected.most_common():
        print(f"  rejected {count:,}: {reason}")
    unacknowledged = args.transport == "mqtt" and tally.broker_acked < tally.sent
    return 1 if tally.failed or unacknowledged else 0


def main(argv: Sequence[str] | None = None) -> int:
    configure("WARNING")
    settings = OracleSettings()
    args = _parser(settings).parse_args(argv)
    return asyncio.run(run(args, settings))


if __name__ == "__main__":
    sys.exit(main())
