"""The meter firmware end to end: meters running the firmware's core on the host
(``nishati-meter-host``: its counter, signer, backlog on a file-backed flash, and its QoS 1
uplink) are registered by an installer with their own proof of possession, publish their signed
readings to Mosquitto, and the oracle verifies and attests them. One meter is SIGKILLed while it
publishes and restarted on the same flash: no counter is used twice, no stored reading is lost,
and its backlog drains. The chain holds exactly each meter's export since its baseline. A
meter's runs are judged by what they print: a reading is signed once printed as stored or listed
as waiting in the flash when a run starts, and delivered once printed on its PUBACK, before it
leaves the flash; another runner, SIGKILLed at random moments, starts each time holding every
reading it stored and did not deliver.

Another meter takes its clock from an SNTP server (signing nothing before it has the time) and,
while its broker is stopped, posts its backlog to the oracle's HTTP ingest, then goes back to
MQTT once the broker returns: every reading arrives once, in order, dated by the SNTP time."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from nishati_client.config import ClientSettings
from nishati_client.pda import household_address
from nishati_dev.broker import Mosquitto
from nishati_dev.localday import as_environment
from nishati_dev.processes import HOST, free_port
from tests.harness.broker import BrokerClient, Login, broker_client, mosquitto
from tests.harness.polling import eventually
from tests.harness.sntp import SntpServer, sntp_server
from tests.harness.trading import TradingWorld, trading_world

pytestmark = pytest.mark.rpc

__all__ = ["mosquitto"]

FIRMWARE = Path(__file__).resolve().parent.parent / "firmware"
RUNNER = FIRMWARE / "target" / "debug" / "nishati-meter-host"
ROOT = "nishati-firmware-test"
# 1 Wh per second of the simulated meter's clock: well inside the test market's export limit.
EXPORT_W = 3_600
# How far the SNTP server's time runs ahead of the host's: inside the skew the chain allows a
# meter's clock (MAX_CLOCK_SKEW_SECS), and far enough that a reading dated by the host's clock
# stands out.
SNTP_OFFSET_SECS = 120
# How often the runner killed at random moments is started again.
RESTARTS = 12
# An attestation threshold no test meter reaches.
ATTEST_WHEN_ASKED_WH = 10**12


@pytest.fixture(scope="session")
def runner() -> Path:
    """The host runner, built once for the session with Debian's toolchain."""
    env = os.environ | {"RUSTC": "/usr/bin/rustc"}
    subprocess.run(
        ["/usr/bin/cargo", "build", "-q", "-p", "nishati-meter-host"],
        cwd=FIRMWARE,
        env=env,
        check=True,
    )
    return RUNNER


@asynccontextmanager
async def world_on(
    broker: Mosquitto,
    rpc_url: str,
    rpc_payer: Keypair,
    settings: ClientSettings,
    tmp_path: Path,
    attest_threshold_wh: int,
) -> AsyncIterator[TradingWorld]:
    """A market and its oracle reading from ``broker``."""
    env = as_environment(broker.mqtt_settings(ROOT))
    env |= {"NISHATI_ATTEST_THRESHOLD_WH": str(attest_threshold_wh)}
    async with trading_world(
        rpc_url, rpc_payer, settings, tmp_path, oracle_env_changes=env
    ) as started:
        yield started


@pytest.fixture
async def world(
    rpc_url: str,
    rpc_payer: Keypair,
    settings: ClientSettings,
    tmp_path: Path,
    mosquitto: Mosquitto,
) -> AsyncIterator[TradingWorld]:
    # Every reading is attested as it comes: the chain's figures follow the meters' own.
    async with world_on(mosquitto, rpc_url, rpc_payer, settings, tmp_path, 0) as started:
        yield started


@pytest.fixture
def stoppable_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker for one test to stop and start again; persistent, as a deployment's is, so the
    oracle's session, and what meters publish to it before the oracle is back, survive."""
    with Mosquitto(tmp_path / "mosquitto", persistent=True) as broker:
        yield broker


@pytest.fixture
async def world_with_stoppable_broker(
    rpc_url: str,
    rpc_payer: Keypair,
    settings: ClientSettings,
    tmp_path: Path,
    stoppable_broker: Mosquitto,
) -> AsyncIterator[TradingWorld]:
    # Attested only when the test asks: a reading that mints within the chain second of the
    # meter's last attestation is refused (its allowance is 0 s of export), and here every
    # reading must be stored.
    async with world_on(
        stoppable_broker, rpc_url, rpc_payer, settings, tmp_path, ATTEST_WHEN_ASKED_WH
    ) as started:
        yield started


@dataclass
class HostMeter:
    """One runner's state directory and what its runs printed."""

    runner: Path
    state: Path
    market: Pubkey
    broker: Mosquitto
    meter: Pubkey | None = None
    # Its own broker login, issued when it is registered (until then the oracle's).
    login: Login | None = None
    runs: list[tuple[subprocess.Popen[bytes], Path]] = field(default_factory=list)

    def base_command(self) -> list[str]:
        return [str(self.runner), "--state", str(self.state), "--market", str(self.market)]

    def register_proof(self, household: Pubkey) -> tuple[Pubkey, bytes]:
        """The meter's key and its signature over its registration to ``household``."""
        out = subprocess.run(
            [*self.base_command(), "--household", str(household)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        lines = dict(line.split(" ", 1) for line in out.splitlines())
        return Pubkey.from_string(lines["meter"]), bytes.fromhex(lines["proof"])

    def start(
        self,
        count: int,
        interval_secs: int,
        broker_port: int | None = None,
        sntp: SntpServer | None = None,
        oracle_url: str | None = None,
    ) -> subprocess.Popen[bytes]:
        """A run on its state, publishing to the broker (or to ``broker_port``); its clock from
        ``sntp`` (else the host's), and the oracle's HTTP ingest at ``oracle_url`` its fallback
        (else none)."""
        port = broker_port or self.broker.port_number
        log = self.state / f"run{len(self.runs)}.out"
        command = self.base_command()
        command += ["--broker", f"{HOST}:{port}", "--root", ROOT]
        login = self.login or Login(self.broker.username, self.broker.password)
        command += ["--username", login.username, "--export-w", str(EXPORT_W)]
        command += ["--interval-secs", str(interval_secs), "--count", str(count)]
        if sntp is not None:
            command += ["--sntp", sntp.address]
        if oracle_url is not None:
            command += ["--oracle-url", oracle_url]
        env = os.environ | {"NISHATI_MQTT_PASSWORD": login.password}
        with log.open("wb") as out, log.with_suffix(".err").open("wb") as err:
            process = subprocess.Popen(command, stdout=out, stderr=err, env=env)
        self.runs.append((process, log))
        return process

    def lines(self, word: str, runs: slice = slice(None)) -> list[list[int]]:
        """The numbers of every complete ``word`` line its runs printed, in order."""
        found = []
        for _, log in self.runs[runs]:
            for line in log.read_text().splitlines(keepends=True):
                parts = line.split()
                if line.endswith("\n") and parts and parts[0] == word:
                    found.append([int(p) for p in parts[1:]])
        return found

    def stored(self, runs: slice = slice(None)) -> list[tuple[int, int]]:
        """(counter, exported Wh) of every reading its runs printed as stored (in the flash)."""
        return [(n, wh) for n, wh in self.lines("stored", runs)]

    def stored_in(self, run: int) -> list[tuple[int, int]]:
        return self.stored(slice(run, run + 1))

    def waiting(self, run: int) -> list[int] | None:
        """The counters its flash held when run ``run`` started, oldest first (None until that
        run has listed them)."""
        listed = self.lines("waiting", slice(run, run + 1))
        return listed[0] if listed else None

    def signed(self, runs: slice = slice(None)) -> set[int]:
        """The counters of every reading its runs signed: each printed as stored or, by a run
        killed before its line, listed as waiting when a run started."""
        listed = {n for counters in self.lines("waiting", runs) for n in counters}
        return {n for n, _ in self.stored(runs)} | listed

    def delivered(self, runs: slice = slice(None)) -> list[int]:
        """Counters the broker acknowledged (each printed before it left the flash)."""
        return [n for (n,) in self.lines("delivered", runs)]

    def posted(self) -> list[int]:
        """Counters the oracle accepted over HTTP."""
        return [n for (n,) in self.lines("posted")]

    def stop(self) -> None:
        for process, _ in self.runs:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture
def host_meters(
    runner: Path, world: TradingWorld, mosquitto: Mosquitto, tmp_path: Path
) -> Iterator[list[HostMeter]]:
    meters = []
    for i in range(3):
        state = tmp_path / f"meter{i}"
        state.mkdir()
        meters.append(HostMeter(runner, state, world.market.address, mosquitto))
    try:
        yield meters
    finally:
        for meter in meters:
            meter.stop()


@pytest.fixture
def dead(mosquitto: Mosquitto) -> Iterator[BrokerClient]:
    """The oracle's refusals of the meters' readings, as it dead-letters them."""
    with broker_client(mosquitto, f"{ROOT}/+/meters/+/rejected") as client:
        yield client


async def register(world: TradingWorld, host: HostMeter) -> Pubkey:
    """The address of a custodial household for ``host``, registered by the market's
    installer with the meter's own proof of possession."""
    market, client = world.market, world.client
    owner = Keypair()
    address, _ = household_address(client.program.program_id, market.address, owner.pubkey())
    meter_key, proof = host.register_proof(address)
    await client.household_register(
        payer=market.h.payer,
        owner=owner,
        authority=market.oracle,
        installer=market.installer,
        market=market.address,
        meter=meter_key,
        meter_proof=proof,
        phone_commitment=secrets.token_bytes(32),
    )
    home = await client.household(address)
    assert home.meter == meter_key
    host.meter = meter_key
    # The meter logs in to the broker as its key, which the ACL keeps to its own topic.
    host.login = Login(str(meter_key), host.broker.meter_login(meter_key))
    return address


async def test_host_meters_publish_survive_a_kill_and_the_chain_holds_their_export(
    world: TradingWorld, host_meters: list[HostMeter], dead: BrokerClient
) -> None:
    client = world.client
    homes = [await register(world, host) for host in host_meters]
    since = max([(await client.household(home)).meter_since for home in homes])
    # The meters date their readings by the system clock; none may be dated before its
    # registration on the chain's clock.
    await eventually(wait_for_wall_clock(since), "the system clock past the registrations")

    steady, killed = host_meters[:2], host_meters[2]
    for host in steady:
        host.start(count=5, interval_secs=1)
    # Killed while it publishes to the broker as fast as it reads...
    first = killed.start(count=1_000_000, interval_secs=0)

    async def publishing() -> bool:
        return len(killed.delivered()) >= 20

    await eventually(publishing, "the killed meter publishing")
    first.send_signal(signal.SIGKILL)
    first.wait()
    # ...restarted on its flash while its broker is unreachable, so it stores readings it
    # cannot deliver, and killed again...
    second = killed.start(count=1_000_000, interval_secs=0, broker_port=free_port())

    async def piled_up() -> bool:
        return len(killed.stored()) >= len(killed.stored_in(0)) + 3

    await eventually(piled_up, "the killed meter storing readings it cannot deliver")
    second.send_signal(signal.SIGKILL)
    second.wait()
    # ...and restarted with its broker back: it holds every reading stored and not delivered,
    # and its backlog drains.
    after_kill = killed.start(count=3, interval_secs=1)
    await eventually(until(lambda: killed.waiting(2) is not None), "the killed meter's backlog")
    backlog = set(killed.waiting(2) or [])
    before = slice(0, 2)
    assert {n for n, _ in killed.stored(before)} - set(killed.delivered(before)) <= backlog
    assert backlog

    for host in host_meters:
        process = host.runs[-1][0]

        async def exited(process: subprocess.Popen[bytes] = process) -> bool:
            return process.poll() is not None

        await eventually(exited, f"meter {host.meter} drained", within_secs=40)
        assert process.returncode == 0
        assert host.lines("drained"), f"meter {host.meter} never printed drained"
    assert after_kill.returncode == 0
    assert backlog <= set(killed.delivered()), "the killed meter's backlog was not delivered"

    refusals: dict[str, int] = {}
    for host, home in zip(host_meters, homes, strict=True):
        stored = dict(host.stored())
        printed = [n for n, _ in host.stored()]
        # A counter is never signed twice, across the kills too, and only ever grows; every
        # reading signed was delivered (the broker acknowledges once the oracle has answered).
        assert printed == sorted(set(printed)), printed
        counters = sorted(host.signed())
        assert set(counters) <= set(host.delivered())

        async def answered(
            host: HostMeter = host, signed: int = len(counters)
        ) -> list[dict[str, Any]] | None:
            answer = await world.http.get(
                f"/api/v1/meters/{host.meter}/readings", params={"limit": 500}
            )
            rows: list[dict[str, Any]] = answer.json()["readings"]
            refused = rejected(dead, refusals, host)
            # Each reading is stored or refused (a resent one after a kill may be refused
            # twice): none is lost.
            if len(rows) + refused < signed:
                return None
            assert host is killed or len(rows) + refused == signed
            return rows if {r["status"] for r in rows} == {"attested"} else None

        rows = await eventually(answered, f"meter {host.meter}'s readings answered and attested")
        assert rows is not None
        kept = [r["counter"] for r in rows]
        # What the oracle kept, newest first: no counter twice, each one the meter signed.
        assert kept == sorted(set(kept), reverse=True)
        assert set(kept) <= set(counters)
        # The chain holds exactly the export from the baseline to the newest attested reading.
        baseline_wh, newest_wh = stored[counters[0]], stored[kept[0]]
        assert kept[-1] == counters[0]
        chain = await client.household(home)
        assert chain.last_counter == kept[0]
        assert chain.meter_exported_wh == newest_wh
        assert chain.total_exported_wh == newest_wh - baseline_wh
        balance = await client.energy_balance(client.program.energy_account(home))
        assert balance == newest_wh - baseline_wh


def rejected(dead: BrokerClient, refusals: dict[str, int], host: HostMeter) -> int:
    """How many of ``host``'s readings the oracle refused (its dead letters so far, counted
    per meter into ``refusals``)."""
    while not dead.messages.empty():
        message = dead.messages.get()
        meter = message.topic.split("/")[-2]
        refusals[meter] = refusals.get(meter, 0) + 1
    return refusals.get(str(host.meter), 0)


def wait_for_wall_clock(since: int) -> Callable[[], Awaitable[bool]]:
    async def past() -> bool:
        return time.time() >= since

    return past


def until(condition: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    """``condition`` as the awaitable check :func:`eventually` polls."""

    async def check() -> bool:
        return condition()

    return check


async def test_a_runner_killed_anywhere_restarts_holding_every_reading_it_did_not_deliver(
    runner: Path, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """SIGKILLed again and again while it stores and delivers readings as fast as it can, a
    runner lists at each start every reading its runs printed as stored and not as delivered;
    and at last it delivers every reading it signed."""
    state = tmp_path / "meter"
    state.mkdir()
    # The broker and its oracle login only: no market or oracle reads these readings.
    host = HostMeter(runner, state, Keypair().pubkey(), mosquitto)
    try:
        for run in range(RESTARTS + 1):
            # The last run takes no reading: it delivers its backlog and exits.
            last = run == RESTARTS
            process = host.start(count=0 if last else 1_000_000, interval_secs=0)

            async def started(run: int = run) -> bool:
                return host.waiting(run) is not None

            await eventually(started, f"run {run} listing its flash")
            listed = host.waiting(run) or []
            before = slice(0, run)
            undelivered = {n for n, _ in host.stored(before)} - set(host.delivered(before))
            missing = sorted(undelivered - set(listed))
            assert not missing, f"run {run} started without stored, undelivered {missing}"
            assert listed == sorted(set(listed)), listed
            signed = host.signed(before)
            # Besides what earlier runs signed, at most the reading stored when the last run
            # was killed, before its line.
            new = set(listed) - signed
            assert len(new) <= 1, listed
            assert all(n > max(signed, default=0) for n in new), listed
            # Readings leave in order, each after its line: one delivered and still held was
            # the oldest, its run killed between the line and the removal.
            assert set(listed) & set(host.delivered(before)) <= set(listed[:1]), listed
            if last:
                break

            async def storing(run: int = run) -> bool:
                return bool(host.stored_in(run))

            await eventually(storing, f"run {run} storing")
            # Killed at a random moment of its work: storing, sending or removing a reading.
            await asyncio.sleep(secrets.randbelow(400) / 1000)
            process.send_signal(signal.SIGKILL)
            process.wait()
        await eventually(until(lambda: process.poll() is not None), "the last run drained", 40)
        assert process.returncode == 0
        assert any(host.waiting(run) for run in range(1, RESTARTS + 1)), "no restart held any"
        assert host.signed() <= set(host.delivered())
    finally:
        host.stop()


async def attested_rows(world: TradingWorld, host: HostMeter, signed: int) -> list[dict[str, Any]]:
    """The meter's readings as the oracle stores them, newest first, once ``signed`` are there
    and the chain holds them all.

    The oracle is asked to attest the meter only once every reading is stored: an ask attests
    the latest reading stored at its round, and readings stored after it would wait for the
    meter's ordinary threshold."""

    async def readings() -> list[dict[str, Any]]:
        answer = await world.http.get(
            f"/api/v1/meters/{host.meter}/readings", params={"limit": 500}
        )
        rows: list[dict[str, Any]] = answer.json()["readings"]
        return rows

    async def stored() -> bool:
        return len(await readings()) >= signed

    await eventually(stored, f"meter {host.meter}'s {signed} readings stored")
    answer = await world.http.post(f"/api/v1/meters/{host.meter}/attest")
    assert answer.status_code == 202, answer.text

    async def attested() -> list[dict[str, Any]] | None:
        rows = await readings()
        done = len(rows) >= signed and {r["status"] for r in rows} == {"attested"}
        return rows if done else None

    rows = await eventually(attested, f"meter {host.meter}'s {signed} readings attested")
    assert rows is not None
    return rows


async def test_a_meter_dates_readings_by_sntp_and_posts_them_over_http_while_the_broker_is_down(
    world_with_stoppable_broker: TradingWorld,
    stoppable_broker: Mosquitto,
    runner: Path,
    tmp_path: Path,
) -> None:
    world, broker = world_with_stoppable_broker, stoppable_broker
    state = tmp_path / "meter"
    state.mkdir()
    host = HostMeter(runner, state, world.market.address, broker)
    oracle_url = world.oracle.url
    try:
        home = await register(world, host)
        with sntp_server(SNTP_OFFSET_SECS) as sntp:
            baseline = host.start(count=1, interval_secs=1, sntp=sntp, oracle_url=oracle_url)
            # The server has no time yet: the meter asks, and signs nothing meanwhile.
            await eventually(until(lambda: sntp.answered[False] >= 2), "SNTP asked twice")
            assert baseline.poll() is None
            assert host.stored() == []
            sntp.synchronise()
            await eventually(until(lambda: baseline.poll() is not None), "the baseline reading")
            assert baseline.returncode == 0
            [[clock]] = host.lines("clock")
            # The server's time when it answered (SNTP_OFFSET_SECS from the host's).
            assert 0 <= sntp.time() - clock < 10, "the meter's clock is the server's"
            # The baseline on the chain, and a chain second gone by since, so the readings to
            # come mint within the export limit.
            [since] = await attested_rows(world, host, 1)
            await eventually(wait_for_wall_clock(int(since["attested_at"]) + 2), "a chain second")

            run = host.start(count=1_000_000, interval_secs=1, sntp=sntp, oracle_url=oracle_url)
            await eventually(until(lambda: len(host.delivered()) >= 4), "readings over MQTT")
            await asyncio.to_thread(broker.stop)
            await eventually(until(lambda: len(host.posted()) >= 5), "readings over HTTP")
            await asyncio.to_thread(broker.start)
            last_posted = max(host.posted())

            async def back_on_mqtt() -> bool:
                return any(n > last_posted for n in host.delivered())

            await eventually(back_on_mqtt, "readings over MQTT again once the broker is back")
            run.send_signal(signal.SIGKILL)
            run.wait()
            # Restarted to finish: two more readings, then its backlog drains and it exits.
            drain = host.start(count=2, interval_secs=1, sntp=sntp, oracle_url=oracle_url)
            await eventually(until(lambda: drain.poll() is not None), "the meter drained", 40)
            assert drain.returncode == 0
        assert len(host.lines("clock")) == 3, "each run set its clock from the server once"

        stored = dict(host.stored())
        printed = [n for n, _ in host.stored()]
        assert printed == sorted(set(printed)), printed
        counters = sorted(host.signed())
        # Every reading signed left the backlog over MQTT or HTTP, and none was refused.
        assert set(counters) <= set(host.delivered()) | set(host.posted())
        assert host.lines("refused") == []
        http = await world.metric("nishati_readings_received_total", transport="http")
        assert http >= len(host.posted()) >= 5

        rows = await attested_rows(world, host, len(counters))
        # Each counter the meter signed arrived exactly once, in counter order.
        by_counter = sorted(rows, key=lambda r: r["counter"])
        assert [r["counter"] for r in by_counter] == counters
        arrivals = [r["received_at"] for r in by_counter]
        assert arrivals == sorted(arrivals)
        # Dated by the SNTP server's clock, not the host's: each timestamp runs the offset
        # ahead of when the oracle received it (and readings wait seconds, not minutes).
        for row in rows:
            ahead = row["timestamp"] - row["received_at"]
            assert SNTP_OFFSET_SECS - 60 < ahead <= SNTP_OFFSET_SECS + 2, row
        # The chain holds exactly the export from the baseline to the newest reading.
        baseline_wh, newest_wh = stored[counters[0]], stored[counters[-1]]
        chain = await world.client.household(home)
        assert chain.last_counter == counters[-1]
        assert chain.meter_exported_wh == newest_wh
        assert chain.total_exported_wh == newest_wh - baseline_wh
        balance = await world.client.energy_balance(world.client.program.energy_account(home))
        assert balance == newest_wh - baseline_wh
    finally:
        host.stop()
