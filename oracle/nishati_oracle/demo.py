"""The local market demo: a day in a Nairobi estate's solar market on a local validator.

A market opens on the embedded defaults; a household with rooftop solar (Wanjiru, who has a
wallet) and a neighbour without one (Otieno, for whom the oracle acts) register; Wanjiru's meter
signs two readings that the oracle attests, minting her exported energy; she offers part of it;
Otieno buys some; the oracle settles the trade (here directly: M-Pesa arrives with the payments
issue). Then six simulated homes report a late morning's readings through a Mosquitto broker to
the oracle service, which verifies, stores and attests them on chain.
Run it with ``scripts/demo.sh`` (which builds first) or ``python -m nishati_oracle.demo``.
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from nishati_client.chain import RpcChain
from nishati_client.config import ClientSettings
from nishati_client.keys import write_keypair
from nishati_client.localnet import LocalnetError, LocalValidator
from nishati_client.market import Market, MarketConfig
from nishati_client.program import NishatiClient
from nishati_client.sandbox import Harness, OpenMarket, digest, fund, open_market
from nishati_oracle.app import Services, create_app
from nishati_oracle.broker import running_mosquitto
from nishati_oracle.simulate import MqttTransport, Tally, grid, new_meter, register

DEMO_MARKET_ID = 1
DEMO_FUNDING_LAMPORTS = 100 * 10**9
ORACLE_FUNDING_LAMPORTS = 5 * 10**9


def demo_config(oracle: Pubkey) -> MarketConfig:
    """A market as an estate might run it: 1.5 % fee, KES 10 to 60 per kWh, 15 min to pay."""
    return MarketConfig(
        oracle_authority=oracle,
        fee_bps=150,
        min_price_cents_per_kwh=1_000,
        max_price_cents_per_kwh=6_000,
        payment_deadline_secs=900,
    )


def kes(cents: int) -> str:
    return f"KES {cents // 100:,}.{cents % 100:02d}"


def kwh(wh: int) -> str:
    return f"{wh // 1000:,}.{wh % 1000:03d} kWh"


def clock(unix_seconds: int) -> str:
    return datetime.fromtimestamp(unix_seconds, UTC).strftime("%H:%M:%S UTC")


def describe(market: Market) -> str:
    c = market.config
    rows = [
        ("address", str(market.address)),
        ("admin", str(market.admin)),
        ("oracle authority", str(c.oracle_authority)),
        ("energy mint", str(market.energy_mint)),
        ("fee", f"{c.fee_bps // 100}.{c.fee_bps % 100:02d} % ({c.fee_bps} bps)"),
        (
            "price bounds",
            f"{kes(c.min_price_cents_per_kwh)} to {kes(c.max_price_cents_per_kwh)} per kWh",
        ),
        ("payment deadline", f"{c.payment_deadline_secs} s"),
        ("paused", "yes" if market.paused else "no"),
    ]
    lines = [f"Market {market.market_id}"] + [f"  {name:<18}{value}" for name, value in rows]
    return "\n".join(lines)


async def market_day(market: OpenMarket) -> None:
    """Households, readings, an offer and a trade, each step printed as it lands."""
    client = market.h.client
    wanjiru = await market.register()
    otieno = await market.register(custodial=True)
    print(f"registered Wanjiru (wallet)  household {wanjiru.address}")
    print(f"registered Otieno (no wallet, the oracle acts for him)  household {otieno.address}")

    now = await market.now()
    baseline = await market.attest((wanjiru, wanjiru.meter.read(now, exported_wh=12_480)))
    later = await market.attest((wanjiru, wanjiru.meter.read(now + 60, exported_wh=3_200)))
    [first] = client.program.events(baseline.logs)
    [second] = client.program.events(later.logs)
    print(
        f"Wanjiru's meter: {kwh(first.data.exported_wh)} exported so far (baseline, minted "
        f"{first.data.minted_wh} Wh); then {kwh(second.data.exported_wh)}: minted "
        f"{kwh(second.data.minted_wh)} ({later.compute_units:,} CU)"
    )

    offer = await market.offer(wanjiru, 2_500, price_cents_per_kwh=2_500)
    print(f"Wanjiru offers {kwh(offer.unreserved_wh)} at {kes(offer.price_cents_per_kwh)}/kWh")
    trade = await market.open_trade(offer, otieno, 1_500, reference="demo-payment-1")
    print(
        f"Otieno takes {kwh(trade.wh)}: {kes(trade.total_cents)} "
        f"(whole shillings, rounded up), to pay by {clock(trade.deadline)}"
    )
    settled = await client.trade_settle(
        payer=market.h.payer, oracle=market.oracle, trade=trade, receipt_hash=digest("SGR7X2K9QP")
    )
    print(f"the oracle settles the trade ({settled.compute_units:,} CU)")
    print(
        f"balances: Wanjiru {kwh(await market.balance(wanjiru))}, "
        f"Otieno {kwh(await market.balance(otieno))}, "
        f"still offered {kwh((await client.offer(offer.address)).unreserved_wh)}"
    )


SIMULATED_HOMES = 6
READING_INTERVAL_SECS = 300
NAIROBI_10AM_UTC_SECS = 7 * 3_600


def last_late_morning(now: int) -> range:
    """Reading times every 5 minutes over the last 10:00 to 12:00 in Nairobi that has passed."""
    day = 86_400
    start = now - now % day + NAIROBI_10AM_UTC_SECS
    if start + 2 * 3_600 > now:
        start -= day
    return grid(start, start + 2 * 3_600, READING_INTERVAL_SECS)


async def attested(services: Services, within_secs: float = 60) -> None:
    """Waits until the oracle's batcher has attested every stored reading."""
    deadline = time.monotonic() + within_secs
    while await services.store.unattested_count() > 0:
        if time.monotonic() > deadline:
            raise TimeoutError("the oracle did not attest the readings in time")
        await asyncio.sleep(0.2)


async def meters_over_mqtt(
    market: OpenMarket, chain: RpcChain, settings: ClientSettings, workdir: Path
) -> None:
    """Simulated meters publish to a broker; the oracle service ingests and attests them."""
    rng = random.Random(2026)  # noqa: S311 - the same homes every run, not a secret
    meters = [new_meter(market.address, rng) for _ in range(SIMULATED_HOMES)]
    await fund(market.h, market.oracle.pubkey(), ORACLE_FUNDING_LAMPORTS)
    await register(market.h.client, market.oracle, market.address, meters)
    key = workdir / "oracle.json"
    write_keypair(key, market.oracle)
    with running_mosquitto(workdir / "mosquitto") as broker:
        oracle_settings = broker.settings(market.address, "nishati").model_copy(
            update={
                "rpc_url": settings.rpc_url,
                "oracle_keypair": key,
                "database_url": f"sqlite+aiosqlite:///{workdir / 'oracle.db'}",
                "attest_threshold_wh": 0,
                "attest_interval_secs": 0.5,
            }
        )
        print(f"mosquitto on 127.0.0.1:{broker.port}; the oracle subscribes to its meters' topics")
        app = create_app(oracle_settings, chain=chain)
        async with app.router.lifespan_context(app):
            services: Services = app.state.services
            tally = Tally()
            transport = MqttTransport(
                oracle_settings, market.address, [m.public_key for m in meters], tally
            )
            await transport.connect()
            times = last_late_morning(await market.now())
            # The first attested reading of a meter is its baseline; the rest mint the export.
            for batch in (times[:1], times[1:]):
                for t in batch:
                    await transport.send([m.read_at(t) for m in meters])
                await transport.drain()
                await attested(services)
            await transport.close()
            print(f"{SIMULATED_HOMES} meters published {tally.line()}")
    for m in meters:
        household = await market.h.client.household(
            market.h.client.program.household_address(market.address, m.owner)
        )
        print(
            f"  home with {m.home.pv_kwp} kWp: {len(times)} readings, counter "
            f"{household.last_counter} on chain, minted {kwh(household.total_exported_wh)}"
        )


async def run(settings: ClientSettings) -> None:
    payer = Keypair()
    program_id = Pubkey.from_string(settings.program_id)
    print(f"starting a local {settings.validator} validator with {settings.program_so.name}")
    with LocalValidator(settings, {str(payer.pubkey()): DEMO_FUNDING_LAMPORTS}) as validator:
        print(f"validator ready at {validator.rpc_url}; program {program_id}")
        chain = RpcChain(validator.rpc_url, program_id, settings.commitment)
        try:
            harness = Harness(chain, payer, NishatiClient(chain, program_id), None)
            market = await open_market(harness, DEMO_MARKET_ID, demo_config)
            print(describe(await harness.client.market(market.address)))
            await market_day(market)
            with tempfile.TemporaryDirectory(prefix="nishati-demo-") as workdir:
                await meters_over_mqtt(market, chain, settings, Path(workdir))
        finally:
            await chain.close()


def main() -> None:
    try:
        asyncio.run(run(ClientSettings()))
    except LocalnetError as e:
        sys.exit(f"demo: {e}")


if __name__ == "__main__":
    main()
