"""Three oracle replicas on one PostgreSQL and one broker, under steady readings and orders, while
faults strike one after another: a replica holding a claim on an unfinished trade is SIGKILLed
(mid-payment), then the attester (the holder of the attester lease, once the chain holds a
batch its database has not recorded, if the test catches one), each restarted; then PostgreSQL
is restarted, then the broker. Daraja's callbacks reach the replicas through a round-robin
balancer (``tests.harness.balancer``); meters publish through the shared subscription or post
to any replica, and orders go round the replicas.

Once all is quiet: every reading is stored once and attested, and each meter's counter, totals
and minted energy on chain are the database's; the money's invariants hold on the chain, the
ledger and the simulator (``tests.trading.invariants``); every order answered 201 is a trade,
and each trade reached its final state once.

Readings lost over MQTT are only those the broker itself dropped: between its restart and the
replicas subscribing again Mosquitto 2.0 routes readings to nobody yet acknowledges them (MQTT 5
reason 0x10, which the simulated meters see: they publish over MQTT 5), and those dealt to a
killed replica's session that come, once it is back, behind newer readings of their meters
(refused as ``ReadingReplayed``). Both are written down in docs/readings-in.md."""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from nishati_client.chain import RpcChain
from nishati_client.config import ClientSettings
from nishati_client.program import NishatiClient
from nishati_client.readings import Reading, SignedReading
from nishati_client.trading import Offer
from nishati_dev.broker import Mosquitto
from nishati_dev.localday import as_environment, enrol, household
from nishati_dev.processes import DarajaSimService, OracleService, free_port
from nishati_dev.sandbox import Harness, Member, OpenMarket, fund, open_market
from nishati_dev.simulate import (
    DAY_SECS,
    MqttTransport,
    SimulatedMeter,
    Tally,
    new_meter,
    reading_json,
    register,
    seconds_of_day,
)
from nishati_oracle.readings.ingest import READINGS_PATH, Reason, Status
from nishati_oracle.trading.ledger import FINAL_STATES
from tests.harness.balancer import Balancer, balancer
from tests.harness.postgres import PostgresServer, restartable_postgres
from tests.harness.trading import (
    FEE_BPS,
    OPERATOR_TOKEN,
    PHONE_SALT,
    PRICE,
    SELLER_PHONE,
    market_config,
    oracle_env,
    sim_control,
)
from tests.trading.books import quiesce, read_books
from tests.trading.invariants import TOLERATED, check, report

pytestmark = pytest.mark.rpc

REPLICAS = 3
MQTT_METERS = 6
HTTP_METERS = 3
ORDERS = 24
MAX_ORDER_WH = 3_000
OFFER_WH = ORDERS * MAX_ORDER_WH
ORDER_GAP_SECS = 1.2
# Every fourth buyer turns the STK push down (cancelled, wrong PIN, unreachable, no balance).
REFUSING = ["32", "37", "01", "11", "17", "19"]
REFUSING_EVERY = 4
DEADLINE_SECS = 60  # the least the program allows
READING_SECS = 1.0
# Each reading measures this many seconds of a Nairobi morning's sunshine (readings are signed
# at the chain's time; the energy is a sunny day's, so the meters mint every round).
SUN_SECS_PER_READING = 60
FIRST_SUN_SECS = 10 * 3_600  # 10:00 local
LEASE_SECS = 4.0
LEASE_RENEW_SECS = 1.0
TOPIC_ROOT = "replicas"
# How long each fault waits for its moment (a claim held; a batch on chain, not in the
# database) before striking anyway.
CLAIM_WAIT_SECS = 20.0
AHEAD_WAIT_SECS = 15.0
POLL_SECS = 0.05
AFTER_DATABASE_SECS = 3.0
AFTER_BROKER_SECS = 6.0
# An HTTP reading or an order is sent again (to the next replica) for this long.
RETRY_SECS = 60.0
SETTLE_SECS = 90.0
QUIESCE_SECS = DEADLINE_SECS + 60.0
AS_OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
Key = tuple[str, int]  # a reading: its meter and counter


@dataclass
class Cluster:
    """The replicas and what they share; a :class:`tests.trading.books.Day`."""

    market: OpenMarket
    offer: Offer
    seller: Member
    replicas: list[OracleService]
    front: Balancer
    postgres: PostgresServer
    broker: Mosquitto
    sim: DarajaSimService
    engine: AsyncEngine
    buyers: dict[str, Member] = field(default_factory=dict)

    async def query(self, sql: str) -> list[tuple[Any, ...]]:
        async with self.engine.connect() as conn:
            return [tuple(row) for row in (await conn.execute(text(sql))).all()]

    async def sim_control(self, path: str, body: Any = None) -> Any:
        return await sim_control(self.sim, path, body)

    @property
    def client(self) -> NishatiClient:
        return self.market.h.client

    def on_port(self, port: int) -> OracleService:
        [found] = [r for r in self.replicas if r.port == port]
        return found

    def with_pid(self, pid: int) -> OracleService | None:
        return next((r for r in self.replicas if r.running and r.pid == pid), None)


@pytest.fixture
async def cluster(
    rpc_url: str, rpc_payer: Keypair, settings: ClientSettings, tmp_path: Path
) -> AsyncIterator[Cluster]:
    program_id = Pubkey.from_string(settings.program_id)
    chain = RpcChain(rpc_url, program_id, settings.commitment)
    h = Harness(chain, rpc_payer, NishatiClient(chain, program_id), None)
    sim = DarajaSimService(
        {"callback_delay_secs": 1.0, "database": tmp_path / "daraja-sim.db"},
        tmp_path / "daraja-sim.log",
    )
    replicas: list[OracleService] = []
    ports = [free_port() for _ in range(REPLICAS)]
    with (
        restartable_postgres() as postgres,
        Mosquitto(tmp_path / "mosquitto", persistent=True) as broker,
    ):
        engine = create_async_engine(postgres.url, pool_pre_ping=True)
        try:
            market = await open_market(h, config=market_config(DEADLINE_SECS))
            await fund(h, market.oracle.pubkey(), 20 * 10**9)
            seller = await household(market, SELLER_PHONE, PHONE_SALT)
            await market.mint(seller, OFFER_WH)
            offer = await market.offer(seller, OFFER_WH, PRICE, expires_in=3_600)
            await asyncio.to_thread(sim.start)
            async with balancer(ports) as front:
                env = oracle_env(rpc_url, market, sim.url, front.url, tmp_path, postgres.url)
                env |= as_environment(broker.mqtt_settings(TOPIC_ROOT))
                env |= {
                    "NISHATI_ATTEST_INTERVAL_SECS": "1.0",
                    "NISHATI_ATTEST_THRESHOLD_WH": "0",
                    "NISHATI_CHAIN_CLOCK_SECS": "0.5",
                    "NISHATI_ATTEST_LEASE_SECS": str(LEASE_SECS),
                    "NISHATI_ATTEST_LEASE_RENEW_SECS": str(LEASE_RENEW_SECS),
                }
                for n, port in enumerate(ports):
                    replica_env = env | {"NISHATI_MQTT_CLIENT_ID": f"replica-{n}"}
                    log = tmp_path / f"oracle-{n}.log"
                    replicas.append(OracleService(replica_env, log, port=port))
                # The first migrates the database; the others start together after it.
                await asyncio.to_thread(replicas[0].start)
                await asyncio.gather(*(asyncio.to_thread(r.start) for r in replicas[1:]))
                async with httpx.AsyncClient(
                    base_url=replicas[0].url, timeout=30, headers=AS_OPERATOR
                ) as http:
                    await enrol(http, seller, SELLER_PHONE)
                yield Cluster(market, offer, seller, replicas, front, postgres, broker, sim, engine)
        finally:
            for replica in replicas:
                await asyncio.to_thread(replica.stop)
            await asyncio.to_thread(sim.stop)
            await engine.dispose()
            await chain.close()


# The load


@dataclass
class Meters:
    """The simulated meters, what each sent, and what became of it."""

    over_mqtt: list[SimulatedMeter]
    over_http: list[SimulatedMeter]
    sent: set[Key] = field(default_factory=set)
    http_sent: set[Key] = field(default_factory=set)
    http_answers: Counter[str] = field(default_factory=Counter)
    http_refused: list[tuple[Key, str]] = field(default_factory=list)

    @property
    def all(self) -> list[SimulatedMeter]:
        return self.over_mqtt + self.over_http


def key(signed: SignedReading) -> Key:
    return str(signed.meter), Reading.decode(signed.message).counter


async def read_meters(
    cluster: Cluster,
    meters: Meters,
    transport: MqttTransport,
    queues: dict[str, asyncio.Queue[SignedReading | None]],
    stop: asyncio.Event,
) -> int:
    """Every meter reads each ``READING_SECS`` until ``stop``: the MQTT ones publish, the HTTP
    ones queue for their sender. How many rounds."""
    chain_now = await cluster.market.now()
    offset = chain_now - time.time()
    now = time.time()
    morning = int(now - seconds_of_day(now)) - DAY_SECS + FIRST_SUN_SECS
    # The first round is signed no earlier than the chain's time now, after every meter's
    # registration (a reading signed before it is refused: ReadingBeforeMeterRegistered).
    signed_at = int(chain_now) - 1
    rounds = 0
    while not stop.is_set():
        rounds += 1
        # The chain's time now, two seconds behind to be safe, each round after the last.
        signed_at = max(signed_at + 1, int(time.time() + offset) - 2)
        sun = morning + rounds * SUN_SECS_PER_READING
        batch = [m.read_at(sun, signed_at) for m in meters.over_mqtt]
        meters.sent.update(key(s) for s in batch)
        await transport.send(batch)
        for m in meters.over_http:
            signed = m.read_at(sun, signed_at)
            meters.sent.add(key(signed))
            meters.http_sent.add(key(signed))
            queues[str(m.public_key)].put_nowait(signed)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), READING_SECS)
    return rounds


async def http_meter(
    cluster: Cluster, meters: Meters, queue: asyncio.Queue[SignedReading | None]
) -> None:
    """One meter posting its readings in order, each to the next replica, sent again until a
    replica says it is stored (accepted, or a duplicate of one stored)."""
    turn = random.randrange(REPLICAS)  # noqa: S311 - where to start, not a secret
    async with httpx.AsyncClient(timeout=10) as http:
        while (signed := await queue.get()) is not None:
            body = {"readings": [reading_json(signed)]}
            deadline = time.monotonic() + RETRY_SECS
            while time.monotonic() < deadline:
                replica = cluster.replicas[turn % REPLICAS]
                turn += 1
                try:
                    answer = await http.post(f"{replica.url}{READINGS_PATH}", json=body)
                    # 200 with the reading's result, or 422 when it is the batch's only one
                    # and refused; anything else (a replica down or starting) is tried again.
                    answered = answer.status_code in (200, 422)
                    result = answer.json()["results"][0] if answered else {}
                except (httpx.HTTPError, ValueError, KeyError, IndexError):
                    result = {}
                status, reason = result.get("status"), result.get("reason")
                if status in (Status.accepted, Status.duplicate):
                    meters.http_answers[status] += 1
                    break
                if status == Status.rejected and reason != Reason.ChainUnavailable:
                    meters.http_refused.append((key(signed), str(reason)))
                    break
                await asyncio.sleep(0.2)


@dataclass
class Orders:
    answered: dict[str, str] = field(default_factory=dict)  # trade id -> buyer's phone
    refused: list[tuple[str, int, str]] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)


async def place_orders(cluster: Cluster, phones: list[str], orders: Orders) -> None:
    """One order per phone, ``ORDER_GAP_SECS`` apart, each to the next replica under its own
    Idempotency-Key, sent again (to the next) while no replica has answered it."""
    rng = random.Random(19)  # noqa: S311 - order sizes, not secrets
    turn = 0
    async with httpx.AsyncClient(timeout=30) as http:
        for phone in phones:
            body = {"offer": str(cluster.offer.address), "wh": rng.randrange(1_000, MAX_ORDER_WH)}
            body["phone"] = phone
            headers = AS_OPERATOR | {"Idempotency-Key": secrets.token_hex(16)}
            deadline = time.monotonic() + RETRY_SECS
            while True:
                if time.monotonic() > deadline:
                    orders.unanswered.append(phone)
                    break
                replica = cluster.replicas[turn % REPLICAS]
                turn += 1
                try:
                    answer = await http.post(
                        f"{replica.url}/api/v1/trades", json=body, headers=headers
                    )
                except httpx.HTTPError:
                    await asyncio.sleep(0.3)
                    continue
                if answer.status_code == 201:
                    orders.answered[answer.json()["trade_id"]] = phone
                    break
                in_use = answer.status_code == 409 and "IdempotencyKeyInUse" in answer.text
                if answer.status_code >= 500 or in_use:
                    await asyncio.sleep(0.3)
                    continue
                orders.refused.append((phone, answer.status_code, answer.text))
                break
            await asyncio.sleep(ORDER_GAP_SECS)


# The faults


@dataclass
class Faults:
    claim_caught: bool = False
    batch_ahead_caught: bool = False
    failover_secs: float = 0.0
    log: list[str] = field(default_factory=list)


FINAL_LIST = ", ".join(f"'{s.value}'" for s in sorted(FINAL_STATES))


async def claim_holder(cluster: Cluster) -> OracleService | None:
    """A replica holding a claim on a trade that is not final, if one does now."""
    sql = (
        f"SELECT claimed_by FROM trades WHERE claim_until > {time.time()} "  # noqa: S608
        f"AND state NOT IN ({FINAL_LIST}) LIMIT 1"
    )
    rows = await cluster.query(sql)
    if not rows or rows[0][0] is None:
        return None
    return cluster.on_port(int(str(rows[0][0]).rsplit(":", 1)[1]))


async def lease_holder(cluster: Cluster) -> str:
    sql = f"SELECT holder FROM attester_leases WHERE market = '{cluster.market.address}'"  # noqa: S608
    rows = await cluster.query(sql)
    return str(rows[0][0]) if rows else ""


async def chain_ahead(cluster: Cluster, meters: Meters, households: list[Pubkey]) -> bool:
    """Whether the chain holds a reading of some meter that the database has not recorded
    attested: the attester is between its transaction landing and its write."""
    on_chain = await cluster.client.households_at(households)
    attested = dict(await cluster.query("SELECT meter, attested_counter FROM meters"))
    return any(
        h is not None and h.last_counter > (attested.get(str(m.public_key)) or 0)
        for m, h in zip(meters.all, on_chain, strict=True)
    )


async def strike(cluster: Cluster, meters: Meters, households: list[Pubkey]) -> Faults:
    faults = Faults()
    # A replica mid-payment.
    deadline = time.monotonic() + CLAIM_WAIT_SECS
    victim = None
    while victim is None and time.monotonic() < deadline:
        victim = await claim_holder(cluster)
        await asyncio.sleep(POLL_SECS)
    faults.claim_caught = victim is not None
    victim = victim or cluster.replicas[1]
    await asyncio.to_thread(victim.kill)
    faults.log.append(f"killed :{victim.port} (claim caught: {faults.claim_caught})")
    await asyncio.to_thread(victim.start)

    # The attester, mid-batch if caught so: SIGKILLed the moment the chain is seen ahead.
    deadline = time.monotonic() + AHEAD_WAIT_SECS
    while True:
        holder = await lease_holder(cluster)
        attester = cluster.with_pid(int(holder.split("/")[1]))
        assert attester is not None, f"the lease's holder {holder} is none of the replicas"
        faults.batch_ahead_caught = await chain_ahead(cluster, meters, households)
        if faults.batch_ahead_caught or time.monotonic() > deadline:
            break
        await asyncio.sleep(POLL_SECS)
    # Not in a thread: the signal goes now; reaping a SIGKILLed process takes milliseconds.
    attester.kill()
    killed_at = time.monotonic()
    restarting = asyncio.ensure_future(asyncio.to_thread(attester.start))
    while await lease_holder(cluster) == holder:
        assert time.monotonic() - killed_at < LEASE_SECS * 10, "no replica took the lease over"
        await asyncio.sleep(POLL_SECS)
    faults.failover_secs = time.monotonic() - killed_at
    await restarting
    faults.log.append(
        f"killed the attester :{attester.port} (batch ahead caught: "
        f"{faults.batch_ahead_caught}), taken over in {faults.failover_secs:.1f} s"
    )

    await asyncio.to_thread(cluster.postgres.restart)
    faults.log.append("restarted PostgreSQL")
    await asyncio.sleep(AFTER_DATABASE_SECS)
    await asyncio.to_thread(cluster.broker.restart)
    faults.log.append("restarted the broker")
    await asyncio.sleep(AFTER_BROKER_SECS)
    return faults


# What the database holds


async def stored_readings(cluster: Cluster) -> list[tuple[str, int, bool]]:
    """(meter, counter, attested and not refused) of every stored reading."""
    rows = await cluster.query(
        "SELECT meter, counter, attested_at IS NOT NULL AND refused IS NULL FROM readings"
    )
    return [(str(m), int(c), bool(a)) for m, c, a in rows]


async def settled(cluster: Cluster, meters: Meters, households: list[Pubkey]) -> bool:
    """Every stored reading attested, and the chain on each meter's last stored counter."""
    [(waiting,)] = await cluster.query("SELECT count(*) FROM readings WHERE attested_at IS NULL")
    if waiting:
        return False
    last = dict(await cluster.query("SELECT meter, last_counter FROM meters"))
    on_chain = await cluster.client.households_at(households)
    return all(
        h is not None and h.last_counter == last.get(str(m.public_key))
        for m, h in zip(meters.all, on_chain, strict=True)
    )


async def minted_by_database(cluster: Cluster, meter: str) -> int:
    """What the database says the chain minted the meter: its last attested export less that
    of its baseline (the newest reading of its first attestation, which mints nothing)."""
    [(first,)] = await cluster.query(
        f"SELECT min(attested_at) FROM readings WHERE meter = '{meter}'"  # noqa: S608
    )
    [(baseline,)] = await cluster.query(
        f"SELECT exported_wh FROM readings WHERE meter = '{meter}' "  # noqa: S608
        f"AND attested_at = {first!r} ORDER BY counter DESC LIMIT 1"
    )
    [(attested,)] = await cluster.query(
        f"SELECT attested_exported_wh FROM meters WHERE meter = '{meter}'"  # noqa: S608
    )
    return int(attested) - int(baseline)


async def test_three_replicas_lose_nothing_and_double_nothing_under_faults(
    cluster: Cluster,
) -> None:
    started = time.monotonic()
    rng = random.Random(20261207)  # noqa: S311 - a reproducible test, not cryptography
    fleet = Meters(
        [new_meter(cluster.market.address, rng) for _ in range(MQTT_METERS)],
        [new_meter(cluster.market.address, rng) for _ in range(HTTP_METERS)],
    )
    await register(
        cluster.client,
        cluster.market.oracle,
        cluster.market.address,
        fleet.all,
        installer=cluster.market.installer,
        phone_salt=PHONE_SALT,
    )
    households = [
        cluster.client.program.household_address(cluster.market.address, m.owner) for m in fleet.all
    ]
    phones = [
        f"2547{n:06d}" + (rng.choice(REFUSING) if n % REFUSING_EVERY == 0 else "00")
        for n in range(1, ORDERS + 1)
    ]
    for first in range(0, ORDERS, 12):
        registered = await asyncio.gather(
            *(household(cluster.market, p, PHONE_SALT) for p in phones[first : first + 12])
        )
        cluster.buyers.update(zip(phones[first : first + 12], registered, strict=True))
    setup_secs = time.monotonic() - started

    tally = Tally()
    settings = cluster.broker.settings(cluster.market.address, TOPIC_ROOT)
    transport = MqttTransport(
        settings, cluster.market.address, [m.public_key for m in fleet.over_mqtt], tally
    )
    await transport.connect()
    queues: dict[str, asyncio.Queue[SignedReading | None]] = {
        str(m.public_key): asyncio.Queue() for m in fleet.over_http
    }
    senders = [asyncio.create_task(http_meter(cluster, fleet, q)) for q in queues.values()]
    stop = asyncio.Event()
    reader = asyncio.create_task(read_meters(cluster, fleet, transport, queues, stop))
    orders = Orders()
    ordering = asyncio.create_task(place_orders(cluster, phones, orders))
    try:
        faults = await strike(cluster, fleet, households)
        await ordering
    finally:
        stop.set()
        rounds = await reader
        for q in queues.values():
            q.put_nowait(None)
        await asyncio.gather(*senders)
        drained = await transport.drain(timeout_secs=60)
        await transport.close()
    load_secs = time.monotonic() - started - setup_secs
    assert drained, f"the broker did not acknowledge every reading: {tally.line()}"

    deadline = time.monotonic() + SETTLE_SECS
    while not await settled(cluster, fleet, households):
        assert time.monotonic() < deadline, "readings still unattested"
        await asyncio.sleep(0.5)
    quiet_secs = await quiesce(cluster, within_secs=QUIESCE_SECS)

    # Readings: each stored once and attested; none lost but what the broker dropped.
    stored = await stored_readings(cluster)
    stored_keys = {(m, c) for m, c, _ in stored}
    assert len(stored_keys) == len(stored), "a reading stored twice"
    assert stored_keys <= fleet.sent, sorted(stored_keys - fleet.sent)[:10]
    assert all(attested for _, _, attested in stored), [r for r in stored if not r[2]][:10]
    assert not fleet.http_refused, fleet.http_refused[:10]
    assert fleet.http_sent <= stored_keys, sorted(fleet.http_sent - stored_keys)[:10]
    unrouted = {key(s) for s in transport.unrouted}
    assert tally.unrouted == len(transport.unrouted) == len(unrouted)
    replayed = {
        (r.meter, r.counter)
        for r in transport.rejections
        if r.reason == Reason.ReadingReplayed and r.counter is not None
    }
    assert all(r.reason == Reason.ReadingReplayed for r in transport.rejections), Counter(
        r.reason for r in transport.rejections
    )
    assert not unrouted & stored_keys, sorted(unrouted & stored_keys)[:10]
    assert not replayed & stored_keys, sorted(replayed & stored_keys)[:10]
    last_stored = Counter[str]()
    for meter, counter in stored_keys:
        last_stored[meter] = max(last_stored[meter], counter)
    # A replayed reading came behind a newer one of its meter, stored before it.
    assert all(counter < last_stored[meter] for meter, counter in replayed), sorted(replayed)
    lost = fleet.sent - stored_keys
    assert lost == unrouted | replayed, {
        "lost, neither unrouted nor replayed": sorted(lost - unrouted - replayed)[:10]
    }

    # Each meter's chain account is the database's.
    rows = await cluster.query(
        "SELECT meter, last_counter, attested_counter, last_exported_wh, attested_exported_wh, "
        "last_imported_wh FROM meters"
    )
    in_database = {str(r[0]): r[1:] for r in rows}
    on_chain = await cluster.client.households_at(households)
    for m, h in zip(fleet.all, on_chain, strict=True):
        assert h is not None
        last, attested, exported, attested_exported, imported = in_database[str(m.public_key)]
        assert h.last_counter == last == attested == last_stored[str(m.public_key)]
        assert h.meter_exported_wh == exported == attested_exported
        assert h.meter_imported_wh == imported
        minted = await minted_by_database(cluster, str(m.public_key))
        balance = await cluster.client.energy_balance(h.energy_account)
        assert balance == h.total_exported_wh == minted, (str(m.public_key), balance, minted)

    # Trades: the money's invariants; every 201 a trade; each final once.
    sellers = {str(cluster.seller.address): SELLER_PHONE}
    books = await read_books(cluster, sellers, [cluster.offer], OFFER_WH, FEE_BPS)
    found = check(books)
    failed = [v for v in found if v.rule not in TOLERATED]
    assert not failed, "\n" + report(failed)
    trade_ids = {t.id for t in books.trades}
    assert set(orders.answered) <= trade_ids, sorted(set(orders.answered) - trade_ids)
    assert not orders.refused, orders.refused
    history = await cluster.query("SELECT trade_id, state FROM trade_history")
    finals = Counter(trade for trade, state in history if state in FINAL_STATES)
    state_of = {t.id: t.state for t in books.trades}
    assert all(finals[t] == 1 for t in trade_ids), {
        t: finals[t] for t in trade_ids if finals[t] != 1
    }
    last_final = {trade: state for trade, state in history if state in FINAL_STATES}
    assert last_final == state_of

    [(reconciled,)] = await cluster.query(
        "SELECT count(*) FROM readings WHERE attest_signature = 'reconciled'"
    )
    states = Counter(t.state for t in books.trades)
    print(
        f"\nmeters and buyers registered in {setup_secs:.0f} s, load {load_secs:.0f} s "
        f"({rounds} rounds), quiet after {quiet_secs:.0f} s; "
        + "; ".join(faults.log)
        + f"\nattester failover {faults.failover_secs:.1f} s"
        f"\nreadings: sent {len(fleet.sent)} ({len(fleet.sent) - len(fleet.http_sent)} over "
        f"MQTT, {len(fleet.http_sent)} over HTTP), stored and attested {len(stored)}, "
        f"{reconciled} attested by reconciliation; over MQTT {tally.line()}, replayed "
        f"{len(replayed)}; over HTTP {dict(fleet.http_answers)}"
        f"\ntrades {len(books.trades)} of {ORDERS} orders ({len(orders.answered)} answered 201, "
        f"{len(orders.unanswered)} unanswered), final states {dict(states)}; balancer served "
        f"{cluster.front.served}, failed {cluster.front.failed}"
        f"\n{report(found) or 'every invariant holds'}"
    )
