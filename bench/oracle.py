"""How fast the oracle takes readings in and attests them, and how much memory it holds.

Run: ``.venv/bin/python -m bench.oracle`` (full size: 10,000 registered meters) or ``--quick``
(1,000 meters, a few minutes, for CI). Needs the built program (``scripts/build-program.sh``),
surfpool, and Debian's mosquitto.

The oracle runs as its own process, ``python -m nishati_oracle``, pinned to one core with
``taskset``; this process (the meters, the HTTP senders, the MQTT publisher), the local
validator and the broker share the other core. Measured, beside their targets:

1. the bare Ed25519 verify rate of ``cryptography``, one thread: the ceiling of any ingest path;
2. readings per second stored over HTTP batches (several senders, each with its share of the
   meters, so each meter's readings arrive in order), from the oracle's answers: an accepted
   reading is durably stored;
3. the same over MQTT, QoS 1, one publisher (the simulator's transport), until every reading is
   in the oracle's database;
4. request latency at a fixed 500 readings/s, open loop: a request's latency runs from when it
   was due, so an oracle that falls behind is not hidden by a client that waits for it; and
   the same over MQTT, one message a reading as meters send them, until each is stored;
5. readings attested on chain per second by the oracle's batcher, and readings per transaction,
   once its lookup tables hold the households (their first readings put them there, setup);
6. the oracle's resident memory once it has seen readings from every meter.

Meters are the simulator's (``nishati_dev.simulate``: a key, a counter, a home's solar and
load curves), read a second apart from the cluster's clock at their registration on; every
reading is signed and encoded before its clock starts. Attestation runs first, on a young
chain, against an oracle that attests everything at once (threshold 0); ingestion runs against
a second oracle whose batcher sleeps (a long interval), so rows 2-4 measure ingestion alone.
Registering households, and each meter's first reading (the oracle looks a new meter up on
chain), are setup, printed apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import json
import os
import random
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from solana.rpc.types import TxOpts
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import Transaction

from bench.harness import (
    LOAD_CORE,
    ORACLE_CORE,
    BenchOracle,
    Connection,
    arguments,
    bench_main,
    open_loop,
    pin,
    sampling_rss,
)
from bench.sizes import attest_sizes, most_that_fit
from bench.stats import STALL_BOUND, Report, histogram_p99, ms, observed, per_sec
from nishati_client.chain import (
    PACKET_DATA_SIZE,
    RpcChain,
    SendPolicy,
    cluster_slot,
)
from nishati_client.keys import write_keypair
from nishati_client.lookup import attest_accounts, fetch_lookup_table
from nishati_client.program import NishatiClient, NishatiProgram
from nishati_client.readings import READING_LEN, Reading, SignedReading, sign
from nishati_dev.broker import Mosquitto
from nishati_dev.localnet import LocalValidator
from nishati_dev.sandbox import Harness, OpenMarket, digest, fund, open_market
from nishati_dev.settings import LocalChainSettings
from nishati_dev.simulate import MqttTransport, SimulatedMeter, Tally, new_meter
from nishati_oracle.core.metrics import INGEST_STEPS, WRITE_STEPS
from nishati_oracle.readings.ingest import READINGS_PATH
from nishati_oracle.readings.store import Store

PAYER_LAMPORTS = 100_000 * 10**9
ORACLE_LAMPORTS = 50_000 * 10**9
# Each meter reads once a second from the cluster's clock at its registration on: never before
# it (the program refuses a reading dated before the meter's registration), and a run's few dozen
# readings a meter stay within the clock skew the program allows ahead of the cluster's clock.
READING_STEP_SECS = 1
HTTP_TIMEOUT_SECS = 300.0
BLOCKHASH_EVERY = 20
TOPIC_ROOT = "nishati-bench"
# Connections the fixed-rate run sends over (meter gateways, each one request at a time).
GATEWAYS = 64
# How long after the last request was due the fixed-rate run waits for answers.
LATENCY_GRACE_SECS = 10.0

TARGET_HTTP = 2_000
TARGET_MQTT = 1_000
TARGET_P99_MS = 50.0
TARGET_LATENCY_RATE = 500
TARGET_PER_TX = 6
TARGET_RSS_MB = 500
TARGET_METERS = 10_000
# The oracle's own view of a latency phase: the time its pipeline took to verify and store.
INGEST_HISTOGRAM = "nishati_ingest_seconds"
LOOP_LAG_HISTOGRAM = "nishati_event_loop_lag_seconds"
GC_PAUSE_HISTOGRAM = "nishati_gc_pause_seconds"
INGEST_STEPS_HISTOGRAM = "nishati_ingest_step_seconds"
SQLITE_WRITE_HISTOGRAM = "nishati_sqlite_write_seconds"
CHECKPOINT_HISTOGRAM = "nishati_sqlite_checkpoint_seconds"
CHECKPOINT_MODES = ("passive", "finish", "restart")


@dataclass(frozen=True)
class Scale:
    """How big each phase is."""

    name: str
    meters: int
    verify_secs: float
    first_contact_batch: int
    # Sustained HTTP: (readings per POST, readings per meter, concurrent senders) runs; the
    # one-reading POSTs go to the first ``single_posts`` meters only.
    http_runs: tuple[tuple[int, int, int], ...]
    single_posts: int
    mqtt_rounds: int
    # Fixed rate: (readings per POST, seconds) runs at TARGET_LATENCY_RATE readings/s.
    latency_runs: tuple[tuple[int, float], ...]
    # Fixed rate over MQTT, one message a reading as meters send them: seconds.
    mqtt_latency_secs: float
    attest_readings: int


FULL = Scale(
    name="full",
    meters=TARGET_METERS,
    verify_secs=3.0,
    first_contact_batch=500,
    http_runs=((500, 10, 4), (100, 3, 4), (1_000, 3, 4), (1, 1, GATEWAYS)),
    single_posts=3_000,
    mqtt_rounds=5,
    latency_runs=((1, 30.0), (10, 30.0)),
    mqtt_latency_secs=30.0,
    attest_readings=300,
)
QUICK = Scale(
    name="quick",
    meters=1_000,
    verify_secs=1.0,
    first_contact_batch=500,
    http_runs=((500, 5, 4), (1, 1, GATEWAYS)),
    single_posts=1_000,
    mqtt_rounds=3,
    latency_runs=((1, 5.0), (10, 5.0)),
    mqtt_latency_secs=5.0,
    attest_readings=30,
)


def steps(before: dict[str, float], after: dict[str, float]) -> str:
    """Where the pipeline's time went, by step, and what SQLite's writer and checkpointer did:
    the mean, the p99's bucket bound, and how many of how many took over STALL_BOUND."""

    def each(name: str, label: str, values: Sequence[str]) -> str:
        shown = []
        for value in values:
            seen = observed(before, after, name, f'{label}="{value}"')
            if seen.count:
                shown.append(
                    f"{value} {ms(seen.mean)} (p99 <= {ms(seen.p99_bound)}, "
                    f"{seen.stalled:,.0f} of {seen.count:,.0f} slow)"
                )
        return ", ".join(shown) or "none"

    return (
        f"over {float(STALL_BOUND) * 1e3:g} ms is slow; "
        f"steps: {each(INGEST_STEPS_HISTOGRAM, 'step', INGEST_STEPS)}; "
        f"SQLite writes: {each(SQLITE_WRITE_HISTOGRAM, 'step', WRITE_STEPS)}; "
        f"checkpoints: {each(CHECKPOINT_HISTOGRAM, 'mode', CHECKPOINT_MODES)}"
    )


# The oracle's slow-log events (JSON lines), by the name the bench gives each kind.
SLOW_EVENTS = {
    "slow submit": "submit",
    "slow sqlite write": "SQLite write",
    "slow sqlite checkpoint": "SQLite checkpoint",
}


def slow_logged(log: str) -> str:
    """The oracle's slow log (``NISHATI_SLOW_LOG_SECS``): how many submits, SQLite writes and
    checkpoints were slow, and for each kind the step that took most, how often."""
    kinds: dict[str, Counter[str]] = {}
    for line in log.splitlines():
        if '"slow ' not in line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        kind = SLOW_EVENTS.get(str(entry.get("event"))) if isinstance(entry, dict) else None
        if kind is None:
            continue
        steps: dict[str, float] = entry.get("steps") or {}
        worst = max(steps, key=lambda step: steps[step]) if steps else "-"
        kinds.setdefault(kind, Counter())[worst] += 1
    if not kinds:
        return "nothing logged slow"
    return "logged slow: " + "; ".join(
        f"{sum(most.values()):,} {kind}s"
        + ("" if "-" in most else f" (most in {', '.join(f'{s} {n}' for s, n in most.items())})")
        for kind, most in kinds.items()
    )


def stalls(before: dict[str, float], after: dict[str, float]) -> str:
    """The oracle's event-loop stalls and garbage-collection pauses between two samples."""

    def grew(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    lag = observed(before, after, LOOP_LAG_HISTOGRAM)
    paused = sum(grew(key) for key in after if key.startswith(f"{GC_PAUSE_HISTOGRAM}_sum"))
    full = grew(f'{GC_PAUSE_HISTOGRAM}_count{{generation="2"}}')
    return (
        f"event loop late by over {float(STALL_BOUND) * 1e3:g} ms at {lag.stalled:,.0f} of "
        f"{lag.count:,.0f} probes; GC paused {ms(paused)} in all, {full:,.0f} full collections"
    )


# 1. The ceiling


def verify_rate(secs: float) -> float:
    """Ed25519 verifications per second of ``cryptography`` as the oracle calls it (a public
    key loaded per reading), on one thread."""
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    signed = [(m, key.sign(m)) for m in (os.urandom(READING_LEN) for _ in range(256))]
    done = 0
    started = time.perf_counter()
    while time.perf_counter() - started < secs:
        for message, signature in signed:
            Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
        done += len(signed)
    return done / (time.perf_counter() - started)


# The market's households and their meters


@dataclass
class Home:
    """A registered custodial household and its simulated meter, read a second apart."""

    meter: SimulatedMeter
    household: Pubkey
    next_read: int = 0

    def read(self) -> SignedReading:
        signed = self.meter.read_at(self.next_read)
        self.next_read += READING_STEP_SECS
        return signed


def rounds(homes: Sequence[Home], count: int) -> list[list[SignedReading]]:
    """``count`` new readings of every meter, round by round."""
    return [[home.read() for home in homes] for _ in range(count)]


def reading_json(signed: SignedReading) -> dict[str, str]:
    return {
        "message": signed.message.hex(),
        "signature": signed.signature.hex(),
        "meter": str(signed.meter),
    }


def body(readings: Sequence[SignedReading]) -> bytes:
    """A POST body: one reading alone, several as a batch."""
    if len(readings) == 1:
        return json.dumps(reading_json(readings[0])).encode()
    return json.dumps({"readings": [reading_json(r) for r in readings]}).encode()


async def send_all(
    chain: RpcChain,
    groups: Sequence[Sequence[Instruction]],
    payer: Keypair,
    cosigners: Sequence[Sequence[Keypair]] = (),
) -> None:
    """Sends transactions one after another: surfpool answers ``sendTransaction`` once it has
    made the transaction's block, and works one transaction at a time however many are sent at
    once. A fresh blockhash every few (its blocks come fast). Setup only: no simulation, no
    retries; a failure stops the run. ``cosigners[i]`` sign transaction ``i`` beside the payer."""
    opts = TxOpts(skip_preflight=True)
    blockhash = (await chain.latest_blockhash()).blockhash
    for i, group in enumerate(groups):
        if i % BLOCKHASH_EVERY == 0:
            blockhash = (await chain.latest_blockhash()).blockhash
        signers = [payer, *(cosigners[i] if cosigners else ())]
        tx = Transaction(
            signers, Message.new_with_blockhash(list(group), payer.pubkey(), blockhash), blockhash
        )
        signature = (await chain.client.send_raw_transaction(bytes(tx), opts=opts)).value
        deadline = time.monotonic() + 60
        while True:
            status = (await chain.client.get_signature_statuses([signature])).value[0]
            if status is not None and status.err is not None:
                raise RuntimeError(f"setup transaction {signature} failed: {status.err}")
            if status is not None and status.confirmation_status is not None:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"setup transaction {signature} did not confirm")
            await asyncio.sleep(0.005)


async def register(
    market: OpenMarket, count: int, chain: RpcChain, rng: random.Random
) -> tuple[list[Home], int]:
    """``count`` simulated meters and their custodial households, the oracle their authority
    and payer, the owner and the installer signing too, with the meter's proof: one a
    transaction. Returns the homes and how many transactions it took."""
    program = market.h.client.program
    oracle = market.oracle
    meters = [new_meter(market.address, rng) for _ in range(count)]
    groups = [
        program.register_household(
            payer=oracle.pubkey(),
            owner=m.owner,
            authority=oracle.pubkey(),
            installer=market.installer.pubkey(),
            market=market.address,
            meter=m.public_key,
            meter_proof=m.meter.prove(program.household_address(market.address, m.owner)),
            phone_commitment=digest(f"bench|{m.public_key}"),
        )
        for m in meters
    ]
    await send_all(chain, groups, oracle, [[m.owner_key, market.installer] for m in meters])
    start = await market.now()
    homes = []
    for m in meters:
        m.registered = True
        homes.append(Home(m, program.household_address(market.address, m.owner), start))
    return homes, len(groups)


# 2. HTTP batches


@dataclass
class Sent:
    """What the oracle answered."""

    readings: int = 0
    accepted: int = 0
    duplicates: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    unanswered: list[float] = field(default_factory=list)
    lag: float = 0.0

    def take(self, answer: tuple[int, bytes] | Exception, count: int) -> None:
        self.readings += count
        if isinstance(answer, Exception):
            self.refused[type(answer).__name__] += count
            return
        status, content = answer
        if status not in (200, 422):
            self.refused[f"HTTP {status}"] += count
            return
        results: Any = json.loads(content)
        self.accepted += int(results["accepted"])
        self.duplicates += int(results["duplicates"])
        for result in results["results"]:
            if result["status"] == "rejected":
                self.refused[str(result["reason"])] += 1

    def problems(self) -> str:
        return ", ".join(f"{n:,} {why}" for why, n in self.refused.most_common(4))


async def post_batches(
    oracle: BenchOracle | Sequence[BenchOracle],
    readings: list[list[SignedReading]],
    per_post: int,
    senders: int,
) -> tuple[Sent, float]:
    """Every round's readings in POSTs of ``per_post`` from ``senders`` concurrent senders, each
    on its own connection with its share of the meters; returns the answers and the seconds.
    Given several oracles (replicas), sender ``s`` sends to the ``s``-th, round the list."""
    replicas = [oracle] if isinstance(oracle, BenchOracle) else list(oracle)
    queues: list[list[tuple[bytes, int]]] = [[] for _ in range(senders)]
    for round_ in readings:
        for s in range(senders):
            share = round_[s::senders]
            for i in range(0, len(share), per_post):
                chunk = share[i : i + per_post]
                queues[s].append((body(chunk), len(chunk)))
    sent = Sent()

    async def sender(queue: list[tuple[bytes, int]], to: BenchOracle) -> None:
        connection = Connection(to.url)
        try:
            for content, count in queue:
                try:
                    sent.take(await connection.post(READINGS_PATH, content), count)
                except (OSError, asyncio.IncompleteReadError) as error:
                    sent.take(error, count)
        finally:
            await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(sender(q, replicas[s % len(replicas)]) for s, q in enumerate(queues)))
    return sent, time.perf_counter() - started


# 4. Latency at a fixed rate


def settle_heap() -> None:
    """Collects this process's garbage and freezes what is left, before an open-loop phase: a
    full collection over the meters, keys and signed readings held here stalls the sender for
    ~100 ms, and requests it sends late count as the oracle's latency."""
    gc.collect()
    gc.freeze()


async def fixed_rate(oracle: BenchOracle, readings: list[SignedReading], per_post: int) -> Sent:
    """POSTs of ``per_post`` readings at TARGET_LATENCY_RATE readings/s over GATEWAYS kept
    connections, open loop (:func:`bench.harness.open_loop`); requests still unanswered
    LATENCY_GRACE_SECS after the last was due are given up."""
    chunks = [readings[i : i + per_post] for i in range(0, len(readings), per_post)]
    sent = Sent()
    settle_heap()
    run = await open_loop(
        oracle.url,
        READINGS_PATH,
        [body(chunk) for chunk in chunks],
        per_post / TARGET_LATENCY_RATE,
        GATEWAYS,
        LATENCY_GRACE_SECS,
        lambda i, answer: sent.take(answer, len(chunks[i])),
    )
    sent.latencies, sent.unanswered, sent.lag = run.latencies, run.unanswered, run.lag
    if run.unanswered:
        # Let the oracle finish what it holds before the next phase.
        await asyncio.sleep(1)
    return sent


# 3. MQTT


def stored_rows(database: Path) -> int:
    """The newest row id of the oracle's readings, read here (WAL: the writer never waits)."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        row = db.execute("SELECT max(id) FROM readings").fetchone()
        return int(row[0] or 0)


def counting_rows(database: Path) -> Callable[[], Awaitable[int]]:
    """:func:`publish_all`'s count of the rows stored so far in the oracle's SQLite database."""

    async def rows() -> int:
        return stored_rows(database)

    return rows


async def publish_all(
    broker: Mosquitto,
    market: Pubkey,
    readings: list[list[SignedReading]],
    count_stored: Callable[[], Awaitable[int]],
    topic_root: str = TOPIC_ROOT,
) -> tuple[float, float, int, Tally]:
    """Publishes every reading at QoS 1 through the simulator's transport (one connection, a
    window of unacknowledged messages), in order, under ``topic_root``, then waits until the
    oracle has stored them all, as ``count_stored`` counts the rows stored so far. Returns
    (seconds to publish, seconds until stored, readings stored, the tally)."""
    total = sum(len(r) for r in readings)
    tally = Tally()
    meters = {r.meter for r in readings[0]}
    transport = MqttTransport(
        broker.settings(market, topic_root), market, meters, tally, settle_secs=0
    )
    await transport.connect()
    try:
        before = await count_stored()
        started = time.perf_counter()
        for round_ in readings:
            for i in range(0, len(round_), 500):
                await transport.send(round_[i : i + 500])
        await transport.drain(timeout_secs=600)
        published = time.perf_counter() - started
        stored = 0
        deadline = time.monotonic() + 600
        while stored < total and time.monotonic() < deadline and not tally.rejected:
            stored = await count_stored() - before
            if stored < total:
                await asyncio.sleep(0.02)
        return published, time.perf_counter() - started, stored, tally
    finally:
        await transport.close()


async def mqtt_fixed_rate(
    broker: Mosquitto, market: Pubkey, readings: list[SignedReading], database: Path
) -> Sent:
    """Publishes one message a reading at TARGET_LATENCY_RATE readings/s, open loop, and
    watches the oracle's database (every few ms, read-only) for each to be stored: a reading's
    latency runs from when it was due to be published until its row is committed, which is
    when the oracle acknowledges it to the broker. Readings not stored LATENCY_GRACE_SECS
    after the last was due are given up, as in :func:`fixed_rate`."""
    tally = Tally()
    transport = MqttTransport(
        broker.settings(market, TOPIC_ROOT),
        market,
        {r.meter for r in readings},
        tally,
        settle_secs=0,
    )
    sent = Sent(readings=len(readings))
    due: dict[tuple[str, int], float] = {}
    loop = asyncio.get_running_loop()
    await transport.connect()
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        last_id = stored_rows(database)
        done = asyncio.Event()

        async def watch() -> None:
            nonlocal last_id
            while not done.is_set() or due:
                rows = db.execute(
                    "SELECT id, meter, counter FROM readings WHERE id > ?", (last_id,)
                ).fetchall()
                now = loop.time()
                for row_id, meter, counter in rows:
                    last_id = max(last_id, row_id)
                    when = due.pop((meter, counter), None)
                    if when is not None:
                        sent.latencies.append(now - when)
                        sent.accepted += 1
                await asyncio.sleep(0.002)

        watcher = asyncio.create_task(watch())
        settle_heap()
        start = loop.time() + 0.05
        for i, signed in enumerate(readings):
            when = start + i / TARGET_LATENCY_RATE
            wait = when - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            sent.lag = max(sent.lag, loop.time() - when)
            due[(str(signed.meter), Reading.decode(signed.message).counter)] = when
            await transport.send([signed])
        done.set()
        try:
            await asyncio.wait_for(watcher, LATENCY_GRACE_SECS)
        except TimeoutError:
            now = loop.time()
            sent.unanswered = [now - when for when in due.values()]
        sent.refused.update({k: v for k, v in tally.rejected.items()})
        return sent
    finally:
        db.close()
        await transport.close()


async def broker_up(
    oracle: BenchOracle, client: httpx.AsyncClient, within_secs: float = 20
) -> bool:
    """Whether the oracle reports its broker connection ready."""
    deadline = time.monotonic() + within_secs
    while time.monotonic() < deadline:
        if (await client.get(f"{oracle.url}/readyz")).json().get("broker") == "ok":
            return True
        await asyncio.sleep(0.2)
    return False


# The phases


def oracle_env(
    market: OpenMarket, rpc_url: str, key: Path, database: Path, broker: Mosquitto | None
) -> dict[str, str]:
    env = {
        "NISHATI_RPC_URL": rpc_url,
        "NISHATI_MARKET": str(market.address),
        "NISHATI_ORACLE_KEYPAIR": str(key),
        "NISHATI_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
    }
    if broker is not None:
        env |= {
            "NISHATI_MQTT_ENABLED": "true",
            "NISHATI_MQTT_HOST": "127.0.0.1",
            "NISHATI_MQTT_PORT": str(broker.port_number),
            "NISHATI_MQTT_USERNAME": broker.username,
            "NISHATI_MQTT_PASSWORD": broker.password,
            "NISHATI_MQTT_TOPIC_ROOT": TOPIC_ROOT,
        }
    return env


async def attestation(
    report: Report, homes: list[Home], env: dict[str, str], logs: Path, chain: RpcChain
) -> None:
    """5: a fresh oracle (threshold 0) attests one reading of each of ``homes``, once their
    first readings (baselines, setup) have put their households in the market's lookup tables."""
    env = env | {"NISHATI_ATTEST_THRESHOLD_WH": "0", "NISHATI_ATTEST_INTERVAL_SECS": "0.2"}
    market = Pubkey.from_string(env["NISHATI_MARKET"])
    with BenchOracle(env, logs / "oracle-attest.log") as oracle:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_SECS) as client:
            started = time.perf_counter()
            await attest_all(oracle, client, [home.read() for home in homes])
            tables = await tables_ready(chain, env["NISHATI_DATABASE_URL"], market, len(homes))
            report.step(
                f"first reading of {len(homes):,} meters attested, households put in "
                f"{tables} lookup tables",
                f"{time.perf_counter() - started:,.1f} s",
            )
            before = await oracle.metrics(client)
            cpu = oracle.cpu_secs()
            accepted, attested, secs = await attest_all(
                oracle, client, [home.read() for home in homes]
            )
            busy = (oracle.cpu_secs() - cpu) / secs
            after = await oracle.metrics(client)

    def grew(name: str) -> float:
        return after.get(name, 0) - before.get(name, 0)

    confirmed = grew('nishati_attest_batches_total{result="confirmed"}')
    failed = grew('nishati_attest_batches_total{result="failed"}')
    each = grew("nishati_attest_seconds_sum") / max(grew("nishati_attest_seconds_count"), 1)
    report.add(
        f"attested on chain, one reading of each of {accepted:,} meters",
        f"{attested / secs:,.1f} readings/s",
        note=f"{confirmed:,.0f} transactions, {confirmed / secs:,.1f}/s, one at a time, "
        f"{each * 1e3:,.0f} ms each to send and confirm; {failed:,.0f} failed; "
        f"oracle CPU {busy:.0%}"
        + ("" if attested >= accepted else f"; only {attested:,.0f} of {accepted:,} attested"),
    )
    per_tx = attested / confirmed if confirmed else 0.0
    with_table, legacy = packet_fit(homes, market)
    report.add(
        "readings per attest transaction",
        f"{per_tx:,.1f}",
        f">= {TARGET_PER_TX}",
        per_tx >= TARGET_PER_TX,
        f"within {PACKET_DATA_SIZE:,} bytes with the oracle's compute budget, a v0 transaction "
        f"looking its accounts up in one table fits {with_table}, a legacy one {legacy}: each "
        "reading adds its Ed25519 entry (offsets, signature, key, message) and two accounts, "
        "2 bytes each when a table holds them, 33 when it does not",
    )


async def attest_all(
    oracle: BenchOracle, client: httpx.AsyncClient, readings: list[SignedReading]
) -> tuple[int, float, float]:
    """Posts ``readings`` at once and waits until the oracle has attested them: how many it
    accepted, how many it attested, and the seconds that took."""
    attested_before = (await oracle.metrics(client)).get("nishati_readings_attested_total", 0)
    response = await client.post(f"{oracle.url}{READINGS_PATH}", json=json.loads(body(readings)))
    if response.status_code != 200:
        raise RuntimeError(f"the oracle refused the readings to attest: {response.text}")
    accepted = int(response.json()["accepted"])
    started = time.perf_counter()
    attested = 0.0
    deadline = time.monotonic() + 120 + 2 * len(readings)
    while attested < accepted and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        total = (await oracle.metrics(client)).get("nishati_readings_attested_total", 0)
        attested = total - attested_before
    return accepted, attested, time.perf_counter() - started


async def tables_ready(chain: RpcChain, database_url: str, market: Pubkey, households: int) -> int:
    """Waits until the oracle's lookup tables (from its database, read on chain) hold every
    household's accounts and a slot has passed since they last grew; returns how many."""
    program = NishatiProgram(chain.program_id)
    per_table = len(attest_accounts(program, market))
    per_household = len(attest_accounts(program, market, [Pubkey.default()])) - per_table
    store = await Store.open(database_url)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            addresses = await store.lookup_tables(str(market))
            found = [await fetch_lookup_table(chain, Pubkey.from_string(a)) for a in addresses]
            tables = [t for t in found if t is not None]
            held = sum(len(t.addresses) - per_table for t in tables)
            if held >= per_household * households:
                grown = max(t.state.meta.last_extended_slot for t in tables)
                if await cluster_slot(chain) > grown:
                    return len(tables)
            await asyncio.sleep(0.2)
    finally:
        await store.close()
    raise RuntimeError("the oracle did not put every household in a lookup table")


def packet_fit(homes: Sequence[Home], market: Pubkey) -> tuple[int, int]:
    """The most readings an Ed25519 + ``meter_attest`` transaction carries within a packet,
    with the compute budget the oracle's sends add: v0 with a table holding every account the
    attestation names, and legacy."""
    program = NishatiProgram(Pubkey.from_string(LocalChainSettings().program_id))
    oracle = Keypair()
    sizes = {
        n: attest_sizes(
            program,
            oracle,
            market,
            [
                (sign(Reading.for_market(market, 1, 0, 0, 0), h.meter.meter.key), h.household)
                for h in homes[:n]
            ],
            SendPolicy(),
        )
        for n in range(1, min(len(homes), 12) + 1)
    }
    return (
        most_that_fit({n: v0 for n, (_, v0) in sizes.items()}),
        most_that_fit({n: legacy for n, (legacy, _) in sizes.items()}),
    )


async def first_contact(
    report: Report, scale: Scale, homes: list[Home], oracle: BenchOracle
) -> None:
    """Each meter's first reading: the oracle looks the meter up on chain (setup)."""
    cpu = oracle.cpu_secs()
    sent, secs = await post_batches(oracle, rounds(homes, 1), scale.first_contact_batch, 4)
    busy = (oracle.cpu_secs() - cpu) / secs
    report.step(
        f"first reading of {len(homes):,} meters (chain lookups)",
        f"{secs:,.1f} s, {per_sec(sent.accepted, secs)}, oracle CPU {busy:.0%}"
        + (f"; refused: {sent.problems()}" if sent.refused else ""),
    )


async def http_sustained(
    report: Report, scale: Scale, homes: list[Home], oracle: BenchOracle
) -> None:
    for per_post, count, senders in scale.http_runs:
        started = time.perf_counter()
        readings = rounds(homes[: scale.single_posts] if per_post == 1 else homes, count)
        report.step(
            f"signing {sum(len(r) for r in readings):,} readings",
            f"{time.perf_counter() - started:,.1f} s",
        )
        cpu = oracle.cpu_secs()
        with oracle.profiled(f"http-{per_post}-per-post"):
            sent, secs = await post_batches(oracle, readings, per_post, senders)
        used = oracle.cpu_secs() - cpu
        report.add(
            f"HTTP, {per_post:,} per POST, {senders} senders, {sent.readings:,} readings",
            per_sec(sent.accepted, secs),
            f">= {TARGET_HTTP:,}/s" if per_post > 1 else "",
            sent.accepted / secs >= TARGET_HTTP if per_post > 1 else None,
            f"{secs:,.1f} s; oracle CPU {used / secs:.0%} of its core, "
            f"{used / max(sent.accepted, 1) * 1e6:,.0f} µs a reading"
            + ("; each sender waits for its answer: the oracle's capacity" if per_post == 1 else "")
            + (f"; refused: {sent.problems()}" if sent.refused else ""),
        )


@dataclass
class TimedPhase:
    """What the oracle did during an open-loop phase: its CPU share, its pipeline's own
    latency histogram (verify and store), to tell its time from the transport's, and what
    stalled its event loop."""

    busy: float = 0.0
    pipeline: str = ""
    stalls: str = ""
    steps: str = ""
    slow: str = ""


@contextlib.asynccontextmanager
async def timed_phase(oracle: BenchOracle, name: str) -> AsyncIterator[TimedPhase]:
    """Profiles the phase as ``name`` (with ``--profile``) and fills in a :class:`TimedPhase`."""
    phase = TimedPhase()
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_SECS) as client:
        before = await oracle.metrics(client)
        logged = oracle.log_path.stat().st_size
        cpu, started = oracle.cpu_secs(), time.perf_counter()
        with oracle.profiled(name):
            yield phase
        phase.busy = (oracle.cpu_secs() - cpu) / (time.perf_counter() - started)
        after = await oracle.metrics(client)
    phase.pipeline = f"verify and store, {histogram_p99(before, after, INGEST_HISTOGRAM)}"
    phase.stalls = stalls(before, after)
    phase.steps = steps(before, after)
    with oracle.log_path.open("rb") as log:
        log.seek(logged)
        phase.slow = slow_logged(log.read().decode(errors="replace"))


async def latency(report: Report, scale: Scale, homes: list[Home], oracle: BenchOracle) -> None:
    for per_post, secs in scale.latency_runs:
        total = int(TARGET_LATENCY_RATE * secs)
        readings = [homes[i % len(homes)].read() for i in range(total)]
        async with timed_phase(oracle, f"latency-{per_post}-per-post") as phase:
            sent = await fixed_rate(oracle, readings, per_post)
        requests = len(sent.latencies) + len(sent.unanswered)
        if not requests:
            continue
        report.add_latencies(
            f"latency at {TARGET_LATENCY_RATE} readings/s, {per_post} per POST, {secs:g} s",
            sent.latencies,
            sent.unanswered,
            TARGET_P99_MS,
            f"{len(sent.latencies):,} of {requests:,} requests answered"
            + (
                f" ({len(sent.unanswered):,} given up {LATENCY_GRACE_SECS:g} s after the last "
                "was due: the oracle fell behind)"
                if sent.unanswered
                else f", max {max(sent.latencies) * 1e3:,.0f} ms"
            )
            + f"; oracle CPU {phase.busy:.0%}; the sender was at most {sent.lag * 1e3:,.0f} ms late"
            + f"; {phase.pipeline}; {phase.stalls}; {phase.steps}; {phase.slow}"
            + (f"; refused: {sent.problems()}" if sent.refused else ""),
        )


async def mqtt(
    report: Report,
    scale: Scale,
    homes: list[Home],
    oracle: BenchOracle,
    broker: Mosquitto | None,
    database: Path,
    market: Pubkey,
) -> None:
    what, target = "MQTT, QoS 1, one publisher", f">= {TARGET_MQTT:,}/s"
    if broker is None:
        report.add(what, "not run", target, None, "no mosquitto (scripts/bootstrap.sh)")
        return
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_SECS) as client:
        if not await broker_up(oracle, client):
            report.add(what, "not run", target, None, "the oracle reports no broker connection")
            return
    readings = rounds(homes, scale.mqtt_rounds)
    total = sum(len(r) for r in readings)

    cpu = oracle.cpu_secs()
    with oracle.profiled("mqtt"):
        published, secs, stored, tally = await publish_all(
            broker, market, readings, counting_rows(database)
        )
    used = oracle.cpu_secs() - cpu
    report.add(
        f"{what}, {total:,} readings",
        per_sec(stored, secs),
        target,
        stored == total and stored / secs >= TARGET_MQTT,
        f"published in {published:,.1f} s, all stored after {secs:,.1f} s; oracle CPU "
        f"{used / secs:.0%}, {used / max(stored, 1) * 1e6:,.0f} µs a reading"
        + ("" if stored == total else f"; only {stored:,} of {total:,} stored")
        + (f"; refused: {dict(tally.rejected)}" if tally.rejected else ""),
    )
    secs = scale.mqtt_latency_secs
    count = int(TARGET_LATENCY_RATE * secs)
    timed = [homes[i % len(homes)].read() for i in range(count)]
    async with timed_phase(oracle, "mqtt-latency") as phase:
        sent = await mqtt_fixed_rate(broker, market, timed, database)
    report.add_latencies(
        f"latency at {TARGET_LATENCY_RATE} readings/s over MQTT, a message each, {secs:g} s",
        sent.latencies,
        sent.unanswered,
        TARGET_P99_MS,
        f"published to stored (when the oracle acknowledges it), seen by polling its "
        f"database every 2 ms; {len(sent.latencies):,} of {count:,} stored"
        + (f", {len(sent.unanswered):,} given up" if sent.unanswered else "")
        + f"; oracle CPU {phase.busy:.0%}; the publisher was at most {sent.lag * 1e3:,.0f} ms late"
        + f"; {phase.pipeline}; {phase.stalls}; {phase.steps}; {phase.slow}"
        + (f"; refused: {sent.problems()}" if sent.refused else ""),
    )


async def batcher_query(report: Report, database: Path) -> None:
    """What one batcher round's query costs on the database ingestion left behind: it groups
    every unattested reading to find the meters due (run here, on the load core)."""
    store = await Store.open(f"sqlite+aiosqlite:///{database}")
    try:
        waiting = await store.unattested_count()
        started = time.perf_counter()
        due = await store.due(1_000, time.time() - 6 * 3_600, 512)
        secs = time.perf_counter() - started
    finally:
        await store.close()
    report.step(
        f"one batcher query (Store.due) over {waiting:,} unattested readings",
        f"{secs * 1e3:,.0f} ms, {len(due)} meters due (on the load core, oracle stopped)",
    )


async def ingestion(
    report: Report,
    scale: Scale,
    homes: list[Home],
    env: dict[str, str],
    logs: Path,
    broker: Mosquitto | None,
    profiles: Path | None,
) -> None:
    database = Path(env["NISHATI_DATABASE_URL"].removeprefix("sqlite+aiosqlite:///"))
    # The batcher sleeps: one round at start (nothing to do), then a day's interval.
    oracle = BenchOracle(
        env | {"NISHATI_ATTEST_INTERVAL_SECS": "86400"}, logs / "oracle-ingest.log", profiles
    )
    with oracle:
        if oracle.cores() != [ORACLE_CORE]:
            report.notes.append(f"the oracle's threads may run on cores {oracle.cores()}")
        report.step("oracle RSS at start", f"{oracle.rss() / 2**20:,.0f} MB")
        async with sampling_rss(oracle):
            await first_contact(report, scale, homes, oracle)
            seen = oracle.rss()
            await http_sustained(report, scale, homes, oracle)
            await latency(report, scale, homes, oracle)
            market = Pubkey.from_string(env["NISHATI_MARKET"])
            await mqtt(report, scale, homes, oracle, broker, database, market)
        full = len(homes) >= TARGET_METERS
        report.add(
            f"RSS once it has seen readings from {len(homes):,} meters",
            f"{seen / 2**20:,.0f} MB",
            f"< {TARGET_RSS_MB} MB",
            seen / 2**20 < TARGET_RSS_MB if full else None,
            f"after every phase {oracle.rss() / 2**20:,.0f} MB, peak "
            f"{oracle.peak_rss / 2**20:,.0f} MB"
            + ("" if full else f"; the target is for {TARGET_METERS:,} meters"),
        )
    await batcher_query(report, database)


@contextlib.contextmanager
def broker_or_none(directory: Path) -> Iterator[Mosquitto | None]:
    try:
        with Mosquitto(directory) as broker:
            yield broker
    except FileNotFoundError:
        yield None


async def run(scale: Scale, directory: Path, profiles: Path | None) -> Report:
    report = Report(
        f"oracle benchmark, {scale.name} size: the oracle alone on core {ORACLE_CORE}, "
        f"load, validator and broker on core {LOAD_CORE}"
    )
    print(f"oracle benchmark, {scale.name} size; logs and databases in {directory}")
    ceiling = verify_rate(scale.verify_secs)
    report.add(
        "Ed25519 verify, cryptography, one thread: the ceiling",
        f"{ceiling:,.0f}/s",
        note="a public key loaded per reading, as the oracle verifies",
    )
    # Everything but the oracle shares LOAD_CORE: this process, and what it starts from here.
    pin(os.getpid(), {LOAD_CORE})
    settings = LocalChainSettings()
    program_id = Pubkey.from_string(settings.program_id)
    payer = Keypair()
    rng = random.Random(5)  # noqa: S311 - home sizes, not secrets
    started = time.perf_counter()
    with (
        LocalValidator(settings, {str(payer.pubkey()): PAYER_LAMPORTS}) as validator,
        broker_or_none(directory / "mosquitto") as broker,
    ):
        report.step("local validator and broker start", f"{time.perf_counter() - started:,.1f} s")
        chain = RpcChain(validator.rpc_url, program_id, settings.commitment)
        try:
            h = Harness(chain, payer, NishatiClient(chain, program_id), None)
            market = await open_market(h)
            await fund(h, market.oracle.pubkey(), ORACLE_LAMPORTS)
            key = directory / "oracle.json"
            write_keypair(key, market.oracle)
            env = oracle_env(market, validator.rpc_url, key, directory / "ingest.db", broker)

            started = time.perf_counter()
            attesting, txs = await register(market, scale.attest_readings, chain, rng)
            report.step(
                f"registering {len(attesting):,} households to attest",
                f"{time.perf_counter() - started:,.1f} s, {txs:,} transactions",
            )
            attest_env = {k: v for k, v in env.items() if not k.startswith("NISHATI_MQTT")}
            attest_env["NISHATI_DATABASE_URL"] = f"sqlite+aiosqlite:///{directory / 'attest.db'}"
            await attestation(report, attesting, attest_env, directory, chain)

            started = time.perf_counter()
            rest, txs = await register(market, scale.meters - len(attesting), chain, rng)
            homes = attesting + rest
            secs = time.perf_counter() - started
            report.step(
                f"registering {len(rest):,} more households",
                f"{secs:,.1f} s, {txs:,} transactions of {len(rest) / txs:.1f}, "
                f"{per_sec(len(rest), secs)}",
            )
            await ingestion(report, scale, homes, env, directory, broker, profiles)
        finally:
            await chain.close()
    return report


def main() -> None:
    parser = arguments(__doc__ or "", "each ingest phase")
    parser.add_argument("--meters", type=int, help="registered meters (full 10,000, quick 1,000)")
    args = parser.parse_args()
    scale = QUICK if args.quick else FULL
    if args.meters is not None:
        scale = replace(scale, meters=max(args.meters, scale.attest_readings))
    bench_main("oracle", args, functools.partial(run, scale))


if __name__ == "__main__":
    main()
