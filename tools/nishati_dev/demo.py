"""The local market demo: a day in a Nairobi estate's solar market, all on this machine.

A market opens on the embedded defaults on a local validator. Six homes with rooftop solar
report a late morning's signed readings through a Mosquitto broker to the oracle, which
verifies, stores and attests them, minting their exported energy. Three of them offer part of
it; eight neighbours buy through the oracle's API and pay by M-Pesa, here the local Daraja
simulator, whose outcome each buyer's phone picks: most pay, some cancel or run short. Paid
trades settle on chain and the sellers are paid by B2C less the market fee; failed ones are
cancelled and the energy goes back to its offer. A summary closes the day.
Run it with ``scripts/demo.sh`` (which builds first) or ``python -m nishati_dev.demo``.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from nishati_client.chain import RpcChain
from nishati_client.config import ClientSettings
from nishati_client.keys import write_keypair
from nishati_client.market import Market, MarketConfig
from nishati_client.phone import mask
from nishati_client.program import NishatiClient
from nishati_client.trading import Offer
from nishati_dev.broker import free_port, running_mosquitto
from nishati_dev.daraja_sim.launcher import running_daraja_sim_async
from nishati_dev.localday import household, oracle_database, simulator_payments
from nishati_dev.localnet import LocalnetError, LocalValidator
from nishati_dev.sandbox import Harness, OpenMarket, fund, open_market
from nishati_dev.settings import LocalChainSettings
from nishati_dev.simulate import (
    MqttTransport,
    SimulatedMeter,
    Tally,
    grid,
    new_meter,
    register,
    simulated_phone,
)
from nishati_oracle.app import create_app
from nishati_oracle.core.settings import (
    HttpSettings,
    OracleSettings,
    ReadingSettings,
    StorageSettings,
)
from nishati_oracle.services import Services

DEMO_MARKET_ID = 1
DEMO_FUNDING_LAMPORTS = 100 * 10**9
ORACLE_FUNDING_LAMPORTS = 5 * 10**9
# The demo's phone salt: a fixed, public value (production's is a secret setting).
DEMO_PHONE_SALT = bytes.fromhex("6e6973686174692d64656d6f2d73616c742d3230323621")


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
    market: OpenMarket, services: Services, settings: OracleSettings
) -> list[SimulatedMeter]:
    """Simulated meters publish to the broker; the oracle ingests and attests them."""
    rng = random.Random(2026)  # noqa: S311 - the same homes every run, not a secret
    # The same homes under the same sky every run, so the day's trades are the same too.
    meters = [
        new_meter(market.address, rng, weather=f"demo-home-{n}") for n in range(SIMULATED_HOMES)
    ]
    await register(
        market.h.client, market.oracle, market.address, meters, phone_salt=DEMO_PHONE_SALT
    )
    tally = Tally()
    transport = MqttTransport(settings, market.address, [m.public_key for m in meters], tally)
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
        household = await market.h.client.household(home_address(market, m))
        print(
            f"  home with {m.home.pv_kwp} kWp: {len(times)} readings, counter "
            f"{household.last_counter} on chain, minted {kwh(household.total_exported_wh)}"
        )
    return meters


def home_address(market: OpenMarket, meter: SimulatedMeter) -> Pubkey:
    return market.h.client.program.household_address(market.address, meter.owner)


# The buyers: the last two digits of a phone pick the simulator's outcome (see
# nishati_dev.daraja_sim.scenarios): 00 pays, 32 cancels the prompt, 11 has too little balance.
BUYERS = [
    ("Otieno", "0712345600", 600),
    ("Akinyi", "0722000100", 700),
    ("Kamau", "0733000200", 500),
    ("Njeri", "0744000332", 500),
    ("Mwangi", "0755000400", 800),
    ("Chebet", "0766000511", 600),
    ("Wafula", "0777000600", 550),
    ("Achieng", "0788000700", 550),
]
OFFER_PRICES = [2_200, 2_500, 2_800]  # KES cents per kWh, one per seller


async def sellers_offer(
    market: OpenMarket, meters: list[SimulatedMeter], oracle: httpx.AsyncClient
) -> list[Offer]:
    """The three homes that exported most offer half of it; the oracle learns their phones
    (checked against their chain commitments) so it can pay them."""
    homes = [(await market.h.client.household(home_address(market, m)), m) for m in meters]
    homes.sort(key=lambda pair: pair[0].total_exported_wh, reverse=True)
    offers = []
    for (home, meter), price in zip(homes, OFFER_PRICES, strict=False):
        phone = simulated_phone(meter.public_key)
        answer = await oracle.put(f"/api/v1/households/{home.address}/phone", json={"phone": phone})
        answer.raise_for_status()
        created = await market.h.client.offer_create(
            payer=market.oracle,
            authority=market.oracle,
            household=home,
            wh=home.total_exported_wh // 2,
            price_cents_per_kwh=price,
            expires_at=await market.now() + 3_600,
        )
        offer = await market.h.client.offer(created.address)
        offers.append(offer)
        print(f"home {mask(phone)} offers {kwh(offer.unreserved_wh)} at {kes(price)}/kWh")
    return offers


async def buyers_buy(
    market: OpenMarket, offers: list[Offer], oracle: httpx.AsyncClient
) -> list[dict[str, Any]]:
    """Each neighbour buys from the cheapest offer with enough left, through the API; the
    simulator prompts their phone and calls back."""
    opened = []
    for name, phone, wh in BUYERS:
        await household(market, phone, DEMO_PHONE_SALT)
        current = [await market.h.client.offer(o.address) for o in offers]
        offer = min(
            (o for o in current if o.unreserved_wh >= wh),
            key=lambda o: o.price_cents_per_kwh,
            default=current[0],
        )
        answer = await oracle.post(
            "/api/v1/trades", json={"offer": str(offer.address), "wh": wh, "phone": phone}
        )
        if answer.status_code != 201:
            print(f"{name} could not buy: {answer.json()}")
            continue
        trade = answer.json()
        opened.append({**trade, "name": name, "phone": phone})
        print(
            f"{name} ({mask(phone)}) buys {kwh(wh)} for {kes(trade['total_cents'])}: "
            f"STK Push {trade['checkout_request_id']}"
        )
    return opened


async def outcomes(oracle: httpx.AsyncClient, opened: list[dict[str, Any]]) -> None:
    """Waits for every trade to end, then prints each and the day's totals."""
    deadline = time.monotonic() + 120
    ended: list[dict[str, Any]] = []
    for trade in opened:
        while True:
            payment = (await oracle.get(f"/api/v1/payments/{trade['trade_id']}")).json()
            if payment["final"]:
                ended.append({**trade, **payment})
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"trade {trade['trade_id']} is still {payment['state']}")
            await asyncio.sleep(0.2)
    print("the day's trades:")
    for t in ended:
        how = (
            f"paid, receipt {t['mpesa_receipt']}; seller paid KES {t['payout_kes']}"
            if t["state"] == "payout_confirmed"
            else f"{t['state']} (M-Pesa result {t['result_code']}): energy back to the offer"
        )
        print(f"  {t['name']:<8} {kwh(t['wh'])} {kes(t['total_cents']):>11}  {how}")
    paid = [t for t in ended if t["state"] == "payout_confirmed"]
    print(
        f"summary: {len(paid)} of {len(ended)} trades settled, {kwh(sum(t['wh'] for t in paid))} "
        f"delivered; buyers paid {kes(sum(t['total_cents'] for t in paid))}, sellers received "
        f"{kes(100 * sum(t['payout_kes'] for t in paid))}, market fees "
        f"{kes(sum(t['fee_cents'] for t in paid))}; {len(ended) - len(paid)} cancelled"
    )


@asynccontextmanager
async def oracle_service(settings: OracleSettings, chain: RpcChain) -> AsyncIterator[FastAPI]:
    """The oracle app served over HTTP on loopback (the simulator calls it back)."""
    app = create_app(settings, chain=chain)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=settings.http.port,
            log_config=None,
            access_log=False,
        )
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()
            raise RuntimeError("the oracle did not start")
        await asyncio.sleep(0.05)
    try:
        yield app
    finally:
        server.should_exit = True
        await serving


async def market_day(market: OpenMarket, chain: RpcChain, settings: LocalChainSettings) -> None:
    await fund(market.h, market.oracle.pubkey(), ORACLE_FUNDING_LAMPORTS)
    with tempfile.TemporaryDirectory(prefix="nishati-demo-") as directory:
        workdir = Path(directory)
        key = workdir / "oracle.json"
        write_keypair(key, market.oracle)
        port = free_port()
        async with running_daraja_sim_async(
            workdir / "daraja-sim.log", callback_delay_secs=0.5
        ) as sim:
            with running_mosquitto(workdir / "mosquitto") as broker:
                oracle_settings = OracleSettings(
                    market=str(market.address),
                    oracle_keypair=key,
                    chain=ClientSettings(
                        rpc_url=settings.rpc_url, phone_salt=SecretStr(DEMO_PHONE_SALT.hex())
                    ),
                    http=HttpSettings(port=port),
                    readings=ReadingSettings(attest_threshold_wh=0, attest_interval_secs=0.5),
                    mqtt=broker.settings(market.address, "nishati").mqtt,
                    payments=simulator_payments(
                        sim.url, f"http://127.0.0.1:{port}", secrets.token_urlsafe(24)
                    ),
                    storage=StorageSettings(database_url=oracle_database(workdir)),
                )
                print(
                    f"mosquitto on 127.0.0.1:{broker.port}, Daraja simulator on {sim.url}, "
                    f"oracle on http://127.0.0.1:{port}"
                )
                async with (
                    oracle_service(oracle_settings, chain) as app,
                    httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http,
                ):
                    meters = await meters_over_mqtt(market, app.state.services, oracle_settings)
                    offers = await sellers_offer(market, meters, http)
                    opened = await buyers_buy(market, offers, http)
                    await outcomes(http, opened)


async def run(settings: LocalChainSettings) -> None:
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
            await market_day(market, chain, settings)
        finally:
            await chain.close()


def main() -> None:
    try:
        asyncio.run(run(LocalChainSettings()))
    except LocalnetError as e:
        sys.exit(f"demo: {e}")


if __name__ == "__main__":
    main()
