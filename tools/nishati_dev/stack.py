"""A whole Nishati market on this machine, until Ctrl-C: python -m nishati_dev.stack, or
nishati-dev stack.

It starts, each on a loopback port, and prints every URL and file it made:

- a local validator (surfpool) with the program deployed, JSON-RPC on port 8899 (the client's
  default URL, so nishati and the client README's examples reach it), its websocket on 8900;
- a market on it (1.5 % fee, KES 10 to 60 per kWh, meters exporting at most 10 kW), its admin
  and oracle keypairs and a funded payer's written to the work directory, and the test
  installer (tests/keys/installer.json) approved to register meters;
- Mosquitto, with a user and password, for meters over MQTT;
- the Daraja simulator, which plays M-Pesa, and the SMS simulator, which plays Africa's
  Talking (households' sign-in codes: its /messages?to=+254... shows what a phone was sent);
- the oracle (python -m nishati_oracle), paying through the simulator, with every setting it
  was given in oracle.env (set -a; . oracle.env configures nishati the same way), an operator
  token it prints, and session cookies without Secure (its pages are on http://127.0.0.1);
- two custodial test households the oracle knows, their meters registered by the installer: a
  seller whose meter key is written (its baseline reading is attested as the stack starts, so
  its next readings mint what it exports from then on, at most 10 kW over the chain's time)
  and a buyer.

Ctrl-C (or SIGTERM) stops everything it started, by PID, in the reverse order. Each port may be
0 for any free one; settings come from the options or NISHATI_STACK_* (docs/settings.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from nishati_client.chain import RpcChain
from nishati_client.config import ClientSettings
from nishati_client.keys import ed25519_private_key, write_keypair
from nishati_client.market import MarketConfig
from nishati_client.program import NishatiClient
from nishati_dev.broker import Mosquitto
from nishati_dev.localday import (
    LOCAL_PHONE_SALT,
    as_environment,
    describe,
    enrol,
    household,
    local_market_config,
    oracle_database,
    simulator_payments,
)
from nishati_dev.localnet import LocalnetError, LocalValidator
from nishati_dev.paths import INSTALLER_KEYPAIR, PHONE_KEY_FILE, WEB_DIST
from nishati_dev.processes import (
    HOST,
    DarajaSimService,
    OracleService,
    Service,
    ServiceError,
    SmsSimService,
    free_port,
)
from nishati_dev.sandbox import (
    MAX_EXPORT_WATTS,
    Harness,
    Member,
    Meter,
    OpenMarket,
    fund,
    open_market,
)
from nishati_dev.settings import LocalChainSettings
from nishati_dev.sms_sim import TEST_API_KEY as SMS_SIM_API_KEY
from nishati_oracle.core.settings import (
    AuthSettings,
    ForecastSettings,
    HttpSettings,
    OracleSettings,
    ReadingSettings,
    Sms,
    SmsSettings,
    StorageSettings,
)

PAYER_LAMPORTS = 1_000 * 10**9
ORACLE_LAMPORTS = 10 * 10**9
TOPIC_ROOT = "nishati"
# The test households' phones: the simulator pays a push to a number ending in 00 and a payout
# to one ending in 56 (nishati_dev.daraja_sim.scenarios).
SELLER_PHONE = "254700000156"
BUYER_PHONE = "254700000200"
WATCH_SECS = 1.0


class StackSettings(BaseSettings):
    """nishati-dev stack's own settings (prefix NISHATI_STACK_); the options win."""

    model_config = SettingsConfigDict(env_prefix="NISHATI_STACK_", env_file=".env", extra="ignore")

    rpc_port: int = Field(
        default=8899, ge=0, le=65_534, description="Validator JSON-RPC; its websocket the next"
    )
    oracle_port: int = Field(default=8080, ge=0, le=65_535, description="Oracle HTTP API")
    mqtt_port: int = Field(default=1883, ge=0, le=65_535, description="Mosquitto")
    daraja_port: int = Field(default=8089, ge=0, le=65_535, description="Daraja simulator")
    sms_port: int = Field(default=8090, ge=0, le=65_535, description="SMS simulator")
    directory: Path | None = Field(
        default=None,
        description="Work directory for keys, logs and databases (kept); unset: a new "
        "temporary one, removed on exit",
    )
    market_id: int = Field(default=1, ge=0, description="Id of the market it opens")
    max_export_watts: int = Field(
        default=MAX_EXPORT_WATTS,
        ge=1,
        le=100_000_000,
        description="Most power its market lets a meter export (minting follows the chain's "
        "clock: more, for tests that mint much quickly)",
    )


@dataclass
class Stack:
    """The running pieces, and the files the stack wrote."""

    directory: Path
    validator: LocalValidator
    chain: RpcChain
    market: OpenMarket
    broker: Mosquitto
    sim: DarajaSimService
    sms: SmsSimService
    oracle: OracleService
    oracle_settings: OracleSettings
    operator_token: str
    payer_keypair: Path
    admin_keypair: Path
    oracle_keypair: Path
    oracle_env: Path

    @property
    def services(self) -> list[Service]:
        return [self.validator, self.sim, self.sms, self.broker, self.oracle]


def write_environment(path: Path, env: Mapping[str, str]) -> None:
    """NAME=value lines a shell can source (set -a; . FILE); values single-quoted."""
    lines = [f"{name}='{value}'" for name, value in sorted(env.items())]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)


@asynccontextmanager
async def local_stack(
    directory: Path,
    chain_settings: LocalChainSettings,
    *,
    market_id: int,
    config: Callable[[Pubkey], MarketConfig] = local_market_config,
    oracle_port: int = 0,
    mqtt_port: int = 0,
    daraja_port: int = 0,
    sms_port: int = 0,
    sim_settings: Mapping[str, object] | None = None,
    readings: ReadingSettings | None = None,
    forecast: ForecastSettings | None = None,
) -> AsyncIterator[Stack]:
    """Starts the validator, opens the market, then the simulator, the broker and the oracle
    (each port 0: a free one; the validator's is chain_settings.localnet_rpc_port), and
    stops them all, last first, when the block ends. The oracle attests what arrives at once
    unless ``readings`` says otherwise; its forecasts follow ``forecast`` (by default, the
    oracle's defaults)."""
    payer = Keypair()
    program_id = Pubkey.from_string(chain_settings.program_id)
    async with AsyncExitStack() as running:
        validator = await running.enter_async_context(
            LocalValidator(
                chain_settings, {str(payer.pubkey()): PAYER_LAMPORTS}, directory / "validator.log"
            )
        )
        chain = RpcChain(validator.rpc_url, program_id, chain_settings.commitment)
        running.push_async_callback(chain.close)
        harness = Harness(chain, payer, NishatiClient(chain, program_id), None)
        market = await open_market(harness, market_id, config)
        await fund(harness, market.oracle.pubkey(), ORACLE_LAMPORTS)
        keys = {
            "payer": (directory / "payer.json", payer),
            "admin": (directory / "admin.json", market.admin),
            "oracle": (directory / "oracle.json", market.oracle),
        }
        for path, keypair in keys.values():
            write_keypair(path, keypair)
        sim = await running.enter_async_context(
            DarajaSimService(
                # Its books in the work directory: a restarted simulator finds them.
                {"database": directory / "daraja-sim.db", **(sim_settings or {})},
                directory / "daraja-sim.log",
                port=daraja_port,
            )
        )
        sms = await running.enter_async_context(
            SmsSimService(directory / "sms-sim.log", port=sms_port)
        )
        broker = await running.enter_async_context(
            Mosquitto(directory / "mosquitto", port=mqtt_port)
        )
        operator_token = secrets.token_urlsafe(24)
        port = oracle_port or free_port()
        oracle_settings = OracleSettings(
            market=str(market.address),
            oracle_keypair=keys["oracle"][0],
            chain=ClientSettings(
                rpc_url=validator.rpc_url,
                ws_url=validator.ws_url,
                program_id=chain_settings.program_id,
                phone_salt=SecretStr(LOCAL_PHONE_SALT.hex()),
            ),
            http=HttpSettings(port=port, web_dir=WEB_DIST),
            # Attest whatever arrives, at once: a local market shows its readings on chain.
            readings=readings or ReadingSettings(attest_threshold_wh=0, attest_interval_secs=0.5),
            mqtt=broker.mqtt_settings(TOPIC_ROOT),
            payments=simulator_payments(
                sim.url, f"http://{HOST}:{port}", secrets.token_urlsafe(24)
            ).model_copy(update={"operator_token": SecretStr(operator_token)}),
            storage=StorageSettings(database_url=oracle_database(directory)),
            sms=SmsSettings(
                provider=Sms.simulator, url=sms.url, api_key=SecretStr(SMS_SIM_API_KEY)
            ),
            # Its pages are served on http://127.0.0.1, where a Secure cookie is not kept.
            auth=AuthSettings(insecure_cookies=True),
            forecast=forecast or ForecastSettings(),
        )
        env = as_environment(oracle_settings)
        env_file = directory / "oracle.env"
        write_environment(env_file, env)
        oracle = await running.enter_async_context(
            OracleService(env, directory / "oracle.log", port=port)
        )
        yield Stack(
            directory=directory,
            validator=validator,
            chain=chain,
            market=market,
            broker=broker,
            sim=sim,
            sms=sms,
            oracle=oracle,
            oracle_settings=oracle_settings,
            operator_token=operator_token,
            payer_keypair=keys["payer"][0],
            admin_keypair=keys["admin"][0],
            oracle_keypair=keys["oracle"][0],
            oracle_env=env_file,
        )


@dataclass
class TestHouseholds:
    seller: Member
    seller_meter_keypair: Path
    buyer: Member


async def test_households(stack: Stack, http: httpx.AsyncClient) -> TestHouseholds:
    """A seller with a meter whose baseline is attested now (its next readings may mint what
    it exports from now on, at most the market's export limit) and whose phone the oracle
    knows, and a buyer; the test installer registers both meters."""
    market = stack.market
    meter_keypair = Keypair()
    meter_file = stack.directory / "seller-meter.json"
    write_keypair(meter_file, meter_keypair)
    meter = Meter(market.address, key=ed25519_private_key(meter_keypair))
    seller = await household(market, SELLER_PHONE, LOCAL_PHONE_SALT, meter)
    await market.attest((seller, meter.read(await market.now())))
    await enrol(http, seller, SELLER_PHONE)
    buyer = await household(market, BUYER_PHONE, LOCAL_PHONE_SALT)
    return TestHouseholds(seller, meter_file, buyer)


def rows(title: str, items: Sequence[tuple[str, object]]) -> str:
    return "\n".join([title, *(f"  {name:<18}{value}" for name, value in items)])


def summary(stack: Stack, people: TestHouseholds, removed: bool) -> str:
    broker = stack.broker
    oracle = stack.oracle.url
    where = "a temporary directory, removed on exit" if removed else "kept"
    services = [
        ("rpc", stack.validator.rpc_url),
        ("websocket", stack.validator.ws_url),
        ("oracle", oracle),
        ("docs", f"{oracle}/docs"),
        ("metrics", f"{oracle}/metrics"),
        ("mqtt", broker.mqtt_url),
        ("mqtt user", broker.username),
        ("mqtt password", broker.password),
        ("daraja simulator", stack.sim.url),
        ("sms simulator", stack.sms.url),
        ("sign-in codes", f"{stack.sms.url}/messages?to=+{BUYER_PHONE}"),
        ("operator token", stack.operator_token),
    ]
    files = [
        ("directory", f"{stack.directory} ({where})"),
        ("market", stack.market.address),
        ("payer keypair", f"{stack.payer_keypair} ({PAYER_LAMPORTS // 10**9:,} SOL)"),
        ("admin keypair", stack.admin_keypair),
        ("oracle keypair", stack.oracle_keypair),
        ("installer keypair", INSTALLER_KEYPAIR),
        ("phone key", PHONE_KEY_FILE),
        ("phone salt", LOCAL_PHONE_SALT.hex()),
        ("oracle settings", stack.oracle_env),
        ("logs", f"{stack.directory}/*.log, {broker.log_path}"),
    ]
    households = [
        ("seller household", people.seller.address),
        ("seller phone", SELLER_PHONE),
        ("seller meter", people.seller.meter.public_key),
        ("seller meter key", people.seller_meter_keypair),
        ("buyer household", people.buyer.address),
        ("buyer phone", BUYER_PHONE),
    ]
    return "\n\n".join(
        [
            rows("services", services),
            rows("keys and files", files),
            rows("test households (custodial: the oracle keypair signs for them)", households),
        ]
    )


class StackError(RuntimeError):
    """The stack cannot start as asked."""


def check_ports(settings: StackSettings) -> None:
    """Every fixed port must be free before anything starts."""
    wanted = [
        (settings.oracle_port, "--oracle-port", "the oracle"),
        (settings.mqtt_port, "--mqtt-port", "Mosquitto"),
        (settings.daraja_port, "--daraja-port", "the Daraja simulator"),
        (settings.sms_port, "--sms-port", "the SMS simulator"),
    ]
    if settings.rpc_port:
        wanted.append((settings.rpc_port, "--rpc-port", "the validator's JSON-RPC"))
        wanted.append((settings.rpc_port + 1, "--rpc-port", "the validator's websocket"))
    for port, option, what in wanted:
        if not port:
            continue
        with socket.socket() as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                raise StackError(
                    f"port {port} ({what}) is in use: another stack? Pass {option} "
                    "(0: any free port)"
                ) from None


async def watch(services: Sequence[Service], stop: asyncio.Event) -> Service | None:
    """Waits for stop; returns a service that exited on its own first, if one did."""
    while not stop.is_set():
        for service in services:
            if not service.running:
                return service
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), WATCH_SECS)
    return None


class Interrupts:
    """SIGINT and SIGTERM for the running task: before ``ready``, they cancel it (once: a
    second cancel would cut its clean-up short); after, they set ``stop``."""

    def __init__(self) -> None:
        starting = asyncio.current_task()
        assert starting is not None
        self.starting = starting
        self.stop = asyncio.Event()
        self.ready = False
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.interrupted)

    def interrupted(self) -> None:
        if self.ready:
            self.stop.set()
        elif not self.starting.cancelling():
            self.starting.cancel()

    async def serve(self, services: Sequence[Service]) -> Service | None:
        """Ready now: waits for a signal; returns a service that exited on its own first."""
        self.ready = True
        return await watch(services, self.stop)


async def serve(settings: StackSettings, chain_settings: LocalChainSettings) -> int:
    """Runs the stack until SIGINT or SIGTERM; 0 once stopped, 1 if a service died."""
    interrupts = Interrupts()
    temporary = settings.directory is None
    directory = settings.directory or Path(tempfile.mkdtemp(prefix="nishati-stack-"))
    directory.mkdir(parents=True, exist_ok=True)
    print(f"starting a local stack in {directory}", flush=True)
    try:
        async with (
            local_stack(
                directory,
                chain_settings,
                market_id=settings.market_id,
                config=lambda oracle: replace(
                    local_market_config(oracle), max_export_watts=settings.max_export_watts
                ),
                oracle_port=settings.oracle_port,
                mqtt_port=settings.mqtt_port,
                daraja_port=settings.daraja_port,
                sms_port=settings.sms_port,
            ) as stack,
            httpx.AsyncClient(base_url=stack.oracle.url, timeout=30) as http,
        ):
            people = await test_households(stack, http)
            print(describe(await stack.market.h.client.market(stack.market.address)))
            print()
            print(summary(stack, people, temporary))
            print()
            print("ready: Ctrl-C stops everything", flush=True)
            died = await interrupts.serve(stack.services)
            if died is not None:
                print(f"the {died.name} exited; its log: {died.log_path}", file=sys.stderr)
            print("stopping", flush=True)
        print("stopped", flush=True)
        return 0 if died is None else 1
    except asyncio.CancelledError:
        print("stopped before it was ready", flush=True)
        return 130
    finally:
        if temporary:
            shutil.rmtree(directory, ignore_errors=True)


def parser(defaults: StackSettings) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nishati-dev stack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for name, field in StackSettings.model_fields.items():
        p.add_argument(
            f"--{name.replace('_', '-')}",
            type=Path if name == "directory" else int,
            metavar="DIR" if name == "directory" else "N",
            default=getattr(defaults, name),
            help=f"{field.description} (NISHATI_STACK_{name.upper()}; default %(default)s)",
        )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser(StackSettings()).parse_args(argv)
    settings = StackSettings(**vars(args))
    chain_settings = LocalChainSettings(localnet_rpc_port=settings.rpc_port or None)
    try:
        check_ports(settings)
        return asyncio.run(serve(settings, chain_settings))
    except (StackError, LocalnetError, ServiceError, FileNotFoundError) as e:
        print(f"nishati-dev stack: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
