"""Readings stored per second of the oracle's CPU with one replica and with two, on one
PostgreSQL and one broker (target: two replicas within 10 % of one).

Two groups of replicas run side by side, one replica and two, each on a fresh database of one
PostgreSQL server and under its own topic root on one broker: ``python -m nishati_oracle``
processes configured alike but for ``NISHATI_MQTT_CLIENT_ID``, in one shared subscription
(``NISHATI_MQTT_SHARE_GROUP``), their batcher asleep (a day's interval). Every replica first
takes a round of every meter's readings, a group two (each replica looks every meter up on
chain once: setup). Then the groups are measured in turn, a few windows each, each window fresh
readings of every meter: HTTP batches (``bench.oracle``'s senders, each with its share of the
meters, sender ``s`` to replica ``s`` mod the replicas), then MQTT (one publisher, QoS 1, a
round of every meter at a time, each waited for until stored; the broker deals the messages
round the replicas). Each replica's CPU time (user and system, from ``/proc``) over the
windows, summed, divides the readings stored; PostgreSQL's (every process of the server) is
printed apart, and so is each replica's CPU with nothing to do.

The replicas share core ORACLE_CORE (``taskset``); this process, PostgreSQL, the broker and
the validator share LOAD_CORE. On two cores the figure is CPU per stored reading, not
throughput: two replicas on one core store no faster than one.

Run: ``.venv/bin/python -m bench.replicas`` (2,000 meters) or ``--quick`` (1,000). Needs the
built program (``scripts/build-program.sh``), surfpool, Debian's PostgreSQL and mosquitto.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench.harness import (
    LOAD_CORE,
    ORACLE_CORE,
    BenchOracle,
    arguments,
    bench_main,
    pin,
    tree_cpu_secs,
)
from bench.oracle import (
    HTTP_TIMEOUT_SECS,
    ORACLE_LAMPORTS,
    PAYER_LAMPORTS,
    TOPIC_ROOT,
    Home,
    broker_up,
    oracle_env,
    post_batches,
    publish_all,
    register,
    rounds,
)
from bench.stats import Report, per_sec
from nishati_client.chain import RpcChain
from nishati_client.keys import write_keypair
from nishati_client.program import NishatiClient
from nishati_dev.broker import Mosquitto
from nishati_dev.localnet import LocalValidator
from nishati_dev.processes import Service, ServiceError
from nishati_dev.sandbox import Harness, fund, open_market
from nishati_dev.settings import LocalChainSettings
from nishati_oracle.storage.database import migrate
from nishati_oracle.storage.schema import readings
from tests.harness.oracle import new_postgres_database
from tests.harness.postgres import restartable_postgres

# Two replicas' readings per oracle CPU-second at least this share of one replica's.
TARGET_SHARE = 0.9
PER_POST = 500
SENDERS = 4
SHARE_GROUP = "nishati-bench"
# Rounds of every meter's readings before anything is measured.
WARM_ROUNDS = 2
# How long the replicas' CPU is read before the windows, with nothing to do.
IDLE_SECS = 3.0
# What uvicorn logs when its port was taken after it was chosen as free.
BIND_FAILED = "address already in use"


@dataclass(frozen=True)
class Size:
    name: str
    meters: int
    # Measured: rounds of every meter's readings over HTTP, then over MQTT.
    http_rounds: int
    mqtt_rounds: int
    # Windows of each group, the groups in turn.
    windows: int


FULL = Size("full", 2_000, 2, 1, 5)
SMALL = Size("quick", 1_000, 2, 1, 4)


@dataclass
class Window:
    """What one transport's part of a run stored, and the CPU seconds it took."""

    readings: int = 0
    stored: int = 0
    secs: float = 0.0
    # Each replica's CPU seconds, and PostgreSQL's.
    replicas: list[float] = field(default_factory=list)
    postgres: float = 0.0
    refused: Counter[str] = field(default_factory=Counter)

    @property
    def oracle(self) -> float:
        return sum(self.replicas)

    def per_cpu_sec(self) -> float:
        return self.stored / self.oracle if self.oracle > 0 else 0.0

    def __add__(self, other: Window) -> Window:
        return Window(
            self.readings + other.readings,
            self.stored + other.stored,
            self.secs + other.secs,
            [a + b for a, b in zip(self.replicas, other.replicas, strict=True)],
            self.postgres + other.postgres,
            self.refused + other.refused,
        )


class CpuClock:
    """The CPU seconds of the replicas and of PostgreSQL, read at a window's start and end."""

    def __init__(self, replicas: Sequence[BenchOracle], postgres: Service) -> None:
        self.replicas = replicas
        self.postgres = postgres
        self.started = self.read()

    def read(self) -> tuple[list[float], float]:
        return [r.cpu_secs() for r in self.replicas], tree_cpu_secs(self.postgres.pid)

    def window(self, readings: int, stored: int, secs: float, refused: Counter[str]) -> Window:
        (replicas, postgres), (replicas_then, postgres_then) = self.read(), self.started
        return Window(
            readings,
            stored,
            secs,
            [now - then for now, then in zip(replicas, replicas_then, strict=True)],
            postgres - postgres_then,
            refused,
        )


async def start_replica(env: dict[str, str], log: Path) -> BenchOracle:
    """A replica on a free port; once more on another if the port was taken before it bound
    it (chosen free, then taken by another process meanwhile)."""
    replica = BenchOracle(env, log)
    try:
        await asyncio.to_thread(replica.start)
    except ServiceError as error:
        if BIND_FAILED not in str(error).lower():
            raise
        replica = BenchOracle(env, log)
        await asyncio.to_thread(replica.start)
    return replica


@dataclass
class World:
    """What every group of replicas is measured in."""

    size: Size
    homes: list[Home]
    env: dict[str, str]
    base_url: str
    postgres: Service
    broker: Mosquitto
    market: Pubkey
    directory: Path


@dataclass
class Group:
    """Replicas on a database of their own, reading their own topic root, and the windows
    measured of them."""

    count: int
    replicas: list[BenchOracle]
    engine: AsyncEngine
    topic_root: str
    http: list[Window] = field(default_factory=list)
    mqtt: list[Window] = field(default_factory=list)
    # Each replica's CPU seconds a second with nothing to do.
    idle: list[float] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.count} replica{'s' if self.count > 1 else ''}"


async def start_group(
    world: World, count: int, report: Report, stack: contextlib.AsyncExitStack
) -> Group:
    """``count`` replicas on a fresh database, each having seen every meter once (its chain
    lookups), stopped when ``stack`` closes."""
    url = await asyncio.to_thread(new_postgres_database, world.base_url)
    await asyncio.to_thread(migrate, url)
    engine = create_async_engine(url)
    stack.push_async_callback(engine.dispose)
    topic_root = f"{TOPIC_ROOT}-{count}"
    replicas = []
    for n in range(1, count + 1):
        env = world.env | {
            "NISHATI_DATABASE_URL": url,
            "NISHATI_ATTEST_INTERVAL_SECS": "86400",
            "NISHATI_MQTT_TOPIC_ROOT": topic_root,
            "NISHATI_MQTT_SHARE_GROUP": SHARE_GROUP,
            "NISHATI_MQTT_CLIENT_ID": f"bench-{count}-replica-{n}",
        }
        replica = await start_replica(env, world.directory / f"oracle-{count}-{n}.log")
        stack.push_async_callback(asyncio.to_thread, replica.stop)
        replicas.append(replica)
    group = Group(count, replicas, engine, topic_root)
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_SECS) as client:
        for replica in replicas:
            if not await broker_up(replica, client):
                raise RuntimeError(f"a replica has no broker connection: {replica.tail()}")
    if any(replica.cores() != [ORACLE_CORE] for replica in replicas):
        report.notes.append(f"{group.label}: a replica's threads may run off core {ORACLE_CORE}")
    # As many rounds whatever the replicas, each replica taking at least one.
    started = time.perf_counter()
    for n in range(WARM_ROUNDS):
        sent, _ = await post_batches(replicas[n % count], rounds(world.homes, 1), PER_POST, SENDERS)
        if sent.accepted != len(world.homes):
            raise RuntimeError(f"first readings refused: {sent.problems()}")
    report.step(
        f"{group.label}: {WARM_ROUNDS} rounds of every meter's readings, each replica seeing "
        "every meter (chain lookups)",
        f"{time.perf_counter() - started:,.1f} s",
    )
    return group


async def idle(world: World, group: Group, report: Report) -> None:
    """Each replica's CPU a second, and PostgreSQL's, with nothing to do (its timers, its
    attester lease)."""
    clock = CpuClock(group.replicas, world.postgres)
    await asyncio.sleep(IDLE_SECS)
    quiet = clock.window(0, 0, IDLE_SECS, Counter())
    group.idle = [secs / IDLE_SECS for secs in quiet.replicas]
    report.step(
        f"{group.label}: idle, CPU a second",
        ", ".join(f"{secs / IDLE_SECS * 1e3:,.0f} ms" for secs in quiet.replicas)
        + f" by replica, PostgreSQL {quiet.postgres / IDLE_SECS * 1e3:,.0f} ms",
    )


async def measure(world: World, group: Group) -> None:
    """One HTTP and one MQTT window of the group, of fresh readings of every meter."""
    replicas = group.replicas
    http_readings = rounds(world.homes, world.size.http_rounds)
    mqtt_readings = rounds(world.homes, world.size.mqtt_rounds)

    clock = CpuClock(replicas, world.postgres)
    sent, secs = await post_batches(replicas, http_readings, PER_POST, SENDERS)
    group.http.append(clock.window(sent.readings, sent.accepted, secs, sent.refused))

    clock = CpuClock(replicas, world.postgres)
    stored, secs, refused = 0, 0.0, Counter[str]()
    for round_ in mqtt_readings:
        async with group.engine.connect() as conn:
            floor = (await conn.execute(select(func.max(readings.c.id)))).scalar_one()

        async def count_stored(floor: int = floor) -> int:
            async with group.engine.connect() as conn:
                query = select(func.count()).select_from(readings)
                return int((await conn.execute(query.where(readings.c.id > floor))).scalar_one())

        _, took, done, tally = await publish_all(
            world.broker, world.market, [round_], count_stored, group.topic_root
        )
        stored, secs = stored + done, secs + took
        refused.update(tally.rejected)
    group.mqtt.append(clock.window(sum(len(r) for r in mqtt_readings), stored, secs, refused))


def total(windows: Sequence[Window]) -> Window:
    summed = windows[0]
    for window in windows[1:]:
        summed = summed + window
    return summed


def cpu_note(window: Window) -> str:
    split = ", ".join(f"{secs:.2f}" for secs in window.replicas)
    return (
        f"oracle CPU {window.oracle:.2f} s"
        + (f" ({split} by replica)" if len(window.replicas) > 1 else "")
        + f", {window.oracle / max(window.stored, 1) * 1e6:,.0f} µs a reading; "
        f"{per_sec(window.stored, window.secs)} on the clock; PostgreSQL CPU "
        f"{window.postgres:.2f} s"
        + ("" if window.stored == window.readings else f"; only {window.stored:,} stored")
        + (
            f"; refused: {', '.join(f'{n:,} {why}' for why, n in window.refused.most_common(4))}"
            if window.refused
            else ""
        )
    )


def rows(report: Report, group: Group, meters: int) -> Window:
    """The group's rows: each transport's, then both together; returns both together."""
    label = group.label
    http, mqtt = total(group.http), total(group.mqtt)
    per_post = min(PER_POST, -(-meters // SENDERS))
    report.add(
        f"{label}: HTTP, {per_post} per POST, {SENDERS} senders, {http.readings:,} readings",
        f"{http.per_cpu_sec():,.0f}/CPU-s",
        note=cpu_note(http),
    )
    report.add(
        f"{label}: MQTT, QoS 1, shared subscription, {mqtt.readings:,} readings",
        f"{mqtt.per_cpu_sec():,.0f}/CPU-s",
        note=cpu_note(mqtt),
    )
    both = http + mqtt
    report.add(
        f"{label}: both, {both.readings:,} readings, per oracle CPU-second",
        f"{both.per_cpu_sec():,.0f}/CPU-s",
        note=cpu_note(both)
        + "; by window: "
        + ", ".join(
            f"{(h + m).per_cpu_sec():,.0f}" for h, m in zip(group.http, group.mqtt, strict=True)
        ),
    )
    report.add(
        f"{label}: PostgreSQL CPU, every process of the server",
        f"{both.postgres / max(both.stored, 1) * 1e6:,.0f} µs a reading",
        note=f"{both.postgres:.2f} s over the windows, "
        f"{both.stored / both.postgres if both.postgres > 0 else 0:,.0f} readings a CPU-second",
    )
    return both


async def run(size: Size, directory: Path, _profiles: Path | None) -> Report:
    report = Report(
        f"oracle replicas on one PostgreSQL and one broker, {size.name} size: readings stored "
        f"per oracle CPU-second, the replicas on core {ORACLE_CORE}, the rest on core {LOAD_CORE}"
    )
    # Everything but the replicas shares LOAD_CORE: this process and what it starts from here.
    pin(os.getpid(), {LOAD_CORE})
    settings = LocalChainSettings()
    program_id = Pubkey.from_string(settings.program_id)
    payer = Keypair()
    rng = random.Random(19)  # noqa: S311 - home sizes, not secrets
    started = time.perf_counter()
    with (
        LocalValidator(settings, {str(payer.pubkey()): PAYER_LAMPORTS}) as validator,
        Mosquitto(directory / "mosquitto") as broker,
        restartable_postgres() as server,
    ):
        report.step(
            "validator, broker and PostgreSQL start", f"{time.perf_counter() - started:,.1f} s"
        )
        base_url, postgres = server.url, server.service
        chain = RpcChain(validator.rpc_url, program_id, settings.commitment)
        try:
            market = await open_market(
                Harness(chain, payer, NishatiClient(chain, program_id), None)
            )
            await fund(market.h, market.oracle.pubkey(), ORACLE_LAMPORTS)
            key = directory / "oracle.json"
            write_keypair(key, market.oracle)
            # The database is each group's own (NISHATI_DATABASE_URL, set per group).
            env = oracle_env(market, validator.rpc_url, key, directory / "unused.db", broker)
            started = time.perf_counter()
            homes, _ = await register(market, size.meters, chain, rng)
            report.step(
                f"registering {len(homes):,} households", f"{time.perf_counter() - started:,.1f} s"
            )
            world = World(size, homes, env, base_url, postgres, broker, market.address, directory)
            async with contextlib.AsyncExitStack() as stack:
                groups = [await start_group(world, count, report, stack) for count in (1, 2)]
                for group in groups:
                    await idle(world, group, report)
                # In turn, so a load that comes and goes on the shared machine weighs on both.
                for _ in range(size.windows):
                    for group in groups:
                        await measure(world, group)
        finally:
            await chain.close()
    both = [rows(report, group, len(homes)) for group in groups]
    one, two = (window.per_cpu_sec() for window in both)
    busy = [
        window.stored / max(window.oracle - sum(group.idle) * window.secs, 1e-9)
        for group, window in zip(groups, both, strict=True)
    ]
    share = two / one if one > 0 else 0.0
    report.add(
        "2 replicas against 1, readings per oracle CPU-second",
        f"{share:.0%}",
        f">= {TARGET_SHARE:.0%}",
        share >= TARGET_SHARE,
        f"{two:,.0f} against {one:,.0f}; less each replica's idle CPU over the windows' time "
        f"{busy[1]:,.0f} against {busy[0]:,.0f}, {busy[1] / busy[0]:.0%}",
    )
    report.notes.append(
        f"both replicas run on core {ORACLE_CORE}: on 2 cores this is CPU per stored reading, "
        "not throughput (two replicas on one core store no faster than one)"
    )
    report.notes.append(
        "a replica's CPU counts all it does in a window, its idle work too (setup, above): "
        "the slower the load's core, the more of it a reading carries, twice with two replicas"
    )
    report.notes.append("while one group is measured the other waits, idle, on the same core")
    return report


def main() -> None:
    args = arguments(__doc__.splitlines()[0] if __doc__ else "", "nothing").parse_args()
    bench_main("replicas", args, functools.partial(run, SMALL if args.quick else FULL))


if __name__ == "__main__":
    main()
