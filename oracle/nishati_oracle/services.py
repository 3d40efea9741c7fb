"""What the oracle runs while it serves: made once at startup, closed in reverse at shutdown.

:func:`start` enters each resource into one :class:`~contextlib.AsyncExitStack` as it is made,
so whatever was made is closed even when a later step fails, and closing runs in the reverse
of making: the MQTT intake stops first, then the batcher (releasing its attester lease), the
payment worker and the forecast rounds finish, then the clients, the store and the chain close.

The chain need not answer for the oracle to start: a program that is not deployed stops it (the
wrong cluster), but an RPC node that does not answer only delays the check, which
:class:`ChainCheck` repeats in the background until it passes. Meanwhile readings are taken
and kept, routes that need the chain answer 503 ``ChainUnavailable`` with ``Retry-After``, and
``/readyz`` says the chain is down; the batcher and the payment worker catch up once it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import structlog
from solders.pubkey import Pubkey

from nishati_client.chain import LiteSvmChain, RpcChain, check_program_deployed
from nishati_client.errors import ProgramNotDeployed, RpcError
from nishati_client.keys import load_keypair
from nishati_client.program import NishatiClient
from nishati_oracle.accounts.wiring import Accounts, build_accounts
from nishati_oracle.core.metrics import Metrics
from nishati_oracle.core.runtime import RuntimeWatch
from nishati_oracle.core.settings import OracleSettings, Payments
from nishati_oracle.forecast.advising import HouseholdAdvisor
from nishati_oracle.forecast.autosell import AutoSeller, AutoSellStore
from nishati_oracle.forecast.gemini import GeminiAdvisor
from nishati_oracle.forecast.service import ForecastService
from nishati_oracle.forecast.sources import Advisor
from nishati_oracle.forecast.store import ForecastStore
from nishati_oracle.forecast.weather import OpenMeteo
from nishati_oracle.readings.batcher import Attester
from nishati_oracle.readings.clock import ChainClock
from nishati_oracle.readings.lease import AttesterLease
from nishati_oracle.readings.mqtt import BatchReport, MqttIngest
from nishati_oracle.readings.pipeline import ReadingPipeline
from nishati_oracle.readings.registry import MeterRegistry
from nishati_oracle.readings.store import Store
from nishati_oracle.storage.partitions import run_upkeep
from nishati_oracle.trading.wiring import Trading, build_trading

log = structlog.get_logger(__name__)

# How long the startup check of the chain waits between tries while the RPC node is away.
CHAIN_CHECK_RETRY_SECS = 2.0
MAX_CHAIN_CHECK_RETRY_SECS = 30.0


class ChainCheck:
    """Whether the program is deployed on the cluster the RPC node serves, checked at startup
    and, while the node does not answer, again in the background until it does."""

    def __init__(self, chain: RpcChain | LiteSvmChain, program_id: Pubkey) -> None:
        self.chain = chain
        self.program_id = program_id
        self.passed = False

    async def first(self) -> None:
        """The check at startup: raises ProgramNotDeployed (the wrong cluster); an RPC node
        that does not answer is logged and left to :meth:`keep_trying`."""
        try:
            await check_program_deployed(self.chain, self.program_id)
        except RpcError as e:
            log.warning("chain unreachable at startup, serving without it", error=str(e))
            return
        self.passed = True

    async def keep_trying(self, stop: asyncio.Event) -> None:
        """Checks again, backing off, until the check passes or ``stop``."""
        wait = CHAIN_CHECK_RETRY_SECS
        while not self.passed and not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
            if stop.is_set():
                return
            try:
                await check_program_deployed(self.chain, self.program_id)
            except RpcError:
                wait = min(MAX_CHAIN_CHECK_RETRY_SECS, wait * 2)
                continue
            except ProgramNotDeployed as e:
                # The node is up and serves another cluster: nothing here can fix that.
                log.error("program not deployed on this cluster", error=str(e))
                return
            self.passed = True
            log.info("chain reachable, program deployed")


@dataclass
class Services:
    """What the lifespan builds and the routes use."""

    settings: OracleSettings
    market: Pubkey
    store: Store
    chain: RpcChain | LiteSvmChain
    client: NishatiClient
    pipeline: ReadingPipeline
    attester: Attester
    metrics: Metrics
    # None while payments are disabled.
    trading: Trading | None
    # None while MQTT is disabled.
    mqtt: MqttIngest | None
    # None while forecasts are disabled.
    forecast: ForecastService | None = None
    # None while forecasts are disabled (advice is made from them; its route answers 503).
    advisor: Advisor | None = None
    # Keeps opted-in custodial households' automatic offers; made once the rest is.
    auto_sell: AutoSeller = field(init=False)
    # Sign-in: codes, passwords, sessions, API keys.
    accounts: Accounts = field(init=False)


async def start(
    settings: OracleSettings, chain: RpcChain | LiteSvmChain | None, stack: AsyncExitStack
) -> Services:
    """The oracle's services, running; ``stack`` closes them. ``chain`` is a test's (the app
    closes only a chain it made)."""
    if settings.market is None or settings.oracle_keypair is None:
        raise RuntimeError("set NISHATI_MARKET and NISHATI_ORACLE_KEYPAIR")
    program_id = Pubkey.from_string(settings.chain.program_id)
    market = Pubkey.from_string(settings.market)
    oracle = load_keypair(settings.oracle_keypair)
    stack.callback(log.info, "oracle stopped")
    if chain is None:
        chain = RpcChain(settings.chain.rpc_url, program_id, settings.chain.commitment)
        stack.push_async_callback(chain.close)
    chain_check = ChainCheck(chain, program_id)
    await chain_check.first()
    metrics = Metrics()
    store = await Store.open(settings.storage.database_url, metrics, settings.storage.slow_log_secs)
    stack.push_async_callback(store.close)
    client = NishatiClient(chain, program_id)
    registry = MeterRegistry(
        client,
        market,
        settings.readings.meter_cache_secs,
        market_secs=settings.readings.market_cache_secs,
    )
    stack.push_async_callback(registry.close)
    clock = ChainClock(chain, settings.readings.chain_clock_secs)
    stack.push_async_callback(clock.close)
    watch = RuntimeWatch(metrics)
    watch.start()
    stack.push_async_callback(watch.close)
    pipeline = ReadingPipeline(settings, market, store, registry, metrics, clock)
    lease = AttesterLease(
        store.engine,
        str(market),
        settings.readings.attest_lease_secs,
        settings.readings.attest_lease_renew_secs,
    )
    # Taken now if no other replica holds it (one oracle alone attests from its first round).
    await lease.try_hold()
    attester = Attester(
        settings, store, client, oracle, market, chain.policy, metrics, registry, clock, lease
    )
    trading: Trading | None = None
    if settings.payments.provider is not Payments.disabled:
        trading = build_trading(settings, store, client, oracle, market, metrics)
        stack.push_async_callback(trading.close)
        # Starts the first probe of Daraja, so readiness knows it before a payment needs it.
        trading.gateway.readiness()
    forecast: ForecastService | None = None
    if settings.forecast.enabled:
        weather = OpenMeteo(settings.forecast)
        stack.push_async_callback(weather.close)
        forecast = ForecastService(settings.forecast, ForecastStore(store.engine), weather, metrics)
    made = Services(
        settings,
        market,
        store,
        chain,
        client,
        pipeline,
        attester,
        metrics,
        trading,
        mqtt=None,
        forecast=forecast,
    )
    if forecast is not None:
        gemini = GeminiAdvisor(settings.forecast)
        stack.push_async_callback(gemini.close)
        made.advisor = HouseholdAdvisor(forecast, gemini, client, market)
    made.auto_sell = AutoSeller(
        AutoSellStore(store.engine),
        client,
        oracle,
        market,
        settings.forecast,
        lambda: made.advisor,
        metrics,
    )
    made.accounts = build_accounts(settings, store, metrics)
    stack.push_async_callback(made.accounts.close)
    stop = asyncio.Event()
    # The chain's clock kept fresh for the readings' checks (it is never carried forward).
    work: list[Coroutine[Any, Any, None]] = [
        attester.run(stop),
        clock.keep_fresh(stop),
        chain_check.keep_trying(stop),
        made.auto_sell.run(stop),
        run_upkeep(store.engine, settings.readings.readings_retention_days, stop),
    ]
    if trading is not None:
        work.append(trading.worker.run(stop))
    if forecast is not None:
        work.append(forecast.run(stop))
    tasks = [asyncio.create_task(w) for w in work]

    async def finish() -> None:
        stop.set()
        await asyncio.gather(*tasks)

    stack.push_async_callback(finish)
    if settings.mqtt.enabled:

        def observe(report: BatchReport) -> None:
            metrics.received.labels("mqtt").inc(report.received)

        made.mqtt = MqttIngest(settings, pipeline, observe=observe)
        await made.mqtt.start()
        stack.push_async_callback(made.mqtt.stop)
    # What startup made lives as long as the app: frozen, a full collection no longer walks
    # it (~200 ms with the chain, database and web libraries loaded: a stall of every answer).
    gc.freeze()
    log.info("oracle started", market=str(market), oracle=str(oracle.pubkey()))
    return made
